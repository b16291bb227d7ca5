"""The paired tests (`effunet.statistics`: seeds and images): Eff-UNet vs each baseline per data set and
recipe, on per-image test Dice and test loss, and, for every model run under a recipe besides `study`,
that recipe minus `study` on the same quantities. Holm's correction runs within a family: the architecture
rows of one recipe form one family (so a recipe's verdicts do not depend on which other recipes were run),
the recipe-vs-study rows another."""

from __future__ import annotations

import numpy as np
import pandas as pd

from effunet import statistics
from effunet.run import STUDY_RECIPE

BASELINES = ("resnet50-unet", "unet")
# quantity: (resolution, column of per_image.csv, higher is better)
QUANTITIES = {"dice": ("native", "dice", True), "loss": ("training_size", "loss", False)}
RECIPE_FAMILY = f"recipe vs {STUDY_RECIPE}"
TARGET_DIFFERENCE = 0.02  # config key compare.target_difference: the Dice difference a design is asked to see
IMAGES_ONLY = "images only (seed variance not estimable; p and CI conditional on these seeds, not in the Holm family)"


def loss_functions(per_image: pd.DataFrame) -> dict[tuple[str, str], set[str]]:
    """(model, recipe) -> the loss functions of its runs."""
    return {key: set(group) for key, group in per_image.groupby(["model", "recipe"], sort=False)["loss_function"]}


