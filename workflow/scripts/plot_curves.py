"""Validation loss and accuracy of every model of one data set and recipe on shared axes (mean and range
over seeds)."""

from effunet.logs import run_logged


def main(smk):
    from effunet.plots import learning_curves_overlay

    learning_curves_overlay(smk.input.histories, smk.input.runs, smk.params.models, smk.output.curves,
                            f"Validation curves on {smk.wildcards.dataset}, "
                            f"{smk.wildcards.recipe} recipe")


if __name__ == "__main__":
    run_logged(snakemake.log[0], main, snakemake)  # noqa: F821 (injected by Snakemake)
