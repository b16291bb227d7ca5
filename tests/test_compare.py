"""The comparison table, statistics and claims, from run files with known values."""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from effunet import compare, statistics
from effunet.errors import EffunetError
from effunet.run import RunId, RunRecord


def write_run(root, dataset, model, seed, dice_by_image, epochs=50, best=40, loss_by_image=None, pooled_dice=None,
              ap=(0.5, 0.6), train_dice=0.9, recipe="study", parameters=2_500_000, seconds_to_best=None,
              stop_reason="early_stopping", accuracy_by_image=None, objects=None):
    """A run's run.json, eval/metrics.json and per_image.csv with the given per-image values, in a folder
    whose name says nothing (the identity travels with the paths)."""
    run_dir = root / f"run{len(list(root.glob('run*')))}"
    (run_dir / "eval").mkdir(parents=True)
    dice_by_image = np.asarray(dice_by_image, dtype=float)
    loss_by_image = 1 - dice_by_image if loss_by_image is None else np.asarray(loss_by_image, dtype=float)
    (run_dir / "run.json").write_text(json.dumps({
        "epochs_trained": epochs, "best_epoch": best, "wall_seconds": 10.0 * epochs, "first_epoch_seconds": 30.0,
        "seconds_per_epoch": 2.0 + seed,
        "seconds_to_best": 2.0 * best if seconds_to_best is None else seconds_to_best, "train_images_per_s": 100.0,
        "parameters": parameters, "flops": 2e9, "stop_reason": stop_reason}))
    mean = {name: float(dice_by_image.mean()) for name in compare.QUALITY}
    mean.update(instance_ap=ap[0], instance_ap_split=ap[1])
    pooled = {name: pooled_dice if pooled_dice is not None else float(dice_by_image.mean()) for name in compare.QUALITY}
    summary = lambda d: {"pooled": {**pooled, "dice": d}, "per_image_mean": {**mean, "dice": d}}
    splits = {"test": {"native": {"pooled": pooled, "per_image_mean": mean}},
              "train": {"native": summary(train_dice)}, "val": {"native": summary(0.8)}}
    (run_dir / "eval/metrics.json").write_text(json.dumps({
        "splits": splits, "inference_images_per_s": 50.0, "threshold": {"value": 0.5},
        "loss": {"function": "bce", "train": 0.05, "val": 0.07, "test": float(loss_by_image.mean())}}))
    ids = [f"i{k}" for k in range(len(dice_by_image))]
    native = pd.DataFrame({"id": ids, "split": "test", "resolution": "native", "dice": dice_by_image,
                           "accuracy": dice_by_image if accuracy_by_image is None else accuracy_by_image,
                           "instance_ap": ap[0], "instance_ap_split": ap[1]})
    if objects is not None:  # (true, predicted) nuclei per image
        native["true_objects"], native["predicted_objects"] = objects
    small = pd.DataFrame({"id": ids, "split": "test", "resolution": "training_size", "dice": dice_by_image,
                          "loss": loss_by_image})
    pd.concat([native, small]).to_csv(run_dir / "eval/per_image.csv", index=False)
    return compare.RunResult(RunId(dataset, model, seed, recipe), run_dir / "run.json", run_dir / "eval/metrics.json",
                             run_dir / "eval/per_image.csv")


def write_reference(path, dataset, dice, observer=None):
    summary = lambda d: {"pooled": {"dice": d, "iou": d}, "per_image_mean": {"dice": d, "iou": d}}
    path.write_text(json.dumps({"dataset": dataset, "protocol_ceiling": summary(dice),
                                "second_observer": summary(observer) if observer else None}))
    return path


def study_datasets(*names):
    """What the format registry says of data sets named after (and of the format of) the study's."""
    from effunet.data import formats

    return {name: {"format": name, "headline": formats.get(name).headline({}), "study": formats.get(name).study}
            for name in names}


def outputs(tmp_path):
    return {"table_csv": tmp_path / "c.csv", "table_md": tmp_path / "c.md", "table_html": tmp_path / "c.html",
            "paired_csv": tmp_path / "p.csv", "claims_csv": tmp_path / "claims.csv",
            "datasets": study_datasets("dsb2018", "drive")}


@pytest.fixture
def study(tmp_path):
    """DSB2018 and DRIVE, 3 seeds per model; effunet-b0 is 0.1 Dice better on DSB2018 with seed noise."""
    rng = np.random.default_rng(0)
    base = np.linspace(0.5, 0.8, 12)
    runs = []
    for seed in range(3):
        noise = rng.normal(0, 0.002, 12)
        runs.append(write_run(tmp_path, "dsb2018", "resnet50-unet", seed, base + 0.003 * seed + noise, best=69 + seed,
                              ap=(0.40, 0.55), objects=(np.full(12, 10), 7 + rng.integers(0, 2, 12))))
        runs.append(write_run(tmp_path, "dsb2018", "effunet-b0", seed, base + 0.1 + 0.003 * (2 - seed) + noise,
                              best=36 + seed, ap=(0.50, 0.52), objects=(np.full(12, 10), 9 + rng.integers(0, 2, 12))))
        runs.append(write_run(tmp_path, "drive", "resnet50-unet", seed, base[:4] + 0.002 * seed, best=100 + seed,
                              pooled_dice=0.80))
        runs.append(write_run(tmp_path, "drive", "effunet-b0", seed, base[:4] + 0.002 * (2 - seed), best=101 - seed,
                              pooled_dice=0.81))
    references = [write_reference(tmp_path / "dsb.json", "dsb2018", 0.937),
                  write_reference(tmp_path / "drive.json", "drive", 0.97, observer=0.79)]
    return runs, references


