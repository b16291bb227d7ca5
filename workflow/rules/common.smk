# Config validation, wildcard constraints, paths and input/param functions shared by all rules.
# Every path comes from effunet.layout (the one map of the files; docs/architecture.md).

import effunet.config
import effunet.data.formats
import effunet.files
import effunet.layout
import effunet.provenance
import effunet.run
from effunet.layout import Layout

effunet.config.validate(
    config, f"{workflow.current_basedir}/../schemas/config.schema.yaml"
)

# Data sets without a source (DRIVE unless you set datasets.drive.source) are left out, said once here.
DATASETS, SKIPPED_DATASETS = effunet.config.active_datasets(config)
if workflow.is_main_process:
    for message in SKIPPED_DATASETS:
        logger.warning(message)
LAYOUT = Layout.of(config)
# Every recipe of the config is run (the schema's default: `study`, the train blocks as they are).
RECIPES = list(config["recipes"])

# envs/effunet.yaml installs the package from this repository (pip expands ${EFFUNET_ROOT}).
effunet.config.export_repository_root(workflow.basedir)


wildcard_constraints:
    dataset="|".join(DATASETS),
    model="|".join(config["models"]),
    seed=r"\d+",
    recipe="|".join(RECIPES),
    source=effunet.layout.SOURCE_PATTERN,
    variant=effunet.layout.VARIANT_PATTERN,


# Patterns of the data half: {source} and {variant} are filled in from the config by the
# functions below, so configs with the same inputs share these files.
RAW = str(Layout.raw("{dataset}", "{source}"))
LABELS = str(Layout.labels("{dataset}", "{source}"))
CAPABILITIES = {
    dataset: effunet.data.formats.capabilities(config, dataset) for dataset in DATASETS
}


def prepared_pattern(name):
    """A file or folder of a prepared data set, with {dataset}, {source} and {variant} as wildcards."""
    files = Layout.prepared("{dataset}", "{source}", "{variant}", fov=True)
    return str(getattr(files, name))


def datasets_where(**wanted):
    """A wildcard constraint: the names of the data sets whose format offers `wanted` (e.g.
    instances=True, region=False); a pattern that matches nothing where none does."""
    names = [
        dataset
        for dataset, can in CAPABILITIES.items()
        if all(getattr(can, key) == value for key, value in wanted.items())
    ]
    return "|".join(names) or "(?!)"


def preparation_settings(wildcards):
    """The data set's settings that shape its prepared files (not its source, which is in the path,
    nor its training settings): changing them reruns the data steps and nothing else."""
    return effunet.data.formats.preparation_settings(
        config["datasets"][wildcards.dataset]
    )


def label_settings(wildcards):
    """The data set's settings that shape its native instance labels: a changed training size reruns
    the prepare step, not the labels."""
    return effunet.data.formats.label_settings(config["datasets"][wildcards.dataset])


def preparation_inputs(wildcards):
    """The raw files, and the instance labels where the format has them."""
    inputs = {"raw": RAW.format(**wildcards)}
    if CAPABILITIES[wildcards.dataset].instances:
        inputs["labels"] = LABELS.format(**wildcards)
    return inputs


def data_log(step, dataset, *tags):
    return str(Layout.data_log(step, dataset, *tags))


def run_file(name):
    """A file of one training run (wildcards dataset, model, recipe, seed); the identity is in the path."""
    return str(getattr(run_files(), name))


def run_files():
    """The files of the wildcard run, as a pattern."""
    return LAYOUT.run("{dataset}", "{model}", "{seed}", "{recipe}")


def run_log(rule):
    return str(LAYOUT.run_log(rule, "{dataset}", "{model}", "{seed}", "{recipe}"))


def dataset_setting(dataset, key):
    """A data set's config value, or None where the data set is not configured (its rules never run)."""
    return config["datasets"].get(dataset, {}).get(key)


def dataset_param(key):
    """A params function giving the wildcard data set's config value for `key`."""

    def get(wildcards):
        return dataset_setting(wildcards.dataset, key)

    return get


def synthetic_options(wildcards):
    """Generator options (and the format, whose generator runs) only matter, and only trigger
    reruns, for synthetic sources."""
    if dataset_setting(wildcards.dataset, "source") != "synthetic":
        return {}
    return effunet.data.formats.synthetic_options(config["datasets"][wildcards.dataset])


def local_source_state(wildcards):
    """Size and mtime of a local source's files: editing the user's files reruns `download`."""
    from effunet.data.download import local_source_state

    return local_source_state(dataset_setting(wildcards.dataset, "source"))


def prepared_input(name):
    """An input function: the configured data set's prepared file or folder `name`."""

    def get(wildcards):
        return str(getattr(effunet.layout.prepared_of(config, wildcards.dataset), name))

    return get


def train_settings(wildcards):
    """The run's settings (train <- data set's train <- recipe, effunet.config.train_settings) and the
    model's options. A recipe's runs get only their own recipe's keys: adding a recipe changes no
    other run's params."""
    settings = effunet.config.train_settings(config, wildcards.dataset, wildcards.recipe)
    return {
        **settings,
        "model_options": config["model_options"].get(wildcards.model, {}),
    }


