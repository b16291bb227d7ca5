"""The comparison: one row per data set x recipe x model (mean +- std over seeds), reference rows, statistics,
claims and the quality-vs-cost table.

Headline weighting: a data set's headline quality columns (`dice`, `iou`, ...) are per-image means (each
image counts once, as in training and in the paired test) or pooled over its scored pixels, as its format
says (`effunet.data.formats`: DRIVE pooled inside the field of view, the literature's convention; others
per image unless `datasets.<name>.headline` says pooled). Both variants are kept under their own names
(`<metric>_pooled`, `<metric>_image_mean`). `instance_ap` is the DSB2018 competition score (per-image
mean) without and with watershed splitting of touching nuclei, where a data set has instance labels;
`test_loss` the training loss on the test split at the training size. Reference rows: the `protocol
ceiling` (the ground truth through the resize-down-and-back protocol, scored like a model) and a second
observer (DRIVE's `2nd observer`) where the data set has one. The study's claims are checked on the
data sets of the study's formats (`dsb2018`: the nuclei claims, `drive`: the vessel claims).

The paired comparisons use `effunet.statistics` (seeds and images): Eff-UNet vs each baseline per data
set and recipe, on per-image test Dice and test loss, and, for every model run under a recipe besides
`study`, that recipe minus `study` on the same quantities. Holm's correction runs within a family: the
architecture rows of one recipe form one family (so a recipe's verdicts do not depend on which other
recipes were run), the recipe-vs-study rows another. The study's claims are checked on the `study`
recipe only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from effunet import statistics
from effunet.errors import EffunetError
from effunet.files import atomic_path, write_text_atomic
from effunet.layout import STUDY_RECIPE, RunId

QUALITY = ("dice", "iou", "accuracy", "sensitivity", "specificity", "precision", "mcc", "roc_auc", "pr_auc")
TRAINING = ("epochs_trained", "best_epoch", "wall_seconds", "first_epoch_seconds", "seconds_per_epoch",
            "seconds_to_best", "train_images_per_s", "parameters", "flops")
BASELINES = ("resnet50-unet", "unet")
DEFAULT_HEADLINE = "per_image_mean"  # a data set's format may say "pooled" (effunet.data.formats)
HEADLINE_WORDS = {"pooled": "pooled over scored pixels", "per_image_mean": "per-image mean"}
CEILING, OBSERVER = "protocol ceiling", "2nd observer"
QUANTITIES = {"dice": ("native", "dice", True), "loss": ("training_size", "loss", False)}  # resolution, column, higher is better


def _quality(summary: dict, weighting: str = DEFAULT_HEADLINE, prefix: str = "") -> dict:
    """Headline (weighted as `weighting` says), pooled and per-image-mean columns of one evaluation summary."""
    pooled, mean = summary.get("pooled", {}), summary.get("per_image_mean", {})
    chosen = pooled if weighting == "pooled" else mean
    row = {}
    for name in QUALITY:
        row[f"{prefix}{name}"] = chosen.get(name)
        row[f"{prefix}{name}_pooled"] = pooled.get(name)
        row[f"{prefix}{name}_image_mean"] = mean.get(name)
    for name in ("instance_ap", "instance_ap_split", "instance_ap_watershed"):  # watershed: train.instances
        if name in mean:
            row[f"{prefix}{name}"] = mean[name]
    return row


@dataclass(frozen=True)
class RunResult:
    """One run's identity and the files aggregation reads (paths given by the caller)."""

    id: RunId
    run: Path  # run.json
    metrics: Path  # eval/metrics.json
    per_image: Path  # eval/per_image.csv


def run_record(result_files: RunResult, weighting: str = DEFAULT_HEADLINE) -> dict:
    """One training run's figures: its run.json and eval/metrics.json flattened into one row, the headline
    columns weighted as `weighting` (the data set's: "per_image_mean" or "pooled") says."""
    try:
        run = json.loads(Path(result_files.run).read_text())
        result = json.loads(Path(result_files.metrics).read_text())
    except (OSError, ValueError) as error:
        raise EffunetError(f"cannot read the results of {result_files.id}: {error}") from error
    splits = result["splits"]
    identity = result_files.id
    dataset = identity.dataset
    record = {"dataset": dataset, "model": identity.model, "recipe": identity.recipe, "seed": int(identity.seed),
              "kind": "model",
              **{k: run.get(k) for k in TRAINING},
              "inference_images_per_s": result["inference_images_per_s"],
              "threshold": result["threshold"]["value"]}
    record.update(_quality(splits["test"]["native"], weighting))
    record["loss_function"] = loss_function(run)
    # stopped by max_epochs (or a run.json without stop_reason): its best epoch is a lower bound
    record["censored"] = float(run.get("stop_reason") != "early_stopping")
    for split in ("train", "val", "test"):
        record[f"{split}_loss"] = result.get("loss", {}).get(split)
    for split in ("train", "val"):
        record[f"{split}_dice"] = _quality(splits[split]["native"], weighting)["dice"]
    return record


def loss_function(run: dict) -> str:
    """The function a run's losses are values of: `train.loss`, summed over the foreground and boundary
    channels with `instances: boundary` (test losses of different functions are not compared)."""
    name = run.get("loss") or run.get("settings", {}).get("loss", "bce")
    instances = run.get("instances") or run.get("settings", {}).get("instances", "none")
    return name if instances in (None, "none") else f"{name} per channel ({instances})"