def test_table_rows_headline_weighting_and_reference_rows(study, tmp_path):
    runs, references = study
    table = compare.aggregate(runs, references=references, **outputs(tmp_path))
    assert list(table[["dataset", "model", "kind", "seeds"]].itertuples(index=False, name=None)) == [
        ("dsb2018", "resnet50-unet", "model", 3), ("dsb2018", "effunet-b0", "model", 3),
        ("dsb2018", "protocol ceiling", "reference", 0),
        ("drive", "resnet50-unet", "model", 3), ("drive", "effunet-b0", "model", 3),
        ("drive", "protocol ceiling", "reference", 0), ("drive", "2nd observer", "reference", 0)]
    rows = table.set_index(["dataset", "model"])
    # DSB2018: headline = per-image mean; DRIVE: headline = pooled (0.81), per-image mean beside
    assert rows.loc[("dsb2018", "effunet-b0"), "dice_mean"] == pytest.approx(np.linspace(0.5, 0.8, 12).mean() + 0.103,
                                                                               abs=2e-3)
    assert rows.loc[("drive", "effunet-b0"), "dice_mean"] == pytest.approx(0.81)
    assert rows.loc[("drive", "effunet-b0"), "dice_image_mean_mean"] == pytest.approx(
        np.linspace(0.5, 0.8, 12)[:4].mean() + 0.002)
    assert rows.loc[("drive", "effunet-b0"), "dice_pooled_mean"] == pytest.approx(0.81)
    assert set(table.loc[table.dataset == "dsb2018", "headline"]) == {"per-image mean"}
    assert set(table.loc[table.dataset == "drive", "headline"]) == {"pooled over scored pixels"}
    assert rows.loc[("dsb2018", "protocol ceiling"), "dice_mean"] == 0.937
    assert rows.loc[("drive", "2nd observer"), "dice_mean"] == 0.79
    for column in ("test_loss_mean", "best_epoch_mean", "epochs_trained_mean", "first_epoch_seconds_mean",
                   "seconds_to_best_mean", "train_images_per_s_mean", "instance_ap_split_mean"):
        assert column in table.columns
    assert rows.loc[("dsb2018", "effunet-b0"), "best_epoch_mean"] == 37
    assert rows.loc[("dsb2018", "effunet-b0"), "seconds_per_epoch_std"] == pytest.approx(1.0)


def test_paired_statistics_rows_verdicts_and_holm(study, tmp_path):
    runs, references = study
    compare.aggregate(runs, references=references, **outputs(tmp_path))
    paired = pd.read_csv(tmp_path / "p.csv")
    assert list(zip(paired.dataset, paired.quantity)) == [("dsb2018", "test dice"), ("dsb2018", "test loss"),
                                                         ("drive", "test dice"), ("drive", "test loss")]
    dsb = paired.iloc[0]
    assert (dsb.model, dsb.baseline, dsb.seeds_model, dsb.seeds_baseline, dsb.images) == (
        "effunet-b0", "resnet50-unet", 3, 3, 12)
    assert dsb.difference == pytest.approx(0.1) and dsb.verdict == "effunet-b0 better"
    table = pd.read_csv(tmp_path / "c.csv").set_index(["dataset", "model"])  # the headline and the test agree
    assert dsb.mean_model == pytest.approx(table.loc[("dsb2018", "effunet-b0"), "dice_mean"])
    assert paired.iloc[2].mean_model == pytest.approx(table.loc[("drive", "effunet-b0"), "dice_image_mean_mean"])
    assert paired.iloc[1].difference == pytest.approx(-0.1) and paired.iloc[1].verdict == "effunet-b0 better"
    assert paired.iloc[2].difference == pytest.approx(0, abs=1e-12)
    assert paired.iloc[2].verdict == "no evidence of a difference"
    assert np.allclose(paired.p_holm, statistics.holm(paired.p))  # corrected across every row
    excludes = (paired.ci_low > 0) | (paired.ci_high < 0)
    assert list(excludes) == list(paired.p_holm < 0.05)
    markdown = (tmp_path / "c.md").read_text()
    assert "effunet-b0 − resnet50-unet" in markdown and "95% CI (Holm)" in markdown


