"""Aggregate every run's files into the comparison table (CSV, Markdown, HTML) and paired tests."""

from effunet.logs import run_logged


def main(smk):
    from effunet.compare import RunResult, aggregate
    from effunet.run import RunId

    runs = [RunResult(RunId(**identity), run, metrics, per_image) for identity, run, metrics, per_image
            in zip(smk.params.runs, smk.input.runs, smk.input.metrics, smk.input.per_image, strict=True)]
    aggregate(runs, table_csv=smk.output.table, table_md=smk.output.markdown, table_html=smk.output.html,
              paired_csv=smk.output.paired, references=smk.input.references, claims_csv=smk.output.claims,
              cost_csv=smk.output.cost, target_difference=smk.params.target_difference,
              datasets=smk.params.datasets)


if __name__ == "__main__":
    run_logged(snakemake.log[0], main, snakemake)  # noqa: F821 (injected by Snakemake)
