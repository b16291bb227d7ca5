"""Learning curves of several models and seeds on shared axes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from effunet.errors import EffunetError
from effunet.plots._common import WIDTH, PathLike, _save, _title, clip_losses, clipped_handle, styled
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
    order (one entry per seed). Each seed's best epoch is marked on the mean curve; a loss spike far above
    the rest is left off the loss axis and marked (`effunet.plots._common.clip_losses`).
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


@styled
def overlay_figure(per_model: dict[str, list[tuple[pd.DataFrame, int]]], title: str) -> Figure:
    """The overlay as a figure: {model: [(history, best epoch) per seed]}."""
    fig = Figure(figsize=(WIDTH, 3.4), layout="constrained")
    axes = fig.subplots(1, 2)
    models = list(per_model)
    several = any(len(runs) > 1 for runs in per_model.values())
    clipped = False
    for ax, metric, label in zip(axes, ("val_loss", "val_accuracy"), ("Validation loss", "Validation pixel accuracy")):
        drawn = []
        for (model, runs), (colour, _) in zip(per_model.items(), _style(models)):
            curve = seed_curves([h for h, _ in runs], metric)
            seeds = len(runs)
            ax.plot(curve["epoch"], curve["mean"], color=colour, label=f"{model} ({seeds} seed{'s' * (seeds > 1)})")
            drawn.append((curve["epoch"], curve["mean"], colour))
            if seeds > 1:
                ax.fill_between(curve["epoch"], curve["low"], curve["high"], color=colour, alpha=0.2, linewidth=0)
                drawn.append((curve["epoch"], curve["high"], None))  # counts for the limit, not marked
            best = [b for _, b in runs]
            at_best = curve.set_index("epoch").loc[best, "mean"]
            ax.plot(best, at_best, linestyle="none", marker="o", markersize=5, markeredgecolor="black",
                    color=colour, label=f"{model} best epoch{'s' * (seeds > 1)}")
        if metric == "val_loss":
            clipped = bool(clip_losses(ax, drawn))
        ax.set_xlabel("Epoch")
        ax.set_ylabel(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    # The legend: one line per model, one entry for the best-epoch dots (every model's dot has its colour).
    handles = [line for line in axes[0].get_lines() if not line.get_label().startswith(("_", *(
        f"{m} best epoch" for m in models)))]
    handles.append(axes[0].plot([], [], linestyle="none", marker="o", markersize=5, color="white",
                                markeredgecolor="black", label=f"best epoch{'s' * several} (lowest validation loss)")[0])
    if clipped:
        handles.append(clipped_handle(axes[0]))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 3), frameon=False)
    what = ("mean over seeds, band = lowest to highest seed" if several else "one seed per model")
    _title(fig, f"{title}: {what}, dots = best epoch{'s' * several}")
    return fig
