# Config validation, wildcard constraints, paths and input/param functions shared by all rules.

import effunet.config
import effunet.provenance

effunet.config.validate(
    config, f"{workflow.current_basedir}/../schemas/config.schema.yaml"
)

# Data sets without a source (DRIVE unless you set datasets.drive.source) are left out, said once here.
DATASETS, SKIPPED_DATASETS = effunet.config.active_datasets(config)
if workflow.is_main_process:
    for message in SKIPPED_DATASETS:
        logger.warning(message)


wildcard_constraints:
    dataset="|".join(DATASETS),
    model="|".join(config["models"]),
    seed=r"\d+",


def raw_dir(dataset):
    return f"resources/raw/{dataset}"


def prepared(dataset, name):
    return f"resources/prepared/{dataset}/{name}"


def dataset_setting(dataset, key):
    """A data set's config value, or None where the data set is not configured (its rules never run)."""
    return config["datasets"].get(dataset, {}).get(key)


def dataset_param(key):
    """A params function giving the wildcard data set's config value for `key`."""

    def get(wildcards):
        return dataset_setting(wildcards.dataset, key)

    return get


def synthetic_options(wildcards):
    """Generator options only matter (and only trigger reruns) for synthetic sources."""
    if dataset_setting(wildcards.dataset, "source") != "synthetic":
        return {}
    return dataset_setting(wildcards.dataset, "synthetic")


def run_dir(name):
    """A file of one training run; the experiment's identity is in the path."""
    return f"results/{{dataset}}/{{model}}/seed{{seed}}/{name}"


def train_settings(wildcards):
    """The global train block with the data set's overrides and the model's options."""
    settings = effunet.config.train_settings(config, wildcards.dataset)
    return {
        **settings,
        "model_options": config["model_options"].get(wildcards.model, {}),
    }


def training_code(wildcards):
    """A hash of the package code that defines and trains this model (Snakemake tracks no imports)."""
    return effunet.provenance.training_code_version(wildcards.model)


def native_truth(wildcards):
    """Native-resolution ground truth: DSB2018's instance labels, DRIVE's original files."""
    if wildcards.dataset == "dsb2018":
        return prepared("dsb2018", "labels")
    return raw_dir(wildcards.dataset)


def all_targets():
    plots = expand(
        "results/{dataset}/{model}/seed{seed}/plots/{plot}.png",
        dataset=DATASETS,
        model=config["models"],
        seed=config["seeds"],
        plot=["learning_curves", "examples"],
    )
    return plots + [
        "results/comparison.md",
        "results/plots/comparison.png",
        "results/plots/training_speed.png",
    ]


def prepare_tracking():
    """Create the MLflow store and experiment once, before training jobs log to it concurrently."""
    from effunet.tracking import (
        prepare_store,
    )  # imported here: MLflow is slow to import

    prepare_store(
        config["mlflow"]["tracking_uri"], config["mlflow"]["experiment"], strict=False
    )