def test_verdict_needs_three_seeds_and_unequal_seed_counts_are_handled(tmp_path):
    base = np.linspace(0.5, 0.8, 10)
    runs = [write_run(tmp_path, "dsb2018", "effunet-b0", s, base + 0.1 + 0.001 * s) for s in range(3)]
    runs += [write_run(tmp_path, "dsb2018", "resnet50-unet", s, base + 0.001 * s) for s in range(2)]
    runs += [write_run(tmp_path, "dsb2018", "unet", 0, base)]
    compare.aggregate(runs, **outputs(tmp_path))
    paired = pd.read_csv(tmp_path / "p.csv")
    dice = paired[paired.quantity == "test dice"].set_index("baseline")
    assert dice.loc["resnet50-unet", "seeds_baseline"] == 2 and dice.loc["resnet50-unet", "seeds_model"] == 3
    assert dice.loc["resnet50-unet", "verdict"] == statistics.NEEDS_SEEDS == "needs >= 3 seeds"
    assert dice.loc["resnet50-unet", "method"] == "seeds and images"
    assert dice.loc["unet", "verdict"] == "needs >= 3 seeds"
    assert dice.loc["unet", "method"].startswith("images only")
    assert dice.loc["unet", "difference"] == pytest.approx(0.101)  # numbers still shown
    assert np.isfinite(dice.loc["unet", "ci_low"]) and dice.loc["unet", "p"] < 1e-6  # the CSV keeps them
    assert np.isnan(dice.loc["unet", "p_holm"]) and np.isnan(dice.loc["unet", "mde"])  # out of the family
    # the Holm family is the rows with an estimable seed variance
    estimable = paired[~paired.method.str.startswith("images only")]
    assert estimable.p_holm.to_numpy() == pytest.approx(statistics.holm(estimable.p.to_numpy()))
    # the markdown shows neither a p-value nor a CI for the one-seed rows
    table = compare.statistics_table(paired)
    one_seed = table[table.seeds == "3 vs 1"]
    assert len(one_seed) == 2 and (one_seed["p (Holm)"] == "–").all() and (one_seed["95% CI (Holm)"] == "–").all()
    assert (table.loc[table.seeds == "3 vs 2", "p (Holm)"] != "–").all()


def test_images_are_paired_by_id_whatever_the_row_order(study, tmp_path):
    runs, _ = study
    compare.aggregate(runs, **outputs(tmp_path))
    first = pd.read_csv(tmp_path / "p.csv")
    for run in runs:  # shuffle every per-image file and drop one image from one run
        path = run.per_image
        frame = pd.read_csv(path).sample(frac=1, random_state=1)
        path.write_text(frame.to_csv(index=False))
    compare.aggregate(runs[::-1], **outputs(tmp_path))
    again = pd.read_csv(tmp_path / "p.csv")
    pd.testing.assert_frame_equal(first.sort_values(["dataset", "quantity"]).reset_index(drop=True),
                                  again.sort_values(["dataset", "quantity"]).reset_index(drop=True),
                                  check_exact=False, rtol=1e-9)
    path = runs[0].per_image
    frame = pd.read_csv(path)
    path.write_text(frame[frame.id != "i3"].to_csv(index=False))
    compare.aggregate(runs, **outputs(tmp_path))
    assert pd.read_csv(tmp_path / "p.csv").iloc[0].images == 11  # only images every run scored


def test_claims_table_one_row_per_finding(study, tmp_path):
    runs, references = study
    compare.aggregate(runs, references=references, **outputs(tmp_path))
    claims = pd.read_csv(tmp_path / "claims.csv").set_index("finding of the study")
    assert len(claims) == 9
    verdicts = claims["verdict"]
    assert verdicts["Eff-UNet more accurate (test pixel accuracy)"] == "agrees"
    assert verdicts["Eff-UNet more accurate (test Dice)"] == "agrees"
    assert verdicts["Eff-UNet's best epoch earlier"] == "agrees"
    assert claims.loc["Eff-UNet's best epoch earlier", "measured here"] == "37 vs 70 (0 of 6 runs censored)"
    assert verdicts["test loss: Eff-UNet higher"].tolist() == ["disagrees", "inconclusive"]  # dsb2018, drive
    assert verdicts["best epoch about the same (within 20%)"] == "agrees"
    # splitting gains 0.15 for resnet50-unet and 0.02 for effunet-b0, identical over seeds
    assert verdicts["U-Net merges touching nuclei (AP gain from splitting)"] == "agrees"
    # about 0.5 nuclei missed per image by effunet-b0 against 2.5 by resnet50-unet, paired per image
    assert verdicts["U-Net merges touching nuclei (nuclei missed per image)"] == "agrees"
    assert claims.loc["U-Net merges touching nuclei (nuclei missed per image)", "method"] == "seeds and images"
    # one Holm family over every row with a test; each row's MDE at its Holm step level
    assert claims["p (Holm)"].to_numpy() == pytest.approx(statistics.holm(claims["p"].to_numpy()), nan_ok=True)
    assert claims["alpha (Holm step)"].to_numpy() == pytest.approx(
        statistics.holm_level(claims["p"].to_numpy()), nan_ok=True)
    inconclusive = claims.loc[claims.verdict == "inconclusive", "detectable (80% power)"]
    assert inconclusive.str.startswith("no difference larger than").all()
    # DRIVE: train Dice 0.9 for both, pooled test Dice 0.81 vs 0.80: Eff-UNet's gap is 0.01 smaller
    assert claims.loc["Eff-UNet generalises better (train − test Dice gap)", "measured here"] == "0.0900 vs 0.1000"
    markdown = (tmp_path / "c.md").read_text()
    assert "## The study's claims" in markdown and "stopped training early on the test loss" in markdown


