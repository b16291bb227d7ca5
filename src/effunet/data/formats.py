"""The format registry: the one home for what a data set can do.

A data set has a name (any `[a-z0-9_-]+`: it appears in paths, wildcards, MLflow tags and tables)
and a format (`datasets.<name>.format`), which decides how its raw files become the common prepared
form and what that form offers. Everything downstream (training, evaluation, reference rows, the
comparison, plots, predict) asks the prepared data (`effunet.layout.PreparedData`, whose `format`
names an entry here) or this registry, never the data set's name.

The common prepared form (`resources/prepared/<name>/<source>/`):

    labels/<id>.png                  native-size uint16 instance labels (formats with instances)
    <variant>/images/<id>.png        RGB at the training size
    <variant>/masks/<id>.png         training targets at the training size (0/255, or soft 0..255)
    <variant>/fov/<id>.png           the scored region at the training size (formats with a region)
    <variant>/manifest.csv           id, split, height, width, image (the original, for native crops
                                     and sliding-window inference), then the format's own columns

Each format is one module of this package (`dsb2018`, `drive`, `folder`, `nnunet`) that defines
`FORMAT`; adding a format is that module, its schema block (`workflow/schemas/config.schema.yaml`,
`$defs/dataset_<format>`) and its tests.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from effunet.errors import ConfigError

# Names that were data sets before formats existed: a data set so named defaults to that format.
HISTORICAL = ("dsb2018", "drive")
NAME_PATTERN = r"[a-z0-9_-]+"
MODULES = ("dsb2018", "drive", "folder", "nnunet")
HEADLINES = ("per_image_mean", "pooled")


@dataclass
class Native:
    """A sample's native-resolution truth, as evaluation and native-crop training read it."""

    truth: np.ndarray  # bool
    region: np.ndarray | None = None  # bool: the scored pixels (None: all)
    labels: np.ndarray | None = None  # uint16 instance ids (formats with instances)
    second_observer: np.ndarray | None = None  # bool: another annotator's truth, where the format has one


def _never(settings: dict) -> bool:
    return False


@dataclass(frozen=True)
class Format:
    """What a format does and offers. The callables take the data set's validated config block."""

    name: str
    title: str  # how messages name the data (DSB2018, DRIVE, folder data set)
    describe: str
    prepare: Callable  # (raw_dir, labels_dir, prepared: PreparedData, settings, name, workers) -> int
    native: Callable  # (prepared: PreparedData, row) -> Native
    check: Callable  # (raw_dir, settings, name, workers) -> effunet.data.checks.Report
    instances: Callable[[dict], bool] = _never  # instance labels (instance AP, boundary recipe)
    region: Callable[[dict], bool] = _never  # a scored region (fov/) besides the image
    write_labels: Callable | None = None  # (raw_dir, labels_dir, settings, name, workers) -> int
    headline: Callable[[dict], str] = lambda settings: settings.get("headline", "per_image_mean")
    check_config: Callable[[str, dict], None] = lambda name, settings: None  # start-up checks (ConfigError)
    missing_source: Callable[[str], str] | None = None  # the help when datasets.<name>.source is unset
    study: str | None = None  # the study's data set this format reproduces: its claims apply to it
    synthetic: Callable | None = None  # (path, **options) -> Path: a synthetic source in this format
    split_only_variant: bool = False  # prepared folders named by image_size and split alone (paths of old)


_REGISTRY: dict[str, Format] = {}


def _load() -> dict[str, Format]:
    if not _REGISTRY:
        for module in MODULES:
            entry = importlib.import_module(f"effunet.data.{module}").FORMAT
            _REGISTRY[entry.name] = entry
    return _REGISTRY


def names() -> list[str]:
    return list(_load())


def get(name: str) -> Format:
    registry = _load()
    if name not in registry:
        raise ConfigError(f"unknown data set format {name!r} (known: {', '.join(registry)})")
    return registry[name]


def default_format(dataset: str, settings: dict) -> str | None:
    """The format a data set block names, or the historical default of its name (dsb2018, drive)."""
    if isinstance(settings, dict) and settings.get("format"):
        return settings["format"]
    return dataset if dataset in HISTORICAL else None


