"""The study's claims (`effunet.compare.study`) measured on the runs of the `study` recipe: one row per
finding and data set of the study's formats, the value measured here, a test and whether it agrees."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from effunet import statistics
from effunet.run import STUDY_RECIPE

from .paired import IMAGES_ONLY, TARGET_DIFFERENCE, family_tests, loss_functions, matrices, paired_arrays
from .study import BASELINE, FINDINGS, MODEL, STUDY_FORMATS
from .text import signed

CLAIMS_COLUMNS = ("data set", "finding of the study", "study", "measured here", "difference [CI]", "verdict",
                  "detectable (80% power)", "p", "p (Holm)", "alpha (Holm step)", "mde", "seeds_for_target",
                  "method")  # fmt: skip


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
        d = 0 if self.unit == "epochs" else self.decimals  # epochs as whole numbers, as the study gives them
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


def _seed_level(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    return (a[:, None], b[:, None]) if len(a) and len(b) else None


def _difference(x, y) -> tuple[np.ndarray, np.ndarray] | None:
    """x minus y on both sides, where both were measured on the same seeds and images."""
    if x and y and x[0].shape == y[0].shape and x[1].shape == y[1].shape:
        return x[0] - y[0], x[1] - y[1]
    return None


class _Measures:
    """Each `Finding.measure` on one data set: the (model, baseline) values (seeds x images, or seeds x 1)
    or None, and what the claim records beside them; from the study recipe's records and per-image scores."""

    def __init__(self, frame: pd.DataFrame, per_image: pd.DataFrame | None, eff: str, base: str):
        self.frame, self.per_image, self.eff, self.base = frame, per_image, eff, base

    def seeds(self, dataset: str, column: str, model: str) -> np.ndarray:
        rows = self.frame[(self.frame["dataset"] == dataset) & (self.frame["model"] == model)]
        return pd.to_numeric(rows[column], errors="coerce").dropna().to_numpy() if column in rows else np.array([])

    def paired(self, dataset: str, resolution: str, column: str):
        """Seed x image values of the two models on the test images both scored."""
        per_image = self.per_image
        if per_image is None or column not in per_image:
            return None
        rows = per_image[(per_image["dataset"] == dataset) & (per_image["split"] == "test")
                         & (per_image["resolution"] == resolution) & (per_image["recipe"] == STUDY_RECIPE)]  # fmt: skip
        values = rows[["recipe", "model", "seed", "id", column]].dropna().rename(columns={column: "value"})
        if values.empty:
            return None
        sides = matrices(values)
        return paired_arrays(sides.get((STUDY_RECIPE, self.eff)), sides.get((STUDY_RECIPE, self.base)))

    def accuracy(self, dataset):
        return self.paired(dataset, "native", "accuracy"), {}

    def dice(self, dataset):
        return self.paired(dataset, "native", "dice"), {}

    def best_epoch(self, dataset):
        pair = _seed_level(self.seeds(dataset, "best_epoch", self.eff), self.seeds(dataset, "best_epoch", self.base))
        runs = self.frame[(self.frame["dataset"] == dataset) & self.frame["model"].isin([self.eff, self.base])]
        censored = pd.to_numeric(runs["censored"], errors="coerce").fillna(1) if "censored" in runs else None
        count = (int((censored != 0).sum()), len(runs)) if censored is not None else (len(runs), len(runs))
        return pair, {"censored": count}

    def test_loss(self, dataset):
        per_image = self.per_image
        if per_image is not None and "loss_function" in per_image:
            mine = per_image[(per_image["dataset"] == dataset) & (per_image["recipe"] == STUDY_RECIPE)]
            functions = loss_functions(mine)
            if functions.get((self.eff, STUDY_RECIPE)) != functions.get((self.base, STUDY_RECIPE)):
                return None, {"note": "different loss functions"}
        return self.paired(dataset, "training_size", "loss"), {"note": ""}

    def dice_gap(self, dataset):
        def gap(model):
            train, test = self.seeds(dataset, "train_dice", model), self.seeds(dataset, "dice", model)
            return train - test if len(train) == len(test) else np.array([])

        return _seed_level(gap(self.eff), gap(self.base)), {}

    def ap_gain(self, dataset):
        split, whole = (self.paired(dataset, "native", name) for name in ("instance_ap_split", "instance_ap"))
        return _difference(split, whole), {}

    def nuclei_missed(self, dataset):
        true, found = (self.paired(dataset, "native", name) for name in ("true_objects", "predicted_objects"))
        return _difference(true, found), {}


