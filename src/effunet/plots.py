"""Figures: learning curves of a run, qualitative prediction panels, and cross-model charts.

Everything is drawn with matplotlib's object API on an Agg canvas (no display, no global pyplot
state) and written atomically as PNG and, beside it, as SVG (same name, `.svg`) for papers. The pure
helpers (`read_history`, `curve_markers`, `error_overlay`, `model_order`, `short_id`, `seed_curves`)
hold the logic the tests check; the figure functions only lay out.

Colours are the Okabe-Ito colour-blind-safe palette. In error overlays the image is shown in grey
at `DIM` brightness (`OUTSIDE_DIM` outside the scored region) and the errors on top of it in
`TP_COLOUR`, `FP_COLOUR` and `FN_COLOUR`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from effunet.errors import EffunetError
from effunet.files import atomic_path

PathLike = str | os.PathLike

# Okabe-Ito palette (RGB 0..255).
TP_COLOUR = (240, 228, 66)    # yellow: vessel / nucleus found
FP_COLOUR = (213, 94, 0)      # vermillion: predicted, not in the ground truth
FN_COLOUR = (86, 180, 233)    # sky blue: in the ground truth, missed
DIM = 0.4                     # brightness of the grey image under the overlay (true negatives)
OUTSIDE_DIM = 0.15            # brightness outside the scored region (e.g. the DRIVE field of view)
MODEL_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
TRAIN_COLOUR, VAL_COLOUR = "#0072B2", "#D55E00"
REFERENCE_STYLES = {"protocol ceiling": ("#BBBBBB", "//"), "2nd observer": ("#777777", "..")}  # colour, hatch

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")  # what the curves need
RUN_KEYS = ("best_epoch", "epochs_trained", "stop_reason")
DPI = 150


# ---------------------------------------------------------------------------------------- inputs

def read_history(path: PathLike) -> pd.DataFrame:
    """Read a run's `history.csv`; raise EffunetError naming the file if it is missing, empty or malformed."""
    path = Path(path)
    try:
        history = pd.read_csv(path)
    except FileNotFoundError:
        raise EffunetError(f"{path}: history file not found") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise EffunetError(f"{path}: not a readable history CSV ({exc})") from None
    missing = [column for column in HISTORY_COLUMNS if column not in history.columns]
    if missing:
        raise EffunetError(f"{path}: history lacks column(s) {', '.join(missing)}")
    if history.empty:
        raise EffunetError(f"{path}: history has no epochs")
    for column in HISTORY_COLUMNS:
        if not pd.api.types.is_numeric_dtype(history[column]):
            raise EffunetError(f"{path}: history column {column!r} is not numeric")
    epochs = history["epoch"]
    if epochs.isna().any() or not epochs.is_monotonic_increasing or not epochs.is_unique:
        raise EffunetError(f"{path}: history epochs are not increasing one row per epoch")
    return history


def read_run(path: PathLike) -> dict:
    """Read a run's `run.json`; raise EffunetError naming the file if it is missing or lacks keys."""
    path = Path(path)
    try:
        run = json.loads(path.read_text())
    except FileNotFoundError:
        raise EffunetError(f"{path}: run summary not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EffunetError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(run, dict):
        raise EffunetError(f"{path}: expected a JSON object")
    missing = [key for key in RUN_KEYS if key not in run]
    if missing:
        raise EffunetError(f"{path}: run summary lacks key(s) {', '.join(missing)}")
    return run


def curve_markers(history: pd.DataFrame, run: dict, source: str = "run.json") -> dict:
    """The epochs the learning curves mark.

    Returns {"best_epoch": the epoch whose weights were kept, "early_stop_epoch": the last epoch if
    early stopping ended training, else None}. Raises EffunetError (naming `source`) when the run
    summary does not describe this history (best epoch not in it, different epoch count).
    """
    epochs = [int(e) for e in history["epoch"]]
    best = run["best_epoch"]
    if not isinstance(best, (int, np.integer)) or int(best) not in epochs:
        raise EffunetError(f"{source}: best_epoch {best!r} is not an epoch of the history "
                           f"({epochs[0]}..{epochs[-1]})")
    if run["epochs_trained"] != len(epochs):
        raise EffunetError(f"{source}: epochs_trained {run['epochs_trained']!r} but the history has "
                           f"{len(epochs)} epochs (files from different runs?)")
    if run["stop_reason"] not in ("early_stopping", "max_epochs"):
        raise EffunetError(f"{source}: unknown stop_reason {run['stop_reason']!r}")
    return {"best_epoch": int(best),
            "early_stop_epoch": epochs[-1] if run["stop_reason"] == "early_stopping" else None}


# ---------------------------------------------------------------------------------------- output

def _save(fig: Figure, out_png: PathLike) -> Path:
    """Write the figure as PNG and as SVG beside it (`<name>.svg`); returns the PNG's path."""
    out_png = Path(out_png)
    FigureCanvasAgg(fig)
    with atomic_path(out_png.with_suffix(".svg")) as tmp:
        fig.savefig(tmp, format="svg", dpi=DPI, facecolor="white")
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, facecolor="white")
    return out_png