def reference_records(path: str | os.PathLike, weightings: dict[str, str] | None = None) -> list[dict]:
    """The reference rows of one data set from its reference.json (see `effunet.reference`), weighted
    as `weightings[dataset]` says (per-image mean by default)."""
    path = Path(path)
    try:
        reference = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise EffunetError(f"cannot read the reference scores in {path}: {error}") from error
    dataset, rows = reference["dataset"], []
    for name, key in ((CEILING, "protocol_ceiling"), (OBSERVER, "second_observer")):
        if reference.get(key):
            rows.append({"dataset": dataset, "model": name, "recipe": "", "seed": 0, "kind": "reference",
                         **_quality(reference[key], (weightings or {}).get(dataset, DEFAULT_HEADLINE))})
    return rows


IDENTITY = ("dataset", "model", "recipe", "seed", "kind")


def comparison_table(records: list[dict], references: list[dict] = (),
                     weightings: dict[str, str] | None = None) -> pd.DataFrame:
    """Mean and std over seeds of every figure, one row per data set x recipe x model (recipes in the
    order of the records), then the data set's reference rows (recipe empty: no training); `weightings`
    names each data set's headline weighting (the records' headline columns were made with it)."""
    if not records:
        raise EffunetError("no training runs to compare")
    frame = pd.DataFrame([*records, *references])
    datasets = list(dict.fromkeys(frame["dataset"]))
    frame["_dataset"], frame["_reference"] = frame["dataset"].map(datasets.index), frame["kind"] == "reference"
    frame = frame.sort_values(["_dataset", "_reference"], kind="stable").drop(columns=["_dataset", "_reference"])
    frame["recipe"] = frame["recipe"].fillna("") if "recipe" in frame else STUDY_RECIPE
    figures = [c for c in frame.columns if c not in IDENTITY]
    frame[figures] = frame[figures].apply(pd.to_numeric, errors="coerce")
    grouped = frame.groupby(["dataset", "model", "recipe", "kind"], sort=False)
    table = grouped[figures].agg(["mean", "std"])
    table.columns = [f"{name}_{stat}" for name, stat in table.columns]
    table.insert(0, "seeds", grouped["seed"].count())
    table = table.reset_index()
    table.loc[table["kind"] == "reference", "seeds"] = 0
    table.insert(4, "headline", [HEADLINE_WORDS[(weightings or {}).get(d, DEFAULT_HEADLINE)] for d in table["dataset"]])
    return table


def _loss_functions(per_image: pd.DataFrame) -> dict[tuple[str, str], set[str]]:
    """(model, recipe) -> the loss functions of its runs."""
    return {key: set(group) for key, group in per_image.groupby(["model", "recipe"], sort=False)["loss_function"]}


