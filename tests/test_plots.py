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
    assert legend_only < 1000 and not has_colour(pixels, plots.TP_COLOUR, at_least=1000)
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
    bars = [c for c in fig.axes[0].containers if hasattr(c, "patches")]
    assert [c.patches[0].get_hatch() for c in bars] == [None, None, None, "//", ".."]
    assert tuple(round(v, 3) for v in bars[0].patches[0].get_facecolor()[:3]) == tuple(
        round(v / 255, 3) for v in hex_rgb(plots.MODEL_COLOURS[0]))  # models keep their colours
    assert [round(p.get_height(), 3) for p in bars[3].patches] == [0.9, 0.95]
    assert [round(p.get_height(), 3) for p in bars[4].patches] == [0.0, 0.0]  # no 2nd observer on dsb2018


def test_training_speed_figure_uses_fair_timing_and_leaves_out_reference_rows():
    table = with_references(make_table()).assign(best_epoch_mean=20.0, first_epoch_seconds_mean=30.0,
                                                  seconds_to_best_mean=60.0)
    fig = plots.training_speed_figure(table)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [title for _, title, _ in plots.SPEED_PANELS]
    assert "median of epochs 2.." in titles[2] and "graph building" in titles[3]
    assert "median" in fig.get_suptitle()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["unet", "resnet50-unet", "effunet-b0"]
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
