"""The comparison: one row per data set x recipe x model (mean +- std over seeds), reference rows, statistics,
claims and the quality-vs-cost table, from a workflow's run files (the `aggregate` rule).

One module per concern, each importing only those above it:

- `records`: reading the results: a run's run.json (`effunet.run.RunRecord`) and eval/metrics.json as a row
  (`run_record`), a data set's reference rows (`reference_records`), the runs' per-image scores.
- `table`: the comparison table (`comparison_table`).
- `paired`: the paired tests, Eff-UNet vs each baseline and each recipe vs `study` (`paired_tests`), Holm
  within each family (`family_tests`); the maths is `effunet.statistics`.
- `study`: the study's findings with its published numbers, as data (`FINDINGS`).
- `claims`: those findings measured here (`claims_table`).
- `cost`: the quality-vs-cost table (`cost_table`).
- `text`, `render`: formatting; comparison.md and comparison.html (`markdown`, `html`).
- `aggregation`: the aggregate step, files in, tables out (`aggregate`).

Headline weighting: a data set's headline quality columns (`dice`, `iou`, ...) are per-image means (each
image counts once, as in training and in the paired test) or pooled over its scored pixels, as its format
says (`effunet.data.formats`: DRIVE pooled inside the field of view, the literature's convention; others
per image unless `datasets.<name>.headline` says pooled). Both variants are kept under their own names
(`<metric>_pooled`, `<metric>_image_mean`). `instance_ap` is the DSB2018 competition score (per-image
mean) without and with watershed splitting of touching nuclei, where a data set has instance labels;
`test_loss` the training loss on the test split at the training size. Reference rows: the `protocol
ceiling` (the ground truth through the resize-down-and-back protocol, scored like a model) and a second
observer (DRIVE's `2nd observer`) where the data set has one. The study's claims are checked on the
data sets of the study's formats (`dsb2018`: the nuclei claims, `drive`: the vessel claims), on the
`study` recipe only.
"""

from .aggregation import aggregate
from .claims import claims_table
from .cost import COST, COST_QUALITY, cost_display, cost_table
from .paired import BASELINES, RECIPE_FAMILY, TARGET_DIFFERENCE, architecture_family, family_tests, paired_tests
from .records import QUALITY, RunResult, read_per_image, reference_records, run_record
from .render import NO_STUDY_DATA, headline_caption, headline_table, html, markdown, statistics_table
from .study import FINDINGS, STUDY_FORMATS, Finding
from .table import comparison_table

__all__ = [
    "BASELINES",
    "COST",
    "COST_QUALITY",
    "FINDINGS",
    "NO_STUDY_DATA",
    "QUALITY",
    "RECIPE_FAMILY",
    "STUDY_FORMATS",
    "TARGET_DIFFERENCE",
    "Finding",
    "RunResult",
    "aggregate",
    "architecture_family",
    "claims_table",
    "comparison_table",
    "cost_display",
    "cost_table",
    "family_tests",
    "headline_caption",
    "headline_table",
    "html",
    "markdown",
    "paired_tests",
    "read_per_image",
    "reference_records",
    "run_record",
    "statistics_table",
]
