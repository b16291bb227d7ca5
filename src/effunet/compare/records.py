"""Reading a workflow's results into rows: a run's run.json (through `effunet.run.RunRecord`) and
eval/metrics.json, a data set's reference.json, the runs' per-image scores.

Headline weighting: a data set's headline quality columns (`dice`, `iou`, ...) are per-image means (each
image counts once, as in training and in the paired test) or pooled over its scored pixels, as its format
says (`effunet.data.formats`). Both variants are kept under their own names (`<metric>_pooled`,
`<metric>_image_mean`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from effunet.errors import EffunetError
from effunet.run import STUDY_RECIPE, RunId, RunRecord

QUALITY = ("dice", "iou", "accuracy", "sensitivity", "specificity", "precision", "mcc", "roc_auc", "pr_auc")
MODEL_SIZE = ("parameters", "flops")  # of run.json, after its training figures (`effunet.run.TRAINING`)
DEFAULT_HEADLINE = "per_image_mean"  # a data set's format may say "pooled" (effunet.data.formats)
CEILING, OBSERVER = "protocol ceiling", "2nd observer"


def quality(summary: dict, weighting: str = DEFAULT_HEADLINE, prefix: str = "") -> dict:
    """Headline (weighted as `weighting` says), pooled and per-image-mean columns of one evaluation summary."""
    pooled, mean = summary.get("pooled", {}), summary.get("per_image_mean", {})
    chosen = pooled if weighting == "pooled" else mean
    row = {}
    for name in QUALITY:
        row[f"{prefix}{name}"] = chosen.get(name)
        row[f"{prefix}{name}_pooled"] = pooled.get(name)
        row[f"{prefix}{name}_image_mean"] = mean.get(name)
    for name in ("instance_ap", "instance_ap_split", "instance_ap_watershed"):  # watershed: train.instances
        if name in mean:
            row[f"{prefix}{name}"] = mean[name]
    return row


@dataclass(frozen=True)
class RunResult:
    """One run's identity and the files aggregation reads (paths given by the caller)."""

    id: RunId
    run: Path  # run.json
    metrics: Path  # eval/metrics.json
    per_image: Path  # eval/per_image.csv


def run_record(result_files: RunResult, weighting: str = DEFAULT_HEADLINE) -> dict:
    """One training run's figures: its run.json and eval/metrics.json flattened into one row, the headline
    columns weighted as `weighting` (the data set's: "per_image_mean" or "pooled") says."""
    run = RunRecord.read(result_files.run)
    try:
        result = json.loads(Path(result_files.metrics).read_text())
    except (OSError, ValueError) as error:
        raise EffunetError(f"cannot read the results of {result_files.id}: {error}") from error
    splits = result["splits"]
    identity = result_files.id
    record = {
        "dataset": identity.dataset,
        "model": identity.model,
        "recipe": identity.recipe,
        "seed": int(identity.seed),
        "kind": "model",
        **run.training(),
        **{key: run.get(key) for key in MODEL_SIZE},
        "inference_images_per_s": result["inference_images_per_s"],
        "threshold": result["threshold"]["value"],
    }
    record.update(quality(splits["test"]["native"], weighting))
    record["loss_function"] = run.loss_function
    record["censored"] = float(run.censored)
    for split in ("train", "val", "test"):
        record[f"{split}_loss"] = result.get("loss", {}).get(split)
    for split in ("train", "val"):
        record[f"{split}_dice"] = quality(splits[split]["native"], weighting)["dice"]
    return record


def reference_records(path: str | os.PathLike, weightings: dict[str, str] | None = None) -> list[dict]:
    """The reference rows of one data set from its reference.json (see `effunet.reference`), weighted
    as `weightings[dataset]` says (per-image mean by default)."""
    path = Path(path)
    try:
        reference = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise EffunetError(f"cannot read the reference scores in {path}: {error}") from error
    dataset, rows = reference["dataset"], []
    for name, key in ((CEILING, "protocol_ceiling"), (OBSERVER, "second_observer")):
        if reference.get(key):
            weighting = (weightings or {}).get(dataset, DEFAULT_HEADLINE)
            rows.append(
                {"dataset": dataset, "model": name, "recipe": "", "seed": 0, "kind": "reference"}
                | quality(reference[key], weighting)
            )
    return rows


def read_per_image(runs: list[RunResult], records: list[dict]) -> pd.DataFrame:
    """Every run's eval/per_image.csv, with the run's identity and loss function as columns."""
    frames = []
    for run, record in zip(runs, records):
        try:
            frame = pd.read_csv(run.per_image, dtype={"id": str})
        except (OSError, ValueError) as error:
            raise EffunetError(f"cannot read {run.per_image}: {error}") from error
        frames.append(
            frame.assign(
                dataset=record["dataset"],
                model=record["model"],
                seed=record["seed"],
                recipe=record.get("recipe", STUDY_RECIPE),
                loss_function=record["loss_function"],
            )
        )
    return pd.concat(frames, ignore_index=True)