def _matrices(values: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """(recipe, model) -> seed x image id values (one pivot for every model and recipe)."""
    wide = values.pivot_table(index=["recipe", "model", "seed"], columns="id", values="value", aggfunc="mean")
    return {key: frame.droplevel([0, 1]) for key, frame in wide.groupby(level=[0, 1], sort=False)}


def _paired(a: pd.DataFrame | None, b: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray] | None:
    """The seed x image arrays of two sides on the images every run of both scored."""
    if a is None or b is None or a.empty or b.empty:
        return None
    ids = sorted(set(a.dropna(axis=1).columns) & set(b.dropna(axis=1).columns))
    return (a[ids].to_numpy(), b[ids].to_numpy()) if ids else None


RECIPE_FAMILY = f"recipe vs {STUDY_RECIPE}"
TARGET_DIFFERENCE = 0.02  # config key compare.target_difference: the Dice difference a design is asked to see


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


IMAGES_ONLY = "images only (seed variance not estimable; p and CI conditional on these seeds, not in the Holm family)"


def family_tests(tests: dict[str, np.ndarray], families, seeds_a, seeds_b, images, dice,
                 target_difference: float | None = TARGET_DIFFERENCE) -> dict[str, np.ndarray]:
    """Holm within each family, the MDE at each row's Holm step level and, for the rows where `dice` is
    true, the seeds per model that would see `target_difference`: one entry per comparison. Comparisons
    whose seed variance is not estimable are left out of their family (no verdict, no MDE)."""
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
    dice = np.asarray(dice, dtype=bool) & estimable
    if target_difference is not None and dice.any():
        for count in dict.fromkeys(zip(np.asarray(seeds_a)[dice], np.asarray(seeds_b)[dice], np.asarray(images)[dice])):
            rows = dice & (np.asarray(seeds_a) == count[0]) & (np.asarray(seeds_b) == count[1]) & (
                np.asarray(images) == count[2])
            out["seeds_for_target"][rows] = statistics.seeds_needed(
                {k: v[rows] for k, v in tests.items()}, count[0], count[1], count[2], target_difference,
                out["alpha_holm"][rows])
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
        models_by_recipe = {recipe: list(dict.fromkeys(group)) for recipe, group in
                            here.groupby("recipe", sort=False)["model"]}
        functions = _loss_functions(here)
        for quantity, (resolution, column, higher) in QUANTITIES.items():
            if column not in here.columns:
                continue
            values = here.loc[here["resolution"] == resolution, ["recipe", "model", "seed", "id", column]].dropna()
            matrices = _matrices(values.rename(columns={column: "value"}))
            for family, recipe, model, baseline_recipe, baseline in _pairs(models_by_recipe):
                if quantity == "loss" and functions.get((model, recipe)) != functions.get((baseline, baseline_recipe)):
                    continue  # values of different functions (e.g. BCE vs BCE + Dice): no comparison
                pair = _paired(matrices.get((recipe, model)), matrices.get((baseline_recipe, baseline)))
                if pair is None:
                    continue
                a_list.append(pair[0])
                b_list.append(pair[1])
                rows.append({"family": family, "dataset": dataset, "quantity": f"test {quantity}",
                             "recipe": recipe, "model": model, "baseline_recipe": baseline_recipe,
                             "baseline": baseline, "seeds_model": len(pair[0]), "seeds_baseline": len(pair[1]),
                             "images": pair[0].shape[1], "mean_model": pair[0].mean(),
                             "mean_baseline": pair[1].mean(), "_higher": higher})
    if not rows:
        return pd.DataFrame(columns=["family", "dataset", "quantity", "recipe", "model", "baseline_recipe",
                                     "baseline", "verdict"])
    tests = [statistics.difference_test(a, b) for a, b in zip(a_list, b_list)]
    joined = {key: np.array([float(t[key]) for t in tests]) for key in tests[0]}
    table = pd.DataFrame(rows)
    table["difference"] = joined["difference"]
    table["se"], table["df"], table["p"] = joined["se"], joined["df"], joined["p"]
    results = family_tests(joined, table["family"], table["seeds_model"], table["seeds_baseline"], table["images"],
                           table["quantity"] == "test dice", target_difference)
    for key in ("p_holm", "ci_low", "ci_high", "ci_alpha", "ci95_low", "ci95_high", "alpha_holm", "mde"):
        table[key] = results[key]
    table["seeds_for_target"] = results["seeds_for_target"]
    table["target_difference"] = np.where(table["quantity"] == "test dice", target_difference, np.nan)
    table["method"] = ["seeds and images" if min(r["seeds_model"], r["seeds_baseline"]) >= 2 else IMAGES_ONLY
                       for r in rows]
    table["verdict"] = [statistics.verdict(lo, hi, r["seeds_model"], r["seeds_baseline"], *_names(r),
                                           r["_higher"])
                        for lo, hi, r in zip(table["ci_low"], table["ci_high"], rows)]
    return table.drop(columns="_higher")


def _names(row: dict) -> tuple[str, str]:
    """How a verdict names the two sides: models within a recipe, model/recipe across recipes."""
    if row["recipe"] == row["baseline_recipe"]:
        return row["model"], row["baseline"]
    return f"{row['model']}/{row['recipe']}", f"{row['baseline']}/{row['baseline_recipe']}"


# ------------------------------------------------------------------------------------ claims

STUDY_NOTE = ("The study stopped training early on the test loss; this workflow stops on the validation "
              "loss and never looks at the test split before evaluation.")


def _seed_values(records: pd.DataFrame, dataset: str, model: str, column: str) -> np.ndarray:
    rows = records[(records["dataset"] == dataset) & (records["model"] == model)]
    return pd.to_numeric(rows[column], errors="coerce").dropna().to_numpy() if column in rows else np.array([])


def _signed(value: float, decimals: int) -> str:
    return f"{value + 0.0:+.{decimals}f}".replace("-0." + "0" * decimals, "+0." + "0" * decimals)


@dataclass
class Claim:
    """One finding of the study and what is measured for it: model minus baseline, `expect` "higher",
    "lower" or "same" (within +-margin)."""

    dataset: str
    finding: str
    study: str
    expect: str
    unit: str
    decimals: int
    a: np.ndarray | None = None  # seeds x images (or seeds x 1: seed-level values) of the model
    b: np.ndarray | None = None  # of the baseline, the same images
    margin: float | None = None
    censored: tuple[int, int] | None = None  # (runs stopped by max_epochs, runs): best-epoch rows
    note: str = ""

    @property
    def measured(self) -> str:
        if self.a is None:
            return "not run" if not self.note else self.note
        d = 0 if self.unit == "epochs" else self.decimals  # epochs as whole numbers, like the study's "36 vs 69"
        text = f"{self.a.mean():.{d}f} vs {self.b.mean():.{d}f}"
        if self.censored is not None:
            text += f" ({self.censored[0]} of {self.censored[1]} runs censored)"
        return text

    @property
    def blocked(self) -> str | None:
        """Why the row has no verdict whatever its CI: None, "not run" or "censored"."""
        if self.a is None:
            return "not run"
        return "censored" if self.censored is not None and self.censored[0] else None


def _test_matrices(per_image: pd.DataFrame, dataset: str, resolution: str, column: str, model: str,
                   baseline: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Seed x image values of two models of the study recipe on the test images both scored."""
    if per_image is None or column not in per_image:
        return None
    rows = per_image[(per_image["dataset"] == dataset) & (per_image["split"] == "test")
                     & (per_image["resolution"] == resolution) & (per_image["recipe"] == STUDY_RECIPE)]
    values = rows[["recipe", "model", "seed", "id", column]].dropna().rename(columns={column: "value"})
    if values.empty:
        return None
    matrices = _matrices(values)
    return _paired(matrices.get((STUDY_RECIPE, model)), matrices.get((STUDY_RECIPE, baseline)))


def _seed_level(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    return (a[:, None], b[:, None]) if len(a) and len(b) else None


def _verdict(claim: Claim, low: float, high: float) -> str:
    if claim.blocked:
        return "inconclusive" if claim.blocked == "not run" else "censored"
    if min(len(claim.a), len(claim.b)) < statistics.MIN_SEEDS or not (np.isfinite(low) and np.isfinite(high)):
        return "inconclusive"
    if claim.expect == "same":
        if -claim.margin <= low and high <= claim.margin:
            return "agrees"
        return "disagrees" if low > claim.margin or high < -claim.margin else "inconclusive"
    lower, higher = high < 0, low > 0
    if lower or higher:
        return "agrees" if (lower if claim.expect == "lower" else higher) else "disagrees"
    return "inconclusive"


STUDY_FORMATS = ("dsb2018", "drive")  # the study's data: its nuclei claims, its vessel claims


def claims_table(records: list[dict], per_image: pd.DataFrame | None,
                 target_difference: float = TARGET_DIFFERENCE,
                 study_datasets: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """One row per finding of the study, with the value measured here and whether it agrees: the runs of
    the `study` recipe only (the study's claims are about its recipe), on the data sets of the study's
    formats. `study_datasets` maps the format (`dsb2018`: nuclei claims, `drive`: vessel claims) to the
    config's data sets of that format (`effunet.data.formats`); by default the data sets named so.

    Per-image rows (test pixel accuracy, Dice and loss; nuclei missed per image and the AP gain from
    splitting) are paired over images and seeds, seed-level rows (best epochs, the train - test Dice gap)
    compare seed values, all with `effunet.statistics.difference_test`; every row with an estimable seed
    variance is one Holm family, each CI at its Holm level and each MDE at its Holm step level. Best-epoch
    rows say `censored` unless every run stopped early (patience, not max_epochs)."""
    frame = pd.DataFrame(records)
    frame = frame[frame["recipe"] == STUDY_RECIPE] if "recipe" in frame else frame
    effs = [m for m in dict.fromkeys(frame["model"]) if m.startswith("effunet")]
    eff, base = (effs[0] if effs else "effunet-b0"), "resnet50-unet"
    if per_image is not None and "recipe" not in per_image:
        per_image = per_image.assign(recipe=STUDY_RECIPE)

    def seeds(dataset, column, model):
        return _seed_values(frame, dataset, model, column)

    def paired(dataset, resolution, column):
        return _test_matrices(per_image, dataset, resolution, column, eff, base)

    def epochs(dataset):
        pair = _seed_level(seeds(dataset, "best_epoch", eff), seeds(dataset, "best_epoch", base))
        runs = frame[(frame["dataset"] == dataset) & frame["model"].isin([eff, base])]
        censored = pd.to_numeric(runs["censored"], errors="coerce").fillna(1) if "censored" in runs else None
        count = (int((censored != 0).sum()), len(runs)) if censored is not None else (len(runs), len(runs))
        return pair, count

    def losses(dataset):
        if per_image is None or "loss_function" not in per_image:
            return paired(dataset, "training_size", "loss"), ""
        mine = per_image[(per_image["dataset"] == dataset) & (per_image["recipe"] == STUDY_RECIPE)]
        functions = _loss_functions(mine)
        if functions.get((eff, STUDY_RECIPE)) != functions.get((base, STUDY_RECIPE)):
            return None, "different loss functions"
        return paired(dataset, "training_size", "loss"), ""

    def gap(dataset, model):
        train, test = seeds(dataset, "train_dice", model), seeds(dataset, "dice", model)
        return train - test if len(train) == len(test) else np.array([])

    claims = []

    def add(dataset, finding, study, expect, unit, decimals, pair, **extra):
        a, b = pair if pair is not None else (None, None)
        claims.append(Claim(dataset, finding, study, expect, unit, decimals, a, b, **extra))

    if study_datasets is None:
        present = set(frame["dataset"]) if "dataset" in frame else set()
        study_datasets = {name: [name] if name in present or not present else [] for name in STUDY_FORMATS}
    nuclei, vessels = study_datasets.get("dsb2018", []), study_datasets.get("drive", [])
    if nuclei or vessels:  # the other half of the study, not run here, keeps its rows ("not run")
        nuclei, vessels = nuclei or ["dsb2018"], vessels or ["drive"]
    for name in nuclei:
        add(name, "Eff-UNet more accurate (test pixel accuracy)", "higher accuracy", "higher", "accuracy", 4,
            paired(name, "native", "accuracy"))
        add(name, "Eff-UNet more accurate (test Dice)", "higher accuracy", "higher", "Dice", 4,
            paired(name, "native", "dice"))
        pair, censored = epochs(name)
        add(name, "Eff-UNet's best epoch earlier", "36 vs 69", "lower", "epochs", 1, pair, censored=censored)
        pair, note = losses(name)
        add(name, "test loss: Eff-UNet higher", "0.0912 vs 0.0638", "higher", "loss", 4, pair, note=note)
    for name in vessels:
        add(name, "Eff-UNet generalises better (train − test Dice gap)", "better", "lower", "Dice", 4,
            _seed_level(gap(name, eff), gap(name, base)))
        pair, note = losses(name)
        add(name, "test loss: Eff-UNet higher", "0.3011 vs 0.2552", "higher", "loss", 4, pair, note=note)
        pair, censored = epochs(name)
        base_epochs = seeds(name, "best_epoch", base)
        add(name, "best epoch about the same (within 20%)", "about the same", "same", "epochs", 1, pair,
            censored=censored, margin=0.2 * base_epochs.mean() if len(base_epochs) else None)
    for name in nuclei:
        split = paired(name, "native", "instance_ap_split")
        whole = paired(name, "native", "instance_ap")
        add(name, "U-Net merges touching nuclei (AP gain from splitting)", "U-Net merges", "lower", "AP", 4,
            (split[0] - whole[0], split[1] - whole[1]) if split and whole and split[0].shape == whole[0].shape
            and split[1].shape == whole[1].shape else None)
        true, found = paired(name, "native", "true_objects"), paired(name, "native", "predicted_objects")
        add(name, "U-Net merges touching nuclei (nuclei missed per image)", "U-Net merges",
            "lower", "nuclei", 2, (true[0] - found[0], true[1] - found[1]) if true and found
            and true[0].shape == found[0].shape and true[1].shape == found[1].shape else None)
    order = list(dict.fromkeys(c.dataset for c in claims))
    claims.sort(key=lambda claim: order.index(claim.dataset))  # each data set's rows together (stable)
    table = _claims_frame(claims, target_difference) if claims else pd.DataFrame(columns=list(CLAIMS_COLUMNS))
    table.attrs["models"] = (eff, base)
    return table


def _claims_frame(claims: list[Claim], target_difference: float) -> pd.DataFrame:
    """The claims' tests, one Holm family, verdicts and what each row could detect."""
    keys = ("difference", "se", "df", "p", "seed_a", "seed_b", "images")
    tests = {key: np.full(len(claims), np.nan) for key in keys}
    for k, claim in enumerate(claims):
        if claim.a is not None:
            result = statistics.difference_test(claim.a, claim.b)
            for key in keys:
                tests[key][k] = float(result[key])
    if any(c.blocked == "censored" for c in claims):  # no test: its CI says nothing
        tests["seed_a"] = np.where([c.blocked == "censored" for c in claims], np.nan, tests["seed_a"])
    seeds_a = [len(c.a) if c.a is not None else 0 for c in claims]
    seeds_b = [len(c.b) if c.b is not None else 0 for c in claims]
    images = [c.a.shape[1] if c.a is not None else 0 for c in claims]
    family = family_tests(tests, ["claims"] * len(claims), seeds_a, seeds_b, images,
                          [c.unit == "Dice" for c in claims], target_difference)
    rows = []
    for k, claim in enumerate(claims):
        low, high = family["ci_low"][k], family["ci_high"][k]
        in_family = np.isfinite(family["p_holm"][k])
        word = _verdict(claim, low, high) if in_family else ("inconclusive" if claim.blocked != "censored"
                                                               else "censored")
        d = claim.decimals
        ci = (f"{_signed(tests['difference'][k], d)} [{_signed(low, d)}, {_signed(high, d)}] (Holm)"
              if in_family else "–")
        rows.append({"data set": claim.dataset, "finding of the study": claim.finding, "study": claim.study,
                     "measured here": claim.measured, "difference [CI]": ci, "verdict": word,
                     "detectable (80% power)": _detectable(claim, word, family["mde"][k],
                                                           family["seeds_for_target"][k], target_difference),
                     "p": tests["p"][k], "p (Holm)": family["p_holm"][k], "alpha (Holm step)": family["alpha_holm"][k],
                     "mde": family["mde"][k], "seeds_for_target": family["seeds_for_target"][k],
                     "method": ("–" if claim.a is None else "censored" if claim.blocked == "censored"
                                else "seeds and images" if in_family and claim.a.shape[1] > 1
                                else "seeds" if in_family else IMAGES_ONLY if claim.a.shape[1] > 1
                                else "seeds (fewer than 2 per model)")})
    return pd.DataFrame(rows)


def _detectable(claim: Claim, word: str, mde: float, seeds: float, target: float) -> str:
    """What a row could have seen: its MDE, and for an inconclusive row the seeds that would see the target."""
    if not np.isfinite(mde):
        return "–"
    size = f"{mde:.2g} {claim.unit}"
    if word != "inconclusive":
        return size
    text = f"no difference larger than {size}"
    if claim.unit == "Dice":
        text += (f"; {int(seeds)} seeds per model would see {target:g}" if np.isfinite(seeds)
                 else f"; no seed count up to {statistics.MOST_SEEDS} would see {target:g} (more images)")
    return text


# ------------------------------------------------------------------------------------ display

COMPACT = (  # column, header, decimals, meaning
    ("dice", "Dice", 3, "test Dice (headline weighting, see above)"),
    ("iou", "IoU", 3, "test IoU (same weighting)"),
    ("accuracy", "accuracy", 3, "test pixel accuracy, the study's metric (same weighting)"),
    ("instance_ap_split", "inst. AP", 3, ("DSB2018 competition score (mean precision over IoU 0.5..0.95) "
                                          "per image, touching nuclei split by watershed")),
    ("instance_ap_watershed", "inst. AP (boundary)", 3, ("the same score of the instances decoded from the "
                                                         "boundary channel by a marker-controlled watershed "
                                                         "(models trained with train.instances: boundary)")),
    ("test_loss", "test loss", 4, ("training loss (run.json's loss, BCE by default) on the test split at "
                                   "the training size, mean over images")),
    ("best_epoch", "best epoch", 0, "epoch of the lowest validation loss (the weights kept)"),
    ("seconds_per_epoch", "s/epoch", 2, "median seconds per epoch over epochs 2.. (epoch 1 builds the graph)"),
)


def _cell(mean, std, decimals: int) -> str:
    if pd.isna(mean):
        return "–"
    return f"{mean:.{decimals}f}" + ("" if pd.isna(std) else f" ± {std:.{decimals}f}")


def headline_table(table: pd.DataFrame) -> pd.DataFrame:
    """The compact table as people read it: mean ± std over seeds, fixed decimals per column."""
    recipes = table["recipe"].fillna("") if "recipe" in table else pd.Series([""] * len(table))
    shown = pd.DataFrame({"data set": table["dataset"], "recipe": [r or "–" for r in recipes],
                          "model": table["model"],
                          "seeds": [str(int(s)) if k == "model" else "–" for s, k in zip(table["seeds"],
                                                                                         table["kind"])]})
    for name, header, decimals, _ in COMPACT:
        if f"{name}_mean" in table:
            shown[header] = [_cell(m, s, decimals) for m, s in zip(table[f"{name}_mean"], table[f"{name}_std"])]
    shown["params (M)"] = ["–" if pd.isna(p) else f"{p / 1e6:.2f}" for p in table["parameters_mean"]]
    return shown


def _bullets(items) -> str:
    """A caption as a short Markdown bullet list."""
    return "\n".join(f"- {item}" for item in items)


def headline_caption(table: pd.DataFrame) -> str:
    weighting = "; ".join(f"{d}: {w}" for d, w in dict.fromkeys(zip(table["dataset"], table["headline"])))
    columns = [f"**{header}**: {meaning}" for name, header, _, meaning in COMPACT if f"{name}_mean" in table]
    return _bullets([
        "Test split, native resolution; mean ± std over seeds (no ± with one seed).",
        f"Headline weighting: {weighting} (pooled: the pixels in the scored region, e.g. DRIVE's field of view, "
        "a folder's roi/).",
        "**recipe**: the training recipe (config key `recipes`; `study` is the study's); **seeds**: training runs "
        "per model.",
        *columns,
        "**params (M)**: trainable and frozen parameters, millions.",
        f"**{CEILING}**: the ground truth resized to the training size and back, scored like a model (the best "
        "score this protocol allows).",
        f"**{OBSERVER}**, where a data set has one: a second annotator's truth scored against the first (DRIVE).",
        "Every column (pooled and per-image variants, train/val Dice and losses, timing, images/s, FLOPs): "
        "`comparison.csv`."])


def statistics_table(paired: pd.DataFrame) -> pd.DataFrame:
    across = paired["recipe"] != paired["baseline_recipe"]
    shown = pd.DataFrame({"data set": paired["dataset"],
                          "recipe": [f"{r} − {b}" if x else r for r, b, x in
                                     zip(paired["recipe"], paired["baseline_recipe"], across)],
                          "quantity": paired["quantity"],
                          "comparison": [m if x else f"{m} − {b}" for m, b, x in
                                         zip(paired["model"], paired["baseline"], across)],
                          "seeds": [f"{a} vs {b}" for a, b in zip(paired["seeds_model"], paired["seeds_baseline"])],
                          "images": paired["images"]})
    decimals = [4] * len(paired)
    estimable = [m == "seeds and images" for m in paired["method"]]
    shown["difference"] = [_signed(d, k) for d, k in zip(paired["difference"], decimals)]
    shown["95% CI (Holm)"] = [f"[{_signed(lo, 4)}, {_signed(hi, 4)}]" if np.isfinite(lo) and ok else "–"
                              for lo, hi, ok in zip(paired["ci_low"], paired["ci_high"], estimable)]
    shown["p (Holm)"] = [f"{p:.3g}" if np.isfinite(p) and ok else "–" for p, ok in zip(paired["p_holm"], estimable)]
    shown["MDE (80%)"] = [f"{m:.2g}" if np.isfinite(m) else "–" for m in paired["mde"]]
    target = paired["target_difference"].dropna()
    header = f"seeds to see {target.iloc[0]:g}" if len(target) else "seeds to see target"
    shown[header] = [f"{int(n)}" if np.isfinite(n) and not v.endswith(("better", "worse")) else
                     ("> " + str(statistics.MOST_SEEDS) if q == "test dice" and ok and np.isnan(n)
                      and not v.endswith(("better", "worse")) else "–")
                     for n, v, q, ok in zip(paired["seeds_for_target"], paired["verdict"], paired["quantity"],
                                            estimable)]
    shown["verdict"] = paired["verdict"]
    return shown


STATISTICS_CAPTION = _bullets([
    "Eff-UNet minus each baseline within each recipe: per-image test Dice (native resolution) and test loss "
    "(only between runs trained with the same loss function), images paired by id, averaged over seeds.",
    f"`<recipe> − {STUDY_RECIPE}` rows: one model under that recipe minus the same model under the study's.",
    "Test: crossed seed x image mixed model (method of moments), Welch-Satterthwaite t; it counts the "
    "seed-to-seed and the image-to-image variance (README, 'Statistics').",
    "Holm-corrected within a family: one recipe's architecture rows; the recipe-vs-study rows are a second one.",
    "Verdict from the corrected CI (lower loss is better), only with at least 3 seeds a side.",
    "**MDE (80%)**: the smallest true difference detected with 80% power at the row's Holm step level.",
    "**seeds to see**: for a row without a verdict, the seeds per model at which a Dice row's MDE reaches "
    "`compare.target_difference`.",
    "Fewer than 2 seeds in a model: no CI or p (its images-only p is in the CSV, out of the Holm family).",
    "Uncorrected CIs, standard errors, degrees of freedom, Holm levels, families: `paired_tests.csv`."])


# ------------------------------------------------------------------------------------ quality vs cost

COST = (  # column of run.json, header, scale, decimals
    ("parameters", "params (M)", 1e-6, 2),
    ("flops", "GFLOPs", 1e-9, 2),
    ("seconds_to_best", "s to best", 1.0, 1),
    ("wall_seconds", "s total", 1.0, 1),
)
COST_QUALITY = (  # column of the records, header
    ("dice_image_mean", "Dice (per image)"),
    ("instance_ap_split", "inst. AP"),
    ("instance_ap_watershed", "inst. AP (boundary)"),  # runs trained with a boundary channel only
)


def cost_table(records: list[dict]) -> pd.DataFrame:
    """Test quality against cost: one row per data set x recipe x model with the mean and the standard
    deviation over seeds (NaN with one seed) of each COST column (from run.json) and each COST_QUALITY
    column (per-image test Dice at native resolution, whatever the data set's headline weighting, and
    DSB2018's instance AP with touching nuclei split; from eval/metrics.json)."""
    frame = pd.DataFrame(records)
    if "recipe" not in frame:
        frame["recipe"] = STUDY_RECIPE
    columns = [name for name, *_ in COST] + [name for name, _ in COST_QUALITY]
    for name in columns:
        frame[name] = pd.to_numeric(frame[name], errors="coerce") if name in frame else np.nan
    grouped = frame.groupby(["dataset", "recipe", "model"], sort=False)
    table = grouped[columns].agg(["mean", "std"])
    table.columns = [f"{name}_{stat}" for name, stat in table.columns]
    table.insert(0, "seeds", grouped["seed"].count())
    return table.reset_index()


def cost_display(cost: pd.DataFrame) -> pd.DataFrame:
    shown = pd.DataFrame({"data set": cost["dataset"], "recipe": cost["recipe"], "model": cost["model"],
                          "seeds": cost["seeds"].astype(int).astype(str)})
    for name, header, scale, decimals in COST:
        shown[header] = [_cell(m * scale, s * scale, decimals) for m, s in zip(cost[f"{name}_mean"],
                                                                            cost[f"{name}_std"])]
    for name, header in COST_QUALITY:
        if cost[f"{name}_mean"].notna().any():  # a column no run has (no boundary channel) is left out
            shown[header] = [_cell(m, s, 3) for m, s in zip(cost[f"{name}_mean"], cost[f"{name}_std"])]
    return shown


COST_CAPTION = _bullets([
    "One row per model and recipe; mean ± std over seeds (the figure `plots/cost.png` draws the same numbers).",
    "**params (M)**: parameters, millions; **GFLOPs**: forward FLOPs of one image at the training size, billions.",
    "**s to best**: training time until the best epoch (the figure's time axis); **s total**: the training job's "
    "wall time.",
    "**Dice (per image)**: per-image test Dice at native resolution, whatever the headline weighting.",
    "**inst. AP**: DSB2018's instance AP, touching nuclei split; **inst. AP (boundary)**, where a recipe trains a "
    "boundary channel: the same score of its watershed decoding.",
    "Every value: `cost.csv`."])


def _md(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, disable_numparse=True)


def markdown(table: pd.DataFrame, paired: pd.DataFrame, claims: pd.DataFrame, cost: pd.DataFrame | None = None) -> str:
    text = f"## Comparison\n\n{_md(headline_table(table))}\n\n{headline_caption(table)}\n"
    if cost is not None and len(cost):
        text += f"\n## Quality vs cost\n\n{_md(cost_display(cost))}\n\n{COST_CAPTION}\n"
    if len(paired):
        text += f"\n## Statistics: Eff-UNet vs the U-Nets\n\n{_md(statistics_table(paired))}\n\n{STATISTICS_CAPTION}\n"
    if len(claims):
        text += f"\n## The study's claims\n\n{_md(claims_display(claims))}\n\n{claims_caption(claims)}\n"
    else:
        text += f"\n## The study's claims\n\n{NO_STUDY_DATA}\n"
    return text


def claims_caption(claims: pd.DataFrame) -> str:
    eff, base = claims.attrs.get("models", ("effunet-b0", "resnet50-unet"))
    return _bullets([f"Eff-UNet is {eff} here, U-Net {base} (the study's U-Net has a ResNet50 encoder).",
                     *CLAIMS_CAPTION])


CLAIMS_CAPTION = (
    "Pixel accuracy, Dice, loss, nuclei missed per image (true nuclei minus predicted components) and the AP gain "
    "from splitting: paired over test images and seeds; best-epoch and generalisation-gap rows: seed-level values "
    "(Welch's t).",
    "All rows are one Holm family; each CI at its Holm level.",
    "`agrees` / `disagrees`: at least 3 seeds per model and a CI excluding 0; 'about the same' agrees when the CI "
    "lies inside ±20% of the U-Net's mean, disagrees when wholly outside, else `inconclusive`.",
    "A best-epoch row is `censored` unless every run stopped early (a run stopped at max_epochs, counted in "
    "**measured here**, has a best epoch that is a lower bound).",
    "**detectable**: the MDE at 80% power and the row's Holm step level; for an inconclusive Dice row also the "
    "seeds per model that would see `compare.target_difference`.",
    "p-values, Holm levels and each row's method: `claims.csv`.",
    STUDY_NOTE)


CLAIMS_COLUMNS = ("data set", "finding of the study", "study", "measured here", "difference [CI]", "verdict",
                  "detectable (80% power)", "p", "p (Holm)", "alpha (Holm step)", "mde", "seeds_for_target", "method")
NO_STUDY_DATA = ("This config has no data set of the study's formats (`dsb2018`: the nuclei claims, `drive`: the "
                 "vessel claims), so the study's claims are not checked here; the comparison and the statistics above "
                 "answer the question for these data sets.")
CLAIMS_SHOWN = ("data set", "finding of the study", "study", "measured here", "difference [CI]",
                "detectable (80% power)", "verdict")


def claims_display(claims: pd.DataFrame) -> pd.DataFrame:
    """The claims as people read them (the CSV has the p-values, Holm levels and methods)."""
    return claims[list(CLAIMS_SHOWN)].rename(columns={"detectable (80% power)": "detectable"})


def html(table: pd.DataFrame, paired: pd.DataFrame, claims: pd.DataFrame, cost: pd.DataFrame | None = None) -> str:
    """A self-contained HTML page of the same tables, for the Snakemake report."""
    style = ("body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #999;"
             "padding:2px 6px}p,ul{max-width:60em}")
    body = f"<h2>Comparison</h2>{headline_table(table).to_html(index=False)}{_caption_html(headline_caption(table))}"
    if cost is not None and len(cost):
        body += f"<h2>Quality vs cost</h2>{cost_display(cost).to_html(index=False)}{_caption_html(COST_CAPTION)}"
    if len(paired):
        body += (f"<h2>Statistics: Eff-UNet vs the U-Nets</h2>{statistics_table(paired).to_html(index=False)}"
                 f"{_caption_html(STATISTICS_CAPTION)}")
    if len(claims):
        body += f"<h2>The study's claims</h2>{claims_display(claims).to_html(index=False)}{_caption_html(claims_caption(claims))}"
    else:
        body += f"<h2>The study's claims</h2><p>{_plain(NO_STUDY_DATA)}</p>"
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{style}</style></head><body>{body}</body></html>"


def _caption_html(caption: str) -> str:
    """A Markdown bullet-list caption as an HTML list (any other text as a paragraph)."""
    lines = caption.splitlines()
    if lines and all(line.startswith("- ") for line in lines):
        return "<ul>" + "".join(f"<li>{_plain(line[2:])}</li>" for line in lines) + "</ul>"
    return f"<p>{_plain(caption)}</p>"


def _plain(markdown_text: str) -> str:
    import html as html_module
    import re

    text = html_module.escape(markdown_text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def read_per_image(runs: list[RunResult], records: list[dict]) -> pd.DataFrame:
    frames = []
    for run, record in zip(runs, records):
        try:
            frame = pd.read_csv(run.per_image, dtype={"id": str})
        except (OSError, ValueError) as error:
            raise EffunetError(f"cannot read {run.per_image}: {error}") from error
        frames.append(frame.assign(dataset=record["dataset"], model=record["model"], seed=record["seed"],
                                   recipe=record.get("recipe", STUDY_RECIPE),
                                   loss_function=record["loss_function"]))
    return pd.concat(frames, ignore_index=True)


def aggregate(runs: list[RunResult], table_csv, table_md, table_html, paired_csv,
              references: list[str | os.PathLike] = (), claims_csv=None, cost_csv=None,
              target_difference: float = TARGET_DIFFERENCE, datasets: dict[str, dict] | None = None) -> pd.DataFrame:
    """Read every run's files (and the reference scores); write the tables, paired tests, claims and the
    quality-vs-cost table. `target_difference`: the Dice difference (config key
    `compare.target_difference`) for which a row without a verdict states the seeds per model it needs.
    `datasets`: what each data set's format says (`effunet.data.formats.Capabilities` as a dict: `format`,
    `headline`, `study`); by default every data set is weighted per image and the study's claims are
    checked on the data sets named dsb2018 and drive."""
    weightings = {name: can["headline"] for name, can in (datasets or {}).items()}
    study = None
    if datasets is not None:
        study = {fmt: [name for name, can in datasets.items() if can.get("study") == fmt] for fmt in STUDY_FORMATS}
    records = [run_record(r, weightings.get(r.id.dataset, DEFAULT_HEADLINE)) for r in runs]
    reference_rows = [row for path in references for row in reference_records(path, weightings)]
    table = comparison_table(records, reference_rows, weightings)
    per_image = read_per_image(runs, records)
    paired = paired_tests(per_image, target_difference)
    claims = claims_table(records, per_image, target_difference, study)
    cost = cost_table(records)
    with atomic_path(table_csv) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(paired_csv) as tmp:
        paired.to_csv(tmp, index=False)
    if claims_csv is not None:
        with atomic_path(claims_csv) as tmp:
            claims.to_csv(tmp, index=False)
    if cost_csv is not None:
        with atomic_path(cost_csv) as tmp:
            cost.to_csv(tmp, index=False)
    write_text_atomic(table_md, markdown(table, paired, claims, cost))
    write_text_atomic(table_html, html(table, paired, claims, cost))
    return table