def test_claims_with_one_seed_are_inconclusive(tmp_path):
    base = np.linspace(0.5, 0.8, 10)
    runs = [write_run(tmp_path, "dsb2018", "effunet-b0", 0, base + 0.2, best=10),
            write_run(tmp_path, "dsb2018", "resnet50-unet", 0, base, best=60)]
    compare.aggregate(runs, **outputs(tmp_path))
    claims = pd.read_csv(tmp_path / "claims.csv", keep_default_na=False)
    assert set(claims["verdict"]) == {"inconclusive"}
    assert (claims["measured here"] == "not run").sum() == 4  # DRIVE's three rows, no object counts
    assert "10 vs 60 (0 of 2 runs censored)" in set(claims["measured here"])  # epochs as whole numbers
    assert list(claims["data set"]) == sorted(claims["data set"], key=["dsb2018", "drive"].index)  # grouped
    # one seed: no CI labelled (Holm) beside the words, no p-value; the CSV keeps the images-only p
    assert set(claims["difference [CI]"]) == {"–"} and set(claims["detectable (80% power)"]) == {"–"}
    accuracy = claims.set_index("finding of the study").loc["Eff-UNet more accurate (test Dice)"]
    assert accuracy["method"].startswith("images only") and float(accuracy["p"]) < 1e-6
    assert "(Holm)" not in (tmp_path / "c.md").read_text().split("## The study's claims")[1].split("\n\n")[1]


def seed_records(dataset, eff, base, column="best_epoch", censored=(0, 0)):
    """Records of two models with the given seed-level values (the claims read only these columns)."""
    return [{"dataset": dataset, "model": model, "recipe": "study", "seed": seed, column: value,
             "censored": float(seed < count)}
            for model, values, count in (("effunet-b0", eff, censored[0]), ("resnet50-unet", base, censored[1]))
            for seed, value in enumerate(values)]


@pytest.mark.parametrize("eff, base, expected", [
    ([55, 58, 60], [50, 50, 51], "inconclusive"),  # issue 19: CI [+1.5, +13.2] straddles the margin 10.1
    ([50, 51, 52], [50, 51, 51], "agrees"),  # CI inside +-10.1
    ([80, 81, 82], [50, 51, 51], "disagrees"),  # CI wholly above the margin
    ([55, 56, 57], [50, 50, 51], "agrees"),  # CI excludes 0 but lies inside the margin: not a disagreement
])
def test_about_the_same_disagrees_only_when_the_ci_is_wholly_outside_the_margin(eff, base, expected):
    claims = compare.claims_table(seed_records("drive", eff, base), None).set_index("finding of the study")
    row = claims.loc["best epoch about the same (within 20%)"]
    assert row["verdict"] == expected
    low, high = (float(x) for x in row["difference [CI]"].split("[")[1].split("]")[0].split(","))
    margin = 0.2 * np.mean(base)
    assert (expected == "agrees") == (-margin <= low and high <= margin)
    assert (expected == "disagrees") == (low > margin or high < -margin)


def test_best_epochs_of_runs_stopped_by_max_epochs_are_censored_not_measured():
    # every run at the cap: a CI of [0, 0] that would read "agrees"
    claims = compare.claims_table(seed_records("drive", [50] * 3, [50] * 3, censored=(3, 3)), None)
    row = claims.set_index("finding of the study").loc["best epoch about the same (within 20%)"]
    assert row["verdict"] == "censored" and row["measured here"] == "50 vs 50 (6 of 6 runs censored)"
    assert row["difference [CI]"] == "–" and np.isnan(row["p (Holm)"])  # out of the Holm family
    one = compare.claims_table(seed_records("dsb2018", [30, 31, 32], [60, 61, 62], censored=(0, 1)), None)
    row = one.set_index("finding of the study").loc["Eff-UNet's best epoch earlier"]
    assert row["verdict"] == "censored" and "1 of 6 runs censored" in row["measured here"]
    early = compare.claims_table(seed_records("dsb2018", [30, 31, 32], [60, 61, 62]), None)
    assert early.set_index("finding of the study").loc["Eff-UNet's best epoch earlier", "verdict"] == "agrees"


def test_stop_reason_of_run_json_is_counted(tmp_path):
    base = np.linspace(0.5, 0.8, 10)
    runs = [write_run(tmp_path, "dsb2018", model, s, base, best=40 + s, stop_reason=reason)
            for model in ("effunet-b0", "resnet50-unet") for s, reason in
            enumerate(("early_stopping", "max_epochs", "early_stopping"))]
    records = [compare.run_record(r) for r in runs]
    assert [r["censored"] for r in records] == [0.0, 1.0, 0.0] * 2
    summary = json.loads(Path(runs[0].run).read_text())
    del summary["stop_reason"]  # a run.json without a stop reason is not taken as stopped early
    Path(runs[0].run).write_text(json.dumps(summary))
    assert compare.run_record(runs[0])["censored"] == 1.0
    Path(runs[0].run).write_text(json.dumps({**summary, "stop_reason": "early_stopping"}))
    row = compare.claims_table(records, None).set_index("finding of the study").loc["Eff-UNet's best epoch earlier"]
    assert row["verdict"] == "censored" and "2 of 6 runs censored" in row["measured here"]