# ------------------------------------------------------------------------------- learning curves

def learning_curves(history_csv: PathLike, run_json: PathLike, out_png: PathLike, title: str) -> Path:
    """Accuracy and loss per epoch, train vs validation, with the best and early-stop epochs marked."""
    history = read_history(history_csv)
    marks = curve_markers(history, read_run(run_json), source=str(run_json))
    return _save(learning_curves_figure(history, marks, title), out_png)


def learning_curves_figure(history: pd.DataFrame, marks: dict, title: str) -> Figure:
    """The learning-curves figure for a validated history and its `curve_markers`."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    few = len(history) <= 30
    for ax, metric, label in zip(axes, ("accuracy", "loss"), ("Pixel accuracy", "Loss")):
        style = {"marker": "o", "markersize": 3} if few else {}
        ax.plot(history["epoch"], history[metric], color=TRAIN_COLOUR, label="train", **style)
        ax.plot(history["epoch"], history[f"val_{metric}"], color=VAL_COLOUR, linestyle="--",
                label="validation", **style)
        ax.axvline(marks["best_epoch"], color="0.3", linestyle=":", linewidth=1.5,
                   label=f"best epoch {marks['best_epoch']} (weights kept)")
        if marks["early_stop_epoch"] is not None:
            last = history.iloc[-1]
            ax.plot([marks["early_stop_epoch"]], [last[f"val_{metric}"]], linestyle="none", marker="X",
                    markersize=10, color="black", label=f"early stop (epoch {marks['early_stop_epoch']})")
        ax.set_xlabel("Epoch")
        ax.set_ylabel(label)
        ax.set_title(f"{label} per epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    stop = "early stopping" if marks["early_stop_epoch"] is not None else "max epochs"
    fig.suptitle(f"{title}  ({len(history)} epochs, stopped by {stop})")
    return fig


# -------------------------------------------------------------------------- qualitative panels

def _grey(image: np.ndarray) -> np.ndarray:
    """Luma of an RGB uint8 image as float 0..255."""
    return image[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def error_overlay(image: np.ndarray, truth: np.ndarray, predicted: np.ndarray,
                  region: np.ndarray | None = None) -> np.ndarray:
    """RGB uint8 error map: the image in grey at DIM brightness, TP/FP/FN pixels in their colours.

    Pixels outside `region` (e.g. the DRIVE field of view) are not scored: they show only the grey
    image at the darker OUTSIDE_DIM brightness, whatever the prediction there.
    """
    truth, predicted = truth.astype(bool), predicted.astype(bool)
    scored = np.ones_like(truth) if region is None else region.astype(bool)
    dimmed = np.clip(np.rint(_grey(image) * np.where(scored, DIM, OUTSIDE_DIM)), 0, 255).astype(np.uint8)
    out = np.repeat(dimmed[..., None], 3, axis=-1)
    out[truth & predicted & scored] = TP_COLOUR
    out[~truth & predicted & scored] = FP_COLOUR
    out[truth & ~predicted & scored] = FN_COLOUR
    return out


SHORT_ID = 10


def short_id(image_id: str) -> str:
    """An id short enough for a panel label: the first characters and an ellipsis (DSB2018's are 64 hex)."""
    image_id = str(image_id)
    return image_id if len(image_id) <= SHORT_ID + 1 else image_id[:SHORT_ID] + "…"


def _dice(truth: np.ndarray, predicted: np.ndarray, region: np.ndarray | None) -> float:
    """Dice within region; 1.0 when both truth and prediction are empty."""
    if region is not None:
        truth, predicted = truth[region], predicted[region]
    both = int(truth.sum() + predicted.sum())
    return 1.0 if both == 0 else 2 * int((truth & predicted).sum()) / both


def _check_example(example: dict, index: int) -> dict:
    """Validate one panel example; return its arrays as image uint8 RGB, truth/region bool, probability."""
    name = f"example {index} ({example.get('split', '?')}: {example.get('id', '?')})"
    missing = [key for key in ("id", "split", "image", "truth", "probability") if example.get(key) is None]
    if missing:
        raise EffunetError(f"qualitative panel {name}: missing {', '.join(missing)}")
    image = np.asarray(example["image"])
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
        raise EffunetError(f"qualitative panel {name}: image shape {image.shape} is not (H, W, 3)")
    if image.dtype != np.uint8:
        raise EffunetError(f"qualitative panel {name}: image dtype {image.dtype} is not uint8")
    arrays = {"image": image[..., :3]}
    for key in ("truth", "probability", "region"):
        if example.get(key) is None:
            arrays[key] = None
            continue
        array = np.asarray(example[key])
        if array.shape != image.shape[:2]:
            raise EffunetError(f"qualitative panel {name}: {key} shape {array.shape} differs from the "
                               f"image's {image.shape[:2]}")
        arrays[key] = array
    probability = arrays["probability"].astype(np.float64)
    if not np.all(np.isfinite(probability)) or probability.min() < 0 or probability.max() > 1:
        raise EffunetError(f"qualitative panel {name}: probability values outside [0, 1]")
    arrays["probability"] = probability
    arrays["truth"] = arrays["truth"].astype(bool)
    if arrays["region"] is not None:
        arrays["region"] = arrays["region"].astype(bool)
    return arrays


def qualitative_panel(examples: Sequence[dict], out_png: PathLike, title: str, threshold: float = 0.5,
                      cell_inches: float | None = None) -> Path:
    """One row per example: image | ground truth | prediction | error overlay (TP/FP/FN legend).

    Each example is a dict with `id`, `split`, `image` (H, W, 3 uint8), `truth` (H, W bool),
    `probability` (H, W float in [0, 1]) and optionally `region` (H, W bool; errors outside are not
    shown). A pixel is predicted foreground when probability > threshold, as in training. Rows keep
    the order given: pass the same examples to every model's panel to compare them side by side.
    By default each cell is large enough to show the images at native resolution (up to 5 inches),
    so one-pixel error rims on DRIVE vessels stay visible.
    """
    if not examples:
        raise EffunetError(f"{out_png}: no examples to show")
    return _save(qualitative_figure(examples, title, threshold, cell_inches), out_png)


def qualitative_figure(examples: Sequence[dict], title: str, threshold: float = 0.5,
                       cell_inches: float | None = None) -> Figure:
    """The qualitative panel as a figure (see `qualitative_panel`); raises EffunetError on bad examples."""
    checked = [_check_example(example, i) for i, example in enumerate(examples)]
    rows = len(checked)
    if cell_inches is None:
        largest = max(max(arrays["image"].shape[:2]) for arrays in checked)
        cell_inches = min(max(2.4, largest / DPI), 5.0)
    fig = Figure(figsize=(4 * cell_inches, rows * cell_inches + 0.9), layout="constrained")
    axes = np.atleast_2d(fig.subplots(rows, 4, squeeze=False))
    headers = ("image", "ground truth", f"prediction (p > {threshold:g})", "errors")
    for row, (example, arrays) in enumerate(zip(examples, checked)):
        predicted = arrays["probability"] > threshold
        overlay = error_overlay(arrays["image"], arrays["truth"], predicted, arrays["region"])
        panels = (arrays["image"], arrays["truth"], predicted, overlay)
        for col, (ax, panel) in enumerate(zip(axes[row], panels)):
            # antialiased: large images shrunk to the cell keep thin vessels and error rims visible
            style = {"interpolation": "antialiased", "interpolation_stage": "rgba"}
            if panel.ndim == 2:
                ax.imshow(panel, cmap="gray", vmin=0, vmax=1, **style)
            else:
                ax.imshow(panel, **style)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(headers[col], fontsize=10)
        axes[row, 0].set_ylabel(f"{short_id(example['id'])}\n({example['split']})", fontsize=9)
        dice = _dice(arrays["truth"], predicted, arrays["region"])
        axes[row, 3].set_xlabel(f"Dice {dice:.3f}", fontsize=9)
    legend = [Patch(facecolor=np.array(colour) / 255, edgecolor="black", label=label)
              for colour, label in ((TP_COLOUR, "true positive"), (FP_COLOUR, "false positive"),
                                    (FN_COLOUR, "false negative"))]
    fig.legend(handles=legend, loc="outside lower center", ncol=3, fontsize=9, frameon=False)
    fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------------------- charts

def _load_table(table: pd.DataFrame | PathLike) -> tuple[pd.DataFrame, str]:
    if isinstance(table, pd.DataFrame):
        return table, "comparison table"
    try:
        return pd.read_csv(table), str(table)
    except FileNotFoundError:
        raise EffunetError(f"{table}: comparison table not found") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise EffunetError(f"{table}: not a readable comparison table ({exc})") from None


def _require(table: pd.DataFrame, columns: Iterable[str], source: str) -> None:
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise EffunetError(f"{source}: missing column(s) {', '.join(missing)}")
    if table.empty:
        raise EffunetError(f"{source}: no rows")
    duplicated = table[table.duplicated(["dataset", "model"])]
    if not duplicated.empty:
        first = duplicated.iloc[0]
        raise EffunetError(f"{source}: more than one row for {first['dataset']} / {first['model']}")


def model_order(table: pd.DataFrame, models: Sequence[str] | None = None) -> list[str]:
    """Models in a stable order: `models` first (those present), then the rest by first appearance;
    reference rows (`REFERENCE_STYLES`) last."""
    present = list(dict.fromkeys(table["model"]))
    ordered = [m for m in (models or ()) if m in present]
    ordered += [m for m in present if m not in ordered]
    return [m for m in ordered if m not in REFERENCE_STYLES] + [m for m in ordered if m in REFERENCE_STYLES]


def _style(models: Sequence[str]) -> list[tuple[str, str | None]]:
    """(colour, hatch) per model: MODEL_COLOURS in order for models, grey hatches for reference rows."""
    styles, k = [], 0
    for model in models:
        if model in REFERENCE_STYLES:
            styles.append(REFERENCE_STYLES[model])
        else:
            styles.append((MODEL_COLOURS[k % len(MODEL_COLOURS)], None))
            k += 1
    return styles


def _grouped_bars(ax, groups: Sequence[str], models: Sequence[str], means: np.ndarray, stds: np.ndarray,
                  fmt: str) -> None:
    """Bars at x = group, one per model (means/stds indexed [group, model]; NaN mean = no bar)."""
    width = 0.8 / len(models)
    x = np.arange(len(groups))
    for j, (model, (colour, hatch)) in enumerate(zip(models, _style(models))):
        offset = x + (j - (len(models) - 1) / 2) * width
        bars = ax.bar(offset, np.nan_to_num(means[:, j]), width, yerr=stds[:, j], capsize=3,
                      color=colour, hatch=hatch, edgecolor="black" if hatch else None, linewidth=0.5 if hatch else 0,
                      label=model, error_kw={"elinewidth": 1, "ecolor": "black"})
        labels = ["n/a" if not np.isfinite(m) else format(m, fmt) for m in means[:, j]]
        ax.bar_label(bars, labels=labels, fontsize=7, padding=2)
    ax.set_xticks(x, groups)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def _top(means: np.ndarray, stds: np.ndarray) -> float:
    """Highest bar plus its error bar; 0 when there is no finite value."""
    tops = means + np.nan_to_num(stds)
    return float(np.max(tops[np.isfinite(tops)], initial=0.0))


def _values(table: pd.DataFrame, dataset: str, models: Sequence[str], metrics: Sequence[str]):
    """means/stds [metric, model] for one data set; missing std (one seed) counts as no error bar."""
    means = np.full((len(metrics), len(models)), np.nan)
    stds = np.full_like(means, np.nan)
    rows = table[table["dataset"] == dataset]
    for j, model in enumerate(models):
        row = rows[rows["model"] == model]
        if row.empty:
            continue
        for i, metric in enumerate(metrics):
            means[i, j] = row[f"{metric}_mean"].iloc[0]
            if f"{metric}_std" in row:
                stds[i, j] = row[f"{metric}_std"].iloc[0]
    return means, stds


def comparison_chart(table: pd.DataFrame | PathLike, metrics: Sequence[str], out_png: PathLike,
                     title: str, models: Sequence[str] | None = None) -> Path:
    """One panel per data set: a group of bars per metric, one bar per model, error bars = std over seeds.

    `table` (DataFrame or CSV path) has columns dataset, model, <metric>_mean and optionally
    <metric>_std; models are drawn in `model_order(table, models)`, each in its MODEL_COLOURS colour,
    reference rows (protocol ceiling, 2nd observer) last as hatched grey bars.
    """
    if not metrics:
        raise EffunetError(f"{out_png}: no metrics to chart")
    return _save(comparison_figure(table, metrics, title, models), out_png)


def comparison_figure(table: pd.DataFrame | PathLike, metrics: Sequence[str], title: str,
                      models: Sequence[str] | None = None) -> Figure:
    """The comparison chart as a figure (see `comparison_chart`)."""
    table, source = _load_table(table)
    _require(table, ["dataset", "model", *(f"{m}_mean" for m in metrics)], source)
    order = model_order(table, models)
    datasets = list(dict.fromkeys(table["dataset"]))
    fig = Figure(figsize=(max(5.0, 1.2 + 0.45 * len(metrics) * len(order)) * len(datasets), 4.4),
                 layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(datasets), squeeze=False)[0])
    for ax, dataset in zip(axes, datasets):
        means, stds = _values(table, dataset, order, metrics)
        _grouped_bars(ax, list(metrics), order, means, stds, ".3f")
        top = _top(means, stds)
        ax.set_ylim(0, 1.12 if top <= 1 else top * 1.15)
        ax.set_title(dataset)
        ax.set_ylabel("mean over seeds (± std)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(order), frameon=False)
    fig.suptitle(title)
    return fig


SPEED_PANELS = (  # column, title, number format
    ("best_epoch", "Best epoch\n(lowest validation loss)", ".0f"),
    ("epochs_trained", "Epochs trained\n(early stopping)", ".0f"),
    ("seconds_per_epoch", "Seconds per epoch\n(median of epochs 2..)", ".2f"),
    ("first_epoch_seconds", "First epoch, seconds\n(includes graph building)", ".1f"),
    ("seconds_to_best", "Seconds to the best epoch", ".1f"),
)
SPEED_NOTE = ("Epoch 1 includes graph building and is shown apart; seconds per epoch is the median of "
              "epochs 2.. (training + validation).")


def training_speed_chart(table: pd.DataFrame | PathLike, out_png: PathLike, title: str = "Training effort",
                         models: Sequence[str] | None = None) -> Path:
    """Epochs (best, trained) and fair timing (`SPEED_PANELS`) per data set and model, mean ± std over seeds.

    Seconds per epoch is the median of epochs 2.. and epoch 1 (graph building) is its own panel, so
    a model whose first epoch is slow is not ranked by it; reference rows are left out.
    """
    return _save(training_speed_figure(table, title, models), out_png)


def training_speed_figure(table: pd.DataFrame | PathLike, title: str = "Training effort",
                          models: Sequence[str] | None = None) -> Figure:
    """The training-effort chart as a figure (see `training_speed_chart`)."""
    table, source = _load_table(table)
    _require(table, ["dataset", "model", "epochs_trained_mean", "seconds_per_epoch_mean"], source)
    if "kind" in table:
        table = table[table["kind"] != "reference"]
    order = [m for m in model_order(table, models) if m not in REFERENCE_STYLES]
    datasets = list(dict.fromkeys(table["dataset"]))
    panels = [panel for panel in SPEED_PANELS if f"{panel[0]}_mean" in table]
    width = max(3.2, 0.5 * len(datasets) * len(order) + 1.0)
    fig = Figure(figsize=(width * len(panels), 4.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels), squeeze=False)[0])
    for ax, (metric, label, fmt) in zip(axes, panels):
        per_dataset = [_values(table, dataset, order, [metric]) for dataset in datasets]
        means = np.vstack([m for m, _ in per_dataset])
        stds = np.vstack([s for _, s in per_dataset])
        _grouped_bars(ax, datasets, order, means, stds, fmt)
        ax.set_ylim(0, _top(means, stds) * 1.15 or 1)
        ax.set_title(label, fontsize=10)
        ax.set_ylabel("mean over seeds (± std)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(order), frameon=False)
    fig.suptitle(f"{title}\n{SPEED_NOTE}", fontsize=10)
    return fig


# --------------------------------------------------------------------- learning-curve overlay

def seed_curves(histories: Sequence[pd.DataFrame], metric: str) -> pd.DataFrame:
    """Per epoch: mean, min and max of `metric` over the seeds that trained that epoch, and how many did."""
    frame = pd.concat([h[["epoch", metric]].assign(seed=k) for k, h in enumerate(histories)])
    grouped = frame.groupby("epoch")[metric]
    return pd.DataFrame({"mean": grouped.mean(), "low": grouped.min(), "high": grouped.max(),
                         "seeds": grouped.count()}).reset_index()


def learning_curves_overlay(histories: Sequence[PathLike], runs: Sequence[PathLike], models: Sequence[str],
                            out_png: PathLike, title: str) -> Path:
    """Validation loss and accuracy of every model (one data set) on shared axes, mean and range over seeds.

    `histories`, `runs` and `models` are the runs' history.csv, run.json and model name, in the same
    order (one entry per seed). Each seed's best epoch is marked on the mean curve.
    """
    if not histories or not len(histories) == len(runs) == len(models):
        raise EffunetError(f"{out_png}: need one run.json and model per history.csv (got {len(histories)}, "
                           f"{len(runs)} and {len(models)})")
    per_model: dict[str, list[tuple[pd.DataFrame, int]]] = {}
    for history_path, run_path, model in zip(histories, runs, models):
        history = read_history(history_path)
        marks = curve_markers(history, read_run(run_path), source=str(run_path))
        per_model.setdefault(model, []).append((history, marks["best_epoch"]))
    return _save(overlay_figure(per_model, title), out_png)


def overlay_figure(per_model: dict[str, list[tuple[pd.DataFrame, int]]], title: str) -> Figure:
    """The overlay as a figure: {model: [(history, best epoch) per seed]}."""
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    axes = fig.subplots(1, 2)
    models = list(per_model)
    for ax, metric, label in zip(axes, ("val_loss", "val_accuracy"), ("Validation loss", "Validation pixel accuracy")):
        for (model, runs), (colour, _) in zip(per_model.items(), _style(models)):
            curve = seed_curves([h for h, _ in runs], metric)
            seeds = len(runs)
            ax.plot(curve["epoch"], curve["mean"], color=colour, label=f"{model} ({seeds} seed{'s' * (seeds > 1)})")
            if seeds > 1:
                ax.fill_between(curve["epoch"], curve["low"], curve["high"], color=colour, alpha=0.2, linewidth=0)
            best = [b for _, b in runs]
            at_best = curve.set_index("epoch").loc[best, "mean"]
            ax.plot(best, at_best, linestyle="none", marker="o", markersize=6, markeredgecolor="black",
                    color=colour, label=f"{model} best epoch{'s' * (seeds > 1)}")
        ax.set_xlabel("Epoch")
        ax.set_ylabel(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False)
    fig.suptitle(f"{title}: mean over seeds, band = lowest to highest seed, dots = best epochs")
    return fig
