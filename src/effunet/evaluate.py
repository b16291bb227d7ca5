"""Evaluate a trained model on every split, at native resolution and at the training size.

Protocol (what reviewers ask for, and what the study's accuracy numbers leave open):
- Predictions are made at the training size; for native scores the probabilities are resized back
  to each image's original height x width (recorded in the manifest) and thresholded there. A run
  trained with train.inference sliding is predicted instead on the original image by overlapping
  tiles at the training size, blended (`effunet.predict.sliding_window`); its training-size
  probabilities are those resized down to the training size, and `inference_images_per_s` counts
  native test images (tiles and blending included) instead of training-size ones.
- The threshold is 0.5, or the one maximising pooled Dice on the validation split ("val"), never
  chosen on the test split.
- The native truth is what the data set's format reads (`effunet.data.formats`): instance labels
  (foreground = labels > 0) or the original annotation. Where the format has a scored region (DRIVE's
  field of view, a folder's roi/), only pixels inside it are scored and their number is reported; a
  second observer's annotation (DRIVE's `2nd_manual`), where present, is scored the same way as a
  human reference.
- Where there are instance labels (DSB2018, a folder with labels/): the instance metric is the DSB2018
  competition score of the predicted mask's connected components,
  with and without a distance-transform watershed that splits touching nuclei. The split is made at
  one scale for every image, 4x the training size, and carried to the native mask. Models trained
  with `train.instances: boundary` add `instance_ap_watershed`: the instances of a marker-controlled
  watershed of their foreground and boundary channels, decoded at the same scale and carried the same way.
- "per_image_mean"/"per_image_std" are over images; "pooled" counts every scored pixel of the split.
- Loss: the training loss function (run.json's `loss`, BCE by default) of every image at the training
  size over all its pixels, as in training (of the foreground channel), against the targets training
  used: the prepared mask's values / 255 (0 or 1 for hard targets, the covered area fraction for soft
  ones, DRIVE's default), so the validation loss equals training's at the best epoch; `loss` per split
  is its mean over images.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from effunet import metrics
from effunet.data import formats, images
from effunet.data.manifest import SPLITS, read_manifest
from effunet.errors import EffunetError
from effunet.files import atomic_path, write_text_atomic
from effunet.layout import PreparedData
from effunet.predict import Predictor, inference_mode, resize_probability

log = logging.getLogger(__name__)
THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)
EXAMPLES_PER_SPLIT = 2


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


def load_cases(prepared: PreparedData) -> list[Case]:
    """Every image of the manifest with its truth, read as the prepared data's format says."""
    table = read_manifest(prepared.manifest)
    cases = [_case(prepared, row) for row in table.itertuples()]
    if "image" in table.columns:
        for case, source in zip(cases, table["image"]):
            case.source = source
    return cases


PROGRESS_EVERY_S = 30.0


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
            raise EffunetError(f"sliding-window inference needs the original images; the manifest has no "
                               f"`image` column for {case.id}")
        rgb = images.read_rgb(case.source)
        start = time.perf_counter()
        case.native_probability = predictor.native(rgb)
        if number and case.split == "test":
            seconds, count = seconds + time.perf_counter() - start, count + 1
        if case.native_probability.shape != case.native_truth.shape:
            raise EffunetError(f"{case.source} is {case.native_probability.shape} but its truth is "
                               f"{case.native_truth.shape}; rerun the data steps")
        case.probability = resize_probability(case.native_probability, case.truth.shape)
    return count / seconds if seconds > 0 else float("nan")


def _case(prepared: PreparedData, row) -> Case:
    image = images.read_rgb(prepared.image(row.id))
    truth = images.read_mask(prepared.mask(row.id))
    region = images.read_mask(prepared.region(row.id)) if prepared.fov is not None else None
    native = formats.native(prepared, row)
    return Case(row.id, row.split, image, truth, region, native.truth, native.region, native.labels,
                native.second_observer)


