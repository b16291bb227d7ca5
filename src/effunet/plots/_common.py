"""Shared figure settings (Okabe-Ito palette, DPI, page width, type sizes), `_save` (atomic PNG + SVG with
text kept as text), suptitles wrapped to the figure and robust y-limits for loss curves."""

from __future__ import annotations

import functools
import os
import textwrap
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

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

DPI = 300                    # print resolution of the PNGs
PAGE_WIDTH = 180 / 25.4      # inches: a two-column page's full width (180 mm); no figure is wider
WIDTH = 7.0                  # inches: the width figures are drawn at
# Type sizes of a printed figure at WIDTH (points); every figure function draws under these.
STYLE = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7,
         "legend.fontsize": 7, "figure.titlesize": 9, "lines.linewidth": 1.2}
# Metric names as the tables write them (effunet.compare).
METRIC_LABELS = {"dice": "Dice", "iou": "IoU", "accuracy": "accuracy", "mcc": "MCC", "sensitivity": "sensitivity",
                 "specificity": "specificity", "precision": "precision", "roc_auc": "ROC AUC", "pr_auc": "PR AUC"}


def metric_label(metric: str) -> str:
    """A metric's name as in the tables: `dice` -> Dice, `iou` -> IoU, `mcc` -> MCC."""
    return METRIC_LABELS.get(metric, metric.replace("_", " "))


def styled(function):
    """Draw the figure under STYLE (type sizes are fixed when a text is made, so the whole function runs
    inside the style)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return function(*args, **kwargs)

    return wrapper


def _title(fig: Figure, text: str, fontsize: float | None = None) -> None:
    """The figure's title, each line wrapped to the figure's width."""
    size = fontsize or STYLE["figure.titlesize"]
    chars = max(20, int(fig.get_figwidth() * 72 / (size * 0.6)))  # DejaVu Sans: about 0.55 em per character
    fig.suptitle("\n".join(textwrap.fill(line, chars) for line in text.split("\n")), fontsize=size)


def robust_top(values, factor: float = 3.0, most: float = 0.02) -> float | None:
    """The highest value to show on a loss axis, or None to show every value.

    The few largest values (at most `most` of them, at least one) are left off the axis when they sit far
    above the rest: the k largest go when the k-th largest lies more than `factor` times as far above the
    lowest value as the (k+1)-th largest (the smallest such k). One validation-loss spike to 11 thus no
    longer flattens curves between 0.1 and 0.7, while a smooth decay (1, 1/2, 1/3, ...) keeps every point.
    """
    v = np.sort(np.asarray(values, dtype=float)[np.isfinite(np.asarray(values, dtype=float))])[::-1]
    if len(v) < 3:
        return None
    low = v[-1]
    for k in range(1, min(max(1, int(np.ceil(most * len(v)))), len(v) - 2) + 1):
        if v[k - 1] - low > factor * (v[k] - low) and v[k] > low:
            return float(v[k])
    return None


def clip_losses(ax, curves) -> list[tuple[float, float]]:
    """Limit a loss axis to `robust_top` of the curves' values and mark each value above it.

    `curves` is [(x, y, colour)]. A value off the axis is drawn as a triangle on the axis' top edge in its
    curve's colour, with the value printed under it; values with colour None (the top of a seed band) only
    count for the limit. Returns the (x, y) points marked (empty: none).
    """
    top = robust_top(np.concatenate([np.asarray(y, dtype=float) for _, y, _ in curves]))
    if top is None:
        return []
    low = min(float(np.nanmin(np.asarray(y, dtype=float))) for _, y, _ in curves)
    edge = top + 0.12 * (top - low)
    ax.set_ylim(low - 0.05 * (top - low), edge)
    clipped = []
    for x, y, colour in curves:
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        above = y > edge
        if colour is not None and above.any():
            ax.plot(x[above], np.full(above.sum(), edge), linestyle="none", marker="^", markersize=5, color=colour,
                    markeredgecolor="black", markeredgewidth=0.5, clip_on=False)
            for xi, yi in zip(x[above], y[above]):
                ax.annotate(f"{yi:.3g}", (xi, edge), xytext=(0, -4), textcoords="offset points", ha="center",
                            va="top", fontsize=6, annotation_clip=False)
                clipped.append((float(xi), float(yi)))
    return clipped


def clipped_handle(ax):
    """The legend entry of `clip_losses`' triangles."""
    return ax.plot([], [], linestyle="none", marker="^", markersize=5, color="white", markeredgecolor="black",
                   markeredgewidth=0.5, label="off the axis (value printed)")[0]


def _save(fig: Figure, out_png: PathLike) -> Path:
    """Write the figure as PNG and as SVG beside it (`<name>.svg`, its text kept as text, editable and
    searchable); returns the PNG's path."""
    out_png = Path(out_png)
    FigureCanvasAgg(fig)
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        with atomic_path(out_png.with_suffix(".svg")) as tmp:
            fig.savefig(tmp, format="svg", dpi=DPI, facecolor="white")
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, facecolor="white")
    return out_png
