"""Reference rows for the comparison: what the protocol allows, and what a second human scores.

- Protocol ceiling: the ground truth of each test image, resized to the training size as the training
  targets are, is used as the "probability" of a perfect model and scored exactly like a model's
  prediction (`effunet.scoring.score_cases`: resized back to native size, thresholded at 0.5, scored
  at native resolution, instance AP with and without splitting). No model can beat it under this
  protocol, since a model's output is made at the training size. Data sets with instance labels
  (DSB2018, a folder with labels/) also get the ceiling of the boundary decoding
  (`instance_ap_watershed`): the boundary target a model trained with
  `train.instances: boundary` learns (`effunet.boundary.boundary_target`) as its second
  channel, decoded by the marker-controlled watershed.
- Second observer: another annotator's truth against the truth inside the scored region (DRIVE's
  `2nd_manual` against `1st_manual`; `effunet.scoring.second_observer`), where the format has one.
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np

from effunet import evaluate, scoring
from effunet.boundary import boundary_target
from effunet.errors import EffunetError
from effunet.files import write_text_atomic
from effunet.layout import PreparedData

log = logging.getLogger(__name__)


def protocol_ceiling(cases: list[scoring.Case], threshold: float = 0.5, threads: int | None = None) -> dict:
    """Native-resolution summary of the test split with the resized ground truth as prediction."""
    test = [case for case in cases if case.split == "test"]
    if not test:
        raise EffunetError("the manifest has no test images: no protocol ceiling to compute")
    for case in test:
        case.probability = case.truth.astype(np.float32)
        if case.native_labels is not None:
            case.boundary = boundary_target(case.native_labels, case.truth.shape) / np.float32(255)
    _, summaries = scoring.score_cases(test, threshold, threads)
    return summaries["test"]["native"]


def reference(prepared: PreparedData, dataset: str, out_json: str | os.PathLike, threads: int | None = None) -> dict:
    """Write `reference.json`: the protocol ceiling and (where the data set has one, DRIVE) the second
    observer, on the test split; images read and scored on `threads` threads (`effunet.scoring`)."""
    cases = evaluate.load_cases(prepared, threads)
    observer = scoring.second_observer([c for c in cases if c.split == "test"])
    result = {"dataset": dataset, "protocol_ceiling": protocol_ceiling(cases, threads=threads),
              "second_observer": observer}
    write_text_atomic(out_json, json.dumps(result, indent=2, default=float) + "\n")
    pooled, mean = result["protocol_ceiling"]["pooled"], result["protocol_ceiling"]["per_image_mean"]
    log.info("protocol ceiling on %s (test, native): dice %.4f pooled, %.4f per-image mean", dataset,
             pooled["dice"], mean["dice"])
    return result
