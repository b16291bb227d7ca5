"""Time the exact pooled ROC-AUC and average precision against scikit-learn on DRIVE-sized data.

    python benchmarks/bench_auc.py                 # 20 images of 584x565, disc FOV, 3 repeats
    python benchmarks/bench_auc.py --images 12 --repeats 5

Ours: `effunet.metrics.PooledAuc`, fed image by image (what evaluation does), then both areas.
Peer, in the same run on the same pixels: scikit-learn's `roc_auc_score` and
`average_precision_score` on the concatenated scored pixels (which needs them all in memory at
once). Outputs are float32 sigmoid probabilities of which a large share saturate to exactly 0 or 1
(ties across images, the case a binned estimate got wrong by up to 8e-4). Prints the median times,
the ratio peer/ours and the largest difference between the two results.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from sklearn import metrics as skm

from effunet.metrics import PooledAuc


def drive_like(n_images: int, shape=(584, 565), seed: int = 0):
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    fov = (rows - shape[0] / 2) ** 2 + (cols - shape[1] / 2) ** 2 < (0.47 * min(shape)) ** 2
    cases = []
    for _ in range(n_images):
        truth = rng.random(shape) < 0.12
        logit = 3.0 * truth + rng.normal(0, 2.5, shape)
        cases.append((truth, (1 / (1 + np.exp(-8 * logit))).astype(np.float32), fov))
    return cases


def ours(cases) -> tuple[float, float]:
    pooled = PooledAuc()
    for truth, probability, fov in cases:
        pooled.add(truth, probability, fov)
    return pooled.roc_auc(), pooled.pr_auc()


def peer(cases) -> tuple[float, float]:
    truth = np.concatenate([t[f] for t, _, f in cases])
    score = np.concatenate([p[f] for _, p, f in cases])
    return skm.roc_auc_score(truth, score), skm.average_precision_score(truth, score)


def timed(function, cases):
    start = time.perf_counter()
    result = function(cases)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cases = drive_like(args.images)
    pixels = sum(int(f.sum()) for _, _, f in cases)
    saturated = np.mean([np.mean((p[f] == 0) | (p[f] == 1)) for _, p, f in cases])
    times = {"ours": [], "sklearn": []}
    for _ in range(args.repeats):  # interleaved
        t, mine = timed(ours, cases)
        times["ours"].append(t)
        t, theirs = timed(peer, cases)
        times["sklearn"].append(t)
    t_ours, t_peer = statistics.median(times["ours"]), statistics.median(times["sklearn"])
    error = max(abs(a - b) for a, b in zip(mine, theirs, strict=True))
    print(f"{args.images} images, {pixels:,} scored pixels ({saturated:.0%} exactly 0 or 1)")
    print(f"ROC-AUC {mine[0]:.12f} (sklearn {theirs[0]:.12f}), AP {mine[1]:.12f} (sklearn {theirs[1]:.12f})")
    print(f"pooled ROC-AUC + AP: ours {t_ours:.3f} s, sklearn {t_peer:.3f} s, sklearn/ours {t_peer / t_ours:.2f}x, "
          f"max |difference| {error:.1e} (median of {args.repeats})")


if __name__ == "__main__":
    main()
