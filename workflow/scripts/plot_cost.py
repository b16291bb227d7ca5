"""Test quality against parameters, FLOPs and training time, from the quality-vs-cost table."""

from effunet.logs import run_logged


def main(smk):
    from effunet.plots import cost_chart

    cost_chart(smk.input.cost, smk.output.cost)


if __name__ == "__main__":
    run_logged(snakemake.log[0], main, snakemake)  # noqa: F821 (injected by Snakemake)
