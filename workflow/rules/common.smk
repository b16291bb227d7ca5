# Config validation, wildcard constraints, paths and input/param functions shared by all rules.

import effunet.config

effunet.config.validate(
    config, f"{workflow.current_basedir}/../schemas/config.schema.yaml"
)

DATASETS = list(config["datasets"])


wildcard_constraints:
    dataset="|".join(DATASETS),


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


def all_targets():
    return [prepared(dataset, "manifest.csv") for dataset in DATASETS]
