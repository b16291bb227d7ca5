"""Exact ROC-AUC and PR-AUC, per image and pooled over a set (`PooledAuc`)."""

from __future__ import annotations

import numpy as np

from effunet.errors import EffunetError
from effunet.metrics._common import _scored, _sorted_scores


def roc_auc(truth, probability, region=None) -> float | None:
    """Exact area under the ROC curve; tied scores count one half, as in sklearn's roc_auc_score.

    None when the scored truth holds a single class (the area is undefined there).
    """
    return roc_auc_sorted(*_sorted_scores(*_scored(truth, probability, region)))


def roc_auc_sorted(positive: np.ndarray, negative: np.ndarray) -> float | None:
    """`roc_auc` of the scores of the positive and of the negative pixels, each sorted ascending."""
    if positive.size == 0 or negative.size == 0:
        return None
    below = np.searchsorted(negative, positive, side="left").sum(dtype=np.float64)
    not_above = np.searchsorted(negative, positive, side="right").sum(dtype=np.float64)
    return float((below + not_above) / 2 / (positive.size * float(negative.size)))


def pr_auc(truth, probability, region=None) -> float | None:
    """Area under the precision-recall curve as average precision, as scikit-learn defines it.

    AP = sum over distinct score thresholds (descending) of (R_k - R_{k-1}) * P_k, ties grouped,
    no interpolation (sklearn's `average_precision_score`). None when the truth has no positives.
    """
    return pr_auc_sorted(*_sorted_scores(*_scored(truth, probability, region)))


def pr_auc_sorted(positive: np.ndarray, negative: np.ndarray) -> float | None:
    """`pr_auc` of the scores of the positive and of the negative pixels, each sorted ascending."""
    if positive.size == 0:
        return None
    starts = np.flatnonzero(np.r_[True, positive[1:] != positive[:-1]])
    values, ties = positive[starts], np.diff(np.r_[starts, positive.size])
    tp = positive.size - starts  # positives scoring >= each distinct positive value
    fp = negative.size - np.searchsorted(negative, values, side="left")
    return float(np.dot(ties, tp / (tp + fp)) / positive.size)


class PooledAuc:
    """Exact ROC-AUC and PR-AUC over every scored pixel of a set, accumulated image by image.

    Each image is reduced, per class, to its distinct scores and how many pixels have each (one
    sort per class and image); the pieces are merged (counts of equal scores summed) whenever the
    unmerged ones outgrow the merged tables, and once more when an area is asked for. Both areas
    are then those of the concatenated pixels, as scikit-learn's `roc_auc_score` and
    `average_precision_score` compute them (ties count one half in the ROC area and form one
    threshold in AP; the ROC numerator is summed exactly in integers). Memory: 16 bytes per distinct
    score and class (at most the pixel count, far less for saturated or quantised outputs), at most
    about twice the merged tables plus one image; no array of all the set's pixels is kept.
    Probabilities must lie in [0, 1].
    """

    def __init__(self):
        self._positive, self._negative = _ScoreTable(), _ScoreTable()

    def add(self, truth, probability, region=None) -> None:
        truth, probability = _scored(truth, probability, region)
        if probability.size and (probability.min() < 0 or probability.max() > 1):
            raise EffunetError("probability values must lie in [0, 1] for pooled AUCs")
        self._positive.add(probability[truth])
        self._negative.add(probability[~truth])

    def add_sorted(self, positive: np.ndarray, negative: np.ndarray) -> None:
        """`add` of an image given as the scores of its positive and of its negative pixels, each
        sorted ascending (as `effunet.scoring` keeps them): the same tables, without sorting again."""
        for scores in (positive, negative):
            if scores.size and (scores[0] < 0 or scores[-1] > 1):
                raise EffunetError("probability values must lie in [0, 1] for pooled AUCs")
        self._positive.add(positive, presorted=True)
        self._negative.add(negative, presorted=True)

    @property
    def pixels(self) -> int:
        return self._positive.total + self._negative.total

    def roc_auc(self) -> float | None:
        (pv, pc), (nv, nc) = self._positive.table(), self._negative.table()
        n_pos, n_neg = int(pc.sum()), int(nc.sum())
        if n_pos == 0 or n_neg == 0:
            return None
        cumulative = np.r_[0, np.cumsum(nc)]
        below = cumulative[np.searchsorted(nv, pv, side="left")]
        not_above = cumulative[np.searchsorted(nv, pv, side="right")]
        numerator = int(np.dot(pc, below + not_above))  # 2 * #(+ above -) + #(ties), in int64
        return float(numerator / (2 * n_pos * n_neg))

    def pr_auc(self) -> float | None:
        (pv, pc), (nv, nc) = self._positive.table(), self._negative.table()
        n_pos, n_neg = int(pc.sum()), int(nc.sum())
        if n_pos == 0:
            return None
        tp = n_pos - (np.cumsum(pc) - pc)  # positives scoring >= each distinct positive score
        fp = n_neg - np.r_[0, np.cumsum(nc)][np.searchsorted(nv, pv, side="left")]
        return float(np.dot(pc, tp / (tp + fp)) / n_pos)


class _ScoreTable:
    """Distinct scores (ascending, float64) of one class with the number of pixels at each."""

    _MIN_MERGE = 1 << 16

    def __init__(self):
        self.values, self.counts = np.zeros(0, np.float64), np.zeros(0, np.int64)
        self.total = 0
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_size = 0

    def add(self, scores: np.ndarray, presorted: bool = False) -> None:
        if scores.size == 0:
            return
        ordered = scores if presorted else np.sort(scores)
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        self._pending.append((ordered[starts].astype(np.float64), np.diff(np.r_[starts, ordered.size])))
        self._pending_size += starts.size
        self.total += int(ordered.size)
        if self._pending_size > max(self.values.size, self._MIN_MERGE):
            self._merge()

    def table(self) -> tuple[np.ndarray, np.ndarray]:
        self._merge()
        return self.values, self.counts

    def _merge(self) -> None:
        if not self._pending:
            return
        values = np.concatenate([self.values, *(v for v, _ in self._pending)])
        counts = np.concatenate([self.counts, *(c for _, c in self._pending)])
        order = np.argsort(values, kind="stable")  # timsort: merges the sorted runs
        values, counts = values[order], counts[order]
        starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
        self.values, self.counts = values[starts], np.add.reduceat(counts, starts)
        self._pending, self._pending_size = [], 0