def matrices(values: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """(recipe, model) -> seed x image id values (one pivot for every model and recipe)."""
    wide = values.pivot_table(index=["recipe", "model", "seed"], columns="id", values="value", aggfunc="mean")
    return {key: frame.droplevel([0, 1]) for key, frame in wide.groupby(level=[0, 1], sort=False)}


def paired_arrays(a: pd.DataFrame | None, b: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray] | None:
    """The seed x image arrays of two sides on the images every run of both scored."""
    if a is None or b is None or a.empty or b.empty:
        return None
    ids = sorted(set(a.dropna(axis=1).columns) & set(b.dropna(axis=1).columns))
    return (a[ids].to_numpy(), b[ids].to_numpy()) if ids else None


def architecture_family(recipe: str) -> str:
    """The Holm family of the Eff-UNet-vs-baseline rows of one recipe."""
    return f"architectures, {recipe}"


def _pairs(models_by_recipe: dict[str, list[str]]):
    """(family, recipe, model, baseline recipe, baseline) of every comparison: Eff-UNet vs each baseline
    within each recipe, then each model of a non-study recipe vs the same model under `study`."""
    for recipe, models in models_by_recipe.items():
        for model in (m for m in models if m.startswith("effunet")):
            for baseline in (b for b in BASELINES if b in models):
                yield architecture_family(recipe), recipe, model, recipe, baseline
    study = models_by_recipe.get(STUDY_RECIPE, [])
    for recipe, models in models_by_recipe.items():
        if recipe != STUDY_RECIPE:
            for model in (m for m in models if m in study):
                yield RECIPE_FAMILY, recipe, model, STUDY_RECIPE, model


def family_tests(
    tests: dict[str, np.ndarray], families, seeds_a, seeds_b, images, dice, target_difference=TARGET_DIFFERENCE
) -> dict[str, np.ndarray]:
    """Holm within each family, the MDE at each row's Holm step level and, for the rows where `dice` is
    true, the seeds per model that would see `target_difference` (None: none): one entry per comparison.
    Comparisons whose seed variance is not estimable are left out of their family (no verdict, no MDE)."""
    families = np.asarray(families, dtype=object)
    estimable = np.isfinite(tests["seed_a"]) & np.isfinite(tests["seed_b"])
    p_family = np.where(estimable, tests["p"], np.nan)
    keys = ("p_holm", "ci_low", "ci_high", "ci_alpha", "ci95_low", "ci95_high", "alpha_holm")
    out = {key: np.full(len(families), np.nan) for key in keys}
    for family in dict.fromkeys(families):
        members = families == family
        corrected = statistics.corrected({**{k: v[members] for k, v in tests.items()}, "p": p_family[members]})
        corrected["alpha_holm"] = statistics.holm_level(p_family[members])
        for key in keys:
            out[key][members] = corrected[key]
    out["mde"] = statistics.detectable(tests, out["alpha_holm"])
    out["seeds_for_target"] = np.full(len(families), np.nan)
    seeds_a, seeds_b, images = np.asarray(seeds_a), np.asarray(seeds_b), np.asarray(images)
    dice = np.asarray(dice, dtype=bool) & estimable
    if target_difference is not None and dice.any():
        for count in dict.fromkeys(zip(seeds_a[dice], seeds_b[dice], images[dice])):
            rows = dice & (seeds_a == count[0]) & (seeds_b == count[1]) & (images == count[2])
            out["seeds_for_target"][rows] = statistics.seeds_needed(
                {k: v[rows] for k, v in tests.items()}, *count, target_difference, out["alpha_holm"][rows]
            )
    return out


def paired_tests(per_image: pd.DataFrame, target_difference: float | None = TARGET_DIFFERENCE) -> pd.DataFrame:
    """Per-image test Dice and test loss, seeds and images (`effunet.statistics.difference_test`): Eff-UNet
    vs each baseline within each recipe, and each model's recipe vs `study`; Holm within each family; the
    MDE of every row (`mde`, at 80% power and the row's Holm step level `alpha_holm`) and, on Dice rows,
    the seeds per model that would see `target_difference` (`seeds_for_target`)."""
    test = per_image[per_image["split"] == "test"]
    if "recipe" not in test:
        test = test.assign(recipe=STUDY_RECIPE)
    rows, a_list, b_list = [], [], []
    for dataset in dict.fromkeys(test["dataset"]):
        here = test[test["dataset"] == dataset]
        models_by_recipe = {
            recipe: list(dict.fromkeys(group)) for recipe, group in here.groupby("recipe", sort=False)["model"]
        }
        functions = loss_functions(here)
        for quantity, (resolution, column, higher) in QUANTITIES.items():
            if column not in here.columns:
                continue
            values = here.loc[here["resolution"] == resolution, ["recipe", "model", "seed", "id", column]].dropna()
            by_side = matrices(values.rename(columns={column: "value"}))
            for family, recipe, model, baseline_recipe, baseline in _pairs(models_by_recipe):
                if quantity == "loss" and functions.get((model, recipe)) != functions.get((baseline, baseline_recipe)):
                    continue  # values of different functions (e.g. BCE vs BCE + Dice): no comparison
                pair = paired_arrays(by_side.get((recipe, model)), by_side.get((baseline_recipe, baseline)))
                if pair is None:
                    continue
                a_list.append(pair[0])
                b_list.append(pair[1])
                rows.append(
                    {"family": family, "dataset": dataset, "quantity": f"test {quantity}", "recipe": recipe,
                     "model": model, "baseline_recipe": baseline_recipe, "baseline": baseline,
                     "seeds_model": len(pair[0]), "seeds_baseline": len(pair[1]), "images": pair[0].shape[1],
                     "mean_model": pair[0].mean(), "mean_baseline": pair[1].mean(), "_higher": higher}
                )  # fmt: skip
    if not rows:
        columns = ["family", "dataset", "quantity", "recipe", "model", "baseline_recipe", "baseline", "verdict"]
        return pd.DataFrame(columns=columns)
    tests = [statistics.difference_test(a, b) for a, b in zip(a_list, b_list)]
    joined = {key: np.array([float(t[key]) for t in tests]) for key in tests[0]}
    table = pd.DataFrame(rows)
    table["difference"] = joined["difference"]
    table["se"], table["df"], table["p"] = joined["se"], joined["df"], joined["p"]
    dice = table["quantity"] == "test dice"
    results = family_tests(
        joined, table["family"], table["seeds_model"], table["seeds_baseline"], table["images"], dice, target_difference
    )
    for key in ("p_holm", "ci_low", "ci_high", "ci_alpha", "ci95_low", "ci95_high", "alpha_holm", "mde"):
        table[key] = results[key]
    table["seeds_for_target"] = results["seeds_for_target"]
    table["target_difference"] = np.where(dice, target_difference, np.nan)
    table["method"] = [
        "seeds and images" if min(r["seeds_model"], r["seeds_baseline"]) >= 2 else IMAGES_ONLY for r in rows
    ]
    table["verdict"] = [
        statistics.verdict(lo, hi, r["seeds_model"], r["seeds_baseline"], *_names(r), r["_higher"])
        for lo, hi, r in zip(table["ci_low"], table["ci_high"], rows)
    ]
    return table.drop(columns="_higher")


def _names(row: dict) -> tuple[str, str]:
    """How a verdict names the two sides: models within a recipe, model/recipe across recipes."""
    if row["recipe"] == row["baseline_recipe"]:
        return row["model"], row["baseline"]
    return f"{row['model']}/{row['recipe']}", f"{row['baseline']}/{row['baseline_recipe']}"
