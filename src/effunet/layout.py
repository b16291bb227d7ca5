"""The one map of the files: where prepared data and each run's outputs live.

The rules (`workflow/rules/common.smk`) take every path from here, and library functions receive
paths explicitly (a `PreparedData` or a `RunFiles`), so no other module composes or parses
workflow paths. Every path, with the rule that writes it, is mapped in `docs/architecture.md`
(*The files on disk*), the one description of the layout.

`{source}` names the data source (a hash of the config's `source`, `sha256` and synthetic
options) and `{variant}` the preparation (training size and split), so configs that share
inputs share the prepared files, and configs that differ never overwrite each other's.
`{experiment}` is the config's `mlflow.experiment`: each config writes its results under its own
root, so the demo and the study coexist. `{recipe}` names a training recipe of the config's
`recipes` block (`study` by default): each recipe's runs have their own folders, so adding a recipe
leaves the existing runs' files (and Snakemake's view of them) untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from effunet.run import STUDY_RECIPE, RunId  # noqa: F401 (RunId: the rules and aggregation take it from here too)

RESOURCES = Path("resources")
RESULTS = Path("results")
LOGS = Path("logs")

SOURCE_PATTERN = r"[a-z]+-[0-9a-f]{10}"
VARIANT_PATTERN = r"\d+x\d+-[0-9a-f]{8}"
RECIPE_PATTERN = r"[A-Za-z][A-Za-z0-9_-]*"  # the schema's pattern for recipe names


def _short_hash(value, length: int) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:length]


def source_tag(dataset_config: dict) -> str:
    """Names a data set's source: kind plus a hash of what identifies it (not the file's contents).

    `dataset_config` is a validated data set block (the schema's defaults filled in)."""
    source = dataset_config["source"]
    if source == "synthetic":
        kind, identity = "synthetic", dataset_config["synthetic"]
    elif source and str(source).startswith(("http://", "https://")):
        kind, identity = "url", [source, dataset_config["sha256"]]
    else:
        kind, identity = "local", [source, dataset_config["sha256"]]
    return f"{kind}-{_short_hash([source, identity], 10)}"


def variant_tag(dataset_config: dict) -> str:
    """Names a preparation of a source: the training size, then a hash of the split settings (and, for
    formats whose paths do not predate the other preparation keys (`Format.split_only_variant`), of
    every other key that shapes the prepared files, such as `annotations`, `roi`, `foreground_labels`
    and `targets`), so configs that differ never overwrite each other's prepared files."""
    from effunet.data import formats

    height, width = dataset_config["image_size"]
    shaping = dataset_config["split"]
    fmt = formats.default_format("", dataset_config)
    if fmt is not None and not formats.get(fmt).split_only_variant:
        shaping = {
            k: v for k, v in formats.preparation_settings(dataset_config).items() if k not in ("format", "image_size")
        }
    return f"{height}x{width}-{_short_hash(shaping, 8)}"


@dataclass(frozen=True)
class PreparedData:
    """The files of one prepared data set, as the training and evaluation functions read them."""

    manifest: Path
    images: Path
    masks: Path
    fov: Path | None = None  # the scored region at the training size (formats with a region)
    labels: Path | None = None  # instance labels at native size (formats with instances)
    format: str | None = None  # the data set's format (effunet.data.formats): how to read its native truth

    @classmethod
    def in_folder(cls, root: str | os.PathLike, format: str | None = None) -> PreparedData:
        """Everything in one folder (images/, masks/, manifest.csv, and fov/ and labels/ where they
        exist), as tests build it."""
        root = Path(root)
        optional = [root / name if (root / name).is_dir() else None for name in ("fov", "labels")]
        return cls(root / "manifest.csv", root / "images", root / "masks", *optional, format)

    def image(self, sample_id: str) -> Path:
        return self.images / f"{sample_id}.png"

    def mask(self, sample_id: str) -> Path:
        return self.masks / f"{sample_id}.png"

    def region(self, sample_id: str) -> Path:
        if self.fov is None:
            raise ValueError("this data set has no scored region (field-of-view masks)")
        return self.fov / f"{sample_id}.png"

    def label(self, sample_id: str) -> Path:
        if self.labels is None:
            raise ValueError("this data set has no instance labels")
        return self.labels / f"{sample_id}.png"


@dataclass(frozen=True)
class RunFiles:
    """The files of one training run (data set x model x recipe x seed)."""

    root: Path

    @property
    def model(self) -> Path:
        return self.root / "model.keras"

    @property
    def history(self) -> Path:
        return self.root / "history.csv"

    @property
    def run(self) -> Path:
        return self.root / "run.json"

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint"

    @property
    def metrics(self) -> Path:
        return self.root / "eval" / "metrics.json"

    @property
    def per_image(self) -> Path:
        return self.root / "eval" / "per_image.csv"

    @property
    def examples(self) -> Path:
        return self.root / "eval" / "examples.npz"

    def plot(self, name: str) -> Path:
        return self.root / "plots" / f"{name}.png"


class Layout:
    """Paths of one config's workflow. Arguments may be Snakemake wildcards such as "{dataset}"."""

    def __init__(self, experiment: str):
        self.experiment = experiment
        self.results = RESULTS / experiment
        self.logs = LOGS / experiment

    @classmethod
    def of(cls, config: dict) -> Layout:
        return cls(config["mlflow"]["experiment"])

    # Data: shared between configs whose inputs are the same.
    @staticmethod
    def downloads(dataset: str) -> Path:
        return RESOURCES / "downloads" / dataset

    @staticmethod
    def raw(dataset: str, source: str) -> Path:
        return RESOURCES / "raw" / dataset / source

    @staticmethod
    def labels(dataset: str, source: str) -> Path:
        return RESOURCES / "prepared" / dataset / source / "labels"

    @staticmethod
    def prepared(
        dataset: str, source: str, variant: str, *, fov: bool = False, labels: bool = False, format: str | None = None
    ) -> PreparedData:
        root = RESOURCES / "prepared" / dataset / source / variant
        return PreparedData(
            root / "manifest.csv",
            root / "images",
            root / "masks",
            fov=root / "fov" if fov else None,
            labels=Layout.labels(dataset, source) if labels else None,
            format=format,
        )

    @staticmethod
    def data_log(step: str, dataset: str, *tags: str) -> Path:
        return LOGS / "data" / step / dataset / ("-".join(tags) + ".log")

    # Results: one root per config.
    def run(self, dataset: str, model: str, seed, recipe: str = STUDY_RECIPE) -> RunFiles:
        return RunFiles(self.results / dataset / model / recipe / f"seed{seed}")

    @classmethod
    def run_pattern(cls) -> RunFiles:
        """A run's files with placeholders for help texts and hints: `.root` is
        results/<experiment>/<dataset>/<model>/<recipe>/seed<seed> (made by `run`)."""
        return cls("<experiment>").run("<dataset>", "<model>", "<seed>", "<recipe>")

    def files(self, run: RunId) -> RunFiles:
        return self.run(run.dataset, run.model, run.seed, run.recipe)

    def run_log(self, rule: str, dataset: str, model: str, seed, recipe: str = STUDY_RECIPE) -> Path:
        return self.logs / rule / dataset / model / recipe / f"seed{seed}.log"

    def comparison(self, suffix: str) -> Path:
        return self.results / f"comparison.{suffix}"

    @property
    def paired_tests(self) -> Path:
        return self.results / "paired_tests.csv"

    def comparison_plot(self, name: str) -> Path:
        return self.results / "plots" / f"{name}.png"

    def reference(self, dataset: str) -> Path:
        """The reference rows of a data set (protocol ceiling, second observer)."""
        return self.results / dataset / "reference.json"

    @property
    def claims(self) -> Path:
        return self.results / "claims.csv"

    @property
    def cost(self) -> Path:
        """Test quality against parameters, FLOPs and training time, one row per data set x model x recipe."""
        return self.results / "cost.csv"

    def curves_overlay(self, dataset: str, recipe: str) -> Path:
        """All models' learning curves of one data set under one recipe, on shared axes."""
        return self.comparison_plot(f"learning_curves_{dataset}_{recipe}")

    def log(self, rule: str) -> Path:
        return self.logs / f"{rule}.log"


def configured(config: dict, dataset: str) -> tuple[str, str]:
    """The (source, variant) tags of a configured data set."""
    settings = config["datasets"][dataset]
    return source_tag(settings), variant_tag(settings)


def prepared_of(config: dict, dataset: str) -> PreparedData:
    """A configured data set's prepared files: region masks and instance labels where its format
    (`effunet.data.formats`) has them."""
    from effunet.data import formats

    source, variant = configured(config, dataset)
    can = formats.capabilities(config, dataset)
    return Layout.prepared(dataset, source, variant, fov=can.region, labels=can.instances, format=can.format)
