"""The manifest: one row per sample with its split and original paths and size, read by every later step."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from effunet.errors import EffunetError
from effunet.files import atomic_path

REQUIRED_COLUMNS = ["id", "split", "height", "width", "image"]
SPLITS = ("train", "val", "test")


def split_by_fraction(ids: list[str], test_fraction: float, val_fraction: float, seed: int) -> dict[str, str]:
    """Seeded split: `test_fraction` of all ids to test, then `val_fraction` of the rest to val."""
    order = np.random.default_rng(seed).permutation(sorted(ids))
    n_test = round(len(order) * test_fraction)
    n_val = round((len(order) - n_test) * val_fraction)
    splits = ["test"] * n_test + ["val"] * n_val + ["train"] * (len(order) - n_test - n_val)
    return dict(zip(order.tolist(), splits))


def split_with_fixed_test(train_ids: list[str], test_ids: list[str], val_count: int, seed: int) -> dict[str, str]:
    """Official test set kept; `val_count` seeded training images carved out for validation."""
    if val_count >= len(train_ids):
        raise EffunetError(f"config key split.val_count: {val_count} leaves no training images "
                           f"out of {len(train_ids)}")
    order = np.random.default_rng(seed).permutation(sorted(train_ids)).tolist()
    splits = {sample: ("val" if rank < val_count else "train") for rank, sample in enumerate(order)}
    splits.update({sample: "test" for sample in test_ids})
    return splits


def write_manifest(rows: list[dict], path: str | os.PathLike) -> pd.DataFrame:
    table = pd.DataFrame(rows).sort_values(["split", "id"], key=_split_order).reset_index(drop=True)
    table = table[REQUIRED_COLUMNS + [c for c in table.columns if c not in REQUIRED_COLUMNS]]
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return table


def _split_order(column: pd.Series) -> pd.Series:
    return column.map(SPLITS.index) if column.name == "split" else column


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise EffunetError(f"manifest not found: {path}")
    table = pd.read_csv(path, dtype={"id": str}, keep_default_na=False)
    missing = [column for column in REQUIRED_COLUMNS if column not in table.columns]
    if missing:
        raise EffunetError(f"manifest {path} lacks the column(s) {', '.join(missing)}")
    unknown = set(table["split"]) - set(SPLITS)
    if unknown:
        raise EffunetError(f"manifest {path} has unknown split(s) {sorted(unknown)}")
    return table
