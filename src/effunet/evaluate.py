"""Evaluate a trained model on every split, at native resolution and at the training size.

Protocol (what reviewers ask for, and what the study's accuracy numbers leave open):
- Predictions are made at the training size; for native scores the probabilities are resized back
  to each image's original height x width (recorded in the manifest) and thresholded there. A run
  trained with train.inference sliding is predicted instead on the original image by overlapping
  tiles at the training size, blended (`effunet.predict.sliding_window`); its training-size
  probabilities are those resized down to the training size.
- `inference_images_per_s` is timed on the evaluation's own inference, the first batch (which
  includes tracing) left out: training-size images per second in batches, or, with sliding windows,
  native images per second (tiles and blending included, reading the originals left out).
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
from pathlib import Path

import numpy as np
import pandas as pd

from effunet.data import formats, images
from effunet.data.manifest import SPLITS, read_manifest
from effunet.errors import EffunetError
from effunet.files import atomic_path, write_text_atomic
from effunet.layout import PreparedData
from effunet.predict import Predictor, inference_mode
from effunet.run import RunRecord, Settings
from effunet.scoring import (
    THRESHOLD_GRID,
    Case,
    choose_threshold,
    image_losses,
    job_threads,
    native_probability,
    score_cases,
    second_observer,
    split_nuclei,
    watershed_nuclei,
)
from effunet.sliding import resize_probability
from effunet.threads import in_order

__all__ = [  # with the scoring, which lives in effunet.scoring
    "EXAMPLES_PER_SPLIT", "THRESHOLD_GRID", "Case", "choose_threshold", "evaluate", "example_cases",
    "image_losses", "load_cases", "load_examples", "log_to_training_run", "native_probability",
    "predict_cases", "predict_native", "resize_probability", "score_cases", "second_observer",
    "split_nuclei", "tracked_metrics", "training_loss_name", "training_targets", "watershed_nuclei",
]

log = logging.getLogger(__name__)
EXAMPLES_PER_SPLIT = 2
PROGRESS_EVERY_S = 30.0


def load_cases(prepared: PreparedData, threads: int | None = None) -> list[Case]:
    """Every image of the manifest with its truth, read as the prepared data's format says (on up to
    `threads` threads)."""
    table = read_manifest(prepared.manifest)
    cases = list(in_order(lambda row: _case(prepared, row), list(table.itertuples()), threads))
    if "image" in table.columns:
        for case, source in zip(cases, table["image"]):
            case.source = source
    return cases


def _case(prepared: PreparedData, row) -> Case:
    image = images.read_rgb(prepared.image(row.id))
    truth = images.read_mask(prepared.mask(row.id))
    region = images.read_mask(prepared.region(row.id)) if prepared.fov is not None else None
    native = formats.native(prepared, row)
    return Case(row.id, row.split, image, truth, region, native.truth, native.region, native.labels,
                native.second_observer)


def predict_cases(predictor: Predictor, cases: list[Case]) -> float:
    """Each case's training-size outputs (the foreground probability, and the boundary of two-channel
    models), predicted in batches. Returns images per second after the first batch (tracing)."""
    seconds, count, size = 0.0, 0, predictor.batch_size
    for first in range(0, len(cases), size):
        chunk = cases[first : first + size]
        start = time.perf_counter()
        outputs = predictor.outputs(np.stack([c.image for c in chunk]))
        if first:
            seconds, count = seconds + time.perf_counter() - start, count + len(chunk)
        for case, output in zip(chunk, outputs):
            case.probability = output[..., 0]
            case.boundary = output[..., 1] if output.shape[-1] > 1 else None
    if not count:  # a single batch: time it again, traced
        return predictor.images_per_second(np.stack([c.image for c in cases]))
    return count / seconds


def predict_native(predictor: Predictor, cases: list[Case]) -> float:
    """Sliding-window probabilities at native size from each case's original image (the tiles of
    consecutive images predicted in shared batches: `Predictor.natives`), and the training-size
    probabilities as those resized down. Returns the native images predicted per second after the
    first (which includes tracing), tiling and blending included, reading the originals left out."""
    reading = [0.0]

    def originals():
        reported = time.monotonic()
        for number, case in enumerate(cases):
            if time.monotonic() - reported >= PROGRESS_EVERY_S:  # hundreds of images: minutes
                log.info("sliding-window inference: %d of %d images", number, len(cases))
                reported = time.monotonic()
            if case.source is None:
                raise EffunetError(f"sliding-window inference needs the original images; the manifest has no "
                                   f"`image` column for {case.id}")
            start = time.perf_counter()
            rgb = images.read_rgb(case.source)
            reading[0] += time.perf_counter() - start
            yield rgb

    started, read_then = None, 0.0
    for case, probability in zip(cases, predictor.natives(originals())):
        if started is None:
            started, read_then = time.perf_counter(), reading[0]
        if probability.shape != case.native_truth.shape:
            raise EffunetError(f"{case.source} is {probability.shape} but its truth is "
                               f"{case.native_truth.shape}; rerun the data steps")
        case.native_probability = probability
        case.probability = resize_probability(probability, case.truth.shape)
    seconds = time.perf_counter() - started - (reading[0] - read_then) if started is not None else 0.0
    return (len(cases) - 1) / seconds if seconds > 0 and len(cases) > 1 else float("nan")


def training_targets(prepared: PreparedData, cases: list[Case]) -> list[np.ndarray]:
    """Each case's target as training reads it (`effunet.training.dataset.as_model_input`): the prepared
    mask's values / 255, not the mask thresholded at half (soft targets keep their area fractions)."""
    return [np.asarray(images.open_gray(prepared.mask(c.id)).convert("L"), np.float32) / np.float32(255.0)
            for c in cases]


