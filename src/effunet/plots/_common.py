"""Shared figure settings (Okabe-Ito palette, DPI) and `_save` (atomic PNG + SVG)."""

from __future__ import annotations

import os
from pathlib import Path

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

DPI = 150


def _save(fig: Figure, out_png: PathLike) -> Path:
    """Write the figure as PNG and as SVG beside it (`<name>.svg`); returns the PNG's path."""
    out_png = Path(out_png)
    FigureCanvasAgg(fig)
    with atomic_path(out_png.with_suffix(".svg")) as tmp:
        fig.savefig(tmp, format="svg", dpi=DPI, facecolor="white")
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, facecolor="white")
    return out_png