def choose_threshold(cases: list[Case], setting: str | float) -> tuple[float, str]:
    """0.5 (or a given value), or the grid value with the best pooled native Dice on validation.

    A pixel is foreground where its probability is above the threshold, as in training and plots.
    """
    if setting != "val":
        return float(setting), "fixed"
    validation = [c for c in cases if c.split == "val"]
    if not validation:
        raise EffunetError("threshold 'val' needs validation images, and the manifest has none")
    best = max(THRESHOLD_GRID, key=lambda t: metrics.scores(sum(
        (metrics.confusion(c.native_truth, _native_probability(c) > t, c.native_region) for c in validation),
        metrics.Counts()))["dice"])
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


def split_nuclei(probability: np.ndarray, predicted: np.ndarray, threshold: float,
                 native: np.ndarray | None = None) -> np.ndarray:
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


def watershed_nuclei(probability: np.ndarray, boundary: np.ndarray, predicted: np.ndarray,
                     threshold: float) -> np.ndarray:
    """Instances of a two-channel model (`train.instances: boundary`) as labels on the native mask
    `predicted`: both training-size channels upsampled SPLIT_SCALE times (bilinear), decoded by
    `metrics.watershed_instances` (foreground above `threshold`, markers where the boundary is below
    one half) and carried to the native mask (`metrics.transfer_labels`), as in `split_nuclei`."""
    grid = tuple(metrics.SPLIT_SCALE * side for side in probability.shape)
    decoded = metrics.watershed_instances(resize_probability(probability, grid), resize_probability(boundary, grid),
                                          threshold)
    return metrics.transfer_labels(decoded, predicted)


def _instance_scores(case: Case, predicted: np.ndarray, threshold: float) -> dict:
    components = metrics.label_components(predicted)
    split = split_nuclei(case.probability, predicted, threshold, native=case.native_probability)
    scores = {"instance_ap": metrics.instance_ap(case.native_labels, components),
              "instance_ap_split": metrics.instance_ap(case.native_labels, split),
              "true_objects": int(case.native_labels.max()), "predicted_objects": int(components.max()),
              "predicted_objects_split": int(split.max())}
    if case.boundary is not None:
        watershed = watershed_nuclei(case.probability, case.boundary, predicted, threshold)
        scores.update(instance_ap_watershed=metrics.instance_ap(case.native_labels, watershed),
                      predicted_objects_watershed=int(watershed.max()))
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
        summary = metrics.summarize(self.rows, self.counts, {"roc_auc": self.auc.roc_auc(),
                                                              "pr_auc": self.auc.pr_auc()})
        summary.pop("per_image")  # per_image.csv has them
        return summary


def score_cases(cases: list[Case], threshold: float) -> tuple[list[dict], dict]:
    """Per-image rows and, per split and resolution, summaries (per-image mean/std and pooled)."""
    pools: dict[tuple[str, str], _Pool] = {}
    for case in cases:
        native = _native_probability(case)
        for resolution, truth, probability, region in (
                ("native", case.native_truth, native, case.native_region),
                ("training_size", case.truth, case.probability, case.region)):
            row = {"id": case.id, "split": case.split, "resolution": resolution,
                   **_score(truth, probability, region, threshold)}
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


def image_losses(name: str, truths: list[np.ndarray], probabilities: list[np.ndarray]) -> list[float]:
    """The training loss (`effunet.training.losses.make_loss(name)`) of each image, all its pixels."""
    from effunet.training import losses

    loss = losses.make_loss(name)
    return [float(loss(np.asarray(t, np.float32)[None, ..., None], np.asarray(p, np.float32)[None, ..., None]))
            for t, p in zip(truths, probabilities)]