def claims_table(records: list[dict], per_image: pd.DataFrame | None,
                 target_difference: float = TARGET_DIFFERENCE,
                 study_datasets: dict[str, list[str]] | None = None) -> pd.DataFrame:  # fmt: skip
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
    eff = effs[0] if effs else MODEL
    if per_image is not None and "recipe" not in per_image:
        per_image = per_image.assign(recipe=STUDY_RECIPE)
    measures = _Measures(frame, per_image, eff, BASELINE)
    if study_datasets is None:
        present = set(frame["dataset"]) if "dataset" in frame else set()
        study_datasets = {name: [name] if name in present or not present else [] for name in STUDY_FORMATS}
    chosen = {fmt: study_datasets.get(fmt, []) for fmt in STUDY_FORMATS}
    if any(chosen.values()):  # the other half of the study, not run here, keeps its rows ("not run")
        chosen = {fmt: names or [fmt] for fmt, names in chosen.items()}
    claims = []
    for finding in FINDINGS:
        for name in chosen[finding.format]:
            pair, extra = getattr(measures, finding.measure)(name)
            a, b = pair if pair is not None else (None, None)
            if finding.margin is not None:  # "same": within this fraction of the baseline's mean
                extra["margin"] = finding.margin * np.ravel(b).mean() if b is not None else None
            claims.append(Claim(name, finding.finding, finding.study, finding.expect, finding.unit, finding.decimals,
                                a, b, **extra))  # fmt: skip
    order = list(dict.fromkeys(c.dataset for c in claims))
    claims.sort(key=lambda claim: order.index(claim.dataset))  # each data set's rows together (stable)
    table = _claims_frame(claims, target_difference) if claims else pd.DataFrame(columns=list(CLAIMS_COLUMNS))
    table.attrs["models"] = (eff, BASELINE)
    return table


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


def _method(claim: Claim, in_family: bool) -> str:
    if claim.a is None:
        return "–"
    if claim.blocked == "censored":
        return "censored"
    if in_family:
        return "seeds and images" if claim.a.shape[1] > 1 else "seeds"
    return IMAGES_ONLY if claim.a.shape[1] > 1 else "seeds (fewer than 2 per model)"


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
                          [c.unit == "Dice" for c in claims], target_difference)  # fmt: skip
    rows = []
    for k, claim in enumerate(claims):
        low, high = family["ci_low"][k], family["ci_high"][k]
        in_family = np.isfinite(family["p_holm"][k])
        if in_family:
            word = _verdict(claim, low, high)
        else:
            word = "inconclusive" if claim.blocked != "censored" else "censored"
        d = claim.decimals
        ci = f"{signed(tests['difference'][k], d)} [{signed(low, d)}, {signed(high, d)}] (Holm)" if in_family else "–"
        mde, seeds = family["mde"][k], family["seeds_for_target"][k]
        rows.append({"data set": claim.dataset, "finding of the study": claim.finding, "study": claim.study,
                     "measured here": claim.measured, "difference [CI]": ci, "verdict": word,
                     "detectable (80% power)": _detectable(claim, word, mde, seeds, target_difference),
                     "p": tests["p"][k], "p (Holm)": family["p_holm"][k], "alpha (Holm step)": family["alpha_holm"][k],
                     "mde": mde, "seeds_for_target": seeds, "method": _method(claim, in_family)})  # fmt: skip
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
                 else f"; no seed count up to {statistics.MOST_SEEDS} would see {target:g} (more images)")  # fmt: skip
    return text
