"""False-"significant" rate and power of comparison tests on simulated studies with known truth.

Compares, on the same simulated studies (image difficulty sd 0.1, seed effect sd 0.005, per-image
noise sd 0.01, as in tests/test_statistics.py):
- effunet.statistics (crossed seed x image mixed model, Welch-Satterthwaite t),
- the former rule (per-image Dice averaged over seeds; Wilcoxon p < 0.05 and image-bootstrap CI
  excluding 0),
- a two-level percentile bootstrap (seeds resampled within each model, images resampled paired).

Run: python benchmarks/bench_statistics.py [studies]

`python benchmarks/bench_statistics.py power [studies]`: the power table of the README (issue 19) on
DSB2018-like per-image Dice (67 test images, image sd 0.15, model x image interaction sd 0.04, per-image
noise sd 0.03) over the seed-to-seed sd: the share of studies that detect a true difference of 0.03 at
alpha 0.05 (one comparison) and at 0.05 / 8 (Holm's first step in an 8-row family), the mean MDE
(80% power) the statistics report at each level, and the false-"significant" rate at alpha 0.05.
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


def realistic(rng, studies, seeds, difference, seed_sd, images=67):
    difficulty = rng.normal(0.7, 0.15, (studies, 1, images))

    def model(shift):
        return (difficulty + shift + rng.normal(0, 0.04, (studies, 1, images))
                + rng.normal(0, seed_sd, (studies, seeds, 1)) + rng.normal(0, 0.03, (studies, seeds, images)))

    return model(difference), model(0.0)


def called(a, b, alpha):
    test = statistics.difference_test(a, b)
    low, high = statistics.interval(test["difference"], test["se"], test["df"], alpha)
    return (low > 0) | (high < 0), test


def power_table(studies: int = 2000) -> None:
    rng = np.random.default_rng(0)
    holm = statistics.ALPHA / 8
    print(f"{studies} simulated studies per cell; 67 images, image sd 0.15, interaction sd 0.04, noise sd 0.03")
    print(f"{'seeds':>7} {'seed sd':>7} {'FPR':>6} {'power 0.03':>10} {'MDE':>7} {'power 0.03 Holm/8':>17} "
          f"{'MDE Holm/8':>10}")
    for seeds in (3, 5):
        for seed_sd in (0.005, 0.01, 0.015, 0.02, 0.03):
            null, _ = called(*realistic(rng, studies, seeds, 0.0, seed_sd), statistics.ALPHA)
            hits, test = called(*realistic(rng, studies, seeds, 0.03, seed_sd), statistics.ALPHA)
            hits_holm, _ = called(*realistic(rng, studies, seeds, 0.03, seed_sd), holm)
            mde = statistics.detectable(test, statistics.ALPHA).mean()
            mde_holm = statistics.detectable(test, holm).mean()
            print(f"{seeds:>3} v {seeds:<1} {seed_sd:>7} {null.mean():>6.3f} {hits.mean():>10.3f} {mde:>7.4f} "
                  f"{hits_holm.mean():>17.3f} {mde_holm:>10.4f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "power":
        power_table(int(sys.argv[2]) if len(sys.argv) > 2 else 2000)
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