def native_inputs(wildcards):
    """What a run reads besides the prepared files: for train.input native_crops the original images
    (the raw folder the manifest points into) and DSB2018's native-size instance labels; for
    train.instances the labels (boundary targets). Nothing otherwise, so other runs' inputs stay."""
    settings = train_settings(wildcards)
    native = effunet.run.setting(settings, "input") == "native_crops"
    instances = effunet.run.setting(settings, "instances") != "none"
    prepared = effunet.layout.prepared_of(config, wildcards.dataset)
    inputs = {}
    if native:
        source, _ = effunet.layout.configured(config, wildcards.dataset)
        inputs["raw"] = str(Layout.raw(wildcards.dataset, source))
    if (native or instances) and prepared.labels is not None:
        inputs["labels"] = str(prepared.labels)
    return inputs


def training_code(wildcards):
    """A hash of the package code that defines and trains this model (Snakemake tracks no imports)."""
    return effunet.provenance.training_code_version(wildcards.model)


def trained_as(wildcards):
    """What the run's model is made from: a digest of its settings and training code. A param of the
    steps that read the model (evaluate, plot_run), so that a changed setting or training code makes
    Snakemake rerun them, and through them the training, even where a retrain died before it could
    remove their outputs (Snakemake does not remake a missing model whose readers look current)."""
    import hashlib
    import json

    made_of = {"settings": train_settings(wildcards), "code": training_code(wildcards)}
    return hashlib.sha256(json.dumps(made_of, sort_keys=True).encode()).hexdigest()[:16]


# The rules whose outputs are made (directly or through others) from a run's model or history.
MADE_FROM_TRAINING = ("evaluate", "plot_run", "plot_curves", "aggregate", "plot_comparison", "plot_cost")


def made_from_model(wildcards):
    """Outputs made from a run's model: its training job removes them when it starts, so that a failed
    or killed retrain leaves them missing (rerun) rather than stale but up to date in Snakemake's eyes.
    Untracked: adding an output to a later rule must not retrain every model."""
    patterns = [path for name in MADE_FROM_TRAINING for path in getattr(rules, name).output]
    return effunet.files.Untracked(tuple(str(path).format(**wildcards) for path in patterns))


def evaluation_inputs(wildcards):
    """Prepared files at the training size and native-resolution truth: the instance labels, or
    the original annotations and regions (the manifest points into the raw folder)."""
    prepared = effunet.layout.prepared_of(config, wildcards.dataset)
    source, _ = effunet.layout.configured(config, wildcards.dataset)
    inputs = {
        "manifest": str(prepared.manifest),
        "images": str(prepared.images),
        "masks": str(prepared.masks),
    }
    if prepared.labels is not None:
        inputs["labels"] = str(prepared.labels)
    if prepared.fov is not None:
        inputs["fov"] = str(prepared.fov)
    if prepared.labels is None or prepared.fov is not None:
        inputs["raw"] = str(Layout.raw(wildcards.dataset, source))
    if "model" in wildcards.keys() and effunet.run.setting(train_settings(wildcards), "inference") == "sliding":
        inputs["raw"] = str(Layout.raw(wildcards.dataset, source))  # a run's original images
    return inputs


RUNS = [
    effunet.layout.RunId(dataset, model, seed, recipe)
    for dataset in DATASETS
    for recipe in RECIPES
    for model in config["models"]
    for seed in config["seeds"]
]


def run_outputs(name):
    """One file per run of this config, in the order of RUNS."""
    return [str(getattr(LAYOUT.files(run), name)) for run in RUNS]


def recipe_runs(wildcards):
    """The model x seed runs of the wildcard data set and recipe (RUNS order)."""
    return [
        run
        for run in RUNS
        if run.dataset == wildcards.dataset and run.recipe == wildcards.recipe
    ]


def dataset_runs(name):
    """An input function: one file of every model x seed run of the wildcard data set and recipe."""

    def files(wildcards):
        return [str(getattr(LAYOUT.files(run), name)) for run in recipe_runs(wildcards)]

    return files


def dataset_run_models(wildcards):
    """The model of each run of the wildcard data set and recipe, in the order of `dataset_runs`."""
    return [run.model for run in recipe_runs(wildcards)]


def reference_file(dataset):
    """The reference rows (protocol ceiling, second observer) of a data set."""
    return str(LAYOUT.reference(dataset))


def svg(png):
    """The SVG written beside every PNG figure (effunet.plots)."""
    return str(png.with_suffix(".svg"))


def curves_overlay(dataset, recipe):
    """All models' learning curves of a data set under one recipe, on shared axes."""
    return LAYOUT.curves_overlay(dataset, recipe)


def all_targets():
    plots = [
        str(LAYOUT.files(run).plot(plot))
        for run in RUNS
        for plot in ("learning_curves", "examples")
    ]
    # Every run's evaluation too: a missing metrics.json is remade even where the table is current.
    evaluations = [
        str(getattr(LAYOUT.files(run), name))
        for run in RUNS
        for name in ("metrics", "per_image", "examples")
    ]
    overlays = [
        str(curves_overlay(dataset, recipe))
        for dataset in DATASETS
        for recipe in RECIPES
    ]
    return (
        plots
        + evaluations
        + overlays
        + [
            str(LAYOUT.comparison("md")),
            str(LAYOUT.comparison_plot("comparison")),
            str(LAYOUT.comparison_plot("training_speed")),
            str(LAYOUT.comparison_plot("cost")),
        ]
    )


def prepare_tracking():
    """Create the MLflow store and experiment once, before training jobs log to it concurrently."""
    from effunet.tracking import (
        prepare_store,
    )  # imported here: MLflow is slow to import

    prepare_store(
        config["mlflow"]["tracking_uri"], config["mlflow"]["experiment"], strict=False
    )
