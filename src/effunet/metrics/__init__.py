"""Pixel and instance metrics, pure NumPy/SciPy, in layers: counts -> per-image dict -> summary.

Pixel metrics start from a confusion table (`confusion` -> `Counts`); `scores` turns one table into
the named ratios. A per-image value is `scores(confusion(...))` of that image; a pooled value is
`scores` of the sum of the images' tables (every scored pixel of the set counts once). `summarize`
builds the summary dict with per-image values, their mean and std, and the pooled values.

Conventions, the same everywhere (no function returns NaN):

- A ratio whose denominator is zero is 1.0 ("nothing to get wrong"): IoU and Dice of an image where
  truth and prediction are both empty, sensitivity with no true positives in the truth, precision
  with no predicted positives, specificity with no true negatives. These match scikit-learn with
  `zero_division=1.0`.
- MCC is 0.0 when any row or column of the table is empty (constant truth or prediction), as in
  scikit-learn's `matthews_corrcoef`; so an empty image predicted empty has MCC 0 but IoU 1.
- ROC-AUC is None when the scored truth has a single class; PR-AUC is None when it has no
  positives. `summarize` averages a metric over the images where it is not None and reports how
  many those are.
- Scoring zero pixels (a region that selects nothing) or summarizing zero images is an EffunetError.

Instance metric (DSB2018): `instance_ap` compares a predicted label image with the true one at the
IoU thresholds 0.5, 0.55, ..., 0.95. `label_components` and `split_touching` turn a binary mask into
labels, the latter splitting touching nuclei by a distance-transform watershed;
`watershed_instances` decodes a foreground and a boundary probability map (models trained with
`train.instances: boundary`) by a marker-controlled watershed.

Layout: `pixel` (counts, scores, summaries), `auc` (ROC/PR areas, `PooledAuc`), `instance`
(labels, the boundary watershed, AP), `split` (splitting touching nuclei), `_common` (input checks); this package re-exports their public names.
"""

from effunet.metrics.auc import PooledAuc, pr_auc, roc_auc
from effunet.metrics.instance import (
    DSB_THRESHOLDS,
    SPLIT_SCALE,
    instance_ap,
    instance_precisions,
    label_components,
    transfer_labels,
    watershed_instances,
)
from effunet.metrics.pixel import Counts, confusion, scores, summarize
from effunet.metrics.split import split_touching

__all__ = [
    "DSB_THRESHOLDS",
    "SPLIT_SCALE",
    "Counts",
    "PooledAuc",
    "confusion",
    "instance_ap",
    "instance_precisions",
    "label_components",
    "pr_auc",
    "roc_auc",
    "scores",
    "split_touching",
    "summarize",
    "transfer_labels",
    "watershed_instances",
]