def training_targets(prepared: PreparedData, cases: list[Case]) -> list[np.ndarray]:
    """Each case's target as training reads it (`effunet.training.dataset.as_model_input`): the prepared
    mask's values / 255, not the mask thresholded at half (soft targets keep their area fractions)."""
    return [np.asarray(images.open_gray(prepared.mask(c.id)).convert("L"), np.float32) / np.float32(255.0)
            for c in cases]


def training_loss_name(run_json: str | os.PathLike | None) -> str:
    """The loss a run was trained with (run.json's `loss`; BCE, the default, for older runs)."""
    if run_json is None:
        return "bce"
    try:
        return json.loads(Path(run_json).read_text()).get("loss", "bce")
    except (OSError, ValueError) as error:
        raise EffunetError(f"cannot read the training settings in {run_json}: {error}") from error


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


def evaluate(model_path: str | os.PathLike, prepared: PreparedData,
             metrics_path: str | os.PathLike, per_image_path: str | os.PathLike,
             examples_path: str | os.PathLike, threshold: str | float = 0.5,
             run_json: str | os.PathLike | None = None) -> dict:
    """Score the model on train, val and test; write metrics.json, per_image.csv and examples.npz.

    The loss is the one the run was trained with (`run_json`'s `loss`; BCE without a run.json).
    """
    loss_name = training_loss_name(run_json)
    predictor = Predictor(model_path, inference=inference_mode(model_path, run_json))
    cases = load_cases(prepared)
    if not cases:
        raise EffunetError(f"no images to evaluate in {prepared.manifest}")
    batch = np.stack([c.image for c in cases])
    native_speed = None
    if predictor.inference == "sliding":  # the foreground channel only (no boundary decoding)
        native_speed = predict_native(predictor, cases)
    else:
        for case, outputs in zip(cases, predictor.outputs(batch)):
            case.probability = outputs[..., 0]
            case.boundary = outputs[..., 1] if outputs.shape[-1] > 1 else None
    for case, loss in zip(cases, image_losses(loss_name, training_targets(prepared, cases),
                                              [c.probability for c in cases])):
        case.loss = loss
    value, source = choose_threshold(cases, threshold)
    log.info("threshold %.2f (%s)", value, source)
    rows, summaries = score_cases(cases, value)
    test_images = np.stack([c.image for c in cases if c.split == "test"] or [batch[0]])
    result = {"threshold": {"value": value, "chosen_on": source}, "inference": predictor.inference,
              "splits": summaries,
              "loss": {"function": loss_name, **{split: summaries[split]["training_size"]["per_image_mean"]["loss"]
                                                 for split in summaries}},
              "inference_images_per_s": (predictor.images_per_second(test_images) if native_speed is None
                                         else native_speed),
              "second_observer": second_observer(cases), "protocol": __doc__.split("Protocol")[1].strip()}
    _write(result, rows, cases, Path(metrics_path), Path(per_image_path), Path(examples_path))
    for split in SPLITS:
        if split in summaries:
            pooled = summaries[split]["native"]["pooled"]
            log.info("%s (native, pooled): dice %.4f iou %.4f accuracy %.4f; %s loss %.4f", split,
                     pooled["dice"], pooled["iou"], pooled["accuracy"], loss_name, result["loss"][split])
    return result


def example_cases(cases: list[Case]) -> list[Case]:
    """The same images for every model: the first few ids of each split."""
    chosen = []
    for split in SPLITS:
        chosen += sorted((c for c in cases if c.split == split), key=lambda c: c.id)[:EXAMPLES_PER_SPLIT]
    return chosen


