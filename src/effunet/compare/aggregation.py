"""The aggregate step: every run's files in, the comparison's tables out."""

from __future__ import annotations

import os

import pandas as pd

from effunet.files import atomic_path, write_text_atomic

from .claims import claims_table
from .cost import cost_table
from .paired import TARGET_DIFFERENCE, paired_tests
from .records import DEFAULT_HEADLINE, RunResult, read_per_image, reference_records, run_record
from .render import html, markdown
from .study import STUDY_FORMATS
from .table import comparison_table


def aggregate(runs: list[RunResult], table_csv, table_md, table_html, paired_csv,
              references: list[str | os.PathLike] = (), claims_csv=None, cost_csv=None,
              target_difference: float = TARGET_DIFFERENCE, datasets: dict[str, dict] | None = None) -> pd.DataFrame:  # fmt: skip
    """Read every run's files (and the reference scores); write the tables, paired tests, claims and the
    quality-vs-cost table. `target_difference`: the Dice difference (config key
    `compare.target_difference`) for which a row without a verdict states the seeds per model it needs.
    `datasets`: what each data set's format says (`effunet.data.formats.Capabilities` as a dict: `format`,
    `headline`, `study`); by default every data set is weighted per image and the study's claims are
    checked on the data sets named dsb2018 and drive. Returns the comparison table."""
    weightings = {name: can["headline"] for name, can in (datasets or {}).items()}
    study = None
    if datasets is not None:
        study = {fmt: [name for name, can in datasets.items() if can.get("study") == fmt] for fmt in STUDY_FORMATS}
    records = [run_record(r, weightings.get(r.id.dataset, DEFAULT_HEADLINE)) for r in runs]
    reference_rows = [row for path in references for row in reference_records(path, weightings)]
    table = comparison_table(records, reference_rows, weightings)
    per_image = read_per_image(runs, records)
    paired = paired_tests(per_image, target_difference)
    claims = claims_table(records, per_image, target_difference, study)
    cost = cost_table(records)
    for frame, path in ((table, table_csv), (paired, paired_csv), (claims, claims_csv), (cost, cost_csv)):
        if path is not None:
            with atomic_path(path) as tmp:
                frame.to_csv(tmp, index=False)
    write_text_atomic(table_md, markdown(table, paired, claims, cost))
    write_text_atomic(table_html, html(table, paired, claims, cost))
    return table
