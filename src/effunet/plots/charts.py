"""Cross-model bar charts: metrics per data set and training effort."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from effunet.errors import EffunetError
from effunet.plots._common import (
    MODEL_COLOURS,
    REFERENCE_STYLES,
    WIDTH,
    PathLike,
    _save,
    _title,
    metric_label,
    styled,
)


def _load_table(table: pd.DataFrame | PathLike) -> tuple[pd.DataFrame, str]:
    if isinstance(table, pd.DataFrame):
        return recipe_labels(table), "comparison table"
    try:
        return recipe_labels(pd.read_csv(table)), str(table)
    except FileNotFoundError:
        raise EffunetError(f"{table}: comparison table not found") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise EffunetError(f"{table}: not a readable comparison table ({exc})") from None


def recipe_labels(table: pd.DataFrame) -> pd.DataFrame:
    """With more than one recipe in the table, each trained row's model becomes "<model> / <recipe>", so
    the charts draw one bar per model and recipe; reference rows (no recipe) keep their name."""
    if "recipe" not in table:
        return table
    recipes = table["recipe"].fillna("").astype(str)
    if recipes[recipes != ""].nunique() <= 1:
        return table
    table = table.copy()
    table["model"] = [f"{model} / {recipe}" if recipe else model for model, recipe in zip(table["model"], recipes)]
    return table


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


BARS_PER_PANEL = 36  # at most this many bars side by side in one panel of WIDTH; more metrics go to more rows
PANEL_INCHES = WIDTH - 0.7  # the width of a full-width panel's axes, about


def _grouped_bars(ax, groups: Sequence[str], models: Sequence[str], means: np.ndarray, stds: np.ndarray,
                  fmt: str, styles: dict[str, tuple[str, str | None]], axes_inches: float = PANEL_INCHES,
                  height_inches: float = 1.5) -> float:
    """Bars at x = group, one per model (means/stds indexed [group, model]; NaN mean = a bar labelled n/a);
    each bar labelled with its value, turned upright where the bars are too narrow for the label. Returns
    the factor by which the y-axis must reach above the highest bar for the labels to fit."""
    width = 0.8 / len(models)
    x = np.arange(len(groups))
    upright = axes_inches * width / len(groups) < 0.3
    longest = 0
    for j, model in enumerate(models):
        colour, hatch = styles[model]
        offset = x + (j - (len(models) - 1) / 2) * width
        bars = ax.bar(offset, np.nan_to_num(means[:, j]), width, yerr=stds[:, j], capsize=2,
                      color=colour, hatch=hatch, edgecolor="black" if hatch else None, linewidth=0.5 if hatch else 0,
                      label=model, error_kw={"elinewidth": 0.8, "ecolor": "black"})
        labels = ["n/a" if not np.isfinite(m) else format(m, fmt) for m in means[:, j]]
        ax.bar_label(bars, labels=labels, fontsize=6, padding=2, rotation=90 if upright else 0)
        longest = max(longest, *(len(label) for label in labels)) if upright else 0
    ax.set_xticks(x, groups)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    label_points = longest * 6 * 0.62 + 4  # an upright label's height: characters of 6 pt type and the padding
    return 1.0 / max(0.5, 1.0 - label_points / (72 * height_inches)) + 0.04


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
    """One panel per data set, stacked: a group of bars per metric, one bar per model that has a row for
    the data set, error bars = std over seeds.

    `table` (DataFrame or CSV path) has columns dataset, model, <metric>_mean and optionally
    <metric>_std; models are drawn in `model_order(table, models)`, each in its MODEL_COLOURS colour,
    reference rows (protocol ceiling, 2nd observer) last as hatched grey bars. A data set without a row
    (DSB2018's 2nd observer) has no slot for it; more bars than BARS_PER_PANEL go to more rows.
    """
    if not metrics:
        raise EffunetError(f"{out_png}: no metrics to chart")
    return _save(comparison_figure(table, metrics, title, models), out_png)


@styled
def comparison_figure(table: pd.DataFrame | PathLike, metrics: Sequence[str], title: str,
                      models: Sequence[str] | None = None) -> Figure:
    """The comparison chart as a figure (see `comparison_chart`)."""
    table, source = _load_table(table)
    _require(table, ["dataset", "model", *(f"{m}_mean" for m in metrics)], source)
    order = model_order(table, models)
    styles = dict(zip(order, _style(order)))
    panels = []  # (data set, its models, metrics)
    for dataset in dict.fromkeys(table["dataset"]):
        present = set(table.loc[table["dataset"] == dataset, "model"])
        here = [m for m in order if m in present]
        per_panel = max(1, BARS_PER_PANEL // len(here))
        panels += [(dataset, here, list(metrics[k:k + per_panel])) for k in range(0, len(metrics), per_panel)]
    fig = Figure(figsize=(WIDTH, 2.4 * len(panels) + 0.9), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(panels), 1, squeeze=False)[:, 0])
    for ax, (dataset, here, shown) in zip(axes, panels):
        means, stds = _values(table, dataset, here, shown)
        headroom = _grouped_bars(ax, [metric_label(m) for m in shown], here, means, stds, ".3f", styles,
                                 height_inches=1.7)
        top = _top(means, stds)
        low = np.nanmin(means, initial=0.0)  # a negative MCC: room for its bar and label below 0
        ax.set_ylim(low - 0.12 if low < 0 else 0.0, max(1.0, top) * max(headroom, 1.12))
        ax.set_title(dataset)
        ax.set_ylabel("Test score")
    handles = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    labels = [m for m in order if m in handles]
    fig.legend([handles[m] for m in labels], labels, loc="outside lower center", ncol=min(len(labels), 4),
               frameon=False)
    _title(fig, title)
    return fig


SPEED_PANELS = (  # column, title, number format, unit (the y-axis)
    ("best_epoch", "Best epoch\n(lowest validation loss)", ".0f", "epoch"),
    ("epochs_trained", "Epochs trained\n(early stopping)", ".0f", "epochs"),
    ("seconds_per_epoch", "Seconds per epoch\n(median of epochs 2..)", ".2f", "seconds"),
    ("first_epoch_seconds", "First epoch\n(includes graph building)", ".1f", "seconds"),
    ("seconds_to_best", "Time to the best epoch", ".1f", "seconds"),
)
SPEED_NOTE = ("Epoch 1 includes graph building and is shown apart; seconds per epoch is the median of "
              "epochs 2.. (training + validation). Bars: mean over seeds, error bars: std over seeds.")


def training_speed_chart(table: pd.DataFrame | PathLike, out_png: PathLike, title: str = "Training effort",
                         models: Sequence[str] | None = None) -> Path:
    """Epochs (best, trained) and fair timing (`SPEED_PANELS`) per data set and model, mean ± std over seeds,
    two panels a row (the legend in the slot left over).

    Seconds per epoch is the median of epochs 2.. and epoch 1 (graph building) is its own panel, so
    a model whose first epoch is slow is not ranked by it; reference rows are left out.
    """
    return _save(training_speed_figure(table, title, models), out_png)


@styled
def training_speed_figure(table: pd.DataFrame | PathLike, title: str = "Training effort",
                          models: Sequence[str] | None = None) -> Figure:
    """The training-effort chart as a figure (see `training_speed_chart`)."""
    table, source = _load_table(table)
    _require(table, ["dataset", "model", "epochs_trained_mean", "seconds_per_epoch_mean"], source)
    if "kind" in table:
        table = table[table["kind"] != "reference"]
    order = [m for m in model_order(table, models) if m not in REFERENCE_STYLES]
    styles = dict(zip(order, _style(order)))
    datasets = list(dict.fromkeys(table["dataset"]))
    panels = [panel for panel in SPEED_PANELS if f"{panel[0]}_mean" in table]
    rows = (len(panels) + 2) // 2  # two a row; with an odd count the legend takes the last slot
    fig = Figure(figsize=(WIDTH, 2.2 * rows + 0.9), layout="constrained")
    grid = fig.subplots(rows, 2, squeeze=False).ravel()
    axes = grid[:len(panels)]
    for ax, (metric, label, fmt, unit) in zip(axes, panels):
        per_dataset = [_values(table, dataset, order, [metric]) for dataset in datasets]
        means = np.vstack([m for m, _ in per_dataset])
        stds = np.vstack([s for _, s in per_dataset])
        headroom = _grouped_bars(ax, datasets, order, means, stds, fmt, styles, axes_inches=WIDTH / 2 - 0.6)
        ax.set_ylim(0, _top(means, stds) * max(headroom, 1.18) or 1)
        ax.set_title(label)
        ax.set_ylabel(unit)
    handles, labels = axes[0].get_legend_handles_labels()
    for spare in grid[len(panels):]:
        spare.set_axis_off()
    if len(grid) > len(panels):
        grid[-1].legend(handles, labels, loc="center", ncol=1 if len(labels) <= 6 else 2, frameon=False,
                        title="model", fontsize=8)
    else:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4), frameon=False)
    _title(fig, f"{title}\n{SPEED_NOTE}")
    return fig
