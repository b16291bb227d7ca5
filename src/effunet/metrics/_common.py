"""Input checks and small numeric helpers shared by the metric modules."""

from __future__ import annotations

import math

import numpy as np

from effunet.errors import EffunetError


def _binary(array, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype == bool:
        return array
    if array.dtype.kind not in "uif" or np.any((array != 0) & (array != 1)):
        found = np.unique(array)[:6].tolist() if array.dtype.kind in "uif" else str(array.dtype)
        raise EffunetError(f"{name} must be binary (bool or 0/1), found {found}")
    return array.astype(bool)


def _same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise EffunetError(f"shape mismatch: {name_a} has shape {a.shape}, {name_b} has shape {b.shape}")


def _pair(truth, predicted, name_a: str, name_b: str) -> tuple[np.ndarray, np.ndarray]:
    truth, predicted = _binary(truth, name_a), _binary(predicted, name_b)
    _same_shape(truth, predicted, name_a, name_b)
    return truth, predicted


def _scored(truth, probability, region) -> tuple[np.ndarray, np.ndarray]:
    """Flat truth (bool) and probability of the scored pixels."""
    truth, probability = _binary(truth, "truth"), np.asarray(probability)
    _same_shape(truth, probability, "truth", "probability")
    if probability.dtype.kind not in "uif" or not np.isfinite(probability).all():
        raise EffunetError("probability must be a finite numeric array")
    if region is None:
        return truth.ravel(), probability.ravel()
    region = _binary(region, "region")
    _same_shape(truth, region, "truth", "region")
    return truth[region], probability[region]


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 1.0


def _mcc(tp: int, fp: int, fn: int, tn: int) -> float:
    denominator = float(tp + fp) * float(tp + fn) * float(tn + fp) * float(tn + fn)
    return float(tp * tn - fp * fn) / math.sqrt(denominator) if denominator else 0.0


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _sorted_scores(truth: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores of the positive and of the negative pixels, each sorted ascending."""
    return np.sort(score[truth]), np.sort(score[~truth])


def _full(array) -> np.ndarray:
    return np.ones((3,) * np.ndim(array), dtype=bool)
