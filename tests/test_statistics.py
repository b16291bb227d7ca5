"""The comparison statistics: reference implementations, Holm, and seeded simulations with known truth."""

import numpy as np
import pandas as pd
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


# ------------------------------------------------------------------------------------ what a design can see

def realistic(rng, studies, seeds, images=67, difference=0.0, seed_sd=0.015, interaction_sd=0.04, noise_sd=0.03):
    """DSB2018-like per-image Dice (issue 19): image sd 0.15, model x image interaction, seed effect, noise;
    `difference` a number or one per study."""
    difference = np.broadcast_to(np.asarray(difference, dtype=float), (studies,))[:, None, None]
    return simulate(rng, studies, seeds, seeds, images, 0.0, seed_sd, noise_sd, 0.15, interaction_sd) \
        if not difference.any() else _shifted(rng, studies, seeds, images, difference, seed_sd, interaction_sd, noise_sd)


def _shifted(rng, studies, seeds, images, difference, seed_sd, interaction_sd, noise_sd):
    a, b = simulate(rng, studies, seeds, seeds, images, 0.0, seed_sd, noise_sd, 0.15, interaction_sd)
    return a + difference, b


def detected(a, b, alpha):
    test = statistics.difference_test(a, b)
    low, high = statistics.interval(test["difference"], test["se"], test["df"], alpha)
    return (low > 0) | (high < 0)


def test_noncentrality_inverts_the_noncentral_t_power():
    df, alpha = np.array([2.5, 4.0, 12.0, 60.0]), np.array([0.05, 0.00625, 0.05, 0.01])
    lam = statistics.noncentrality(df, alpha)
    critical = stats.t.ppf(1 - alpha / 2, df)
    power = stats.nct.sf(critical, df, lam) + stats.nct.cdf(-critical, df, lam)
    assert power == pytest.approx(0.8, abs=1e-6)
    # the normal limit: z(0.975) + z(0.8), the textbook 2.80
    assert statistics.noncentrality(1e7, 0.05) == pytest.approx(stats.norm.ppf(0.975) + stats.norm.ppf(0.8), abs=1e-3)


@pytest.mark.parametrize("seeds", [3, 5])
@pytest.mark.parametrize("seed_sd, interaction_sd, noise_sd", [
    (0.005, 0.03, 0.02), (0.005, 0.06, 0.05), (0.03, 0.03, 0.02), (0.03, 0.06, 0.05)])
def test_a_true_difference_of_the_reported_mde_is_found_in_70_to_90_percent(seeds, seed_sd, interaction_sd,
                                                                             noise_sd):
    """At one comparison's alpha and at Holm's worst case in an 8-row family: simulate studies, read the
    MDE each reports, make the truth their average and count the studies that see it."""
    rng = np.random.default_rng(7)
    for alpha in (0.05, 0.05 / 8):
        a, b = realistic(rng, STUDIES, seeds, seed_sd=seed_sd, interaction_sd=interaction_sd, noise_sd=noise_sd)
        mde = statistics.detectable(statistics.difference_test(a, b), alpha).mean()
        a, b = realistic(rng, STUDIES, seeds, difference=mde, seed_sd=seed_sd, interaction_sd=interaction_sd,
                         noise_sd=noise_sd)
        power = detected(a, b, alpha).mean()
        print(f"{seeds} vs {seeds} seeds, seed sd {seed_sd}, alpha {alpha:.4f}: MDE {mde:.4f}, power {power:.3f}")
        assert 0.70 <= power <= 0.90


