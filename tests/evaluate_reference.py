"""Evaluation's scoring as it was before it was split out and run on threads (commit 0183cc0):
src/effunet/evaluate.py's `choose_threshold` .. `score_cases` and `predict_native`, and
src/effunet/predict.py's `sliding_window` (which `predict_native` calls as the old `Predictor.native`
did), kept verbatim as the reference that `effunet.scoring` and `effunet.evaluate` must equal value
for value (tests/test_scoring.py; benchmarks/bench_evaluate.py runs the commit itself). Bound to
today's modules: `Case` (the same fields), `tile_starts`, `tile_window`, `resize_probability` (moved
unchanged), and `metrics.split_touching` is the level-by-level flood it replaced
(tests/split_reference.py), so that nothing of the new code is its own reference."""

from __future__ import annotations

import time
import types

import numpy as np

import split_reference
from effunet import metrics as _metrics
from effunet.data import images
from effunet.errors import EffunetError
from effunet.predict import Predictor, resize_probability, tile_starts, tile_window
from effunet.scoring import THRESHOLD_GRID, Case

metrics = types.SimpleNamespace(**{name: getattr(_metrics, name) for name in _metrics.__all__})
metrics.split_touching = split_reference.split_touching
TILE_OVERLAP = 0.5
PROGRESS_EVERY_S = 30.0
log = types.SimpleNamespace(info=lambda *args: None)

__all__ = ["THRESHOLD_GRID", "Case", "choose_threshold", "predict_native", "score_cases", "sliding_window"]


def choose_threshold(cases: list[Case], setting: str | float) -> tuple[float, str]:
    """0.5 (or a given value), or the grid value with the best pooled native Dice on validation.

    A pixel is foreground where its probability is above the threshold, as in training and plots.
    """
    if setting != "val":
        return float(setting), "fixed"
    validation = [c for c in cases if c.split == "val"]
    if not validation:
        raise EffunetError("threshold 'val' needs validation images, and the manifest has none")
    best = max(
        THRESHOLD_GRID,
        key=lambda t: metrics.scores(
            sum(
                (metrics.confusion(c.native_truth, _native_probability(c) > t, c.native_region) for c in validation),
                metrics.Counts(),
            )
        )["dice"],
    )
    return float(best), "validation"


def _native_probability(case: Case) -> np.ndarray:
    if case.native_probability is not None:
        return case.native_probability
    return resize_probability(case.probability, case.native_truth.shape)


def _score(truth, probability, region, threshold) -> dict:
    row = metrics.scores(metrics.confusion(truth, probability > threshold, region))
    row["roc_auc"] = metrics.roc_auc(truth, probability, region)
    row["pr_auc"] = metrics.pr_auc(truth, probability, region)
    return row


def split_nuclei(
    probability: np.ndarray, predicted: np.ndarray, threshold: float, native: np.ndarray | None = None
) -> np.ndarray:
    """Touching nuclei split at one scale for every image, as labels on the native mask `predicted`.

    The training-size `probability` is upsampled SPLIT_SCALE times (bilinear), thresholded, split
    by `metrics.split_touching` with its fixed parameters, and the labels are carried onto the
    native-size mask (`metrics.transfer_labels`). So a pair of touching nuclei is split the same
    way whether the image is 256x256 or 1040x1388 (splitting the native mask itself would tie the
    result to the native size: the upsampling factor runs from 1 to 10 in DSB2018). With a `native`
    probability (sliding-window inference) that is resized to the same grid instead.
    """
    grid = tuple(metrics.SPLIT_SCALE * side for side in probability.shape)
    at_scale = resize_probability(probability if native is None else native, grid) > threshold
    return metrics.transfer_labels(metrics.split_touching(at_scale), predicted)


def watershed_nuclei(
    probability: np.ndarray, boundary: np.ndarray, predicted: np.ndarray, threshold: float
) -> np.ndarray:
    """Instances of a two-channel model (`train.instances: boundary`) as labels on the native mask
    `predicted`: both training-size channels upsampled SPLIT_SCALE times (bilinear), decoded by
    `metrics.watershed_instances` (foreground above `threshold`, markers where the boundary is below
    one half) and carried to the native mask (`metrics.transfer_labels`), as in `split_nuclei`."""
    grid = tuple(metrics.SPLIT_SCALE * side for side in probability.shape)
    decoded = metrics.watershed_instances(
        resize_probability(probability, grid), resize_probability(boundary, grid), threshold
    )
    return metrics.transfer_labels(decoded, predicted)


def _instance_scores(case: Case, predicted: np.ndarray, threshold: float) -> dict:
    components = metrics.label_components(predicted)
    split = split_nuclei(case.probability, predicted, threshold, native=case.native_probability)
    scores = {
        "instance_ap": metrics.instance_ap(case.native_labels, components),
        "instance_ap_split": metrics.instance_ap(case.native_labels, split),
        "true_objects": int(case.native_labels.max()),
        "predicted_objects": int(components.max()),
        "predicted_objects_split": int(split.max()),
    }
    if case.boundary is not None:
        watershed = watershed_nuclei(case.probability, case.boundary, predicted, threshold)
        scores.update(
            instance_ap_watershed=metrics.instance_ap(case.native_labels, watershed),
            predicted_objects_watershed=int(watershed.max()),
        )
    return scores


