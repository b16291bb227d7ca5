"""Scoring evaluated images (`effunet.evaluate`'s protocol): the threshold, per-image pixel scores at
native and training size, AUCs, the instance metrics, pooled summaries, the training loss and the
second observer.

Each image is scored once, in a thread pool over the job's threads (`score_cases(threads=)`: NumPy's
sorts and Pillow's resize release the GIL, so images are scored side by side), and its results are
pooled in the images' order, so the output does not depend on the number of threads. Nothing is computed twice: the
native-size probabilities of the validation images that chose the threshold are kept for scoring;
each scored pixel set is sorted once for ROC-AUC, PR-AUC and the pooled AUCs
(`metrics.auc.*_sorted`, `PooledAuc.add_sorted`, whose pooled areas are reduced on the same threads); an image's connected components and its
probabilities on the split grid serve the plain, the split and the boundary-decoded instances.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from effunet import metrics
from effunet.errors import EffunetError
from effunet.metrics._common import _scored
from effunet.metrics.auc import pr_auc_sorted, roc_auc_sorted
from effunet.sliding import resize_probability
from effunet.threads import in_order

THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)


@dataclass
class Case:
    """One image with what scoring needs, at the training size and at native size."""

    id: str
    split: str
    image: np.ndarray  # training size, uint8 RGB
    truth: np.ndarray  # training size, bool
    region: np.ndarray | None  # training size FOV, bool
    native_truth: np.ndarray
    native_region: np.ndarray | None
    native_labels: np.ndarray | None  # instance ids (formats with instances)
    second_observer: np.ndarray | None  # another annotator's truth (DRIVE's 2nd_manual)
    probability: np.ndarray | None = None  # training size
    boundary: np.ndarray | None = None  # training size, models with a boundary channel (train.instances)
    loss: float | None = None  # the training loss at the training size
    source: str | None = None  # the original image (manifest `image`): sliding-window inference reads it
    native_probability: np.ndarray | None = None  # predicted at native size (sliding window)
    resized: np.ndarray | None = None  # `probability` resized to native size, kept from threshold to scores


def native_probability(case: Case, keep: bool = False) -> np.ndarray:
    """The case's probabilities at native size: predicted there (sliding window), or the training-size
    ones resized back (kept on the case with `keep`, until `score_cases` has used them)."""
    if case.native_probability is not None:
        return case.native_probability
    if case.resized is not None:
        return case.resized
    resized = resize_probability(case.probability, case.native_truth.shape)
    if keep:
        case.resized = resized
    return resized


def choose_threshold(cases: list[Case], setting: str | float, threads: int | None = None) -> tuple[float, str]:
    """0.5 (or a given value), or the grid value with the best pooled native Dice on validation.

    A pixel is foreground where its probability is above the threshold, as in training and plots.
    """
    if setting != "val":
        return float(setting), "fixed"
    validation = [c for c in cases if c.split == "val"]
    if not validation:
        raise EffunetError("threshold 'val' needs validation images, and the manifest has none")
    tables = sum(in_order(_grid_counts, validation, threads), np.zeros((THRESHOLD_GRID.size, 4), np.int64))
    dice = [metrics.scores(metrics.Counts(*(int(v) for v in row)))["dice"] for row in tables]
    return float(THRESHOLD_GRID[int(np.argmax(dice))]), "validation"  # the first of equal best, as max()


def _grid_counts(case: Case) -> np.ndarray:
    """(tp, fp, fn, tn) of `native probability > t` for each t of THRESHOLD_GRID (float64 comparisons)."""
    truth, probability = _scored(case.native_truth, native_probability(case, keep=True), case.native_region)
    positive = np.sort(probability[truth].astype(np.float64))
    negative = np.sort(probability[~truth].astype(np.float64))
    tp = positive.size - np.searchsorted(positive, THRESHOLD_GRID, side="right")
    fp = negative.size - np.searchsorted(negative, THRESHOLD_GRID, side="right")
    return np.stack([tp, fp, positive.size - tp, negative.size - fp], axis=1)


def split_nuclei(
    probability: np.ndarray,
    predicted: np.ndarray,
    threshold: float,
    native: np.ndarray | None = None,
    at_scale: np.ndarray | None = None,
    components: np.ndarray | None = None,
) -> np.ndarray:
    """Touching nuclei split at one scale for every image, as labels on the native mask `predicted`.

    The training-size `probability` is upsampled SPLIT_SCALE times (bilinear), thresholded, split
    by `metrics.split_touching` with its fixed parameters, and the labels are carried onto the
    native-size mask (`metrics.transfer_labels`). So a pair of touching nuclei is split the same
    way whether the image is 256x256 or 1040x1388 (splitting the native mask itself would tie the
    result to the native size: the upsampling factor runs from 1 to 10 in DSB2018). With a `native`
    probability (sliding-window inference) that is resized to the same grid instead. `at_scale` (the
    probabilities already on that grid) and `components` (`predicted`'s) save computing them again.
    """
    if at_scale is None:
        at_scale = _on_grid(probability if native is None else native, probability.shape)
    return metrics.transfer_labels(metrics.split_touching(at_scale > threshold), predicted, components=components)


def watershed_nuclei(
    probability: np.ndarray,
    boundary: np.ndarray,
    predicted: np.ndarray,
    threshold: float,
    at_scale: np.ndarray | None = None,
    components: np.ndarray | None = None,
) -> np.ndarray:
    """Instances of a two-channel model (`train.instances: boundary`) as labels on the native mask
    `predicted`: both training-size channels upsampled SPLIT_SCALE times (bilinear), decoded by
    `metrics.watershed_instances` (foreground above `threshold`, markers where the boundary is below
    one half) and carried to the native mask (`metrics.transfer_labels`), as in `split_nuclei`."""
    if at_scale is None:
        at_scale = _on_grid(probability, probability.shape)
    decoded = metrics.watershed_instances(at_scale, _on_grid(boundary, probability.shape), threshold)
    return metrics.transfer_labels(decoded, predicted, components=components)


def _on_grid(probability: np.ndarray, training_size) -> np.ndarray:
    return resize_probability(probability, tuple(metrics.SPLIT_SCALE * side for side in training_size))


def _instance_scores(case: Case, native: np.ndarray, predicted: np.ndarray, threshold: float) -> dict:
    components = metrics.label_components(predicted)
    at_scale = _on_grid(case.probability if case.native_probability is None else native, case.probability.shape)
    split = split_nuclei(case.probability, predicted, threshold, at_scale=at_scale, components=components)
    scores = {
        "instance_ap": metrics.instance_ap(case.native_labels, components),
        "instance_ap_split": metrics.instance_ap(case.native_labels, split),
        "true_objects": int(case.native_labels.max()),
        "predicted_objects": int(components.max()),
        "predicted_objects_split": int(split.max()),
    }
    if case.boundary is not None:
        foreground = at_scale if case.native_probability is None else None  # the training-size channel's
        watershed = watershed_nuclei(
            case.probability, case.boundary, predicted, threshold, at_scale=foreground, components=components
        )
        scores.update(
            instance_ap_watershed=metrics.instance_ap(case.native_labels, watershed),
            predicted_objects_watershed=int(watershed.max()),
        )
    return scores


@dataclass
class _Scored:
    """One image at one resolution: its per-image row, confusion table and sorted class scores."""

    resolution: str
    row: dict
    counts: metrics.Counts
    positive: np.ndarray
    negative: np.ndarray


def _score_case(case: Case, threshold: float) -> list[_Scored]:
    native = native_probability(case)
    case.resized = None  # scored: not needed any more
    scored = []
    for resolution, truth, probability, region in (
        ("native", case.native_truth, native, case.native_region),
        ("training_size", case.truth, case.probability, case.region),
    ):
        predicted, image = _pixel_scores(truth, probability, region, threshold)
        image.row = {"id": case.id, "split": case.split, "resolution": resolution, **image.row}
        image.resolution = resolution
        if resolution == "training_size" and case.loss is not None:
            image.row["loss"] = case.loss
        if resolution == "native" and case.native_labels is not None:
            image.row.update(_instance_scores(case, native, predicted, threshold))
        scored.append(image)
    return scored


def _pixel_scores(truth, probability, region, threshold: float) -> tuple[np.ndarray, _Scored]:
    """The predicted mask, and the pixel scores, confusion table and sorted class scores of one image."""
    predicted = probability > threshold
    counts = metrics.confusion(truth, predicted, region)
    flat_truth, flat = _scored(truth, probability, region)
    positive, negative = np.sort(flat[flat_truth]), np.sort(flat[~flat_truth])
    row = {
        **metrics.scores(counts),
        "roc_auc": roc_auc_sorted(positive, negative),
        "pr_auc": pr_auc_sorted(positive, negative),
    }
    return predicted, _Scored("", row, counts, positive, negative)


class _Pool:
    """Pixel counts and sorted probabilities of one split x resolution, for pooled values."""

    def __init__(self, threads: int | None = None):
        self.counts, self.auc, self.rows = metrics.Counts(), metrics.PooledAuc(threads or 1), []

    def add(self, scored: _Scored) -> None:
        self.counts = self.counts + scored.counts
        self.auc.add_sorted(scored.positive, scored.negative)
        self.rows.append(scored.row)

    def summary(self) -> dict:
        summary = metrics.summarize(
            self.rows, self.counts, {"roc_auc": self.auc.roc_auc(), "pr_auc": self.auc.pr_auc()}
        )
        summary.pop("per_image")  # per_image.csv has them
        return summary


def score_cases(cases: list[Case], threshold: float, threads: int | None = None) -> tuple[list[dict], dict]:
    """Per-image rows and, per split and resolution, summaries (per-image mean/std and pooled).

    Images are scored on up to `threads` threads and pooled in their order (the same result for any
    number of threads)."""
    pools: dict[tuple[str, str], _Pool] = {}
    for case, scored in zip(cases, in_order(lambda case: _score_case(case, threshold), cases, threads)):
        for image in scored:
            pools.setdefault((case.split, image.resolution), _Pool(threads)).add(image)
    summaries: dict = {}
    for (split, resolution), pool in pools.items():
        summaries.setdefault(split, {})[resolution] = pool.summary()
    rows = [row for pool in pools.values() for row in pool.rows]
    return rows, summaries


def image_losses(name: str, truths: list[np.ndarray], probabilities: list[np.ndarray]) -> list[float]:
    """The training loss (`effunet.losses.make_loss(name)`) of each image, all its pixels."""
    from effunet import losses  # Keras: only where a loss is computed

    loss = losses.make_loss(name)
    return [
        float(loss(np.asarray(t, np.float32)[None, ..., None], np.asarray(p, np.float32)[None, ..., None]))
        for t, p in zip(truths, probabilities)
    ]


def second_observer(cases: list[Case]) -> dict | None:
    """DRIVE's 2nd_manual scored against 1st_manual inside the FOV, like a model at native size."""
    observed = [c for c in cases if c.second_observer is not None]
    if not observed:
        return None
    rows, counts = [], metrics.Counts()
    for case in observed:
        pair = metrics.confusion(case.native_truth, case.second_observer, case.native_region)
        counts = counts + pair
        rows.append({"id": case.id, "split": case.split, **metrics.scores(pair)})
    return metrics.summarize(rows, counts)  # few images: keeps its per-image rows


def job_threads(threads: int | None) -> int:
    """The threads scoring uses: `threads`, or this process's CPUs."""
    if threads:
        return int(threads)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
