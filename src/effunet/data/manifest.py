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


def split_counts(n: int, test_fraction: float, val_fraction: float) -> dict[str, int]:
    """Images per split of `split_by_fraction` for `n` images."""
    n_test = round(n * test_fraction)
    n_val = round((n - n_test) * val_fraction)
    return {"train": n - n_test - n_val, "val": n_val, "test": n_test}


def check_split_counts(counts: dict[str, int], key: str) -> None:
    """An error naming the config key to change if a split would be empty (`key`: the split block)."""
    total = sum(counts.values())
    fix = {"test": f"raise {key}.test_fraction", "val": f"raise {key}.val_fraction",
           "train": f"lower {key}.test_fraction or {key}.val_fraction"}
    for split in ("train", "val", "test"):
        if counts[split] == 0:
            raise EffunetError(f"config key {key}: the {split} split of {total} images would be empty "
                               f"({counts['train']} train / {counts['val']} val / {counts['test']} test); "
                               f"{fix[split]}")


def split_by_fraction(ids: list[str], test_fraction: float, val_fraction: float, seed: int,
                      key: str = "split") -> dict[str, str]:
    """Seeded split: `test_fraction` of all ids to test, then `val_fraction` of the rest to val.

    Every split must get at least one image; otherwise the error names `key` (the config's split block).
    """
    order = np.random.default_rng(seed).permutation(sorted(ids))
    counts = split_counts(len(order), test_fraction, val_fraction)
    check_split_counts(counts, key)
    splits = ["test"] * counts["test"] + ["val"] * counts["val"] + ["train"] * counts["train"]
    return dict(zip(order.tolist(), splits))


def split_with_fixed_test(train_ids: list[str], test_ids: list[str], val_count: int, seed: int,
                          key: str = "split") -> dict[str, str]:
    """Official test set kept; `val_count` seeded training images carved out for validation."""
    if val_count >= len(train_ids):
        raise EffunetError(f"config key {key}.val_count: {val_count} leaves no training images "
                           f"out of {len(train_ids)}")
    if not test_ids:
        raise EffunetError(f"the source of {key.rsplit('.split', 1)[0]} has no test images")
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