class _Pool:
    """Pixel counts and probabilities of one split x resolution, for pooled values."""

    def __init__(self):
        self.counts, self.auc, self.rows = metrics.Counts(), metrics.PooledAuc(), []

    def add(self, row: dict, truth, probability, region, threshold) -> None:
        self.counts = self.counts + metrics.confusion(truth, probability > threshold, region)
        self.auc.add(truth, probability, region)
        self.rows.append(row)

    def summary(self) -> dict:
        summary = metrics.summarize(
            self.rows, self.counts, {"roc_auc": self.auc.roc_auc(), "pr_auc": self.auc.pr_auc()}
        )
        summary.pop("per_image")  # per_image.csv has them
        return summary


def score_cases(cases: list[Case], threshold: float) -> tuple[list[dict], dict]:
    """Per-image rows and, per split and resolution, summaries (per-image mean/std and pooled)."""
    pools: dict[tuple[str, str], _Pool] = {}
    for case in cases:
        native = _native_probability(case)
        for resolution, truth, probability, region in (
            ("native", case.native_truth, native, case.native_region),
            ("training_size", case.truth, case.probability, case.region),
        ):
            row = {
                "id": case.id,
                "split": case.split,
                "resolution": resolution,
                **_score(truth, probability, region, threshold),
            }
            if resolution == "training_size" and case.loss is not None:
                row["loss"] = case.loss
            if resolution == "native" and case.native_labels is not None:
                row.update(_instance_scores(case, native > threshold, threshold))
            pools.setdefault((case.split, resolution), _Pool()).add(row, truth, probability, region, threshold)
    summaries: dict = {}
    for (split, resolution), pool in pools.items():
        summaries.setdefault(split, {})[resolution] = pool.summary()
    rows = [row for pool in pools.values() for row in pool.rows]
    return rows, summaries


def predict_native(predictor: Predictor, cases: list[Case]) -> float:
    """Sliding-window probabilities at native size from each case's original image, and the
    training-size probabilities as those resized down. Returns the test images predicted per second
    at native size (tiling and blending included; the first image, which includes tracing, left out)."""
    seconds, count = 0.0, 0
    reported = time.monotonic()
    for number, case in enumerate(cases):
        if time.monotonic() - reported >= PROGRESS_EVERY_S:  # sliding windows over hundreds of images: minutes
            log.info("sliding-window inference: %d of %d images", number, len(cases))
            reported = time.monotonic()
        if case.source is None:
            raise EffunetError(
                f"sliding-window inference needs the original images; the manifest has no `image` column for {case.id}"
            )
        rgb = images.read_rgb(case.source)
        start = time.perf_counter()
        case.native_probability = sliding_window(rgb, predictor.size, predictor.probabilities, predictor.batch_size)
        if number and case.split == "test":
            seconds, count = seconds + time.perf_counter() - start, count + 1
        if case.native_probability.shape != case.native_truth.shape:
            raise EffunetError(
                f"{case.source} is {case.native_probability.shape} but its truth is "
                f"{case.native_truth.shape}; rerun the data steps"
            )
        case.probability = resize_probability(case.native_probability, case.truth.shape)
    return count / seconds if seconds > 0 else float("nan")


def sliding_window(
    image: np.ndarray, tile: tuple[int, int], predict, batch_size: int = 8, overlap: float = TILE_OVERLAP
) -> np.ndarray:
    """(H, W) probabilities of an (H, W, C) image, predicted tile by tile at the `tile` size.

    `predict` maps a batch of tiles (N, th, tw, C) to (N, th, tw). Tiles overlap by `overlap` and are
    blended by `tile_window` weights, normalised by their sum; an image smaller than a tile is padded
    by reflection first and the padding cut off the result.
    """
    height, width = image.shape[:2]
    th, tw = tile
    pad_h, pad_w = max(0, th - height), max(0, tw - width)
    if pad_h or pad_w:
        mode = "reflect" if height > 1 and width > 1 and pad_h < height and pad_w < width else "symmetric"
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode=mode)
    rows, cols = tile_starts(image.shape[0], th, overlap), tile_starts(image.shape[1], tw, overlap)
    corners = [(y, x) for y in rows for x in cols]
    weight = tile_window(tile)
    total = np.zeros(image.shape[:2], np.float64)
    norm = np.zeros(image.shape[:2], np.float64)
    for first in range(0, len(corners), batch_size):
        chunk = corners[first : first + batch_size]
        batch = np.stack([image[y : y + th, x : x + tw] for y, x in chunk]).astype(np.float32)
        for (y, x), probability in zip(chunk, np.asarray(predict(batch))):
            total[y : y + th, x : x + tw] += weight * probability
            norm[y : y + th, x : x + tw] += weight
    return (total / norm)[:height, :width].astype(np.float32)
