"""The quality-vs-cost table: test quality against parameters, FLOPs and training time, per model and
recipe (cost.csv; `effunet.plots.cost_chart` draws it)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from effunet.run import STUDY_RECIPE

from .text import bullets, cell

COST = (  # column of run.json, header, scale, decimals
    ("parameters", "params (M)", 1e-6, 2),
    ("flops", "GFLOPs", 1e-9, 2),
    ("seconds_to_best", "s to best", 1.0, 1),
    ("wall_seconds", "s total", 1.0, 1),
)
COST_QUALITY = (  # column of the records, header
    ("dice_image_mean", "Dice (per image)"),
    ("instance_ap_split", "inst. AP"),
    ("instance_ap_watershed", "inst. AP (boundary)"),  # runs trained with a boundary channel only
)


def cost_table(records: list[dict]) -> pd.DataFrame:
    """Test quality against cost: one row per data set x recipe x model with the mean and the standard
    deviation over seeds (NaN with one seed) of each COST column (from run.json) and each COST_QUALITY
    column (per-image test Dice at native resolution, whatever the data set's headline weighting, and
    DSB2018's instance AP with touching nuclei split; from eval/metrics.json)."""
    frame = pd.DataFrame(records)
    if "recipe" not in frame:
        frame["recipe"] = STUDY_RECIPE
    columns = [name for name, *_ in COST] + [name for name, _ in COST_QUALITY]
    for name in columns:
        frame[name] = pd.to_numeric(frame[name], errors="coerce") if name in frame else np.nan
    grouped = frame.groupby(["dataset", "recipe", "model"], sort=False)
    table = grouped[columns].agg(["mean", "std"])
    table.columns = [f"{name}_{stat}" for name, stat in table.columns]
    table.insert(0, "seeds", grouped["seed"].count())
    return table.reset_index()


def cost_display(cost: pd.DataFrame) -> pd.DataFrame:
    """The cost table as people read it: mean ± std over seeds at fixed decimals, scaled to its headers."""
    shown = pd.DataFrame({"data set": cost["dataset"], "recipe": cost["recipe"], "model": cost["model"],
                          "seeds": cost["seeds"].astype(int).astype(str)})  # fmt: skip
    for name, header, scale, decimals in COST:
        shown[header] = [
            cell(m * scale, s * scale, decimals) for m, s in zip(cost[f"{name}_mean"], cost[f"{name}_std"])
        ]
    for name, header in COST_QUALITY:
        if cost[f"{name}_mean"].notna().any():  # a column no run has (no boundary channel) is left out
            shown[header] = [cell(m, s, 3) for m, s in zip(cost[f"{name}_mean"], cost[f"{name}_std"])]
    return shown


COST_CAPTION = bullets([
    "One row per model and recipe; mean ± std over seeds (the figure `plots/cost.png` draws the same numbers).",
    "**params (M)**: parameters, millions; **GFLOPs**: forward FLOPs of one image at the training size, billions.",
    "**s to best**: training time until the best epoch (the figure's time axis); **s total**: the training job's "
    "wall time.",
    "**Dice (per image)**: per-image test Dice at native resolution, whatever the headline weighting.",
    "**inst. AP**: DSB2018's instance AP, touching nuclei split; **inst. AP (boundary)**, where a recipe trains a "
    "boundary channel: the same score of its watershed decoding.",
    "Every value: `cost.csv`."])  # fmt: skip