def _write(result, rows, cases, metrics_path: Path, per_image_path: Path, examples_path: Path) -> None:
    with atomic_path(per_image_path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    chosen = example_cases(cases)
    with atomic_path(examples_path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, ids=np.array([c.id for c in chosen]), splits=np.array([c.split for c in chosen]),
                            images=np.stack([c.image for c in chosen]), truths=np.stack([c.truth for c in chosen]),
                            probabilities=np.stack([c.probability for c in chosen]),
                            regions=np.stack([c.region if c.region is not None else np.ones_like(c.truth)
                                              for c in chosen]))
    write_text_atomic(metrics_path, json.dumps(result, indent=2, default=float) + "\n")


HEADLINE_POOLED = ("dice", "iou", "accuracy", "roc_auc", "pr_auc")
HEADLINE_IMAGE_MEAN = ("dice", "instance_ap", "instance_ap_watershed")


def tracked_metrics(result: dict) -> dict[str, float]:
    """The handful of headline numbers logged as MLflow metrics (the full evaluation is an artifact).

    ``test_loss`` (the training loss function on the test images); ``test_<metric>``: pooled over
    the test set at native resolution (dice, iou, accuracy, roc_auc, pr_auc);
    ``test_<metric>_image_mean``: the per-image mean (dice, and DSB2018's instance_ap, with
    instance_ap_watershed for models trained with `train.instances: boundary`);
    ``inference_images_per_s``. Everything else is in the logged ``eval/metrics.json``.
    """
    flat = {"inference_images_per_s": result["inference_images_per_s"],
            "test_loss": result.get("loss", {}).get("test")}
    test = result["splits"].get("test", {}).get("native")
    if test:
        flat.update({f"test_{name}": test["pooled"].get(name) for name in HEADLINE_POOLED})
        flat.update({f"test_{name}_image_mean": test["per_image_mean"].get(name) for name in HEADLINE_IMAGE_MEAN})
    return {k: float(v) for k, v in flat.items() if v is not None and np.isfinite(v)}


def log_to_training_run(result: dict, run_json: str | os.PathLike, metrics_path: str | os.PathLike,
                        tracking_uri: str | None, experiment: str,
                        per_image_path: str | os.PathLike | None = None,
                        model_path: str | os.PathLike | None = None,
                        manifest: str | os.PathLike | None = None) -> None:
    """Add the evaluation to the model's MLflow run (the run id is in run.json); skipped if untracked.

    Headline test metrics as metrics (`tracked_metrics`) at a step of their own per evaluation, the
    threshold and what chose it as tags ``eval.threshold``, ``eval.threshold_chosen_on`` (with
    ``eval.step``; they describe the newest evaluation) and the threshold also as metric
    ``eval.threshold`` (`RunTracker.log_evaluation`), and the full evaluation (``metrics.json``,
    ``per_image.csv``) as artifacts under ``eval/``, replaced by a re-evaluation. With `model_path`,
    the model as the run's logged model, by reference (`RunTracker.log_model_reference`: no copy);
    with `manifest`, the prepared data set as the run's input (`RunTracker.log_manifest`).
    """
    from effunet import tracking

    run = json.loads(Path(run_json).read_text())
    if not tracking_uri or not run.get("run_id"):
        log.info("the training run was not tracked: evaluation metrics are only in %s", metrics_path)
        return
    with tracking.RunTracker.open(tracking_uri, experiment, "evaluation", run_id=run["run_id"]) as tracker:
        tracker.log_evaluation(tracked_metrics(result), {"threshold": result["threshold"]["value"],
                                                         "threshold_chosen_on": result["threshold"]["chosen_on"]})
        tracker.log_artifact(metrics_path, artifact_path="eval")
        if per_image_path is not None:
            tracker.log_artifact(per_image_path, artifact_path="eval")
        if manifest is not None:
            tracker.log_manifest(manifest)
        if model_path is not None:
            tracker.log_model_reference(model_path, params={"inference": result.get("inference")})


def load_examples(path: str | os.PathLike) -> list[dict]:
    """The example images written by `evaluate`, as dicts for `effunet.plots.qualitative_panel`."""
    with np.load(path) as data:
        return [{"id": str(i), "split": str(s), "image": im, "truth": t, "probability": p, "region": r}
                for i, s, im, t, p, r in zip(data["ids"], data["splits"], data["images"], data["truths"],
                                             data["probabilities"], data["regions"])]