def test_accuracy_claim_is_on_pixel_accuracy_with_dice_a_second_row(tmp_path):
    """Eff-UNet has the higher pixel accuracy and the lower Dice: the two rows disagree in sign."""
    rng = np.random.default_rng(3)
    base = np.linspace(0.5, 0.8, 12)
    runs = []
    for seed in range(3):
        noise = rng.normal(0, 0.002, 12)
        runs.append(write_run(tmp_path, "dsb2018", "effunet-b0", seed, base - 0.05 + noise,
                              accuracy_by_image=base + 0.15 + noise))
        runs.append(write_run(tmp_path, "dsb2018", "resnet50-unet", seed, base + noise,
                              accuracy_by_image=base + 0.1 + rng.normal(0, 0.002, 12)))
    compare.aggregate(runs, **outputs(tmp_path))
    claims = pd.read_csv(tmp_path / "claims.csv").set_index("finding of the study")
    assert claims.loc["Eff-UNet more accurate (test pixel accuracy)", "verdict"] == "agrees"
    assert claims.loc["Eff-UNet more accurate (test Dice)", "verdict"] == "disagrees"
    assert claims.loc["Eff-UNet more accurate (test pixel accuracy)", "measured here"].startswith(
        f"{(base + 0.15).mean():.4f}"[:5])


def test_mde_and_seeds_for_the_target_on_every_row(study, tmp_path):
    runs, _ = study
    compare.aggregate(runs, **outputs(tmp_path), target_difference=0.05)
    paired = pd.read_csv(tmp_path / "p.csv")
    assert paired.alpha_holm.to_numpy() == pytest.approx(statistics.holm_level(paired.p.to_numpy()))
    for row in paired.itertuples():  # the reference: the statistics module on the row's own test
        test = {"se": np.array(row.se), "df": np.array(row.df), "seed_a": np.array(1.0)}
        assert row.mde == pytest.approx(float(statistics.detectable(test, row.alpha_holm)))
    dice = paired[paired.quantity == "test dice"]
    assert (dice.target_difference == 0.05).all() and paired[paired.quantity == "test loss"].seeds_for_target.isna().all()
    assert (dice.seeds_for_target >= statistics.MIN_SEEDS).all()
    markdown = (tmp_path / "c.md").read_text()
    assert "| MDE (80%)" in markdown and "seeds to see 0.05" in markdown


def test_an_inconclusive_dice_row_says_what_it_could_see_and_the_seeds_it_needs(tmp_path):
    rng = np.random.default_rng(4)
    base = np.linspace(0.5, 0.8, 20)
    runs = [write_run(tmp_path, "dsb2018", model, seed, base + rng.normal(0, 0.02) + rng.normal(0, 0.01, 20))
            for model in ("effunet-b0", "resnet50-unet") for seed in range(3)]
    compare.aggregate(runs, **outputs(tmp_path))
    paired = pd.read_csv(tmp_path / "p.csv").set_index("quantity")
    assert paired.loc["test dice", "verdict"] == "no evidence of a difference"
    needed = int(paired.loc["test dice", "seeds_for_target"])
    assert needed > 3
    claims = pd.read_csv(tmp_path / "claims.csv").set_index("finding of the study")
    row = claims.loc["Eff-UNet more accurate (test Dice)"]
    assert row["verdict"] == "inconclusive"
    assert row["detectable (80% power)"] == (f"no difference larger than {row['mde']:.2g} Dice; "
                                             f"{int(row['seeds_for_target'])} seeds per model would see 0.02")
    markdown = (tmp_path / "c.md").read_text()
    assert f"| {needed} " in markdown.split("## The study's claims")[0]  # the statistics table's column


def test_compact_table_fixed_decimals_and_caption_for_every_column(study, tmp_path):
    runs, references = study
    compare.aggregate(runs, references=references, **outputs(tmp_path))
    table = pd.read_csv(tmp_path / "c.csv")
    shown = compare.headline_table(table)
    assert list(shown.columns) == ["data set", "recipe", "model", "seeds", "Dice", "IoU", "accuracy", "inst. AP", "test loss",
                                   "best epoch", "s/epoch", "params (M)"]
    for header, decimals in (("Dice", 3), ("test loss", 4), ("best epoch", 0), ("s/epoch", 2)):
        for cell in shown[header]:
            if cell != "–":
                for number in cell.split(" ± "):
                    assert len((number.split(".") + [""])[1]) == decimals, (header, cell)  # epochs: integers
    assert shown.loc[0, "params (M)"] == "2.50" and shown.loc[2, "seeds"] == "–"
    assert shown.loc[2, "Dice"] == "0.937" and shown.loc[2, "test loss"] == "–"
    caption = compare.headline_caption(table)
    for header in shown.columns:
        assert f"**{header}**" in caption or header in ("data set", "model")
    assert all(line.startswith("- ") and len(line) < 250 for line in caption.splitlines())  # short bullets
    assert shown.loc[0, "recipe"] == "study" and shown.loc[2, "recipe"] == "–"  # reference rows: no recipe
    assert "dsb2018: per-image mean" in caption and "drive: pooled" in caption
    compact = (tmp_path / "c.md").read_text().split("## Statistics")[0]  # the claims table has words
    assert max(len(line) for line in compact.splitlines() if line.startswith("|")) < 200
    page = (tmp_path / "c.html").read_text()
    assert "<table" in page and page.count("<ul>") == 4 and "<li><b>params (M)</b>" in page  # captions as lists


def test_aggregate_with_no_runs_is_an_error():
    with pytest.raises(EffunetError, match="no training runs"):
        compare.comparison_table([])


# ------------------------------------------------------------------------------------ recipes


