"""Plots: valid PNGs written atomically, markers and overlay colours as documented, clear input errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from effunet import plots
from effunet.errors import EffunetError

COLUMNS = ["epoch", "loss", "accuracy", "iou", "dice", "val_loss", "val_accuracy", "val_iou", "val_dice",
           "learning_rate", "seconds"]


def write_run(folder, epochs=12, best=7, stop="early_stopping"):
    e = np.arange(1, epochs + 1)
    history = pd.DataFrame({"epoch": e, "loss": 1 / e, "accuracy": 1 - 0.5 / e, "iou": 0.5, "dice": 0.6,
                            "val_loss": 1 / e + 0.01 * np.abs(e - best), "val_accuracy": 0.98 - 0.5 / e,
                            "val_iou": 0.5, "val_dice": 0.6, "learning_rate": 1e-3, "seconds": 1.5})
    history.to_csv(folder / "history.csv", index=False)
    (folder / "run.json").write_text(json.dumps({"run_id": "abc", "best_epoch": best, "epochs_trained": epochs,
                                                 "stop_reason": stop}))
    return folder / "history.csv", folder / "run.json"


def check_png(path, min_width=400, min_height=200):
    """A complete PNG of reasonable size, with its SVG twin, alone in its folder apart from the inputs
    (no temporaries)."""
    from xml.etree import ElementTree

    assert ElementTree.parse(path.with_suffix(".svg")).getroot().tag.endswith("svg")
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG"
        assert image.mode in ("RGB", "RGBA")
        assert image.width >= min_width and image.height >= min_height
        pixels = np.asarray(image.convert("RGB"))
    assert not [p.name for p in path.parent.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]
    return pixels


def count_colour(pixels, colour):
    return int(np.all(pixels == np.array(colour, dtype=np.uint8), axis=-1).sum())


def has_colour(pixels, colour, at_least=50):
    return count_colour(pixels, colour) >= at_least


# ------------------------------------------------------------------------------- learning curves

def test_learning_curves_png(tmp_path):
    history, run = write_run(tmp_path)
    out = plots.learning_curves(history, run, tmp_path / "plots" / "curves.png", "dsb2018 unet seed 0")
    assert out == tmp_path / "plots" / "curves.png"
    check_png(out, 800, 300)


@pytest.mark.parametrize("stop, early", [("early_stopping", 12), ("max_epochs", None)])
def test_curve_markers(tmp_path, stop, early):
    history, run = write_run(tmp_path, epochs=12, best=7, stop=stop)
    marks = plots.curve_markers(plots.read_history(history), plots.read_run(run))
    assert marks == {"best_epoch": 7, "early_stop_epoch": early}


def test_curve_markers_reject_a_run_of_another_history(tmp_path):
    history, run = write_run(tmp_path, epochs=12, best=7)
    frame = plots.read_history(history)
    with pytest.raises(EffunetError, match="best_epoch 20"):
        plots.curve_markers(frame, {"best_epoch": 20, "epochs_trained": 12, "stop_reason": "max_epochs"})
    with pytest.raises(EffunetError, match="epochs_trained 30"):
        plots.curve_markers(frame, {"best_epoch": 7, "epochs_trained": 30, "stop_reason": "max_epochs"})
    with pytest.raises(EffunetError, match=str(run)):
        plots.learning_curves(history, _rewrite(run, best_epoch=0), tmp_path / "c.png", "t")


def _rewrite(run, **changes):
    run.write_text(json.dumps({**json.loads(run.read_text()), **changes}))
    return run


@pytest.mark.parametrize("content, message", [
    ("", "not a readable history"),
    (",".join(COLUMNS) + "\n", "no epochs"),
    ("epoch,loss,accuracy\n1,0.5,0.9\n", "lacks column.*val_loss, val_accuracy"),
    ("epoch,loss,accuracy,val_loss,val_accuracy\n1,0.5,0.9,oops,0.8\n", "'val_loss' is not numeric"),
    ("epoch,loss,accuracy,val_loss,val_accuracy\n2,0.5,0.9,0.6,0.8\n1,0.4,0.9,0.5,0.8\n", "not increasing"),
])
def test_malformed_history_names_the_file(tmp_path, content, message):
    _, run = write_run(tmp_path)
    bad = tmp_path / "history.csv"
    bad.write_text(content)
    with pytest.raises(EffunetError, match=message) as error:
        plots.learning_curves(bad, run, tmp_path / "curves.png", "t")
    assert str(bad) in str(error.value)
    assert not (tmp_path / "curves.png").exists()


def test_missing_or_malformed_run_names_the_file(tmp_path):
    history, run = write_run(tmp_path)
    with pytest.raises(EffunetError, match=f"{tmp_path / 'nope.json'}.*not found"):
        plots.learning_curves(history, tmp_path / "nope.json", tmp_path / "c.png", "t")
    run.write_text("{broken")
    with pytest.raises(EffunetError, match=f"{run}.*not valid JSON"):
        plots.learning_curves(history, run, tmp_path / "c.png", "t")
    run.write_text(json.dumps({"run_id": "x"}))
    with pytest.raises(EffunetError, match="lacks key.*best_epoch"):
        plots.learning_curves(history, run, tmp_path / "c.png", "t")


# -------------------------------------------------------------------------- qualitative panels

def test_error_overlay_colours_each_outcome():
    image = np.full((4, 4, 3), 200, np.uint8)
    truth = np.zeros((4, 4), bool)
    predicted = np.zeros((4, 4), bool)
    truth[0, 0] = predicted[0, 0] = True   # TP
    predicted[0, 1] = True                 # FP
    truth[0, 2] = True                     # FN
    predicted[3, 3] = truth[3, 2] = True   # FP and FN outside the region
    region = np.ones((4, 4), bool)
    region[3, 2:] = False
    out = plots.error_overlay(image, truth, predicted, region)
    assert out.shape == (4, 4, 3) and out.dtype == np.uint8
    assert tuple(out[0, 0]) == plots.TP_COLOUR
    assert tuple(out[0, 1]) == plots.FP_COLOUR
    assert tuple(out[0, 2]) == plots.FN_COLOUR
    assert tuple(out[1, 1]) == (round(200 * plots.DIM),) * 3            # TN: grey image, dimmed
    assert tuple(out[3, 3]) == tuple(out[3, 2]) == (round(200 * plots.OUTSIDE_DIM),) * 3  # not scored
    assert len({plots.TP_COLOUR, plots.FP_COLOUR, plots.FN_COLOUR, tuple(out[1, 1])}) == 4


def test_error_overlay_without_region_scores_everything():
    image = np.zeros((2, 2, 3), np.uint8)
    out = plots.error_overlay(image, np.array([[1, 0], [0, 0]]), np.array([[0, 0], [0, 1]]))
    assert tuple(out[0, 0]) == plots.FN_COLOUR and tuple(out[1, 1]) == plots.FP_COLOUR


def make_examples(n=2, size=48):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    examples = []
    for i in range(n):
        truth = (yy - size // 2) ** 2 + (xx - size // 2) ** 2 < (size // 4) ** 2
        probability = np.zeros((size, size))
        probability[:, : size // 2] = 0.9  # left half predicted: TP, a big FP block, FN on the right
        examples.append({"id": f"img{i}", "split": "test", "truth": truth, "probability": probability,
                         "image": rng.integers(0, 255, (size, size, 3), dtype=np.uint8),
                         "region": (yy - size // 2) ** 2 + (xx - size // 2) ** 2 < (size // 2) ** 2})
    return examples


def test_qualitative_panel_png_shows_errors_in_their_colours(tmp_path):
    out = plots.qualitative_panel(make_examples(2), tmp_path / "panel.png", "drive unet seed 0")
    pixels = check_png(out, 600, 300)
    for colour in (plots.TP_COLOUR, plots.FP_COLOUR, plots.FN_COLOUR):  # more than the legend's patches
        assert has_colour(pixels, colour, at_least=3000), colour
    # one row per example: a third example makes the figure taller
    taller = check_png(plots.qualitative_panel(make_examples(3), tmp_path / "panel3.png", "t"), 600, 300)
    assert taller.shape[0] > pixels.shape[0] * 1.3


def test_qualitative_panel_threshold(tmp_path):
    examples = make_examples(1)
    examples[0]["probability"] = examples[0]["probability"] * 0.5  # 0.45: below the default threshold
    pixels = check_png(plots.qualitative_panel(examples, tmp_path / "low.png", "t"), 600, 150)
    legend_only = count_colour(pixels, plots.FP_COLOUR)
    area = (plots.DPI / 150) ** 2  # pixels per 1/150 inch squared: the legend's patches grow with the DPI
    assert legend_only < 1000 * area and not has_colour(pixels, plots.TP_COLOUR, at_least=1000 * area)
    pixels = check_png(plots.qualitative_panel(examples, tmp_path / "low2.png", "t", threshold=0.4), 600, 150)
    assert count_colour(pixels, plots.FP_COLOUR) > legend_only + 3000


@pytest.mark.parametrize("key, value, message", [
    ("probability", np.zeros((40, 48)), "probability shape"),
    ("truth", np.zeros((48, 47), bool), "truth shape"),
    ("region", np.ones((10, 10), bool), "region shape"),
    ("probability", np.full((48, 48), 1.5), r"outside \[0, 1\]"),
    ("image", np.zeros((48, 48, 3)), "dtype"),
    ("truth", None, "missing truth"),
])
def test_qualitative_panel_rejects_inconsistent_examples(tmp_path, key, value, message):
    examples = make_examples(2)
    examples[1][key] = value
    with pytest.raises(EffunetError, match=message) as error:
        plots.qualitative_panel(examples, tmp_path / "panel.png", "t")
    assert "test: img1" in str(error.value)
    assert not list(tmp_path.iterdir())


def test_qualitative_panel_needs_examples(tmp_path):
    with pytest.raises(EffunetError, match="no examples"):
        plots.qualitative_panel([], tmp_path / "panel.png", "t")


# ---------------------------------------------------------------------------------- charts

def make_table():
    rows = []
    for dataset in ("dsb2018", "drive"):
        for k, model in enumerate(("unet", "resnet50-unet", "effunet-b0")):
            rows.append({"dataset": dataset, "model": model, "dice_mean": 0.7 + 0.05 * k, "dice_std": 0.02,
                         "iou_mean": 0.6 + 0.05 * k, "iou_std": 0.03, "accuracy_mean": 0.95, "accuracy_std": 0.01,
                         "epochs_trained_mean": 80 - 10 * k, "epochs_trained_std": 5.0,
                         "seconds_per_epoch_mean": 3.0 + k, "seconds_per_epoch_std": 0.2})
    return pd.DataFrame(rows)


def hex_rgb(colour):
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def test_comparison_chart_png_has_a_bar_per_model(tmp_path):
    out = plots.comparison_chart(make_table(), ["accuracy", "iou", "dice"], tmp_path / "cmp.png", "test metrics")
    pixels = check_png(out, 800, 300)
    for colour in plots.MODEL_COLOURS[:3]:
        assert has_colour(pixels, hex_rgb(colour), at_least=500), colour
    assert not has_colour(pixels, hex_rgb(plots.MODEL_COLOURS[3]), at_least=1)


def test_comparison_chart_reads_csv_and_names_missing_columns(tmp_path):
    csv = tmp_path / "comparison.csv"
    make_table().drop(columns=["dice_std"]).to_csv(csv, index=False)
    check_png(plots.comparison_chart(csv, ["dice"], tmp_path / "dice.png", "t"), 400, 200)  # no std: no bars
    with pytest.raises(EffunetError, match=f"{csv}.*missing column.*hd95_mean"):
        plots.comparison_chart(csv, ["dice", "hd95"], tmp_path / "x.png", "t")
    assert not (tmp_path / "x.png").exists()


def test_model_order_is_stable():
    table = make_table().iloc[::-1]  # effunet-b0 appears first
    assert plots.model_order(table) == ["effunet-b0", "resnet50-unet", "unet"]
    assert plots.model_order(table, ["unet", "nope", "effunet-b0"]) == ["unet", "effunet-b0", "resnet50-unet"]


def test_training_speed_chart_png(tmp_path):
    out = plots.training_speed_chart(make_table(), tmp_path / "speed.png")
    pixels = check_png(out, 800, 300)
    for colour in plots.MODEL_COLOURS[:3]:
        assert has_colour(pixels, hex_rgb(colour), at_least=500), colour
    with pytest.raises(EffunetError, match="seconds_per_epoch_mean"):
        plots.training_speed_chart(make_table().drop(columns=["seconds_per_epoch_mean"]), tmp_path / "x.png")


# ------------------------------------------------------------------ figure content (what is drawn)

def test_learning_curves_figure_marks_best_and_early_stop(tmp_path):
    history, _ = write_run(tmp_path, epochs=12, best=7)
    fig = plots.learning_curves_figure(plots.read_history(history), {"best_epoch": 7, "early_stop_epoch": 12}, "t")
    accuracy, loss = fig.axes
    assert "ccuracy" in accuracy.get_ylabel() and loss.get_ylabel() == "Loss"
    for ax in (accuracy, loss):
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert list(lines["best epoch 7 (weights kept)"].get_xdata()) == [7, 7]
        assert list(lines["early stop (epoch 12)"].get_xdata()) == [12]
        assert {"train", "validation"} <= set(lines)
        assert [t.get_text() for t in ax.get_legend().get_texts()][:2] == ["train", "validation"]
    fig = plots.learning_curves_figure(plots.read_history(history), {"best_epoch": 7, "early_stop_epoch": None}, "t")
    assert not any("early stop" in line.get_label() for line in fig.axes[0].get_lines())


def test_qualitative_figure_layout():
    fig = plots.qualitative_figure(make_examples(3), "t")
    assert len(fig.axes) == 12
    assert [fig.axes[4 * row].get_ylabel() for row in range(3)] == ["img0\n(test)", "img1\n(test)", "img2\n(test)"]
    assert [ax.get_title() for ax in fig.axes[:4]] == ["image", "ground truth", "prediction (p > 0.5)", "errors"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["true positive", "false positive",
                                                                  "false negative"]


def test_comparison_figure_bars_in_model_order_with_std():
    table = make_table()
    fig = plots.comparison_figure(table, ["iou", "dice"], "t", models=["effunet-b0", "unet", "resnet50-unet"])
    assert [ax.get_title() for ax in fig.axes] == ["dsb2018", "drive"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["effunet-b0", "unet", "resnet50-unet"]
    bars = fig.axes[0].containers  # BarContainers, one per model, in legend order
    heights = [[round(p.get_height(), 3) for p in c.patches] for c in bars if hasattr(c, "patches")]
    assert heights == [[0.7, 0.8], [0.6, 0.7], [0.65, 0.75]]  # [iou, dice] of effunet-b0, unet, resnet50-unet
    error_bars = [c.errorbar for c in bars if hasattr(c, "patches")]
    segments = error_bars[0].lines[2][0].get_segments()
    assert [round(seg[1][1] - seg[0][1], 3) for seg in segments] == [0.06, 0.04]  # 2 x std


def test_comparison_rejects_duplicate_rows():
    table = pd.concat([make_table(), make_table().iloc[:1]])
    with pytest.raises(EffunetError, match="more than one row for dsb2018 / unet"):
        plots.comparison_figure(table, ["dice"], "t")


def test_short_ids_for_panel_labels():
    long_id = "0a7d30b252359a10fd298b638b90cb9ada3acced4e0c0e5a3692013f432ee4e9"  # a DSB2018 id
    assert plots.short_id(long_id) == "0a7d30b252…"
    assert plots.short_id("21_training") == "21_training"  # short enough: unchanged
    examples = make_examples(1)
    examples[0]["id"] = long_id
    assert plots.qualitative_figure(examples, "t").axes[0].get_ylabel() == "0a7d30b252…\n(test)"


def with_references(table):
    references = pd.DataFrame([{"dataset": d, "model": m, "kind": "reference", "dice_mean": 0.95, "iou_mean": 0.9,
                                "accuracy_mean": 0.99} for d, m in (("dsb2018", "protocol ceiling"),
                                                                  ("drive", "protocol ceiling"),
                                                                  ("drive", "2nd observer"))])
    return pd.concat([references.iloc[:1], table.assign(kind="model"), references.iloc[1:]], ignore_index=True)


def test_comparison_figure_draws_reference_rows_last_hatched_in_grey():
    fig = plots.comparison_figure(with_references(make_table()), ["iou", "dice"], "t")
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["unet", "resnet50-unet", "effunet-b0", "protocol ceiling", "2nd observer"]
    dsb2018, drive = ([c for c in ax.containers if hasattr(c, "patches")] for ax in fig.axes)
    assert [c.patches[0].get_hatch() for c in drive] == [None, None, None, "//", ".."]
    assert tuple(round(v, 3) for v in drive[0].patches[0].get_facecolor()[:3]) == tuple(
        round(v / 255, 3) for v in hex_rgb(plots.MODEL_COLOURS[0]))  # models keep their colours
    assert [round(p.get_height(), 3) for p in drive[3].patches] == [0.9, 0.95]
    # no 2nd observer on dsb2018: no slot for it (no empty "n/a" bar), the ceiling keeps its grey
    assert [c.patches[0].get_hatch() for c in dsb2018] == [None, None, None, "//"]
    assert [c.get_label() for c in dsb2018] == ["unet", "resnet50-unet", "effunet-b0", "protocol ceiling"]
    assert "n/a" not in [t.get_text() for t in fig.axes[0].texts]  # and no n/a label


def test_training_speed_figure_uses_fair_timing_and_leaves_out_reference_rows():
    table = with_references(make_table()).assign(best_epoch_mean=20.0, first_epoch_seconds_mean=30.0,
                                                  seconds_to_best_mean=60.0)
    fig = plots.training_speed_figure(table)
    titles = [ax.get_title() for ax in fig.axes[:5]]
    assert titles == [title for _, title, _, _ in plots.SPEED_PANELS]
    assert "median of epochs 2.." in titles[2] and "graph building" in titles[3]
    assert "median" in fig.get_suptitle()
    # units on the y-axes, not "mean over seeds"
    assert [ax.get_ylabel() for ax in fig.axes[:5]] == ["epoch", "epochs", "seconds", "seconds", "seconds"]
    legend = fig.axes[5].get_legend()  # two panels a row: the legend takes the sixth slot, no empty one
    assert [t.get_text() for t in legend.get_texts()] == ["unet", "resnet50-unet", "effunet-b0"]
    bars = [c for c in fig.axes[2].containers if hasattr(c, "patches")]
    assert [round(p.get_height(), 2) for p in bars[1].patches] == [4.0, 4.0]  # resnet50-unet's s/epoch


def test_seed_curves_mean_and_range_over_the_seeds_still_training():
    a = pd.DataFrame({"epoch": [1, 2, 3], "val_loss": [0.5, 0.4, 0.3]})
    b = pd.DataFrame({"epoch": [1, 2], "val_loss": [0.7, 0.2]})  # stopped early
    curve = plots.seed_curves([a, b], "val_loss")
    assert curve["epoch"].tolist() == [1, 2, 3] and curve["seeds"].tolist() == [2, 2, 1]
    assert curve["mean"].tolist() == pytest.approx([0.6, 0.3, 0.3])
    assert curve["low"].tolist() == pytest.approx([0.5, 0.2, 0.3]) and curve["high"].tolist() == pytest.approx(
        [0.7, 0.4, 0.3])


def test_learning_curves_overlay_one_curve_per_model_best_epochs_marked(tmp_path):
    histories, runs = [], []
    for model, best in (("unet", 7), ("effunet-b0", 4)):
        for seed in (0, 1):
            folder = tmp_path / "drive" / model / f"seed{seed}"
            folder.mkdir(parents=True)
            history, run = write_run(folder, epochs=10 + seed, best=best + seed)
            histories.append(history)
            runs.append(run)
    models = [h.parent.parent.name for h in histories]
    out = plots.learning_curves_overlay(histories, runs, models, tmp_path / "overlay.png", "drive")
    check_png(out, 800, 300)
    with pytest.raises(EffunetError, match="one run.json and model per history"):
        plots.learning_curves_overlay(histories, runs[:1], models, tmp_path / "x.png", "drive")
    per_model = {}
    for history, run in zip(histories, runs):
        frame = plots.read_history(history)
        per_model.setdefault(history.parent.parent.name, []).append((frame, plots.read_run(run)["best_epoch"]))
    fig = plots.overlay_figure(per_model, "drive")
    loss_ax = fig.axes[0]
    lines = {line.get_label(): line for line in loss_ax.get_lines()}
    assert list(lines["unet best epochs"].get_xdata()) == [7, 8]
    assert list(lines["effunet-b0 best epochs"].get_xdata()) == [4, 5]
    assert list(lines["unet (2 seeds)"].get_xdata()) == list(range(1, 12))
    assert len(loss_ax.collections) == 2  # one band per model
    assert loss_ax.get_ylabel() == "Validation loss" and fig.axes[1].get_ylabel() == "Validation pixel accuracy"


# ------------------------------------------------------ every figure fits a page, nothing clipped

COMPARISON_TITLE = ("Test split, native resolution, mean ± std over seeds (DSB2018: per-image means; DRIVE: pooled in "
                    "the field of view); hatched: reference rows")  # workflow/scripts/plot_comparison.py's


def spiky_history(epochs=60, spike_at=23, spike=11.0, seed=0):
    """A realistic run: losses falling from 0.7 to about 0.15, one validation-loss spike (Eff-UNet's to 11)."""
    rng = np.random.default_rng(seed)
    e = np.arange(1, epochs + 1)
    loss = 0.15 + 0.55 * np.exp(-e / 8) + rng.normal(0, 0.005, epochs)
    val_loss = loss + 0.03 + rng.normal(0, 0.01, epochs)
    val_loss[spike_at - 1] = spike
    return pd.DataFrame({"epoch": e, "loss": loss, "accuracy": 1 - loss / 4, "val_loss": val_loss,
                         "val_accuracy": 1 - np.minimum(val_loss, 1) / 4})


def full_table(recipes=("study",)):
    """A comparison table like the aggregate step's: three models per recipe, DSB2018 and DRIVE, reference rows
    (DRIVE's 2nd observer only), every charted column."""
    rows = []
    for recipe in recipes:
        for row in make_table().to_dict("records"):
            rows.append({**row, "recipe": recipe, "kind": "model", "mcc_mean": row["dice_mean"] - 0.05, "mcc_std": 0.02,
                         "best_epoch_mean": 40.0, "best_epoch_std": 6.0, "first_epoch_seconds_mean": 31.5,
                         "first_epoch_seconds_std": 2.0, "seconds_to_best_mean": 1234.5, "seconds_to_best_std": 80.0})
    table = with_references(pd.DataFrame(rows))
    table["recipe"] = table["recipe"].fillna("")
    return table.assign(mcc_mean=table["mcc_mean"].fillna(0.6))


def cost_frame(recipes=("study",)):
    rows = []
    for r, recipe in enumerate(recipes):
        for dataset in ("dsb2018", "drive"):
            for k, (model, params) in enumerate((("unet", 0.49e6), ("resnet50-unet", 32.5e6), ("effunet-b0", 5.9e6))):
                ap = dataset == "dsb2018"
                rows.append({"dataset": dataset, "recipe": recipe, "model": model, "seeds": 3,
                             "parameters_mean": params, "parameters_std": 0.0, "flops_mean": 2e9 * (k + 1),
                             "flops_std": 0.0, "seconds_to_best_mean": 600.0 + 400 * k + 100 * r,
                             "seconds_to_best_std": 50.0, "wall_seconds_mean": 900.0, "wall_seconds_std": 60.0,
                             "dice_image_mean_mean": 0.8 + 0.02 * k + 0.01 * r, "dice_image_mean_std": 0.01,
                             "instance_ap_split_mean": 0.5 + 0.03 * k if ap else np.nan,
                             "instance_ap_split_std": 0.02 if ap else np.nan,
                             "instance_ap_watershed_mean": 0.55 if ap and recipe != "study" else np.nan,
                             "instance_ap_watershed_std": 0.02 if ap and recipe != "study" else np.nan})
    return pd.DataFrame(rows)


def overlay_inputs(seeds=3):
    per_model = {}
    for k, model in enumerate(("unet", "resnet50-unet", "effunet-b0")):
        for seed in range(seeds):
            history = spiky_history(60 - 5 * seed, spike=11.0 if (model, seed) == ("effunet-b0", 0) else 0.4,
                                    seed=10 * k + seed)
            per_model.setdefault(model, []).append((history, 30 + k + seed))
    return per_model


def drive_examples():
    examples = make_examples(5, size=584)  # DRIVE's native size
    for k, example in enumerate(examples):
        example["id"], example["split"] = f"{21 + k}_training", ("train", "train", "val", "test", "test")[k]
    return examples


def dsb_examples():
    examples = make_examples(3, size=256)
    for k, example in enumerate(examples):
        example["id"] = f"{k}a7d30b252359a10fd298b638b90cb9ada3acced4e0c0e5a3692013f432ee4e9"
    return examples


def every_figure():
    """Every kind of figure the workflow draws, from inputs like a real study's (name, figure)."""
    history = spiky_history()
    run_title = "resnet50-unet on dsb2018, seed 0"
    yield "learning curves", plots.learning_curves_figure(history, {"best_epoch": 40, "early_stop_epoch": 60}, run_title)
    yield "examples (DRIVE)", plots.qualitative_figure(drive_examples(), "effunet-b0 on drive, seed 0")
    yield "examples (DSB2018)", plots.qualitative_figure(dsb_examples(), run_title)
    for recipes in (("study",), ("study", "modern")):
        yield f"comparison {recipes}", plots.comparison_figure(full_table(recipes), ["dice", "iou", "accuracy", "mcc"],
                                                               COMPARISON_TITLE)
        yield f"training speed {recipes}", plots.training_speed_figure(full_table(recipes))
        yield f"cost {recipes}", plots.cost_figure(cost_frame(recipes))
    for seeds in (1, 3):
        yield f"overlay, {seeds} seed(s)", plots.overlay_figure(overlay_inputs(seeds),
                                                                 "Validation curves on drive, study recipe")


def outside(fig):
    """The texts (and axes' tick labels) that matplotlib's renderer draws outside the figure, with their boxes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)  # constrained layout places everything at draw time
    box = fig.bbox

    def inside(extent):
        return (extent.x0 >= box.x0 - 0.5 and extent.y0 >= box.y0 - 0.5 and extent.x1 <= box.x1 + 0.5
                and extent.y1 <= box.y1 + 0.5)

    ticks, bad = set(), []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                ticks.update((tick.label1, tick.label2))
            extent = axis.get_tightbbox(renderer)  # the tick labels drawn (those in view) and the axis label
            if ax.axison and extent is not None and not inside(extent):
                bad.append((f"{ax.get_title()!r} {axis.axis_name}-axis", extent))
    for text in fig.findobj(Text):
        if text in ticks or not text.get_visible() or not text.get_text().strip():
            continue
        extent = text.get_window_extent(renderer)
        if not inside(extent):
            bad.append((text.get_text(), extent))
    return bad


@pytest.mark.filterwarnings("error:constrained_layout not applied")  # how labels end up clipped: layout gives up
@pytest.mark.parametrize("name, fig", list(every_figure()), ids=lambda value: value if isinstance(value, str) else "")
def test_every_figure_fits_a_page_column_with_nothing_clipped(name, fig):
    assert fig.get_figwidth() <= plots.PAGE_WIDTH, (name, fig.get_figwidth())  # 180 mm
    assert outside(fig) == [], name


@pytest.mark.filterwarnings("ignore:constrained_layout not applied")
def test_the_bounds_check_sees_a_clipped_label():
    fig = plots.cost_figure(cost_frame())
    fig.text(0.95, 0.5, "a long model name running off the page")  # figure texts are not laid out
    assert [text for text, _ in outside(fig)] == ["a long model name running off the page"]
    fig = plots.comparison_figure(full_table(), ["dice"], "t")
    fig.axes[0].yaxis.set_label_coords(-3, 0.5)  # an axis label pushed past the left edge
    assert [where for where, _ in outside(fig)] == ["'dsb2018' y-axis", "Test score"]


def test_saved_figures_are_print_resolution_text_in_svg(tmp_path):
    out = plots.cost_chart(cost_frame(), tmp_path / "cost.png")
    with Image.open(out) as image:
        assert image.width == round(plots.WIDTH * plots.DPI) and plots.DPI >= 300
        assert image.width <= plots.PAGE_WIDTH * plots.DPI
    svg = out.with_suffix(".svg").read_text()
    assert svg.count("<text") > 20 and ">effunet-b0</text>" in svg  # labels editable and searchable


def test_figures_name_metrics_as_the_tables_do_and_leave_out_meaningless_legend_entries():
    fig = plots.comparison_figure(full_table(), ["dice", "iou", "accuracy", "mcc"], "t")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["Dice", "IoU", "accuracy", "MCC"]
    assert fig.axes[0].get_ylabel() == "Test score"
    legend = [t.get_text() for t in plots.cost_figure(cost_frame()).legends[0].get_texts()]
    assert legend == ["unet", "resnet50-unet", "effunet-b0"]  # one recipe: no "recipe study" marker
    legend = [t.get_text() for t in plots.cost_figure(cost_frame(("study", "modern"))).legends[0].get_texts()]
    assert legend[3:] == ["recipe study", "recipe modern"]


def test_robust_top_leaves_off_spikes_only():
    decay = 1 / np.arange(1, 13)
    assert plots.robust_top(decay) is None  # a smooth fall keeps every point, the first epoch too
    assert plots.robust_top(np.r_[0.7, np.linspace(0.5, 0.1, 50), 11.0]) == pytest.approx(0.7)
    assert plots.robust_top(np.r_[np.linspace(0.5, 0.1, 100), 11.0, 9.0]) == pytest.approx(0.5)  # two spikes
    assert plots.robust_top([0.3, 0.2]) is None


def test_a_loss_spike_is_marked_not_flattening_the_other_curves():
    per_model = overlay_inputs(1)
    fig = plots.overlay_figure(per_model, "drive")
    loss = fig.axes[0]
    assert loss.get_ylim()[1] < 1.0  # the spike to 11 is left off: the curves between 0.15 and 0.75 fill the axis
    assert "11" in [t.get_text() for t in loss.texts]  # its value is printed at the top edge
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["unet (1 seed)", "resnet50-unet (1 seed)", "effunet-b0 (1 seed)",
                      "best epoch (lowest validation loss)", "off the axis (value printed)"]
    assert "band" not in fig.get_suptitle() and "one seed" in fig.get_suptitle()  # one seed: no band promised
    assert "band" in plots.overlay_figure(overlay_inputs(3), "drive").get_suptitle()
    curves = plots.learning_curves_figure(spiky_history(), {"best_epoch": 40, "early_stop_epoch": None}, "t")
    assert curves.axes[1].get_ylim()[1] < 1.0 and "11" in [t.get_text() for t in curves.axes[1].texts]
    # the data are unchanged: the line still holds the spike, only the axis leaves it off
    validation = [line for line in curves.axes[1].get_lines() if line.get_label() == "validation"][0]
    assert max(validation.get_ydata()) == pytest.approx(11.0)
    calm = plots.overlay_figure({"unet": [(spiky_history(spike=0.3), 40)]}, "drive")
    assert not calm.axes[0].texts and len(calm.legends[0].get_texts()) == 2
