"""Score one trained model on every split (native and training size) and add it to its MLflow run."""

from pathlib import Path

from effunet.logs import run_logged


def main(smk):
    from effunet import devices

    devices.prepare_job(smk.config["train"], holds_gpu=False)  # on the CPU: it holds no gpu resource
    from effunet.evaluate import evaluate, log_to_training_run  # after logging is set up
    from effunet.layout import PreparedData

    def optional(name):
        return Path(getattr(smk.input, name)) if hasattr(smk.input, name) else None

    prepared = PreparedData(Path(smk.input.manifest), Path(smk.input.images), Path(smk.input.masks),
                            fov=optional("fov"), labels=optional("labels"), format=smk.params.format)
    result = evaluate(model_path=smk.input.model, prepared=prepared, metrics_path=smk.output.metrics,
                      per_image_path=smk.output.per_image, examples_path=smk.output.examples,
                      threshold=smk.params.threshold, run_json=smk.input.run, threads=smk.threads)
    # Read from the config on purpose: moving the MLflow store must not rerun evaluations.
    mlflow = smk.config["mlflow"]
    log_to_training_run(result, smk.input.run, smk.output.metrics, mlflow["tracking_uri"], mlflow["experiment"],
                        per_image_path=smk.output.per_image, model_path=smk.input.model, manifest=prepared.manifest)


if __name__ == "__main__":
    run_logged(snakemake.log[0], main, snakemake)  # noqa: F821 (injected by Snakemake)
