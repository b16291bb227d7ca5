"""Quality against cost: test quality of every model and recipe against parameters, FLOPs and training time.

Reads the quality-vs-cost table (`effunet.compare.cost_table`, written as cost.csv by the aggregate
step): one point per data set x recipe x model at the mean over seeds, error bars = the standard
deviation over seeds (both directions for the training time, which varies from seed to seed).
Colour = model, marker = recipe (a recipe legend only when there are several). Each model is named beside
its first point in a panel, to the left of points in the right half so that no name runs off the figure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from effunet.errors import EffunetError
from effunet.plots._common import MODEL_COLOURS, WIDTH, PathLike, _save, _title, styled

COST_AXES = (  # column, axis label, scale, log axis
    ("parameters", "parameters (millions)", 1e-6, True),
    ("flops", "GFLOPs per image\n(forward, training size)", 1e-9, True),
    ("seconds_to_best", "time to the best epoch\n(seconds)", 1.0, False),
)
QUALITY_AXES = (  # column, axis label
    ("dice_image_mean", "test Dice (per image)"),
    ("instance_ap_split", "test instance AP\n(split)"),
    ("instance_ap_watershed", "test instance AP\n(boundary, watershed)"),  # where a recipe trains boundaries
)
RECIPE_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def read_cost(cost: pd.DataFrame | PathLike) -> tuple[pd.DataFrame, str]:
    if isinstance(cost, pd.DataFrame):
        return cost, "quality-vs-cost table"
    try:
        frame = pd.read_csv(cost)
    except FileNotFoundError:
        raise EffunetError(f"{cost}: quality-vs-cost table not found") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise EffunetError(f"{cost}: not a readable quality-vs-cost table ({exc})") from None
    return frame, str(cost)


def cost_points(cost: pd.DataFrame, dataset: str, quality: str, axis: str, scale: float = 1.0) -> pd.DataFrame:
    """The points of one panel: recipe, model, x, xerr, y, yerr (x scaled by `scale`; a missing std, as
    with one seed, is no error bar), only where both x and y are finite."""
    rows = cost[cost["dataset"] == dataset]
    points = pd.DataFrame({
        "recipe": rows["recipe"].astype(str), "model": rows["model"],
        "x": rows[f"{axis}_mean"] * scale, "xerr": rows[f"{axis}_std"].fillna(0.0) * scale,
        "y": rows[f"{quality}_mean"], "yerr": rows[f"{quality}_std"].fillna(0.0)})
    return points[np.isfinite(points["x"]) & np.isfinite(points["y"])].reset_index(drop=True)


def cost_chart(cost: pd.DataFrame | PathLike, out_png: PathLike) -> Path:
    """Write the quality-vs-cost figure as PNG and SVG (see the module docstring)."""
    return _save(cost_figure(cost), out_png)


@styled
def cost_figure(cost: pd.DataFrame | PathLike) -> Figure:
    """One row of panels per data set and quality column that has values, one column per cost axis."""
    cost, source = read_cost(cost)
    needed = ["dataset", "recipe", "model", *(f"{c}_{s}" for c, *_ in COST_AXES for s in ("mean", "std")),
              *(f"{c}_{s}" for c, _ in QUALITY_AXES[:1] for s in ("mean", "std"))]
    missing = [column for column in needed if column not in cost.columns]
    if missing:
        raise EffunetError(f"{source}: missing column(s) {', '.join(missing)}")
    if cost.empty:
        raise EffunetError(f"{source}: no rows")
    rows = [(dataset, quality, label) for dataset in dict.fromkeys(cost["dataset"]) for quality, label in QUALITY_AXES
            if f"{quality}_mean" in cost and np.isfinite(cost.loc[cost["dataset"] == dataset, f"{quality}_mean"]).any()]
    models = list(dict.fromkeys(cost["model"]))
    recipes = list(dict.fromkeys(cost["recipe"].astype(str)))
    colour = {m: MODEL_COLOURS[k % len(MODEL_COLOURS)] for k, m in enumerate(models)}
    marker = {r: RECIPE_MARKERS[k % len(RECIPE_MARKERS)] for k, r in enumerate(recipes)}
    fig = Figure(figsize=(WIDTH, 2.3 * len(rows) + 0.9), layout="constrained")
    axes = fig.subplots(len(rows), len(COST_AXES), squeeze=False)
    for (dataset, quality, label), row_axes in zip(rows, axes):
        for ax, (axis, axis_label, scale, log) in zip(row_axes, COST_AXES):
            points = cost_points(cost, dataset, quality, axis, scale)
            logx = log and len(points) and (points["x"] > 0).all()
            where = np.log(points["x"]) if logx else points["x"]
            middle = (where.min() + where.max()) / 2 if len(points) else 0.0
            named = set()  # each model named once a panel (colour = model; the recipes' points are close)
            for point, at in zip(points.itertuples(), where):
                ax.errorbar(point.x, point.y, yerr=point.yerr, xerr=point.xerr if point.xerr else None,
                            fmt=marker[point.recipe], color=colour[point.model], capsize=2, markersize=4)
                if point.model in named:
                    continue
                named.add(point.model)
                right = at > middle  # a point in the right half is named on its left
                ax.annotate(point.model, (point.x, point.y), textcoords="offset points", xytext=(-3 if right else 3, 3),
                            ha="right" if right else "left", fontsize=6)
            if logx:
                ax.set_xscale("log")
                ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
                ax.xaxis.set_minor_formatter(NullFormatter())  # plain numbers, no crowded 2x10^0 labels
            ax.margins(x=0.15, y=0.1)  # room for the model names beside the points
            ax.set_xlabel(axis_label)
            ax.set_ylabel(label)
            ax.set_title(dataset)
            ax.grid(alpha=0.3)
    handles = [axes[0][0].plot([], [], "o", color=colour[m], label=m)[0] for m in models]
    if len(recipes) > 1:  # one recipe: every marker is the same, nothing to tell apart
        handles += [axes[0][0].plot([], [], marker[r], color="grey", label=f"recipe {r}")[0] for r in recipes]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), frameon=False)
    _title(fig, "Test quality vs cost: mean over seeds, error bars = std over seeds")
    return fig
