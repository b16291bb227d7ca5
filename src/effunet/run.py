"""A training run's one home: who it is (`RunId`), how it trains (`Settings`), what it recorded
(`RunRecord`, the only reader and writer of `run.json`) and its timing figures (`TIMING`).

- **Identity**: `RunId(dataset, model, seed, recipe)`; its `name` is the MLflow run name and the run's
  folder under results/<experiment>/. `STUDY_RECIPE` is the recipe the study's settings run under.
- **Settings**: the config's `train` block as a run resolves it. Every default is the schema's
  (`workflow/schemas/config.schema.yaml`, `$defs/train`), read here once: the config validator fills
  the same defaults in, the workflow and predict ask `Settings` for a key a run's params leave out.
  A new training key is added to the schema and as a field here; `tests/test_run.py` fails on drift.
- **Record**: `run.json`, written by the training job (`RunRecord.write`) and read by every later
  step (evaluation, plots, the comparison, tracking, predict) through `RunRecord.read`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from effunet.errors import EffunetError
from effunet.files import write_text_atomic

SCHEMA_IN_REPOSITORY = Path("workflow") / "schemas" / "config.schema.yaml"


def _schema_path() -> Path:
    """The workflow's schema: beside the package in the repository it runs from, else in the repository
    pip installed it from (its ``direct_url.json``: a copy of ``src/`` on PYTHONPATH, a non-editable
    install)."""
    beside = Path(__file__).resolve().parents[2] / SCHEMA_IN_REPOSITORY
    if beside.is_file():
        return beside
    import importlib.metadata
    import urllib.parse

    for distribution in importlib.metadata.distributions(name="effunet"):  # a src/ copy has egg-info only
        try:
            url = urllib.parse.urlparse(json.loads(distribution.read_text("direct_url.json") or "{}").get("url", ""))
        except ValueError:
            continue
        installed = Path(urllib.parse.unquote(url.path)) / SCHEMA_IN_REPOSITORY
        if url.scheme == "file" and installed.is_file():
            return installed
    return beside


SCHEMA = _schema_path()
STUDY_RECIPE = "study"

# Keys of the config's train block that say where and how a job runs, not what it computes: not fields
# of `Settings` (nor keys of a data set's train block or a recipe).
PLACEMENT_KEYS = ("device", "backend", "jobs_per_gpu", "gpus_per_job", "checkpoint_every_s")

# Train keys added after the study's runs: left out of a run's params (`Settings.params`) while they
# hold their default, the study's behaviour, so that adding them reran nothing.
ADDED_AFTER_STUDY = ("lr_schedule", "warmup_epochs", "input", "inference", "instances")


def _schema_defaults() -> dict:
    if not SCHEMA.is_file():
        raise EffunetError(
            f"the workflow's schema {SCHEMA} is missing: effunet runs from its repository "
            "(pip install -e . in a checkout of it)"
        )
    schema = yaml.safe_load(SCHEMA.read_text())
    train = schema["$defs"]["train"]["properties"]
    return {key: spec["default"] for key, spec in train.items() if key not in PLACEMENT_KEYS}


DEFAULTS = _schema_defaults()


def _default(key: str):
    return field(default=DEFAULTS[key])


@dataclass
class Settings:
    """The config's train block of one run (global block <- the data set's <- the recipe's), every
    key not given at the schema's default. `model_options` is the config's model_options.<model>."""

    max_epochs: int = _default("max_epochs")
    patience: int = _default("patience")
    batch_size: int = _default("batch_size")
    loss: str = _default("loss")
    optimizer: str = _default("optimizer")
    learning_rate: float = _default("learning_rate")
    augment: bool | str = _default("augment")
    encoder_weights: str = _default("encoder_weights")
    freeze_encoder_epochs: int = _default("freeze_encoder_epochs")
    mixed_precision: str = _default("mixed_precision")
    lr_schedule: str = _default("lr_schedule")
    warmup_epochs: int = _default("warmup_epochs")
    input: str = _default("input")
    inference: str = _default("inference")
    instances: str = _default("instances")  # "boundary": a second output channel for nucleus boundaries
    model_options: dict = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: dict | None) -> Settings:
        """A run's settings from its params (`effunet.config.train_settings`, run.json's `settings`):
        keys left out take their default; placement keys (the backend) are not settings."""
        names = {f.name for f in fields(cls)}
        given = {key: value for key, value in (params or {}).items() if key not in PLACEMENT_KEYS}
        unknown = sorted(set(given) - names)
        if unknown:
            raise EffunetError(f"unknown training setting(s) {', '.join(unknown)} (known: {', '.join(sorted(names))})")
        return cls(**given)

    def params(self) -> dict:
        """The settings as a run's params: the keys added after the study left out at their default."""
        return {
            key: value
            for key, value in asdict(self).items()
            if not (key in ADDED_AFTER_STUDY and value == DEFAULTS[key])
        }


def setting(params: dict, key: str):
    """One key of a run's params (`effunet.config.train_settings`), its default where left out."""
    return params[key] if key in params else DEFAULTS[key]


