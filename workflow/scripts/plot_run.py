"""Learning curves and the qualitative panel of one training run."""

from effunet.logs import run_logged


def main(smk):
    from effunet.evaluate import load_examples
    from effunet.plots import learning_curves, qualitative_panel

    title = f"{smk.wildcards.model} on {smk.wildcards.dataset}, seed {smk.wildcards.seed}"
    learning_curves(smk.input.history, smk.input.run, smk.output.curves, title)
    qualitative_panel(load_examples(smk.input.examples), smk.output.examples, title,
                      threshold=smk.params.threshold)
    from effunet.tracking import log_files

    # Read from the config on purpose: moving the MLflow store must not redraw plots.
    mlflow = smk.config["mlflow"]
    log_files(mlflow["tracking_uri"], mlflow["experiment"], smk.input.run,
              [smk.output.curves, smk.output.examples], artifact_path="plots")


if __name__ == "__main__":
    run_logged(snakemake.log[0], main, snakemake)  # noqa: F821 (injected by Snakemake)
