"""Train one data set x model x seed (resumable), tracked in MLflow."""

from pathlib import Path

from effunet.logs import run_logged


def main(smk):
    from effunet.training.loop import Settings, Tracking, train  # after logging is set up: TF is chatty

    # The tracking location is read from the config, not params, on purpose: moving the MLflow
    # store must not retrain anything.
    mlflow = smk.config["mlflow"]
    train(prepared_dir=Path(smk.input.manifest).parent, model_name=smk.wildcards.model,
          seed=int(smk.wildcards.seed), settings=Settings(**smk.params.settings),
          model_path=smk.output.model, history_path=smk.output.history, run_path=smk.output.run,
          checkpoint_dir=smk.params.checkpoint, threads=smk.threads,
          tracking_info=Tracking(uri=mlflow["tracking_uri"], experiment=mlflow["experiment"],
                                 run_name=smk.params.run_name, tags=smk.params.tags))


if __name__ == "__main__":
    run_logged(snakemake.log[0], main, snakemake)  # noqa: F821 (injected by Snakemake)
