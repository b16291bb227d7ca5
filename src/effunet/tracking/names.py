"""MLflow metric keys grouped by prefix, so the UI's charts read as sections.

The training and evaluation code name their numbers as in ``history.csv`` and ``metrics.json``
(``loss``, ``val_dice``, ``seconds``, ``test_dice``, ``eval.threshold``); `RunTracker` logs them
under these keys (MLflow groups charts by the part before the first ``/``):

- ``train/<metric>``: a per-epoch number on the training images (``loss``, ``dice``, ...), and
  ``train/learning_rate``;
- ``val/<metric>``: its twin on the validation images (``val_<metric>``);
- ``time/epoch_seconds``: each epoch's time (``seconds``);
- ``test/<metric>``: a headline number of an evaluation on the test images (``test_<metric>``,
  and ``inference_images_per_s`` as ``test/inference_images_per_s``), logged at the evaluation's
  step (1, then 2 after a re-evaluation);
- ``eval/<setting>``: a numeric setting of that evaluation (``eval.threshold`` as ``eval/threshold``).

The training outcome (`SUMMARY`: ``best_epoch``, ``epochs_trained``, the timing figures) is
logged once per run as params (``best_epoch``, ...): a run has one value of each, which the
runs table shows as columns, instead of single points at the last epoch.
"""

from __future__ import annotations

from effunet.run import TIMING

SUMMARY = ("best_epoch", "best_val_loss", "epochs_trained", "wall_seconds", *TIMING)
"""Numbers a training run has once: logged as params, not metrics."""

RENAMED = {"seconds": "time/epoch_seconds", "inference_images_per_s": "test/inference_images_per_s"}

HEADLINE = "test/dice_image_mean"
"""The headline test metric (the comparison table's default: per-image mean Dice at native resolution)."""

TABLE_METRICS = (HEADLINE, "test/dice", "test/iou", "test/loss")
"""The metric columns the runs table shows by default (the experiment's view, `store.ensure_runs_view`)."""


def metric_key(name: str) -> str:
    """The MLflow key of a number named as in history.csv or metrics.json (see the module's doc)."""
    if "/" in name:
        return name
    if name in RENAMED:
        return RENAMED[name]
    for prefix, section in (("val_", "val/"), ("test_", "test/"), ("eval.", "eval/")):
        if name.startswith(prefix):
            return section + name[len(prefix) :]
    return f"train/{name}"
