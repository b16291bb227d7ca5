"""Learning curves of one run: accuracy and loss per epoch, train vs validation."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from effunet.plots._common import TRAIN_COLOUR, VAL_COLOUR, WIDTH, PathLike, _save, _title, clip_losses, \
    clipped_handle, styled
from effunet.plots.inputs import curve_markers, read_history, read_run


def learning_curves(history_csv: PathLike, run_json: PathLike, out_png: PathLike, title: str) -> Path:
    """Accuracy and loss per epoch, train vs validation, with the best and early-stop epochs marked; a loss
    spike far above the rest is left off the loss axis and marked (`effunet.plots._common.clip_losses`)."""
    history = read_history(history_csv)
    marks = curve_markers(history, read_run(run_json), source=str(run_json))
    return _save(learning_curves_figure(history, marks, title), out_png)


@styled
def learning_curves_figure(history: pd.DataFrame, marks: dict, title: str) -> Figure:
    """The learning-curves figure for a validated history and its `curve_markers`."""
    fig = Figure(figsize=(WIDTH, 3.0), layout="constrained")
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
                    markersize=7, color="black", label=f"early stop (epoch {marks['early_stop_epoch']})")
        ax.set_xlabel("Epoch")
        ax.set_ylabel(label)
        ax.set_title(f"{label} per epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if metric == "loss" and clip_losses(ax, [(history["epoch"], history[column], colour)
                                                 for column, colour in (("loss", TRAIN_COLOUR),
                                                                        ("val_loss", VAL_COLOUR))]):
            clipped_handle(ax)
        ax.legend(fontsize=6, loc="best")
    stop = "early stopping" if marks["early_stop_epoch"] is not None else "max epochs"
    _title(fig, f"{title}  ({len(history)} epochs, stopped by {stop})")
    return fig
