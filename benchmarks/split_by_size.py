"""The DSB2018 ground truth passed through the evaluation protocol, scored per native size group.

    python benchmarks/split_by_size.py resources/prepared/dsb2018 [--workers 2] [--per-size 12]

For every image of a prepared DSB2018 folder (the prepare step's output: 0/255 masks at the training
size, native uint16 instance labels, manifest.csv): the training-size truth mask is taken as the
prediction (probability 0 or 1), resized back to the native size and thresholded at 0.5, exactly as
evaluation treats a model's output. It is scored with the DSB2018 metric against the native labels
as connected components (`instance_ap`), split at one scale by evaluation's `split_nuclei`
(`instance_ap_split`), and, for contrast, split on the native mask with the same fixed parameters
(the former protocol). Prints a Markdown table per native size (mean over images); --per-size N
scores only the first N images (by id) of each native size.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from effunet import metrics
from effunet.data import images
from effunet.data.manifest import read_manifest
from effunet.evaluate import split_nuclei
from effunet.predict import resize_probability


def score(args) -> tuple[tuple[int, int], float, float, float]:
    folder, image_id = args
    name = images.png_name(image_id)
    truth = images.read_labels(folder / "labels" / name)
    probability = images.read_mask(folder / "masks" / name).astype(np.float32)
    native = resize_probability(probability, truth.shape) > 0.5
    return (truth.shape, metrics.instance_ap(truth, metrics.label_components(native)),
            metrics.instance_ap(truth, split_nuclei(probability, native, 0.5)),
            metrics.instance_ap(truth, metrics.split_touching(native)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prepared", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--per-size", type=int, default=None)
    args = parser.parse_args()
    table = read_manifest(args.prepared / "manifest.csv").sort_values("id")
    if args.per_size:
        table = table.groupby(["height", "width"], sort=False).head(args.per_size)
    jobs = [(args.prepared, i) for i in table["id"]]
    groups = defaultdict(list)
    with ProcessPoolExecutor(args.workers) as pool:
        for shape, plain, split, native_split in pool.map(score, jobs, chunksize=4):
            groups[shape].append((plain, split, native_split))
    print("| native size | images | instance_ap | instance_ap_split (one scale) | split on the native mask (former) |")
    print("|---|---|---|---|---|")
    for shape in sorted(groups, key=lambda s: s[0] * s[1]):
        values = np.array(groups[shape])
        plain, split, native_split = values.mean(axis=0)
        print(f"| {shape[0]}x{shape[1]} | {len(values)} | {plain:.3f} | {split:.3f} | {native_split:.3f} |")
    everything = np.concatenate([np.array(v) for v in groups.values()])
    plain, split, native_split = everything.mean(axis=0)
    print(f"| all | {len(everything)} | {plain:.3f} | {split:.3f} | {native_split:.3f} |")


if __name__ == "__main__":
    main()
