"""False-"significant" rate and power of comparison tests on simulated studies with known truth.

Compares, on the same simulated studies (image difficulty sd 0.1, seed effect sd 0.005, per-image
noise sd 0.01, as in tests/test_statistics.py):
- effunet.statistics (crossed seed x image mixed model, Welch-Satterthwaite t),
- the former rule (per-image Dice averaged over seeds; Wilcoxon p < 0.05 and image-bootstrap CI
  excluding 0),
- a two-level percentile bootstrap (seeds resampled within each model, images resampled paired).

Run: python benchmarks/bench_statistics.py [studies]
"""

import sys

import numpy as np
from scipy import stats

from effunet import statistics

BOOTSTRAP = 1000


def simulate(rng, seeds, images, difference):
    difficulty = rng.normal(0.7, 0.1, (1, images))

    def model(shift):
        return difficulty + shift + rng.normal(0, 0.005, (seeds, 1)) + rng.normal(0, 0.01, (seeds, images))

    return model(difference), model(0.0)


def former_rule(a, b, rng):
    difference = a.mean(axis=0) - b.mean(axis=0)
    resamples = rng.integers(0, len(difference), (BOOTSTRAP, len(difference)))
    low, high = np.percentile(difference[resamples].mean(axis=1), [2.5, 97.5])
    return stats.wilcoxon(difference).pvalue < 0.05 and (low > 0 or high < 0)


def two_level_bootstrap(a, b, rng):
    seeds, images = a.shape
    pick_images = rng.integers(0, images, (BOOTSTRAP, 1, images))
    pick_a = rng.integers(0, seeds, (BOOTSTRAP, seeds, 1))
    pick_b = rng.integers(0, seeds, (BOOTSTRAP, seeds, 1))
    means = a[pick_a, pick_images].mean(axis=(1, 2)) - b[pick_b, pick_images].mean(axis=(1, 2))
    low, high = np.percentile(means, [2.5, 97.5])
    return low > 0 or high < 0


def mixed_model(a, b, rng):
    test = statistics.difference_test(a, b)
    low, high = statistics.interval(test["difference"], test["se"], test["df"], statistics.ALPHA)
    return bool(low > 0 or high < 0)


def main(studies: int = 300) -> None:
    rng = np.random.default_rng(0)
    methods = {"effunet.statistics": mixed_model, "former rule": former_rule,
               "two-level percentile bootstrap": two_level_bootstrap}
    print(f"{studies} simulated studies per cell; share called significant at alpha 0.05")
    print(f"{'seeds':>5} {'images':>6} {'true diff':>9}  " + "  ".join(f"{name:>30}" for name in methods))
    for seeds, images, difference in ((1, 20, 0.0), (3, 20, 0.0), (1, 67, 0.0), (3, 67, 0.0), (3, 67, 0.03)):
        hits = {name: 0 for name in methods}
        for _ in range(studies):
            a, b = simulate(rng, seeds, images, difference)
            for name, method in methods.items():
                hits[name] += method(a, b, rng)
        print(f"{seeds:>5} {images:>6} {difference:>9}  " + "  ".join(f"{hits[n] / studies:>30.3f}" for n in methods))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