@pytest.fixture
def two_recipes(study, tmp_path):
    """The study's runs plus a `modern` recipe on DSB2018 where effunet-b0 gains 0.05 Dice over its study
    runs and resnet50-unet gains nothing (same per-image values as under the study, other seeds' noise)."""
    runs, references = study
    rng = np.random.default_rng(1)
    base = np.linspace(0.5, 0.8, 12)
    modern = []
    for seed in range(3):
        noise = rng.normal(0, 0.002, 12)
        modern.append(write_run(tmp_path, "dsb2018", "resnet50-unet", seed, base + 0.003 * seed + noise,
                                recipe="modern", ap=(0.40, 0.55)))
        modern.append(write_run(tmp_path, "dsb2018", "effunet-b0", seed, base + 0.15 + 0.003 * (2 - seed) + noise,
                                recipe="modern", ap=(0.50, 0.60)))
    return runs, modern, references


def test_each_recipe_has_its_own_rows_and_verdicts_and_each_model_is_compared_with_study(two_recipes, tmp_path):
    runs, modern, references = two_recipes
    table = compare.aggregate(runs + modern, references=references, **outputs(tmp_path))
    keys = list(table[["dataset", "recipe", "model"]].itertuples(index=False, name=None))
    assert keys[:5] == [("dsb2018", "study", "resnet50-unet"), ("dsb2018", "study", "effunet-b0"),
                        ("dsb2018", "modern", "resnet50-unet"), ("dsb2018", "modern", "effunet-b0"),
                        ("dsb2018", "", "protocol ceiling")]
    rows = table.set_index(["dataset", "recipe", "model"])
    assert rows.loc[("dsb2018", "modern", "effunet-b0"), "dice_mean"] == pytest.approx(
        np.linspace(0.5, 0.8, 12).mean() + 0.153, abs=2e-3)

    paired = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    dice = paired[(paired.dataset == "dsb2018") & (paired.quantity == "test dice")].set_index(
        ["recipe", "model", "baseline_recipe", "baseline"])
    within = dice.loc[("modern", "effunet-b0", "modern", "resnet50-unet")]
    assert within["family"] == "architectures, modern" and within["verdict"] == "effunet-b0 better"
    assert within["difference"] == pytest.approx(0.15, abs=3e-3)
    gain = dice.loc[("modern", "effunet-b0", "study", "effunet-b0")]
    assert gain["family"] == "recipe vs study" and gain["verdict"] == "effunet-b0/modern better"
    assert gain["difference"] == pytest.approx(0.05, abs=3e-3)
    same = dice.loc[("modern", "resnet50-unet", "study", "resnet50-unet")]
    assert same["verdict"] == "no evidence of a difference"
    # No recipe-vs-study row for DRIVE (no other recipe there) and none comparing study with itself.
    assert not ((paired.dataset == "drive") & (paired.family == "recipe vs study")).any()
    assert not ((paired.recipe == "study") & (paired.baseline_recipe != "study")).any()

    # Holm within each family: the study's rows are those of a study-only aggregate, the recipe rows'
    # corrected p-values are Holm over their own family.
    alone = tmp_path / "alone"
    alone.mkdir()
    compare.aggregate(runs, references=references, **outputs(alone))
    study_only = pd.read_csv(alone / "p.csv")
    mine = paired[paired.family == "architectures, study"].reset_index(drop=True)
    assert list(mine.p_holm) == pytest.approx(list(study_only.p_holm))
    assert list(mine.verdict) == list(study_only.verdict)
    family = paired[paired.family == "recipe vs study"]
    assert list(family.p_holm) == pytest.approx(list(statistics.holm(family.p.to_numpy())))
    assert len(family) == 4  # two models x (dice, loss)

    # The claims are the study's: the same with or without the modern runs.
    assert pd.read_csv(tmp_path / "claims.csv").equals(pd.read_csv(alone / "claims.csv"))
    markdown = (tmp_path / "c.md").read_text()
    assert "modern − study" in markdown and "effunet-b0/modern better" in markdown


def test_test_losses_of_different_loss_functions_are_not_compared(two_recipes, tmp_path):
    """A recipe trained with BCE + Dice is compared with `study` (BCE) on Dice only; within the recipe,
    where every model has the same loss, the loss rows stay."""
    runs, modern, references = two_recipes
    for run in modern:
        summary = json.loads(Path(run.run).read_text())
        Path(run.run).write_text(json.dumps({**summary, "loss": "bce+dice", "instances": "none"}))
    compare.aggregate(runs + modern, references=references, **outputs(tmp_path))
    paired = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    across = paired[paired.family == "recipe vs study"]
    assert sorted(across.quantity) == ["test dice", "test dice"]  # no test-loss row across the two losses
    within = paired[(paired.family == "architectures, modern")]
    assert sorted(within.quantity) == ["test dice", "test loss"]
    assert RunRecord({"loss": "bce+dice", "instances": "boundary"}).loss_function == "bce+dice per channel (boundary)"
    assert RunRecord({"settings": {"loss": "bce"}}).loss_function == "bce"