def test_seeds_needed_is_the_fewest_seeds_whose_study_sees_the_target():
    """With the true variance components, the recommended seed count detects the target in about 80% of
    studies and one seed fewer does not reach it."""
    images, seed_sd, interaction_sd, noise_sd = 67, 0.015, 0.03, 0.03
    seed_mean = seed_sd**2 + noise_sd**2 / images  # variance of one seed's mean over the images
    truth = {"se": np.array(1.0), "df": np.array(1e6), "seed_a": np.array(seed_mean / 3),
             "seed_b": np.array(seed_mean / 3), "images": np.array(2 * interaction_sd**2 / images)}
    needed = int(statistics.seeds_needed(truth, 3, 3, images, 0.02, 0.05))
    assert needed > 3
    for n in (needed - 1, needed):
        se, df = statistics._projected(truth, 3, 3, images, n)
        mde = statistics.noncentrality(df, 0.05) * se
        assert (mde <= 0.02) == (n == needed)
    rng = np.random.default_rng(8)
    a, b = realistic(rng, 1000, needed, difference=0.02, seed_sd=seed_sd, interaction_sd=interaction_sd,
                     noise_sd=noise_sd)
    power = detected(a, b, 0.05).mean()
    print(f"{needed} seeds per model for 0.02 Dice: power {power:.3f}")
    assert 0.75 <= power <= 0.9
    # images, not seeds, limit a design whose image part alone exceeds the target
    wide = {**truth, "images": np.array(0.02**2)}
    assert np.isnan(statistics.seeds_needed(wide, 3, 3, images, 0.02, 0.05))
    assert np.isnan(statistics.seeds_needed({**truth, "seed_a": np.array(np.nan)}, 1, 3, images, 0.02, 0.05))


def test_holm_level_is_the_step_level_of_each_rank():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    assert statistics.holm_level(p)[:4] == pytest.approx([0.05 / 3, 0.05, 0.05 / 2, 0.05 / 4])
    assert np.isnan(statistics.holm_level(p)[4])


def per_image_frame(rng, families, seeds, difference=0.0, **settings):
    """A per_image.csv frame of `families` recipes (one Holm family each) of three models on the same 67
    test images: effunet-b0 better than resnet50-unet by `difference`, unet like resnet50-unet; a test loss
    that follows the Dice with its own noise."""
    frames = []
    for model, shift in (("effunet-b0", difference), ("resnet50-unet", 0.0), ("unet", 0.0)):
        a, _ = realistic(rng, families, seeds, **settings)
        values = a + shift if model == "effunet-b0" else a
        loss = 0.3 - 0.5 * values + rng.normal(0, 0.01, values.shape)
        index = np.indices(values.shape).reshape(3, -1)
        frames.append(pd.DataFrame({"recipe": [f"r{k}" for k in index[0]], "seed": index[1],
                                    "id": [f"i{k}" for k in index[2]], "model": model, "dice": values.ravel(),
                                    "loss": loss.ravel()}))
    wide = pd.concat(frames, ignore_index=True).assign(dataset="dsb2018", split="test", loss_function="bce")
    return pd.concat([wide.drop(columns="loss").assign(resolution="native"),
                      wide.drop(columns="dice").assign(resolution="training_size")], ignore_index=True)


@pytest.mark.parametrize("seeds", [3, 5])
def test_end_to_end_error_rate_and_power_through_paired_tests_holm_and_the_verdict(seeds):
    """Identical models: no family (4 rows: Dice and loss against two baselines) calls any row better or
    worse in more than 7% of studies. A true Dice gain of the average MDE that the Eff-UNet rows report is
    called `better` in 70-90%."""
    from effunet import compare

    families, rng = 400, np.random.default_rng(9)
    null = compare.paired_tests(per_image_frame(rng, families, seeds), target_difference=None)
    assert len(null) == 4 * families and set(null.family) == {f"architectures, r{k}" for k in range(families)}
    decided = null.verdict.str.endswith(("better", "worse"))
    familywise = decided.groupby(null.family).any().mean()
    print(f"{seeds} vs {seeds} seeds: any row of a family called different in {familywise:.3f}")
    assert familywise <= 0.07
    holm = null.groupby("family").p.transform(lambda p: statistics.holm(p.to_numpy()))
    assert null.p_holm.to_numpy() == pytest.approx(holm.to_numpy())  # Holm within each family

    gain = 0.05  # first the MDE the design reports when the gain is there (the row then ranks first)
    rows = lambda table: table[(table.quantity == "test dice") & (table.baseline == "resnet50-unet")]
    mde = rows(compare.paired_tests(per_image_frame(rng, families, seeds, gain), target_difference=None)).mde.mean()
    found = rows(compare.paired_tests(per_image_frame(rng, families, seeds, mde), target_difference=None))
    power = (found.verdict == "effunet-b0 better").mean()
    print(f"{seeds} vs {seeds} seeds: reported MDE {mde:.4f}, called better in {power:.3f}")
    assert 0.70 <= power <= 0.90
