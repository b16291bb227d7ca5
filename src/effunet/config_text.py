"""Text from Snakemake's --config read as the schema's types (`effunet.config.validate` uses it)."""

from __future__ import annotations

import re

import jsonschema

# Snakemake reads a --config value's nested values as text (YAML's BaseLoader): 2, 0.5, true and
# null arrive as "2", "0.5", "true" and "null". Where the schema wants another type, text that spells
# one (an integer, a decimal or exponent number, true/false, null/~) is read as it; where a string may
# also be null, "null" and "~" are read as null, as YAML reads them in a config file.
NULL_TEXTS = ("null", "Null", "NULL", "~")
BOOLEAN_TEXTS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
INTEGER_TEXT = re.compile(r"[-+]?[0-9]+")
NUMBER_TEXT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")


class Coercible(jsonschema.ValidationError):
    """Text where the schema wants another type, and the value it reads as (`value`)."""

    def __init__(self, value):
        super().__init__(f"text that reads as {value!r}")
        self.value = value


def coerce_text(text: str, types: list[str]):
    """`text` read as the first of the schema's `types` (null, boolean, integer, number) it spells;
    ValueError where it spells none of them."""
    if "null" in types and text in NULL_TEXTS:
        return None
    if "boolean" in types and text in BOOLEAN_TEXTS:
        return BOOLEAN_TEXTS[text]
    if ("integer" in types or "number" in types) and INTEGER_TEXT.fullmatch(text.strip()):
        return int(text)
    if "number" in types and NUMBER_TEXT.fullmatch(text.strip()):
        return float(text)
    raise ValueError(text)


def coercions(errors) -> list[Coercible]:
    """The `Coercible` reports among `errors` and the errors they contain (oneOf, anyOf)."""
    found = []
    for error in errors:
        if isinstance(error, Coercible):
            found.append(error)
        found.extend(coercions(error.context))
    return found


def set_value(config, path, value) -> None:
    """Set the value at `path` (keys and indices) in `config`."""
    *parents, last = path
    for part in parents:
        config = config[part]
    config[last] = value
