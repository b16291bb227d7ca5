"""Exact ROC-AUC and PR-AUC, per image and pooled over a set (`PooledAuc`)."""

from __future__ import annotations

import numpy as np

from effunet.errors import EffunetError
from effunet.metrics._common import _scored, _sorted_scores
from effunet.threads import in_order


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
    starts, values, ties = _runs(positive)
    tp = positive.size - starts  # positives scoring >= each distinct positive value
    fp = negative.size - np.searchsorted(negative, values, side="left")
    return float(np.dot(ties, tp / (tp + fp)) / positive.size)


class PooledAuc:
    """Exact ROC-AUC and PR-AUC over every scored pixel of a set, accumulated image by image.

    Each image's scores are kept per class, sorted (one sort per class and image; none with
    `add_sorted`). When an area is asked for, the pooled scores are cut into value ranges of about
    `_RANGE` pixels at quantiles of a sample of them, the same cuts for both classes, so that all
    pixels of one score fall in one range; each range's pieces are gathered and sorted (small sorts,
    in cache) and reduced to distinct scores with counts, and both areas are summed range by range,
    with the pixels of the ranges below counted. The areas are those of the concatenated pixels, as
    scikit-learn's `roc_auc_score` and `average_precision_score` compute them (ties count one half in
    the ROC area and form one threshold in AP; the ROC numerator is summed exactly in integers), and
    the same, bit for bit, as from one table of the set's distinct scores (the AP's terms are those
    of that table, in its order, summed in one dot product). Memory: the scored pixels in their own
    dtype (4 bytes each for float32 outputs, which is less than a table of 16 bytes per distinct
    score when nearly every score is distinct, as in resized probabilities), kept until an area is
    asked for, and one range at a time on top. Probabilities must lie in [0, 1].
    """

    _RANGE = 1 << 18  # pooled pixels per value range when the areas are computed

    def __init__(self, threads: int = 1):
        """`threads`: the value ranges are reduced on up to this many threads (NumPy's sorts release
        the GIL); the areas do not depend on it."""
        self.threads = threads
        self._positive: list[np.ndarray] = []  # each image's positive scores, sorted
        self._negative: list[np.ndarray] = []
        self._areas: tuple[float | None, float | None] | None = None

    def add(self, truth, probability, region=None) -> None:
        truth, probability = _scored(truth, probability, region)
        self.add_sorted(*_sorted_scores(truth, probability))

    def add_sorted(self, positive: np.ndarray, negative: np.ndarray) -> None:
        """`add` of an image given as the scores of its positive and of its negative pixels, each
        sorted ascending (as `effunet.scoring` keeps them): kept as they are, not sorted again."""
        for scores in (positive, negative):
            if scores.size and (scores[0] < 0 or scores[-1] > 1):
                raise EffunetError("probability values must lie in [0, 1] for pooled AUCs")
        for kept, scores in ((self._positive, positive), (self._negative, negative)):
            if scores.size:
                kept.append(scores)
        self._areas = None

    @property
    def pixels(self) -> int:
        return sum(scores.size for scores in (*self._positive, *self._negative))

    def roc_auc(self) -> float | None:
        return self._computed()[0]

    def pr_auc(self) -> float | None:
        return self._computed()[1]

    def _computed(self) -> tuple[float | None, float | None]:
        if self._areas is None:
            self._areas = _pooled_areas(self._positive, self._negative, self._RANGE, self.threads)
        return self._areas


def _pooled_areas(positives: list[np.ndarray], negatives: list[np.ndarray], per_range: int, threads: int):
    """(ROC-AUC, AP) of the concatenated sorted pieces of each class (None where undefined), the
    value ranges on up to `threads` threads (each range's pixels below are known from the cuts)."""
    n_pos, n_neg = sum(p.size for p in positives), sum(n.size for n in negatives)
    if n_pos == 0:
        return (None, None)
    dtype = np.result_type(*positives, *negatives)
    positives = [p.astype(dtype, copy=False) for p in positives]  # one dtype: cuts compare exactly
    negatives = [n.astype(dtype, copy=False) for n in negatives]
    cuts = _cuts([*positives, *negatives], n_pos + n_neg, per_range)
    pos, neg = _Ranges(positives, cuts), _Ranges(negatives, cuts)

    def terms(index: int):
        (pv, pc), (nv, nc) = pos.distinct(index), neg.distinct(index)
        cumulative = neg.before[index] + np.r_[0, np.cumsum(nc)]  # negatives below each distinct negative
        below = cumulative[np.searchsorted(nv, pv, side="left")]
        not_above = cumulative[np.searchsorted(nv, pv, side="right")]
        numerator = int(np.dot(pc, below + not_above))  # 2 * #(+ above -) + #(ties), in int64
        tp = n_pos - pos.before[index] - (np.cumsum(pc) - pc)  # positives scoring >= each distinct positive
        return numerator, pc, tp / (tp + n_neg - below)

    parts = list(in_order(terms, list(range(cuts.size + 1)), threads))
    roc = float(sum(part[0] for part in parts) / (2 * n_pos * n_neg)) if n_neg else None
    weights, ratios = np.concatenate([part[1] for part in parts]), np.concatenate([part[2] for part in parts])
    return roc, float(np.dot(weights, ratios) / n_pos)


def _cuts(pieces: list[np.ndarray], total: int, per_range: int) -> np.ndarray:
    """Ascending distinct scores that cut the pooled sorted `pieces` into ranges of about `per_range`
    pixels (quantiles of an evenly spaced sample of each piece); none for a small set."""
    ranges = total // per_range
    if ranges <= 1:
        return np.zeros(0, pieces[0].dtype)
    step = max(1, total // (ranges * 32))
    sample = np.sort(np.concatenate([piece[step // 2 :: step] for piece in pieces]))
    return np.unique(sample[np.linspace(0, sample.size - 1, ranges + 1)[1:-1].astype(np.intp)])


class _Ranges:
    """One class's sorted pieces cut at `cuts` into value ranges (below the first cut, between cuts,
    from the last cut up): how many pixels lie below each range, and each range's distinct scores."""

    def __init__(self, pieces: list[np.ndarray], cuts: np.ndarray):
        self.pieces = pieces
        edges = [np.r_[0, np.searchsorted(piece, cuts, side="left"), piece.size] for piece in pieces]
        self.edges = np.array(edges, np.int64).reshape(len(pieces), cuts.size + 2)
        self.before = self.edges[:, :-1].sum(axis=0)  # pixels below each range's first score

    def distinct(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The distinct scores of range `index`, ascending, and how many pixels have each."""
        starts, stops = self.edges[:, index], self.edges[:, index + 1]
        parts = [self.pieces[i][starts[i] : stops[i]] for i in np.flatnonzero(stops > starts)]
        return _runs(np.sort(np.concatenate(parts)) if parts else np.zeros(0))[1:]


def _runs(ordered: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each run of equal values of a sorted array starts, its value and its length."""
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if ordered.size else np.zeros(0, np.intp)
    return starts, ordered[starts], np.diff(np.r_[starts, ordered.size])
