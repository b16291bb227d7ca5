"""Model comparisons over seeds and images: a crossed random-effects (mixed) model, Holm-corrected.

Each model m is trained with S_m seeds and scored on the same N test images, giving y[m, s, i]
(per-image Dice or loss). The model behind the test is

    y[m, s, i] = mu_m + a_i + b[m, i] + u[m, s] + e[m, s, i]

with an image effect a_i shared by the models (it cancels in the paired difference), a model x image
interaction b (some images suit one model), a seed effect u (the training run) and per-image noise e.
The estimate is D = mean(y[A]) - mean(y[B]); its variance, for new seeds and new images, is

    var(D) = s2_A / S_A + s2_B / S_B + max(var_i(d_i) - r2_A / S_A - r2_B / S_B, 0) / N

where s2_m is the variance of model m's seed means (u plus the noise of its N images), d_i the
seed-averaged difference on image i, and r2_m the seed x image residual mean square of model m (the
noise e; subtracted because s2_m already contains it). Each term is an unbiased method-of-moments
estimate; the statistic D / sqrt(var) is referred to Student's t with Welch-Satterthwaite degrees of
freedom (S_A - 1, S_B - 1, N - 1 for the three terms). With 3 seeds per model the seed terms dominate
and the degrees of freedom are about 4, not the thousands a per-image resampling implies: this is what
keeps the test calibrated (a percentile bootstrap over 3 seeds underestimates the seed variance by a
factor 2/3 and reads 3 runs as if they were many). With fewer than 2 seeds in a model the seed
variance cannot be estimated: the test is then conditional on the seeds (images only, N - 1 degrees
of freedom), and no verdict is given.

Holm's step-down correction runs across all comparisons of a table; each comparison's corrected CI
has level 1 - alpha * p / p_holm (Holm's step level alpha / (m - k + 1) where the step-down does not
stop earlier), so the corrected CI excludes 0 exactly when the corrected p is below alpha and the
verdict, read from the corrected CI, can never contradict it. A comparison whose seed variance cannot be
estimated (fewer than 2 seeds in a model) gives no verdict and is left out of the family.

What a comparison could have detected (`detectable`): the minimum detectable difference (MDE) at 80%
power and the row's Holm step level alpha / (m - k + 1) (k its rank in the family), from the measured
variance components: the true difference delta at which |T| > t(1 - alpha/2, df) with probability 0.8,
T noncentral t with df degrees of freedom and noncentrality delta / se, with se divided by c4(df) (the
mean of a standard error estimated on df degrees of freedom is c4(df) times the true one: 0.94 at 4
degrees of freedom). A simulated study with a true difference equal to the average reported MDE is
detected in 74-82% of studies over the variance settings of tests/test_statistics.py. `seeds_needed`
projects the same components to n seeds per model (the seed-mean variances over n, the image part
unchanged) and returns the smallest n (at least MIN_SEEDS) whose MDE is at most a target difference.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from scipy.special import gammaln

ALPHA = 0.05
POWER = 0.8
MOST_SEEDS = 1000  # seeds_needed looks no further: beyond it the images, not the seeds, limit the design
MIN_SEEDS = 3
NEEDS_SEEDS = f"needs >= {MIN_SEEDS} seeds"


def difference_test(a, b) -> dict[str, np.ndarray]:
    """Model A minus model B on paired images, over seeds; vectorised over leading axes.

    `a` has shape (..., S_A, N) and `b` (..., S_B, N): one row per seed, one column per image, the
    columns of `a` and `b` the same images. Returns arrays of shape (...): difference, se, df, p,
    and the components seed_a, seed_b, images of the variance.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape[-1] != b.shape[-1] or a.shape[:-2] != b.shape[:-2]:
        raise ValueError(f"unpaired shapes {a.shape} and {b.shape}")
    (seeds_a, images), seeds_b = a.shape[-2:], b.shape[-2]
    difference = a.mean(axis=(-2, -1)) - b.mean(axis=(-2, -1))
    per_image = a.mean(axis=-2) - b.mean(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        image_var = per_image.var(axis=-1, ddof=1) if images > 1 else np.full(difference.shape, np.nan)
        if seeds_a >= 2 and seeds_b >= 2:
            seed_a = a.mean(axis=-1).var(axis=-1, ddof=1) / seeds_a
            seed_b = b.mean(axis=-1).var(axis=-1, ddof=1) / seeds_b
            noise = _residual(a) / seeds_a + _residual(b) / seeds_b
            image_part = np.maximum(image_var - np.nan_to_num(noise), 0.0) / images
            variance = seed_a + seed_b + np.nan_to_num(image_part)
            df = variance**2 / (seed_a**2 / (seeds_a - 1) + seed_b**2 / (seeds_b - 1)
                                + (image_part**2 / (images - 1) if images > 1 else 0.0))
        else:  # conditional on the seeds: images only
            seed_a = seed_b = np.full(difference.shape, np.nan)
            image_part = variance = image_var / images
            df = np.full(difference.shape, images - 1.0)
        se = np.sqrt(variance)
        p = 2 * stats.t.sf(np.abs(difference) / se, df)
    p = np.where(se == 0, np.where(difference == 0, 1.0, 0.0), p)
    return {"difference": difference, "se": se, "df": df, "p": p, "seed_a": seed_a, "seed_b": seed_b,
            "images": image_part}


def _residual(y: np.ndarray) -> np.ndarray:
    """Seed x image residual mean square of one model (the per-image noise variance)."""
    seeds, images = y.shape[-2:]
    if images < 2:
        return np.zeros(y.shape[:-2])
    residual = (y - y.mean(axis=-1, keepdims=True) - y.mean(axis=-2, keepdims=True)
                + y.mean(axis=(-2, -1), keepdims=True))
    return (residual**2).sum(axis=(-2, -1)) / ((seeds - 1) * (images - 1))


def holm(p) -> np.ndarray:
    """Holm-adjusted p-values over the last axis; NaN stays NaN and does not count as a comparison."""
    p = np.asarray(p, dtype=float)
    finite = np.isfinite(p)
    m = finite.sum(axis=-1, keepdims=True)
    order = np.argsort(np.where(finite, p, np.inf), axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=-1)
    steps = m - np.arange(p.shape[-1])  # m, m-1, ... for the 1st, 2nd, ... smallest
    adjusted = np.minimum(np.maximum.accumulate(np.nan_to_num(ranked * steps, nan=np.inf), axis=-1), 1.0)
    result = np.empty_like(p)
    np.put_along_axis(result, order, adjusted, axis=-1)
    return np.where(finite, result, np.nan)


def interval(difference, se, df, alpha) -> tuple[np.ndarray, np.ndarray]:
    """The two-sided t interval at level 1 - alpha (alpha may vary per comparison)."""
    with np.errstate(invalid="ignore"):
        half = stats.t.ppf(1 - np.asarray(alpha) / 2, df) * se
    half = np.where(np.asarray(se) == 0, 0.0, half)
    return difference - half, difference + half


def corrected(test: dict[str, np.ndarray], alpha: float = ALPHA) -> dict[str, np.ndarray]:
    """Holm-corrected p-values and CIs for comparisons along the last axis of a `difference_test`."""
    p_holm = holm(test["p"])
    with np.errstate(invalid="ignore", divide="ignore"):
        level = np.where(p_holm > 0, alpha * test["p"] / p_holm, alpha)
    low, high = interval(test["difference"], test["se"], test["df"], level)
    raw_low, raw_high = interval(test["difference"], test["se"], test["df"], alpha)
    return {"p_holm": p_holm, "ci_alpha": level, "ci_low": low, "ci_high": high,
            "ci95_low": raw_low, "ci95_high": raw_high}


def verdict(low: float, high: float, seeds_a: int, seeds_b: int, a: str, b: str,
            higher_is_better: bool = True) -> str:
    """A word only with enough seeds, read from the corrected CI."""
    if min(seeds_a, seeds_b) < MIN_SEEDS:
        return NEEDS_SEEDS
    if not (np.isfinite(low) and np.isfinite(high)) or low <= 0 <= high:
        return "no evidence of a difference"
    a_higher = low > 0
    return f"{a} better" if a_higher == higher_is_better else f"{a} worse"


def welch(a, b) -> dict[str, float]:
    """Difference of means of two samples of seed-level values, Welch's t (the claims table)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    test = difference_test(a[:, None], b[:, None]) if min(len(a), len(b)) >= 2 else None
    difference = a.mean() - b.mean()
    if test is None:
        return {"difference": difference, "ci95_low": np.nan, "ci95_high": np.nan, "p": np.nan}
    low, high = interval(test["difference"], test["se"], test["df"], ALPHA)
    return {"difference": float(difference), "ci95_low": float(low), "ci95_high": float(high),
            "p": float(test["p"])}


def holm_level(p, alpha: float = ALPHA) -> np.ndarray:
    """Holm's step level of each comparison along the last axis: alpha / (m - k + 1) for the k-th smallest
    of m finite p-values; NaN where p is NaN (not a comparison)."""
    p = np.asarray(p, dtype=float)
    finite = np.isfinite(p)
    m = finite.sum(axis=-1, keepdims=True)
    rank = np.argsort(np.argsort(np.where(finite, p, np.inf), axis=-1, kind="stable"), axis=-1, kind="stable")
    return np.where(finite, alpha / np.maximum(m - rank, 1), np.nan)


def _c4(df) -> np.ndarray:
    """Mean of a standard error estimated on df degrees of freedom, over the true one."""
    df = np.asarray(df, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(2 / df) * np.exp(gammaln((df + 1) / 2) - gammaln(df / 2))


def noncentrality(df, alpha, power: float = POWER, steps: int = 40) -> np.ndarray:
    """The noncentrality at which a two-sided t test on df degrees of freedom at level alpha rejects with
    probability `power` (bisection on the noncentral t)."""
    df, alpha = np.broadcast_arrays(np.asarray(df, dtype=float), np.asarray(alpha, dtype=float))
    valid = np.isfinite(df) & np.isfinite(alpha) & (df > 0)
    df, alpha = np.where(valid, df, 1.0), np.where(valid, alpha, ALPHA)
    critical = stats.t.ppf(1 - alpha / 2, df)
    low, high = np.zeros(df.shape), np.full(df.shape, 1e3)
    for _ in range(steps):
        middle = (low + high) / 2
        with np.errstate(invalid="ignore"):  # the lower tail is NaN, not 0, far from 0
            lower = np.nan_to_num(stats.nct.cdf(-critical, df, middle))
        reached = np.nan_to_num(stats.nct.sf(critical, df, middle), nan=1.0) + lower >= power
        low, high = np.where(reached, low, middle), np.where(reached, middle, high)
    return np.where(valid, (low + high) / 2, np.nan)


def detectable(test: dict[str, np.ndarray], alpha, power: float = POWER) -> np.ndarray:
    """The minimum detectable difference of `difference_test` results at level alpha (see the module
    docstring); NaN where the seed variance is not estimable (the images-only test says nothing about
    new seeds), 0 where the standard error is 0."""
    se, df = np.asarray(test["se"], dtype=float), np.asarray(test["df"], dtype=float)
    with np.errstate(invalid="ignore"):
        mde = noncentrality(df, alpha, power) * se / _c4(df)
    mde = np.where(se == 0, 0.0, mde)
    return np.where(np.isfinite(np.asarray(test["seed_a"], dtype=float)), mde, np.nan)


def _projected(test, seeds_a, seeds_b, images, n):
    """Standard error and Welch-Satterthwaite degrees of freedom with n seeds per model."""
    seed_a = np.asarray(test["seed_a"], dtype=float) * seeds_a / n
    seed_b = np.asarray(test["seed_b"], dtype=float) * seeds_b / n
    image_part = np.nan_to_num(np.asarray(test["images"], dtype=float))
    variance = seed_a + seed_b + image_part
    with np.errstate(invalid="ignore", divide="ignore"):
        image_df = np.where(image_part > 0, image_part**2 / max(images - 1, 1), 0.0)
        df = variance**2 / ((seed_a**2 + seed_b**2) / (n - 1) + image_df)
    return np.sqrt(variance), df


def seeds_needed(test: dict[str, np.ndarray], seeds_a, seeds_b, images: int, target: float, alpha,
                 power: float = POWER) -> np.ndarray:
    """The fewest seeds per model (at least MIN_SEEDS) at which the MDE is at most `target`, the measured
    variance components taken as the truth (the standard error corrected by c4 of the measured degrees
    of freedom, as in `detectable`); NaN where the seed variance is not estimable or even MOST_SEEDS
    seeds would not do (the image part alone is too large: more images, not seeds)."""
    correction = _c4(np.asarray(test["df"], dtype=float))

    def mde(n):
        se, df = _projected(test, seeds_a, seeds_b, images, n)
        with np.errstate(invalid="ignore"):
            return np.where(se == 0, 0.0, noncentrality(df, alpha, power) * se / correction)

    shape = np.broadcast(np.asarray(test["se"]), np.asarray(alpha)).shape
    low, high = np.full(shape, MIN_SEEDS - 1), np.full(shape, MOST_SEEDS)
    reachable = mde(high) <= target
    for _ in range(int(np.ceil(np.log2(MOST_SEEDS))) + 1):  # bisection: mde(low) > target >= mde(high)
        middle = (low + high) // 2
        enough = mde(np.maximum(middle, MIN_SEEDS)) <= target
        low, high = np.where(enough | (middle == low), low, middle), np.where(enough & (middle > low), middle, high)
    found = np.where(reachable, high, np.nan)
    return np.where(np.isfinite(np.asarray(test["seed_a"], dtype=float)), found, np.nan)
