"""Config validation against the JSON schema, with defaults filled in and errors that name the key."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import jsonschema
import yaml

from effunet.errors import ConfigError, EffunetError
from effunet.config_text import NULL_TEXTS, Coercible, coerce_text, coercions, set_value
from effunet.run import ADDED_AFTER_STUDY, DEFAULTS, PLACEMENT_KEYS, setting
from effunet.run import SCHEMA  # noqa: F401  (the workflow's schema: effunet.config.SCHEMA to its users)


def _fill_defaults(validator_class):
    """A validator that also writes each property's `default` into the instance, as it validates, and
    reports text that reads as the schema's type (`Coercible`: see `coerce_text`)."""
    validate_properties = validator_class.VALIDATORS["properties"]
    validate_type = validator_class.VALIDATORS["type"]

    def properties_with_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    def type_from_text(validator, types, instance, schema):
        errors = list(validate_type(validator, types, instance, schema))
        if isinstance(instance, str):
            types = [types] if isinstance(types, str) else list(types)
            if errors or ("null" in types and instance in NULL_TEXTS):
                try:
                    yield Coercible(coerce_text(instance, types))
                    return
                except ValueError:
                    pass
        yield from errors

    return jsonschema.validators.extend(
        validator_class, {"properties": properties_with_defaults, "type": type_from_text}
    )


TYPE_NAMES = {"integer": "an integer", "number": "a number", "boolean": "true or false", "null": "null"}


def key_name(path) -> str:
    name = ""
    for part in path:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "<top level>"


def _message(error: jsonschema.ValidationError) -> str:
    key = key_name(error.absolute_path)
    if error.validator == "type" and isinstance(error.instance, str):
        types = [error.validator_value] if isinstance(error.validator_value, str) else error.validator_value
        wanted = " or ".join(TYPE_NAMES.get(name, f"a{'n' if name[0] in 'aeiou' else ''} {name}") for name in types)
        return (
            f"config key {key}: {error.instance!r} is not {wanted} (a --config value arrives as text, and "
            "is read as the schema's type where it spells one; write the value as that type, or put "
            "nested settings in a --configfile)"
        )
    if error.absolute_path and error.absolute_path[-1] == "sha256" and isinstance(error.instance, (int, float)):
        return (
            f"config key {key}: YAML read the checksum as a number because it has only digits; "
            f'quote it, e.g. sha256: "0123..." (a number may also have lost leading zeros)'
        )
    if "propertyNames" in error.schema_path and list(error.absolute_path) == ["recipes"]:
        return (
            f"config key {key_name(['recipes', str(error.instance)])}: a recipe name is a letter, then "
            "letters, digits, '_' or '-' (it names a results folder and a Snakemake wildcard)"
        )
    if error.validator == "required" and "format" in error.message and len(error.absolute_path) == 2:
        return (
            f"config key {key}.format: not set; a data set's format is one of dsb2018, drive, folder, "
            "nnunet (only data sets named dsb2018 or drive default to theirs)"
        )
    if "propertyNames" in error.schema_path and list(error.absolute_path) == ["datasets"]:
        return (
            f"config key datasets.{error.instance}: a data set name is lower-case letters, digits, '_' "
            "and '-' (it names folders, Snakemake wildcards and MLflow runs)"
        )
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return f"config key {key_name([*error.absolute_path, unknown[0]])}: unknown key (allowed in {key}: {allowed})"
    return f"config key {key}: {error.message}"


def validate(config: dict, schema_path: str | os.PathLike) -> dict:
    """Validate `config` in place (filling defaults, and reading text as the schema's type where it
    spells one: `coerce_text`) and return it; raise ConfigError naming the key."""
    with open(schema_path) as handle:
        schema = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    default_formats(config)
    validator = _fill_defaults(jsonschema.validators.validator_for(schema))(schema)
    while True:  # text read as the schema's type (--config values), then validated again as such
        errors = list(validator.iter_errors(config))
        found = coercions(errors)
        if not found:
            break
        for coercion in found:
            set_value(config, list(coercion.absolute_path), coercion.value)
    errors = sorted(errors, key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(_message(e) for e in errors))
    check_splits(config)
    check_instances(config)
    check_instances_input(config)
    return config


def default_formats(config: dict) -> None:
    """A data set named dsb2018 or drive without a `format` gets that format (configs written before
    formats existed keep working); any other name must say its format."""
    from effunet.data.formats import default_format

    datasets = config.get("datasets")
    if isinstance(datasets, dict):
        for name, settings in datasets.items():
            if isinstance(settings, dict) and "format" not in settings and default_format(name, settings):
                settings["format"] = default_format(name, settings)


def _with_source(config: dict):
    """(name, validated block, format) of every data set that has a source (the ones that run)."""
    from effunet.data import formats

    for name, settings in config["datasets"].items():
        if settings.get("source"):
            yield name, settings, formats.get(settings["format"])


def check_splits(config: dict) -> None:
    """Empty train, validation or test splits, found from the config where each format can tell
    (synthetic data, a source with a known checksum, DRIVE's 20 training images); the data step
    checks the rest when it counts the images. Data sets without a source are checked too (the split a
    user sets before adding DRIVE's path is already known to be wrong)."""
    from effunet.data import formats

    for name, settings in config["datasets"].items():
        try:
            formats.get(settings["format"]).check_config(name, settings)
        except EffunetError as error:
            raise ConfigError(str(error)) from None


