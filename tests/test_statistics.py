"""The comparison statistics: reference implementations, Holm, and seeded simulations with known truth."""

import numpy as np
import pytest
from scipy import stats

from effunet import statistics

STUDIES = 2000


def simulate(rng, studies, seeds_a, seeds_b, images, true_difference=0.0, seed_sd=0.005, noise_sd=0.01,
             image_sd=0.1, interaction_sd=0.0):
    """Per-image Dice of two models: shared image difficulty, seed effect, per-image noise."""
    difficulty = rng.normal(0.7, image_sd, (studies, 1, images))

    def model(seeds, shift):
        interaction = rng.normal(0, interaction_sd, (studies, 1, images))
        return (difficulty + shift + interaction + rng.normal(0, seed_sd, (studies, seeds, 1))
                + rng.normal(0, noise_sd, (studies, seeds, images)))

    return model(seeds_a, true_difference), model(seeds_b, 0.0)


def significant(a, b):
    """What the table would call a difference (a single comparison: Holm changes nothing)."""
    test = statistics.difference_test(a, b)
    low, high = statistics.interval(test["difference"], test["se"], test["df"], statistics.ALPHA)
    return (low > 0) | (high < 0)


@pytest.mark.parametrize("seeds_a, seeds_b, images, interaction_sd", [
    (3, 3, 67, 0.0), (3, 3, 20, 0.0), (3, 5, 67, 0.0), (3, 3, 67, 0.02), (5, 5, 20, 0.01)])
def test_identical_architectures_are_rarely_called_different(seeds_a, seeds_b, images, interaction_sd):
    rng = np.random.default_rng(1)
    a, b = simulate(rng, STUDIES, seeds_a, seeds_b, images, interaction_sd=interaction_sd)
    rate = significant(a, b).mean()
    print(f"false 'significant' rate, {seeds_a} vs {seeds_b} seeds, {images} images: {rate:.3f}")
    assert rate <= 0.07
    assert rate >= 0.02  # not conservative to the point of uselessness


def test_power_for_a_true_difference_of_003_with_3_seeds_and_67_images():
    rng = np.random.default_rng(2)
    a, b = simulate(rng, STUDIES, 3, 3, 67, true_difference=0.03)
    power = significant(a, b).mean()
    print(f"power for a true Dice difference of 0.03, 3 vs 3 seeds, 67 images: {power:.3f}")
    assert power >= 0.8
    # the estimate is unbiased and the interval covers the truth 95% of the time
    test = statistics.difference_test(a, b)
    low, high = statistics.interval(test["difference"], test["se"], test["df"], 0.05)
    assert test["difference"].mean() == pytest.approx(0.03, abs=5e-4)
    assert 0.93 <= ((low <= 0.03) & (0.03 <= high)).mean() <= 0.97


def test_same_model_differences_per_image_do_count_for_new_images():
    """A large model x image interaction with no seed effect is still uncertainty about new images."""
    rng = np.random.default_rng(3)
    a, b = simulate(rng, STUDIES, 3, 3, 30, seed_sd=0.0, noise_sd=0.001, interaction_sd=0.05)
    assert significant(a, b).mean() <= 0.07


def test_one_seed_each_is_a_paired_t_test_on_images():
    rng = np.random.default_rng(4)
    a, b = rng.normal(0.7, 0.05, (1, 12)), rng.normal(0.68, 0.05, (1, 12))
    test = statistics.difference_test(a, b)
    reference = stats.ttest_rel(a[0], b[0])
    assert test["p"] == pytest.approx(reference.pvalue)
    assert test["df"] == 11 and np.isnan(test["seed_a"])


def test_constant_per_image_difference_is_welch_on_seed_means():
    """When every image differs by the same amount, only the seeds are uncertain: Welch's t-test."""
    rng = np.random.default_rng(5)
    profile = rng.normal(0.7, 0.1, 40)
    a = profile + rng.normal(0.02, 0.01, (3, 1))
    b = profile + rng.normal(0.0, 0.02, (4, 1))
    test = statistics.difference_test(a, b)
    reference = stats.ttest_ind(a.mean(axis=1), b.mean(axis=1), equal_var=False)
    assert test["p"] == pytest.approx(reference.pvalue)
    assert test["images"] == 0
    assert statistics.welch(a.mean(axis=1), b.mean(axis=1))["p"] == pytest.approx(reference.pvalue)


def test_holm_matches_the_textbook_procedure():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    # sorted 0.005, 0.01, 0.03, 0.04 with m = 4: 0.02, 0.03, 0.06, max(0.06, 0.04) = 0.06
    assert statistics.holm(p)[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert np.isnan(statistics.holm(p)[4])
    assert statistics.holm(np.array([0.5, 0.9])) == pytest.approx([1.0, 1.0])


def test_corrected_interval_excludes_zero_exactly_when_the_corrected_p_is_below_alpha():
    rng = np.random.default_rng(6)
    a, b = simulate(rng, 400, 3, 3, 20, true_difference=0.012)
    test = statistics.difference_test(a.reshape(100, 4, 3, 20), b.reshape(100, 4, 3, 20))  # 4 per table
    corrected = statistics.corrected(test)
    excludes = (corrected["ci_low"] > 0) | (corrected["ci_high"] < 0)
    assert np.array_equal(excludes, corrected["p_holm"] < 0.05)
    assert 0 < excludes.mean() < 1  # both cases occur
    raw = (corrected["ci95_low"] > 0) | (corrected["ci95_high"] < 0)
    assert np.array_equal(raw, test["p"] < 0.05) and raw.sum() > excludes.sum()


@pytest.mark.parametrize("low, high, seeds, expected", [
    (0.01, 0.03, 3, "effunet-b0 better"), (-0.03, -0.01, 3, "effunet-b0 worse"),
    (-0.01, 0.03, 3, "no evidence of a difference"), (0.01, 0.03, 2, "needs >= 3 seeds")])
def test_verdict_follows_the_interval_and_the_seed_count(low, high, seeds, expected):
    assert statistics.verdict(low, high, 3, seeds, "effunet-b0", "unet") == expected
    if "better" in expected:  # for a loss, higher is worse
        assert statistics.verdict(low, high, 3, seeds, "effunet-b0", "unet", higher_is_better=False) == \
            "effunet-b0 worse"
