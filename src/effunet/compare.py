"""The comparison table: one row per data set x model, mean +- std over seeds, plus paired tests.

Quality metrics are the test split's, at native resolution, pooled over all scored pixels (see
`effunet.evaluate`); `train_dice`/`val_dice` show the generalisation gap; `instance_ap` is the
DSB2018 competition score (per-image mean) without and with watershed splitting of touching nuclei.
The paired comparison uses per-image test Dice (native), averaged over seeds per image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from effunet.errors import EffunetError
from effunet.files import atomic_path, write_text_atomic
from effunet.layout import RunId

QUALITY = ("dice", "iou", "accuracy", "sensitivity", "specificity", "precision", "mcc", "roc_auc", "pr_auc")
TRAINING = ("epochs_trained", "best_epoch", "wall_seconds", "seconds_per_epoch", "parameters", "flops")
BASELINES = ("resnet50-unet", "unet")
BOOTSTRAP_SAMPLES = 10_000


@dataclass(frozen=True)
class RunResult:
    """One run's identity and the files aggregation reads (paths given by the caller)."""

    id: RunId
    run: Path  # run.json
    metrics: Path  # eval/metrics.json
    per_image: Path  # eval/per_image.csv


def run_record(result_files: RunResult) -> dict:
    """One training run's figures: its run.json and eval/metrics.json flattened into one row."""
    try:
        run = json.loads(Path(result_files.run).read_text())
        result = json.loads(Path(result_files.metrics).read_text())
    except (OSError, ValueError) as error:
        raise EffunetError(f"cannot read the results of {result_files.id}: {error}") from error
    splits = result["splits"]
    identity = result_files.id
    record = {"dataset": identity.dataset, "model": identity.model, "seed": int(identity.seed),
              **{k: run.get(k) for k in TRAINING},
              "inference_images_per_s": result["inference_images_per_s"],
              "threshold": result["threshold"]["value"]}
    record.update({name: splits["test"]["native"]["pooled"][name] for name in QUALITY})
    for split in ("train", "val"):
        record[f"{split}_dice"] = splits[split]["native"]["pooled"]["dice"]
    instance = splits["test"]["native"]["per_image_mean"]
    for name in ("instance_ap", "instance_ap_split"):
        if name in instance:
            record[name] = instance[name]
    return record


def comparison_table(records: list[dict]) -> pd.DataFrame:
    """Mean and std over seeds of every figure, one row per data set x model."""
    if not records:
        raise EffunetError("no training runs to compare")
    frame = pd.DataFrame(records)
    figures = [c for c in frame.columns if c not in ("dataset", "model", "seed")]
    grouped = frame.groupby(["dataset", "model"], sort=False)
    table = grouped[figures].agg(["mean", "std"])
    table.columns = [f"{name}_{stat}" for name, stat in table.columns]
    table.insert(0, "seeds", grouped["seed"].count())
    return table.reset_index()


def paired_tests(per_image: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Eff-UNet vs each baseline per data set on per-image test Dice: Wilcoxon and bootstrap CI."""
    test = per_image[(per_image["split"] == "test") & (per_image["resolution"] == "native")]
    dice = test.groupby(["dataset", "model", "id"])["dice"].mean()
    rows = []
    for dataset in test["dataset"].unique():
        models = test.loc[test["dataset"] == dataset, "model"].unique()
        for model in (m for m in models if m.startswith("effunet")):
            for baseline in (b for b in BASELINES if b in models):
                pair = pd.concat([dice[dataset, model], dice[dataset, baseline]], axis=1, join="inner")
                rows.append(_paired_row(dataset, model, baseline, pair.to_numpy(), seed))
    return pd.DataFrame(rows)


def _paired_row(dataset, model, baseline, pair: np.ndarray, seed: int) -> dict:
    difference = pair[:, 0] - pair[:, 1]
    resamples = np.random.default_rng(seed).integers(0, len(difference), (BOOTSTRAP_SAMPLES, len(difference)))
    low, high = np.percentile(difference[resamples].mean(axis=1), [2.5, 97.5])
    p = stats.wilcoxon(difference).pvalue if np.any(difference != 0) else 1.0
    significant = p < 0.05 and (low > 0 or high < 0)
    verdict = "no significant difference" if not significant else (
        f"{model} better" if difference.mean() > 0 else f"{baseline} better")
    return {"dataset": dataset, "model": model, "baseline": baseline, "images": len(difference),
            "dice_model": pair[:, 0].mean(), "dice_baseline": pair[:, 1].mean(),
            "dice_difference": difference.mean(), "ci95_low": low, "ci95_high": high,
            "wilcoxon_p": p, "verdict": verdict}


SHOWN = ("dice", "iou", "accuracy", "mcc", "roc_auc", "train_dice", "instance_ap", "instance_ap_split",
         "epochs_trained", "best_epoch", "seconds_per_epoch", "wall_seconds", "inference_images_per_s")
TITLE = "Comparison (test split, native resolution, pooled pixels; mean ± std over seeds)"
PAIRED_TITLE = "Paired comparison on per-image test Dice (Wilcoxon signed-rank, bootstrap 95% CI)"


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The table as people read it: mean ± std cells, parameters in millions, FLOPs in billions."""
    shown = [name for name in SHOWN if f"{name}_mean" in table.columns]
    display = table[["dataset", "model", "seeds"]].copy()
    for name in shown:
        display[name] = [_mean_std(m, s) for m, s in zip(table[f"{name}_mean"], table[f"{name}_std"])]
    display["parameters"] = [f"{p / 1e6:.2f} M" for p in table["parameters_mean"]]
    display["flops"] = [f"{f / 1e9:.2f} G" if pd.notna(f) else "–" for f in table["flops_mean"]]
    return display


def markdown(table: pd.DataFrame, paired: pd.DataFrame) -> str:
    text = f"## {TITLE}\n\n{display_table(table).to_markdown(index=False)}\n"
    if len(paired):
        text += f"\n## {PAIRED_TITLE}\n\n{paired.to_markdown(index=False, floatfmt='.4g')}\n"
    return text


def html(table: pd.DataFrame, paired: pd.DataFrame) -> str:
    """A self-contained HTML page of the same tables, for the Snakemake report."""
    style = "table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px}"
    body = f"<h2>{TITLE}</h2>{display_table(table).to_html(index=False)}"
    if len(paired):
        body += f"<h2>{PAIRED_TITLE}</h2>{paired.to_html(index=False, float_format='{:.4g}'.format)}"
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{style}</style></head><body>{body}</body></html>"


def _mean_std(mean: float, std: float) -> str:
    if pd.isna(mean):
        return "–"
    digits = 1 if abs(mean) >= 10 else 4
    return f"{mean:.{digits}f}" + ("" if pd.isna(std) else f" ± {std:.{digits}f}")


def aggregate(runs: list[RunResult], table_csv, table_md, table_html, paired_csv) -> pd.DataFrame:
    """Read every run's files and write the comparison table (CSV, Markdown) and the paired tests."""
    records = [run_record(r) for r in runs]
    per_image = pd.concat([pd.read_csv(run.per_image, dtype={"id": str}).assign(
        dataset=r["dataset"], model=r["model"], seed=r["seed"]) for run, r in zip(runs, records)])
    table, paired = comparison_table(records), paired_tests(per_image)
    with atomic_path(table_csv) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(paired_csv) as tmp:
        paired.to_csv(tmp, index=False)
    write_text_atomic(table_md, markdown(table, paired))
    write_text_atomic(table_html, html(table, paired))
    return table
