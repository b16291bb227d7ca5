"""Figures: learning curves of a run, qualitative prediction panels, and cross-model charts.

Everything is drawn with matplotlib's object API on an Agg canvas (no display, no global pyplot
state) and written atomically as PNG and, beside it, as SVG (same name, `.svg`) for papers. The pure
helpers (`read_history`, `curve_markers`, `error_overlay`, `model_order`, `short_id`, `seed_curves`)
hold the logic the tests check; the figure functions only lay out.

Every figure is drawn at `WIDTH` (7 inches, within a two-column page's 180 mm, `PAGE_WIDTH`) with
print type sizes (`STYLE`) and saved at `DPI` (300); where a figure would be wider it is split into
rows of panels. SVG text is kept as text. Metrics are named as in the tables (`metric_label`: Dice,
IoU, MCC). Loss axes leave a spike far above the rest off the axis and mark it with its value
(`robust_top`, `clip_losses`), so one diverging epoch does not flatten every other curve.

Colours are the Okabe-Ito colour-blind-safe palette. In error overlays the image is shown in grey
at `DIM` brightness (`OUTSIDE_DIM` outside the scored region) and the errors on top of it in
`TP_COLOUR`, `FP_COLOUR` and `FN_COLOUR`.

Layout: `inputs` (history and run files), `curves`, `panels` (qualitative), `charts` (cross-model
bars), `cost` (quality vs cost), `overlay` (several models' curves), `_common` (palette, `_save`);
this package re-exports their public names.
"""

from effunet.plots._common import (
    DIM,
    DPI,
    FN_COLOUR,
    FP_COLOUR,
    MODEL_COLOURS,
    OUTSIDE_DIM,
    PAGE_WIDTH,
    REFERENCE_STYLES,
    STYLE,
    TP_COLOUR,
    TRAIN_COLOUR,
    VAL_COLOUR,
    WIDTH,
    PathLike,
    clip_losses,
    metric_label,
    robust_top,
)
from effunet.plots.charts import (
    SPEED_NOTE,
    SPEED_PANELS,
    comparison_chart,
    comparison_figure,
    model_order,
    recipe_labels,
    training_speed_chart,
    training_speed_figure,
)
from effunet.plots.cost import COST_AXES, QUALITY_AXES, cost_chart, cost_figure, cost_points
from effunet.plots.curves import learning_curves, learning_curves_figure
from effunet.plots.inputs import HISTORY_COLUMNS, RUN_KEYS, curve_markers, read_history, read_run
from effunet.plots.overlay import learning_curves_overlay, overlay_figure, seed_curves
from effunet.plots.panels import SHORT_ID, error_overlay, qualitative_figure, qualitative_panel, short_id

__all__ = [
    "COST_AXES",
    "DIM",
    "DPI",
    "FN_COLOUR",
    "FP_COLOUR",
    "HISTORY_COLUMNS",
    "MODEL_COLOURS",
    "OUTSIDE_DIM",
    "PAGE_WIDTH",
    "REFERENCE_STYLES",
    "RUN_KEYS",
    "SHORT_ID",
    "SPEED_NOTE",
    "SPEED_PANELS",
    "STYLE",
    "TP_COLOUR",
    "TRAIN_COLOUR",
    "VAL_COLOUR",
    "WIDTH",
    "PathLike",
    "QUALITY_AXES",
    "comparison_chart",
    "comparison_figure",
    "cost_chart",
    "cost_figure",
    "clip_losses",
    "cost_points",
    "curve_markers",
    "error_overlay",
    "learning_curves",
    "learning_curves_figure",
    "learning_curves_overlay",
    "metric_label",
    "model_order",
    "overlay_figure",
    "qualitative_figure",
    "qualitative_panel",
    "read_history",
    "read_run",
    "recipe_labels",
    "robust_top",
    "seed_curves",
    "short_id",
    "training_speed_chart",
    "training_speed_figure",
]
