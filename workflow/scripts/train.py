"""Train one data set x model x seed (resumable), tracked in MLflow."""

from pathlib import Path

from effunet.logs import run_logged


def main(smk):
    import logging

    from effunet import devices
    from effunet.files import remove_paths

    # Outputs made from an earlier model go first, before anything slow or fallible (imports, devices,
    # data): a retrain that dies at any point leaves them missing, so a later run remakes them.
    for path in remove_paths(smk.params.stale.value):
        logging.getLogger("effunet.train").info("removed %s (made from an earlier model)", path)

    # Read from the config on purpose (like the MLflow store): where a job runs retrains nothing.
    # The GPU slot and the backend are set before Keras starts and held until the job ends.
    devices.prepare_job(smk.config["train"], holds_gpu=True)
    from effunet.layout import PreparedData
    from effunet.run import Settings
    from effunet.training.loop import Outputs, Tracking, train  # after logging is set up

    # The tracking location is read from the config, not params, on purpose: moving the MLflow
    # store must not retrain anything.
    mlflow = smk.config["mlflow"]
    labels = Path(smk.input.labels) if hasattr(smk.input, "labels") else None  # native_crops, instances
    # The format says how native crops read the original truth; read from the config (like the tracking
    # location): the prepared files it describes are inputs already.
    prepared = PreparedData(Path(smk.input.manifest), Path(smk.input.images), Path(smk.input.masks), labels=labels,
                            format=smk.config["datasets"][smk.wildcards.dataset]["format"])
    train(prepared=prepared, model_name=smk.wildcards.model,
          seed=int(smk.wildcards.seed), settings=Settings.from_params(smk.params.settings),
          threads=smk.threads,
          device=smk.config["train"]["device"], checkpoint_every_s=smk.config["train"]["checkpoint_every_s"],
          outputs=Outputs(Path(smk.output.model), Path(smk.output.history), Path(smk.output.run),
                          Path(smk.params.checkpoint), stale=tuple(map(Path, smk.params.stale.value))),
          code_version=smk.params.code,
          tracking_info=Tracking(uri=mlflow["tracking_uri"], experiment=mlflow["experiment"],
                                 dataset=smk.wildcards.dataset, rule=smk.rule,
                                 recipe=smk.wildcards.recipe))


if __name__ == "__main__":
    run_logged(snakemake.log[0], main, snakemake)  # noqa: F821 (injected by Snakemake)