def test_charts_draw_one_bar_per_model_and_recipe(two_recipes, tmp_path):
    from effunet import plots

    runs, modern, references = two_recipes
    table = compare.aggregate(runs + modern, references=references, **outputs(tmp_path))
    labelled = plots.recipe_labels(table)
    assert "effunet-b0 / modern" in set(labelled.model) and "effunet-b0 / study" in set(labelled.model)
    assert "protocol ceiling" in set(labelled.model)  # reference rows keep their name
    assert plots.recipe_labels(compare.comparison_table([compare.run_record(r) for r in runs])).model.tolist() == [
        "resnet50-unet", "effunet-b0", "resnet50-unet", "effunet-b0"]  # one recipe: names unchanged
    out = plots.comparison_chart(tmp_path / "c.csv", ["dice"], tmp_path / "q.png", "t")
    assert out.exists() and out.with_suffix(".svg").exists()


def test_cost_table_and_figure_one_point_per_model_and_recipe(two_recipes, tmp_path):
    from effunet import plots

    runs, modern, references = two_recipes
    extra = [write_run(tmp_path, "dsb2018", "effunet-b3", seed, np.full(12, 0.9), recipe="modern",
                       parameters=12_000_000, seconds_to_best=100.0 + 10 * seed, ap=(0.6, 0.7)) for seed in range(3)]
    compare.aggregate(runs + modern + extra, references=references, **outputs(tmp_path),
                      cost_csv=tmp_path / "cost.csv")
    cost = pd.read_csv(tmp_path / "cost.csv", keep_default_na=False, na_values=[""])
    assert len(cost) == 2 * 2 + 2 + 1  # dsb2018 x 2 recipes x 2 models + b3 (modern), drive x 2 models
    b3 = cost[(cost.model == "effunet-b3")].iloc[0]
    assert (b3.dataset, b3.recipe, b3.seeds) == ("dsb2018", "modern", 3)
    assert b3.parameters_mean == 12_000_000 and b3.parameters_std == 0
    assert b3.seconds_to_best_mean == pytest.approx(110.0) and b3.seconds_to_best_std == pytest.approx(10.0)
    assert b3.dice_image_mean_mean == pytest.approx(0.9) and b3.instance_ap_split_mean == pytest.approx(0.7)
    drive = cost[cost.dataset == "drive"]
    # DRIVE's per-image Dice, not its pooled headline (0.81).
    assert drive.dice_image_mean_mean.iloc[1] == pytest.approx(np.linspace(0.5, 0.8, 12)[:4].mean() + 0.002)
    markdown = (tmp_path / "c.md").read_text()
    assert "## Quality vs cost" in markdown and "110.0 ± 10.0" in markdown and "12.00" in markdown
    assert "| inst. AP (boundary) |" not in markdown  # no run has a boundary channel: no empty column

    points = plots.cost_points(cost, "dsb2018", "dice_image_mean", "seconds_to_best")
    point = points[(points.model == "effunet-b3")].iloc[0]
    assert (point.recipe, point.x, point.xerr, point.y) == ("modern", pytest.approx(110.0), pytest.approx(10.0),
                                                            pytest.approx(0.9))
    assert len(points) == 5
    no_ap = cost.assign(instance_ap_split_mean=np.where(cost.dataset == "drive", np.nan, cost.instance_ap_split_mean))
    assert plots.cost_points(no_ap, "drive", "instance_ap_split", "flops").empty
    assert len(plots.cost_figure(no_ap).axes) == 3 * 3  # dsb2018 Dice, dsb2018 AP, drive Dice x 3 cost axes
    boundary = no_ap.assign(instance_ap_watershed_mean=np.where(no_ap.dataset == "dsb2018", 0.8, np.nan))
    assert len(plots.cost_figure(boundary).axes) == 4 * 3  # and dsb2018's boundary AP
    out = plots.cost_chart(tmp_path / "cost.csv", tmp_path / "cost.png")
    assert out.exists() and out.with_suffix(".svg").exists()
    with pytest.raises(EffunetError, match="missing column"):
        plots.cost_chart(pd.DataFrame({"dataset": ["x"]}), tmp_path / "bad.png")


def test_own_data_sets_weigh_as_their_format_says_and_the_claims_follow_the_study_formats(study, tmp_path):
    """Data sets by name: a pooled-headline folder data set, and a dsb2018-format one not named dsb2018."""
    runs, references = study
    renamed = [compare.RunResult(RunId(**{**vars(r.id), "dataset": {"dsb2018": "nuclei", "drive": "cells"}[r.id.dataset]}),
                                 r.run, r.metrics, r.per_image) for r in runs]
    datasets = {"nuclei": {"format": "dsb2018", "headline": "per_image_mean", "study": "dsb2018"},
                "cells": {"format": "folder", "headline": "pooled", "study": None}}
    table = compare.aggregate(renamed, **{**outputs(tmp_path), "datasets": datasets}).set_index(["dataset", "model"])
    assert table.loc[("cells", "effunet-b0"), "dice_mean"] == pytest.approx(0.81)  # pooled, as its block says
    assert table.loc[("cells", "effunet-b0"), "headline"] == "pooled over scored pixels"
    claims = pd.read_csv(tmp_path / "claims.csv")
    assert set(claims["data set"]) == {"nuclei", "drive"}  # the vessel half of the study: not run
    assert (claims.loc[claims["data set"] == "drive", "measured here"] == "not run").all()
    only_own = [r for r in renamed if r.id.dataset == "cells"]
    compare.aggregate(only_own, **{**outputs(tmp_path), "datasets": {"cells": datasets["cells"]}})
    assert len(pd.read_csv(tmp_path / "claims.csv")) == 0
    text = (tmp_path / "c.md").read_text()
    assert compare.NO_STUDY_DATA in text and "cells" in text