@dataclass(frozen=True)
class RunId:
    """Who a run is; passed with its files so that nothing parses identities out of paths."""

    dataset: str
    model: str
    seed: int
    recipe: str = STUDY_RECIPE

    @property
    def name(self) -> str:
        """``<dataset>/<model>/<recipe>/seed<seed>``: the MLflow run name and the run's folder under
        results/<experiment>/."""
        return f"{self.dataset}/{self.model}/{self.recipe}/seed{self.seed}"


# Training-speed figures of a run (`epoch_timing`), then what the comparison reports of its training.
TIMING = ("first_epoch_seconds", "seconds_per_epoch", "seconds_to_best", "train_images_per_s")
TRAINING = ("epochs_trained", "best_epoch", "wall_seconds", *TIMING)


def epoch_timing(history: list[dict], best_epoch: int, train_images: int) -> dict:
    """Fair training-speed figures from the per-epoch `seconds` (training plus validation).

    Epoch 1 includes graph building and tracing, so it is reported apart (`first_epoch_seconds`);
    `seconds_per_epoch` is the median of epochs 2.. (epoch 1's time if it is the only one),
    `seconds_to_best` the summed epoch time up to and including the best epoch, and
    `train_images_per_s` the training images over `seconds_per_epoch`.
    """
    seconds = [float(row["seconds"]) for row in history]
    steady = sorted(seconds[1:] or seconds)
    middle = len(steady) // 2
    median = steady[middle] if len(steady) % 2 else (steady[middle - 1] + steady[middle]) / 2
    to_best = sum(s for row, s in zip(history, seconds) if row["epoch"] <= best_epoch)
    return {
        "first_epoch_seconds": seconds[0],
        "seconds_per_epoch": median,
        "seconds_to_best": to_best,
        "train_images_per_s": train_images / median if median > 0 else float("nan"),
    }


# What every run.json the training job writes holds (the plots and the comparison need them).
REQUIRED = ("best_epoch", "epochs_trained", "stop_reason")


@dataclass(frozen=True)
class RunRecord:
    """A training run's `run.json`: MLflow run id, epochs, best epoch and loss, stop reason, timing
    (`TIMING`), parameters, FLOPs, and the resolved `settings` (older records: `loss`, `instances` at
    the top level only). Read like a mapping (`record["best_epoch"]`, `record.get(...)`)."""

    data: dict
    path: Path | None = None

    @classmethod
    def read(cls, path: str | os.PathLike, require: tuple[str, ...] = ()) -> RunRecord:
        """The record in `path`; EffunetError naming the file if it is missing, not JSON or lacks one of
        the keys in `require` (`REQUIRED`: what every record the training job writes holds)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise EffunetError(f"{path}: run summary not found (the training job writes it)") from None
        except ValueError as error:
            raise EffunetError(f"{path}: not valid JSON ({error})") from None
        except OSError as error:
            raise EffunetError(f"{path}: cannot read the run summary: {error}") from None
        if not isinstance(data, dict):
            raise EffunetError(f"{path}: a run summary is a JSON object, not {type(data).__name__}")
        missing = [key for key in require if key not in data]
        if missing:
            raise EffunetError(f"{path}: run summary lacks key(s) {', '.join(missing)}")
        return cls(data, path)

    @classmethod
    def beside(cls, model_path: str | os.PathLike) -> RunRecord | None:
        """The record next to a model file (`<run>/model.keras` -> `<run>/run.json`), None if there is none."""
        path = Path(model_path).with_name("run.json")
        return cls.read(path) if path.is_file() else None

    def write(self, path: str | os.PathLike) -> Path:
        write_text_atomic(path, json.dumps(self.data, indent=2) + "\n")
        return Path(path)

    def __getitem__(self, key: str):
        return self.data[key]

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, default=None):
        return self.data.get(key, default)

    @property
    def run_id(self) -> str | None:
        """The MLflow run of the training job (None: it was not tracked)."""
        return self.data.get("run_id")

    @property
    def settings(self) -> Settings:
        """The run's training settings; records written before `settings` was recorded give their
        top-level `loss` and `instances`, the rest at their defaults."""
        recorded = dict(self.data.get("settings") or {})
        for key in ("loss", "instances"):
            if key not in recorded and self.data.get(key) is not None:
                recorded[key] = self.data[key]
        try:
            return Settings.from_params(recorded)
        except EffunetError as error:
            raise EffunetError(f"{self.path or 'run.json'}: {error}") from None

    @property
    def loss_function(self) -> str:
        """The function the run's losses are values of: `train.loss`, summed over the foreground and
        boundary channels with `instances: boundary` (test losses of different functions are not compared)."""
        settings = self.settings
        return settings.loss if settings.instances == "none" else f"{settings.loss} per channel ({settings.instances})"

    @property
    def censored(self) -> bool:
        """Stopped by max_epochs (or no stop reason): its best epoch is a lower bound."""
        return self.data.get("stop_reason") != "early_stopping"

    def training(self) -> dict:
        """The `TRAINING` figures (None where a record lacks one)."""
        return {key: self.data.get(key) for key in TRAINING}
