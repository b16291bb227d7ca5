"""The boundary decoding (`train.instances: boundary`) on the ground truth, against the distance split.

    python benchmarks/bench_instances.py PREPARED LABELS [--split test]

PREPARED is a prepared DSB2018 variant (the prepare step's output: manifest.csv, masks/) and LABELS
its native instance labels (merge_masks' labels/), e.g.
resources/prepared/dsb2018/<source>/128x128-<hash> and resources/prepared/dsb2018/<source>/labels.
For every image of the split, as the protocol ceiling does: the training-size truth mask is the
foreground "probability" and the boundary target (`effunet.boundary.boundary_target`) the
boundary channel of a perfect two-channel model. Prints the mean time per image of making the
target, of evaluation's distance split (`split_nuclei`, the peer) and of its watershed decoding
(`watershed_nuclei`), their ratio, and the instance AP of connected components, split and watershed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from effunet import metrics
from effunet.boundary import boundary_target
from effunet.data import images
from effunet.data.manifest import read_manifest
from effunet.evaluate import split_nuclei, watershed_nuclei
from effunet.predict import resize_probability


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prepared", type=Path)
    parser.add_argument("labels", type=Path)
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    table = read_manifest(args.prepared / "manifest.csv")
    ids = table.loc[table["split"] == args.split, "id"].tolist()
    seconds = {"target": 0.0, "split": 0.0, "watershed": 0.0}
    scores = {"components": [], "split": [], "watershed": []}
    for image_id in ids:
        name = images.png_name(image_id)
        truth = images.read_labels(args.labels / name)
        probability = images.read_mask(args.prepared / "masks" / name).astype(np.float32)
        native = resize_probability(probability, truth.shape) > 0.5
        start = time.perf_counter()
        boundary = boundary_target(truth, probability.shape) / np.float32(255)
        seconds["target"] += time.perf_counter() - start
        start = time.perf_counter()
        split = split_nuclei(probability, native, 0.5)
        seconds["split"] += time.perf_counter() - start
        start = time.perf_counter()
        watershed = watershed_nuclei(probability, boundary, native, 0.5)
        seconds["watershed"] += time.perf_counter() - start
        scores["components"].append(metrics.instance_ap(truth, metrics.label_components(native)))
        scores["split"].append(metrics.instance_ap(truth, split))
        scores["watershed"].append(metrics.instance_ap(truth, watershed))
    n = len(ids)
    print(f"{n} {args.split} images; ms per image: " + ", ".join(f"{k} {v / n * 1000:.1f}" for k, v in seconds.items()))
    print(f"watershed decoding / distance split time: {seconds['watershed'] / seconds['split']:.2f}")
    print("instance AP (mean over images): " + ", ".join(f"{k} {np.mean(v):.3f}" for k, v in scores.items()))


if __name__ == "__main__":
    main()
