"""The comparison as people read it: the compact headline table, the statistics and the claims with
their captions, as Markdown (comparison.md) and a self-contained HTML page (comparison.html)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from effunet import statistics
from effunet.run import STUDY_RECIPE

from .cost import COST_CAPTION, cost_display
from .records import CEILING, OBSERVER
from .study import BASELINE, FINDINGS, MODEL, STUDY_FORMATS, STUDY_NOTE
from .text import bullets, caption_html, cell, md, plain, signed

COMPACT = (  # column, header, decimals, meaning
    ("dice", "Dice", 3, "test Dice (headline weighting, see above)"),
    ("iou", "IoU", 3, "test IoU (same weighting)"),
    ("accuracy", "accuracy", 3, "test pixel accuracy, the study's metric (same weighting)"),
    ("instance_ap_split", "inst. AP", 3, ("DSB2018 competition score (mean precision over IoU 0.5..0.95) "
                                          "per image, touching nuclei split by watershed")),
    ("instance_ap_watershed", "inst. AP (boundary)", 3, ("the same score of the instances decoded from the "
                                                         "boundary channel by a marker-controlled watershed "
                                                         "(models trained with train.instances: boundary)")),
    ("test_loss", "test loss", 4, ("training loss (run.json's loss, BCE by default) on the test split at "
                                   "the training size, mean over images")),
    ("best_epoch", "best epoch", 0, "epoch of the lowest validation loss (the weights kept)"),
    ("seconds_per_epoch", "s/epoch", 2, "median seconds per epoch over epochs 2.. (epoch 1 builds the graph)"),
)  # fmt: skip


def headline_table(table: pd.DataFrame) -> pd.DataFrame:
    """The compact table as people read it: mean ± std over seeds, fixed decimals per column."""
    recipes = table["recipe"].fillna("") if "recipe" in table else pd.Series([""] * len(table))
    seeds = [str(int(s)) if k == "model" else "–" for s, k in zip(table["seeds"], table["kind"])]
    shown = pd.DataFrame({"data set": table["dataset"], "recipe": [r or "–" for r in recipes],
                          "model": table["model"], "seeds": seeds})  # fmt: skip
    for name, header, decimals, _ in COMPACT:
        if f"{name}_mean" in table:
            shown[header] = [cell(m, s, decimals) for m, s in zip(table[f"{name}_mean"], table[f"{name}_std"])]
    shown["params (M)"] = ["–" if pd.isna(p) else f"{p / 1e6:.2f}" for p in table["parameters_mean"]]
    return shown


def headline_caption(table: pd.DataFrame) -> str:
    weighting = "; ".join(f"{d}: {w}" for d, w in dict.fromkeys(zip(table["dataset"], table["headline"])))
    columns = [f"**{header}**: {meaning}" for name, header, _, meaning in COMPACT if f"{name}_mean" in table]
    return bullets([
        "Test split, native resolution; mean ± std over seeds (no ± with one seed).",
        f"Headline weighting: {weighting} (pooled: the pixels in the scored region, e.g. DRIVE's field of view, "
        "a folder's roi/).",
        "**recipe**: the training recipe (config key `recipes`; `study` is the study's); **seeds**: training runs "
        "per model.",
        *columns,
        "**params (M)**: trainable and frozen parameters, millions.",
        f"**{CEILING}**: the ground truth resized to the training size and back, scored like a model (the best "
        "score this protocol allows).",
        f"**{OBSERVER}**, where a data set has one: a second annotator's truth scored against the first (DRIVE).",
        "Every column (pooled and per-image variants, train/val Dice and losses, timing, images/s, FLOPs): "
        "`comparison.csv`."])  # fmt: skip


def statistics_table(paired: pd.DataFrame) -> pd.DataFrame:
    across = paired["recipe"] != paired["baseline_recipe"]
    shown = pd.DataFrame({"data set": paired["dataset"],
                          "recipe": [f"{r} − {b}" if x else r for r, b, x in
                                     zip(paired["recipe"], paired["baseline_recipe"], across)],
                          "quantity": paired["quantity"],
                          "comparison": [m if x else f"{m} − {b}" for m, b, x in
                                         zip(paired["model"], paired["baseline"], across)],
                          "seeds": [f"{a} vs {b}" for a, b in zip(paired["seeds_model"], paired["seeds_baseline"])],
                          "images": paired["images"]})  # fmt: skip
    estimable = [m == "seeds and images" for m in paired["method"]]
    shown["difference"] = [signed(d, 4) for d in paired["difference"]]
    shown["95% CI (Holm)"] = [f"[{signed(lo, 4)}, {signed(hi, 4)}]" if np.isfinite(lo) and ok else "–"
                              for lo, hi, ok in zip(paired["ci_low"], paired["ci_high"], estimable)]  # fmt: skip
    shown["p (Holm)"] = [f"{p:.3g}" if np.isfinite(p) and ok else "–" for p, ok in zip(paired["p_holm"], estimable)]
    shown["MDE (80%)"] = [f"{m:.2g}" if np.isfinite(m) else "–" for m in paired["mde"]]
    target = paired["target_difference"].dropna()
    header = f"seeds to see {target.iloc[0]:g}" if len(target) else "seeds to see target"
    shown[header] = [f"{int(n)}" if np.isfinite(n) and not v.endswith(("better", "worse")) else
                     ("> " + str(statistics.MOST_SEEDS) if q == "test dice" and ok and np.isnan(n)
                      and not v.endswith(("better", "worse")) else "–")
                     for n, v, q, ok in zip(paired["seeds_for_target"], paired["verdict"], paired["quantity"],
                                            estimable)]  # fmt: skip
    shown["verdict"] = paired["verdict"]
    return shown


STATISTICS_CAPTION = bullets([
    "Eff-UNet minus each baseline within each recipe: per-image test Dice (native resolution) and test loss "
    "(only between runs trained with the same loss function), images paired by id, averaged over seeds.",
    f"`<recipe> − {STUDY_RECIPE}` rows: one model under that recipe minus the same model under the study's.",
    "Test: crossed seed x image mixed model (method of moments), Welch-Satterthwaite t; it counts the "
    "seed-to-seed and the image-to-image variance (docs/evaluation.md, 'Statistics').",
    "Holm-corrected within a family: one recipe's architecture rows; the recipe-vs-study rows are a second one.",
    "Verdict from the corrected CI (lower loss is better), only with at least 3 seeds a side.",
    "**MDE (80%)**: the smallest true difference detected with 80% power at the row's Holm step level.",
    "**seeds to see**: for a row without a verdict, the seeds per model at which a Dice row's MDE reaches "
    "`compare.target_difference`.",
    "Fewer than 2 seeds in a model: no CI or p (its images-only p is in the CSV, out of the Holm family).",
    "Uncorrected CIs, standard errors, degrees of freedom, Holm levels, families: `paired_tests.csv`."])  # fmt: skip

SAME_MARGIN = next(finding.margin for finding in FINDINGS if finding.expect == "same")
CLAIMS_CAPTION = (
    "Pixel accuracy, Dice, loss, nuclei missed per image (true nuclei minus predicted components) and the AP gain "
    "from splitting: paired over test images and seeds; best-epoch and generalisation-gap rows: seed-level values "
    "(Welch's t).",
    "All rows are one Holm family; each CI at its Holm level.",
    "`agrees` / `disagrees`: at least 3 seeds per model and a CI excluding 0; 'about the same' agrees when the CI "
    f"lies inside ±{SAME_MARGIN:.0%} of the U-Net's mean, disagrees when wholly outside, else `inconclusive`.",
    "A best-epoch row is `censored` unless every run stopped early (a run stopped at max_epochs, counted in "
    "**measured here**, has a best epoch that is a lower bound).",
    "**detectable**: the MDE at 80% power and the row's Holm step level; for an inconclusive Dice row also the "
    "seeds per model that would see `compare.target_difference`.",
    "p-values, Holm levels and each row's method: `claims.csv`.",
    STUDY_NOTE)  # fmt: skip
CLAIMS_SHOWN = ("data set", "finding of the study", "study", "measured here", "difference [CI]",
                "detectable (80% power)", "verdict")  # fmt: skip
NO_STUDY_DATA = (f"This config has no data set of the study's formats (`{STUDY_FORMATS[0]}`: the nuclei claims, "
                 f"`{STUDY_FORMATS[1]}`: the vessel claims), so the study's claims are not checked here; the "
                 "comparison and the statistics above answer the question for these data sets.")  # fmt: skip


def claims_display(claims: pd.DataFrame) -> pd.DataFrame:
    """The claims as people read them (the CSV has the p-values, Holm levels and methods)."""
    return claims[list(CLAIMS_SHOWN)].rename(columns={"detectable (80% power)": "detectable"})


def claims_caption(claims: pd.DataFrame) -> str:
    eff, base = claims.attrs.get("models", (MODEL, BASELINE))
    return bullets([f"Eff-UNet is {eff} here, U-Net {base} (the study's U-Net has a ResNet50 encoder).",
                    *CLAIMS_CAPTION])  # fmt: skip


def markdown(table: pd.DataFrame, paired: pd.DataFrame, claims: pd.DataFrame, cost: pd.DataFrame | None = None) -> str:
    """comparison.md: the headline table, the quality-vs-cost table, the statistics and the claims."""
    text = f"## Comparison\n\n{md(headline_table(table))}\n\n{headline_caption(table)}\n"
    if cost is not None and len(cost):
        text += f"\n## Quality vs cost\n\n{md(cost_display(cost))}\n\n{COST_CAPTION}\n"
    if len(paired):
        text += f"\n## Statistics: Eff-UNet vs the U-Nets\n\n{md(statistics_table(paired))}\n\n{STATISTICS_CAPTION}\n"
    if len(claims):
        text += f"\n## The study's claims\n\n{md(claims_display(claims))}\n\n{claims_caption(claims)}\n"
    else:
        text += f"\n## The study's claims\n\n{NO_STUDY_DATA}\n"
    return text


def html(table: pd.DataFrame, paired: pd.DataFrame, claims: pd.DataFrame, cost: pd.DataFrame | None = None) -> str:
    """A self-contained HTML page of the same tables, for the Snakemake report."""
    style = ("body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #999;"
             "padding:2px 6px}p,ul{max-width:60em}")  # fmt: skip
    body = f"<h2>Comparison</h2>{headline_table(table).to_html(index=False)}{caption_html(headline_caption(table))}"
    if cost is not None and len(cost):
        body += f"<h2>Quality vs cost</h2>{cost_display(cost).to_html(index=False)}{caption_html(COST_CAPTION)}"
    if len(paired):
        body += (f"<h2>Statistics: Eff-UNet vs the U-Nets</h2>{statistics_table(paired).to_html(index=False)}"
                 f"{caption_html(STATISTICS_CAPTION)}")  # fmt: skip
    if len(claims):
        shown = claims_display(claims).to_html(index=False)
        body += f"<h2>The study's claims</h2>{shown}{caption_html(claims_caption(claims))}"
    else:
        body += f"<h2>The study's claims</h2><p>{plain(NO_STUDY_DATA)}</p>"
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{style}</style></head><body>{body}</body></html>"