def of(config: dict, dataset: str) -> Format:
    """The format of a configured (validated) data set."""
    return get(config["datasets"][dataset]["format"])


@dataclass(frozen=True)
class Capabilities:
    """What a configured data set offers, as the workflow and the comparison ask it."""

    format: str
    instances: bool
    region: bool
    headline: str
    study: str | None


def capabilities(config: dict, dataset: str) -> Capabilities:
    settings = config["datasets"][dataset]
    entry = get(settings["format"])
    return Capabilities(
        entry.name, bool(entry.instances(settings)), bool(entry.region(settings)), entry.headline(settings), entry.study
    )


def native(prepared, row) -> Native:
    """The native truth of one manifest row of `prepared` (its format's reader)."""
    if prepared.format is None:
        raise ValueError(f"{prepared.manifest}: the prepared data does not say its format")
    return get(prepared.format).native(prepared, row)


def manifest_native(prepared, row) -> Native:
    """Native truth from the manifest's generic columns (the `folder` and `nnunet` formats):
    `mask` (the original annotation) with `foreground` ("nonzero", or the label values separated by
    spaces), `region` (nonzero = scored), or the prepared instance labels where there are some."""
    from effunet.data import images

    labels = images.read_labels(prepared.label(row.id)) if prepared.labels is not None else None
    if labels is not None:
        truth = labels > 0
    else:
        values = images.read_annotation(row.mask)
        truth = foreground(values, str(getattr(row, "foreground", "nonzero")))
    region = None
    if prepared.fov is not None and getattr(row, "region", ""):
        region = images.read_annotation(row.region) != 0
    return Native(truth, region, labels)


def foreground(values: np.ndarray, rule: str) -> np.ndarray:
    """The foreground of an annotation: every non-zero value, or the listed label values."""
    if rule in ("", "nonzero"):
        return values != 0
    return np.isin(values, [int(value) for value in rule.split()])


def foreground_rule(labels: list[int] | None) -> str:
    return "nonzero" if not labels else " ".join(str(int(value)) for value in sorted(labels))


def skipped_message(dataset: str, settings: dict) -> str:
    """The start-up line for a configured data set without a source, with the format's help."""
    entry = get(default_format(dataset, settings) or "folder")
    who = entry.title if entry.title.lower() == dataset else f"{dataset} ({entry.title})"
    text = f"{who} is skipped: datasets.{dataset}.source is not set"
    return f"{text}. {entry.missing_source(dataset)}" if entry.missing_source else text


def missing_source(dataset: str, fmt: str) -> str:
    """The error for a data step asked to fetch a data set without a source."""
    entry = get(fmt)
    text = f"config key datasets.{dataset}.source is not set"
    return f"{text}: {entry.missing_source(dataset)}" if entry.missing_source else text


# Keys of a data set block that do not shape its prepared files: where the files come from (the
# source is in the path), how runs train, how the table weights images.
NOT_PREPARATION = ("source", "sha256", "synthetic", "train", "headline")


def preparation_settings(settings: dict) -> dict:
    """The keys of a validated data set block that shape its prepared files (the data steps' params)."""
    return {key: value for key, value in settings.items() if key not in NOT_PREPARATION}


def label_settings(settings: dict) -> dict:
    """The keys that shape a data set's native-size instance labels (not the training size, split or
    targets, which only the prepare step uses): the params of the labels step."""
    return {
        key: value
        for key, value in preparation_settings(settings).items()
        if key not in ("image_size", "split", "targets")
    }


def synthetic_options(settings: dict) -> dict:
    """The generator options of a synthetic source: the `synthetic` block, plus for the formats that
    are not historical names the format and the layout keys the generator follows."""
    options = dict(settings.get("synthetic") or {})
    if settings["format"] in HISTORICAL:
        return options  # as before formats existed: the study's and the demo's downloads do not rerun
    layout = {key: settings[key] for key in ("annotations", "roi") if key in settings}
    return {"format": settings["format"], **layout, **options}


def write_synthetic(fmt: str, path: str | os.PathLike, **options) -> Path:
    options.pop("format", None)
    entry = get(fmt)
    if entry.synthetic is None:
        raise ConfigError(f"the {fmt} format has no synthetic generator")
    return entry.synthetic(path, **options)