def training_loss_name(run_json: str | os.PathLike | None) -> str:
    """The loss a run was trained with (run.json's settings, `RunRecord`; the default without one)."""
    return (RunRecord.read(run_json).settings if run_json is not None else Settings()).loss


def evaluate(model_path: str | os.PathLike, prepared: PreparedData,
             metrics_path: str | os.PathLike, per_image_path: str | os.PathLike,
             examples_path: str | os.PathLike, threshold: str | float = 0.5,
             run_json: str | os.PathLike | None = None, threads: int | None = None) -> dict:
    """Score the model on train, val and test; write metrics.json, per_image.csv and examples.npz.

    The loss is the one the run was trained with (`run_json`'s `loss`; BCE without a run.json). Images
    are read and scored on `threads` threads (None: the process's CPUs; `effunet.scoring`), and the
    model runs on as many (`effunet.models.runtime.limit_threads`).
    """
    threads = job_threads(threads)
    from effunet.models import runtime  # Keras starts here

    runtime.limit_threads(threads)  # the model's thread pools: the job's threads, not the machine's
    loss_name = training_loss_name(run_json)
    predictor = Predictor(model_path, inference=inference_mode(model_path, run_json))
    stage = time.perf_counter()
    cases = load_cases(prepared, threads)
    if not cases:
        raise EffunetError(f"no images to evaluate in {prepared.manifest}")
    stage = _stage("reading %d images" % len(cases), stage)
    if predictor.inference == "sliding":  # the foreground channel only (no boundary decoding)
        speed = predict_native(predictor, cases)
    else:
        speed = predict_cases(predictor, cases)
    stage = _stage(f"inference ({predictor.inference})", stage)
    for case, loss in zip(cases, image_losses(loss_name, training_targets(prepared, cases),
                                              [c.probability for c in cases])):
        case.loss = loss
    stage = _stage("training loss", stage)
    value, source = choose_threshold(cases, threshold, threads)
    log.info("threshold %.2f (%s)", value, source)
    rows, summaries = score_cases(cases, value, threads)
    _stage(f"scoring on {threads} thread(s)", stage)
    result = {"threshold": {"value": value, "chosen_on": source}, "inference": predictor.inference,
              "splits": summaries,
              "loss": {"function": loss_name, **{split: summaries[split]["training_size"]["per_image_mean"]["loss"]
                                                 for split in summaries}},
              "inference_images_per_s": speed,
              "second_observer": second_observer(cases), "protocol": __doc__.split("Protocol")[1].strip()}
    _write(result, rows, cases, Path(metrics_path), Path(per_image_path), Path(examples_path))
    for split in SPLITS:
        if split in summaries:
            pooled = summaries[split]["native"]["pooled"]
            log.info("%s (native, pooled): dice %.4f iou %.4f accuracy %.4f; %s loss %.4f", split,
                     pooled["dice"], pooled["iou"], pooled["accuracy"], loss_name, result["loss"][split])
    return result


def _stage(name: str, start: float) -> float:
    now = time.perf_counter()
    log.info("%s: %.1f s", name, now - start)
    return now


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

    run_id = RunRecord.read(run_json).run_id
    if not tracking_uri or not run_id:
        log.info("the training run was not tracked: evaluation metrics are only in %s", metrics_path)
        return
    with tracking.RunTracker.open(tracking_uri, experiment, "evaluation", run_id=run_id) as tracker:
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
