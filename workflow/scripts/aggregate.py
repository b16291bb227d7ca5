"""Aggregate every run's files into the comparison table (CSV, Markdown, HTML) and paired tests."""

from pathlib import Path

from effunet.logs import run_logged


def main(smk):
    from effunet.compare import aggregate

    aggregate([Path(path).parent for path in smk.input.runs], table_csv=smk.output.table,
              table_md=smk.output.markdown, table_html=smk.output.html, paired_csv=smk.output.paired,
              references=smk.input.references, claims_csv=smk.output.claims)


if __name__ == "__main__":
    run_logged(snakemake.log[0], main, snakemake)  # noqa: F821 (injected by Snakemake)
