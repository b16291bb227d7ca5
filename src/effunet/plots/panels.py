"""Qualitative panels: image, truth, probability and error overlay per example."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from effunet.errors import EffunetError
from effunet.plots._common import (
    DIM,
    DPI,
    FN_COLOUR,
    FP_COLOUR,
    OUTSIDE_DIM,
    TP_COLOUR,
    WIDTH,
    PathLike,
    _save,
    _title,
    styled,
)


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
CELL_INCHES = (1.4, (WIDTH - 0.5) / 4)  # smallest and largest cell: four cells and the row labels fit WIDTH


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
    By default each cell shows the image at native resolution at DPI where four cells fit the page width
    (`CELL_INCHES`: about 490 pixels at 300 dpi, so DRIVE's 584-pixel images are shrunk only to 0.85 and
    one-pixel error rims on its vessels stay visible); smaller images are enlarged to the smallest cell.
    """
    if not examples:
        raise EffunetError(f"{out_png}: no examples to show")
    return _save(qualitative_figure(examples, title, threshold, cell_inches), out_png)


@styled
def qualitative_figure(examples: Sequence[dict], title: str, threshold: float = 0.5,
                       cell_inches: float | None = None) -> Figure:
    """The qualitative panel as a figure (see `qualitative_panel`); raises EffunetError on bad examples."""
    checked = [_check_example(example, i) for i, example in enumerate(examples)]
    rows = len(checked)
    if cell_inches is None:
        largest = max(max(arrays["image"].shape[:2]) for arrays in checked)
        cell_inches = min(max(CELL_INCHES[0], largest / DPI), CELL_INCHES[1])
    fig = Figure(figsize=(4 * cell_inches + 0.4, rows * cell_inches + 0.7), layout="constrained")
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
                ax.set_title(headers[col])
        axes[row, 0].set_ylabel(f"{short_id(example['id'])}\n({example['split']})")
        dice = _dice(arrays["truth"], predicted, arrays["region"])
        axes[row, 3].set_xlabel(f"Dice {dice:.3f}")
    legend = [Patch(facecolor=np.array(colour) / 255, edgecolor="black", label=label)
              for colour, label in ((TP_COLOUR, "true positive"), (FP_COLOUR, "false positive"),
                                    (FN_COLOUR, "false negative"))]
    fig.legend(handles=legend, loc="outside lower center", ncol=3, frameon=False)
    _title(fig, title)
    return fig