# ------------------------------------------------------------------------------------ the package

PACKAGE = Path(compare.__file__).parent


def package_imports() -> dict[str, set[str]]:
    """Module -> the modules of effunet.compare it imports (relative or absolute, inside functions too)."""
    import ast

    names = {path.stem for path in PACKAGE.glob("*.py")}
    graph = {}
    for path in PACKAGE.glob("*.py"):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                found.update([node.module] if node.module else [alias.name for alias in node.names])
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("effunet.compare."):
                found.add(node.module.split(".")[2])
        graph[path.stem] = found & names
    return graph


def test_the_comparison_is_split_by_concern_without_import_circles_or_long_modules():
    graph = package_imports()
    assert {"records", "table", "paired", "study", "claims", "cost", "render", "aggregation"} <= set(graph)
    assert graph["records"] == set() and graph["study"] == set()  # reading files, the study's numbers: below all
    done, left = [], dict(graph)
    while left:  # a module is placed once everything it imports is: a circle never is
        ready = [name for name, targets in left.items() if targets <= set(done)]
        assert ready, f"import circle among {sorted(left)}"
        done += ready
        for name in ready:
            del left[name]
    assert done[-1] == "__init__"
    long = {path.name: n for path in PACKAGE.glob("*.py") if (n := len(path.read_text().splitlines())) > 250}
    assert not long, long
    # the run record is read through effunet.run only; compare defines none of its names
    for name in ("TRAINING", "TIMING", "loss_function", "STUDY_RECIPE", "RunId", "RunRecord"):
        defined = [path.name for path in PACKAGE.glob("*.py") if f"\n{name} = " in path.read_text()
                   or f"def {name}(" in path.read_text() or f"class {name}" in path.read_text()]
        assert not defined, (name, defined)


def test_the_study_s_published_numbers_are_written_once():
    from effunet.compare import study

    published = [f.study for f in compare.FINDINGS if any(c.isdigit() for c in f.study)]
    assert published == ["36 vs 69", "0.0912 vs 0.0638", "0.3011 vs 0.2552"]
    for path in PACKAGE.glob("*.py"):
        text = path.read_text()
        for number in ("36 vs 69", "0.0912", "0.3011", "0.2552", "0.0638"):
            assert path.name == "study.py" or number not in text, (path.name, number)
    assert {f.format for f in study.FINDINGS} == set(compare.STUDY_FORMATS)


# ------------------------------------------------------------------------------------ a finished workflow, again

FINISHED = os.environ.get("EFFUNET_AGGREGATE_BEFORE")  # a finished workflow's working directory


@pytest.mark.skipif(not FINISHED or not Path(FINISHED).is_dir(),
                    reason="set EFFUNET_AGGREGATE_BEFORE to a finished workflow's directory (results/, config/) to run")
def test_aggregate_script_reproduces_a_finished_workflows_tables_byte_for_byte(tmp_path, monkeypatch):
    """The aggregate script's body, called as the rule calls it, on the run files of a finished workflow
    (EFFUNET_AGGREGATE_BEFORE; its config EFFUNET_AGGREGATE_CONFIG, config/demo.yaml by default) writes
    the tables that workflow wrote, byte for byte: a refactoring of the comparison changed nothing."""
    import runpy
    from types import SimpleNamespace

    from effunet import config as configs
    from effunet.data import formats
    from effunet.layout import Layout

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(FINISHED)  # the layout's paths are relative to the workflow's directory
    config = configs.load(os.environ.get("EFFUNET_AGGREGATE_CONFIG", "config/demo.yaml"),
                          root / "workflow/schemas/config.schema.yaml")
    datasets, _ = configs.active_datasets(config)
    layout = Layout.of(config)
    runs = [RunId(dataset, model, seed, recipe) for dataset in datasets for recipe in config["recipes"]
            for model in config["models"] for seed in config["seeds"]]  # the rules' RUNS order
    files = [layout.files(run) for run in runs]
    new = {"table": tmp_path / "comparison.csv", "markdown": tmp_path / "comparison.md",
           "html": tmp_path / "comparison.html", "paired": tmp_path / "paired_tests.csv",
           "claims": tmp_path / "claims.csv", "cost": tmp_path / "cost.csv"}
    smk = SimpleNamespace(
        input=SimpleNamespace(runs=[f.run for f in files], metrics=[f.metrics for f in files],
                              per_image=[f.per_image for f in files],
                              references=[layout.reference(d) for d in datasets]),
        output=SimpleNamespace(**new),
        params=SimpleNamespace(runs=[vars(run) for run in runs],
                               target_difference=config["compare"]["target_difference"],
                               datasets={d: vars(formats.capabilities(config, d)) for d in datasets}))
    runpy.run_path(str(root / "workflow/scripts/aggregate.py"))["main"](smk)
    before = {"table": layout.comparison("csv"), "markdown": layout.comparison("md"),
              "html": layout.comparison("html"), "paired": layout.paired_tests, "claims": layout.claims,
              "cost": layout.cost}
    differ = [name for name, path in new.items() if path.read_bytes() != Path(before[name]).read_bytes()]
    assert not differ, f"re-aggregated tables differ from {FINISHED}'s: {differ}"
