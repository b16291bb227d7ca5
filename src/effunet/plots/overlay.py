"""Learning curves of several models and seeds on shared axes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from effunet.errors import EffunetError
from effunet.plots._common import PathLike, _save
from effunet.plots.charts import _style
from effunet.plots.inputs import curve_markers, read_history, read_run


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
