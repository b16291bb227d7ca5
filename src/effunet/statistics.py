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
verdict, read from the corrected CI, can never contradict it.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

ALPHA = 0.05
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