def check_instances(config: dict) -> None:
    """`instances` other than none where a run would train on a data set without instance labels
    (its format has none), naming the key that set it: train, datasets.<name>.train or a recipe
    (which applies to every data set). Data sets without a source are skipped, so they are not checked."""
    for dataset, settings, entry in _with_source(config):
        if entry.instances(settings):
            continue
        key, value = "train.instances", setting(config["train"], "instances")
        remedy = f"set datasets.{dataset}.train.instances: none, or leave {dataset} out"
        if "instances" in settings.get("train", {}):
            key, value = f"datasets.{dataset}.train.instances", settings["train"]["instances"]
            remedy = f"set it to none, or leave {dataset} out"
        for recipe, block in (config.get("recipes") or {None: {}}).items():
            if "instances" in (block or {}):  # a recipe's own value wins (it applies to every data set)
                checked = (
                    f"recipes.{recipe}.instances",
                    block["instances"],
                    f"a recipe applies to every data set: leave {dataset} out of a config with it",
                )
            else:
                checked = (key, value, remedy)
            if checked[1] != "none":
                raise ConfigError(
                    f"config key {checked[0]}: instances {checked[1]!r} needs instance labels, and "
                    f"{dataset} ({entry.title}) has none (a folder data set has them with annotations: "
                    f"labels); {checked[2]}"
                )


def check_instances_input(config: dict) -> None:
    """`instances: boundary` makes its targets at the training size, so it cannot train on native
    crops (`input: native_crops`) yet; refused at start-up for every data set and recipe."""
    for dataset in config["datasets"]:
        for recipe in config.get("recipes") or {None: {}}:
            settings = train_settings(config, dataset, recipe)
            if setting(settings, "instances") != "none" and setting(settings, "input") == "native_crops":
                where = f"recipes.{recipe}" if recipe else "train"
                raise ConfigError(
                    f"config key {where}.instances: {settings['instances']!r} with input native_crops "
                    f"({dataset}) is not supported (boundary targets are made at the training size); "
                    "use input: resize with it"
                )


def load_yaml(config_path: str | os.PathLike) -> dict:
    """A YAML config file as a dict; a syntax error names the file, line and column."""
    try:
        with open(config_path) as handle:
            config = yaml.safe_load(handle)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{config_path}{where}: not valid YAML: {error.problem or error.context}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{config_path}: not valid YAML: {error}") from None
    except OSError as error:
        raise ConfigError(f"cannot read the config file {config_path}: {error.strerror}") from None
    if config is not None and not isinstance(config, dict):
        raise ConfigError(
            f"{config_path}: a config is a mapping of keys (see config.yaml), not a {type(config).__name__}"
        )
    return config or {}


def load(config_path: str | os.PathLike, schema_path: str | os.PathLike) -> dict:
    return validate(load_yaml(config_path), schema_path)


# The placement key that changes what a run computes (the same seed gives other initial weights on another
# Keras backend): it joins a run's settings (`train_settings`), so switching it reruns those runs, except
# at its default, the study's, so that runs made before it counted stay current. Not a field of
# effunet.run.Settings: the job applies it before Keras starts (effunet.devices.prepare_job).
BACKEND_DEFAULT = "tensorflow"


def run_backend(config: dict) -> str:
    """The Keras backend a run's jobs will use: train.backend, else KERAS_BACKEND (as
    effunet.devices.select_backend resolves it in the job, whose environment is this one's), else
    tensorflow."""
    return config["train"].get("backend") or os.environ.get("KERAS_BACKEND") or BACKEND_DEFAULT


def train_settings(config: dict, dataset: str, recipe: str | None = None) -> dict:
    """The training settings of a data set under a recipe (placement keys left out, and the
    keys added after the study, `effunet.run.ADDED_AFTER_STUDY`, where they hold their default), resolved as

        schema defaults <- train <- datasets.<dataset>.train <- recipes.<recipe>

    `config` is validated (so `train` holds the schema's defaults); a recipe sets only the keys it
    names. `recipe=None` is the train blocks alone (what the `study` recipe, `{}`, resolves to).
    A run on another Keras backend than tensorflow has it as `backend` (`run_backend`, `BACKEND_DEFAULT`).
    This is the one place the rules get a run's settings from (workflow/rules/common.smk)."""
    overrides = {}
    if recipe is not None:
        recipes = config.get("recipes") or {}
        if recipe not in recipes:
            raise ConfigError(
                f"config key recipes: no recipe named {recipe!r} (configured: {', '.join(recipes) or 'none'})"
            )
        overrides = recipes[recipe]
    settings = {**config["train"], **config["datasets"][dataset]["train"], **overrides}
    resolved = {
        key: value
        for key, value in settings.items()
        if key not in PLACEMENT_KEYS and not (key in ADDED_AFTER_STUDY and DEFAULTS[key] == value)
    }
    backend = run_backend(config)
    return resolved if backend == BACKEND_DEFAULT else {**resolved, "backend": backend}


def active_datasets(config: dict) -> tuple[list[str], list[str]]:
    """The data sets to run, and one message per configured data set left out for having no source.

    A data set with ``source: null`` (DRIVE by default: it may not be redistributed) is skipped, so the
    study runs on the others; a source that is set but broken still fails in the download step.
    """
    active, skipped = [], []
    for name, settings in config["datasets"].items():
        if settings.get("source"):
            active.append(name)
        else:
            from effunet.data.formats import skipped_message

            skipped.append(skipped_message(name, settings))
    if not active:
        raise ConfigError(
            "config key datasets: no data set has a source, so there is nothing to run; " + " ".join(skipped)
        )
    return active, skipped


REPOSITORY_ROOT_VARIABLE = "EFFUNET_ROOT"


def export_repository_root(workflow_basedir: str | os.PathLike) -> str:
    """Set EFFUNET_ROOT to the repository the workflow runs from (for envs/effunet.yaml's pip entry)."""
    root = str(Path(workflow_basedir).resolve())
    os.environ[REPOSITORY_ROOT_VARIABLE] = root
    return root
