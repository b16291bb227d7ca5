"""Config validation against the JSON schema, with defaults filled in and errors that name the key."""

from __future__ import annotations

import copy
import os

import jsonschema
import yaml

from effunet.errors import ConfigError


def _fill_defaults(validator_class):
    """A validator that also writes each property's `default` into the instance, as it validates."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def properties_with_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": properties_with_defaults})


def key_name(path) -> str:
    name = ""
    for part in path:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "<top level>"


def _message(error: jsonschema.ValidationError) -> str:
    key = key_name(error.absolute_path)
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return f"config key {key_name([*error.absolute_path, unknown[0]])}: unknown key (allowed in {key}: {allowed})"
    return f"config key {key}: {error.message}"


def validate(config: dict, schema_path: str | os.PathLike) -> dict:
    """Validate `config` in place (filling defaults) and return it; raise ConfigError naming the key."""
    with open(schema_path) as handle:
        schema = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    validator_class = _fill_defaults(jsonschema.validators.validator_for(schema))
    errors = sorted(validator_class(schema).iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(_message(e) for e in errors))
    return config


def load(config_path: str | os.PathLike, schema_path: str | os.PathLike) -> dict:
    with open(config_path) as handle:
        config = yaml.safe_load(handle) or {}
    return validate(config, schema_path)


# Keys of the train block that say where a job runs, not what it computes: not training settings.
PLACEMENT_KEYS = ("device", "backend", "jobs_per_gpu", "gpus_per_job")


def train_settings(config: dict, dataset: str) -> dict:
    """The global train block with the data set's own overrides applied (placement keys left out)."""
    settings = {**config["train"], **config["datasets"][dataset].get("train", {})}
    return {key: value for key, value in settings.items() if key not in PLACEMENT_KEYS}
