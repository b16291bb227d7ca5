"""The comparison table: mean and std over seeds of every figure, one row per data set x recipe x model,
then each data set's reference rows."""

from __future__ import annotations

import pandas as pd

from effunet.errors import EffunetError
from effunet.run import STUDY_RECIPE

from .records import DEFAULT_HEADLINE

IDENTITY = ("dataset", "model", "recipe", "seed", "kind")
HEADLINE_WORDS = {"pooled": "pooled over scored pixels", "per_image_mean": "per-image mean"}


def comparison_table(
    records: list[dict], references: list[dict] = (), weightings: dict[str, str] | None = None
) -> pd.DataFrame:
    """Mean and std over seeds of every figure, one row per data set x recipe x model (recipes in the
    order of the records), then the data set's reference rows (recipe empty: no training); `weightings`
    names each data set's headline weighting (the records' headline columns were made with it)."""
    if not records:
        raise EffunetError("no training runs to compare")
    frame = pd.DataFrame([*records, *references])
    datasets = list(dict.fromkeys(frame["dataset"]))
    frame["_dataset"], frame["_reference"] = frame["dataset"].map(datasets.index), frame["kind"] == "reference"
    frame = frame.sort_values(["_dataset", "_reference"], kind="stable").drop(columns=["_dataset", "_reference"])
    frame["recipe"] = frame["recipe"].fillna("") if "recipe" in frame else STUDY_RECIPE
    figures = [c for c in frame.columns if c not in IDENTITY]
    frame[figures] = frame[figures].apply(pd.to_numeric, errors="coerce")
    grouped = frame.groupby(["dataset", "model", "recipe", "kind"], sort=False)
    table = grouped[figures].agg(["mean", "std"])
    table.columns = [f"{name}_{stat}" for name, stat in table.columns]
    table.insert(0, "seeds", grouped["seed"].count())
    table = table.reset_index()
    table.loc[table["kind"] == "reference", "seeds"] = 0
    words = [HEADLINE_WORDS[(weightings or {}).get(d, DEFAULT_HEADLINE)] for d in table["dataset"]]
    table.insert(4, "headline", words)
    return table
