"""Which code shapes a model's training, as a short hash: a change to it reruns that model's jobs.

Snakemake tracks a rule's script but not the modules it imports. The train rule passes
`training_code_version(model)` as a param, so a change to any file that the hash covers reruns that
model's training and everything after it.

The files are derived, not listed: every effunet module that the training job's code
(`effunet.training.loop`, which workflow/scripts/train.py calls) imports, directly or through
others, read from the source with `ast` (`imports`): imports inside functions count, and so do the
packages' `__init__.py` files and `importlib.import_module` calls (a name built at run time,
``f"effunet.data.{module}"``, counts as every module of that package). Two kinds of module are
named here instead:

- `FAMILIES`: the modules that define one family of models. The graph is cut at another family's
  module, so editing models/unet.py reruns only the U-Net's training and editing models/encoders.py
  only the encoder U-Nets' (resnet50-unet, effunet-b*). The U-Net's code reads two small things from
  encoders.py across that cut (`normalise_weights`, which reads the `encoder_weights` setting, and
  `ENCODER_NAME`, via models/freeze.py); a change to those alone does not rerun the U-Net.
- `RECORDING`: packages that record a run (MLflow runs, log files) without changing what it computes;
  editing them reruns nothing.

tests/test_provenance.py checks that every effunet module a training job has imported when it ends is
in its model's files, `RECORDING` or another family's.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
# The training job's code: the modules workflow/scripts/train.py imports (and their imports, followed).
ROOTS = ("effunet.training.loop", "effunet.config")
FAMILIES = {
    "effunet.models.unet": lambda model: model == "unet",
    "effunet.models.encoders": lambda model: model != "unet",
}
RECORDING = ("effunet.tracking", "effunet.logs")


def _module_name(path: Path, package: Path) -> str:
    parts = [package.name, *path.relative_to(package).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package, by dotted name (packages by their __init__.py)."""
    return {_module_name(path, package): path for path in sorted(package.rglob("*.py"))}


def _with_parents(name: str, known: dict[str, Path]) -> set[str]:
    """`name` and the packages that importing it imports first, those of the package only."""
    parts = name.split(".")
    return {".".join(parts[:end]) for end in range(1, len(parts) + 1)} & set(known)


def _dynamic_name(call: ast.Call) -> tuple[str, bool] | None:
    """(name, whole package) of `importlib.import_module("...")` or `import_module(f"prefix.{x}")`."""
    function = call.func
    called = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", None)
    if called != "import_module" or not call.args:
        return None
    argument = call.args[0]
    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
        return argument.value, False
    if isinstance(argument, ast.JoinedStr) and argument.values and isinstance(argument.values[0], ast.Constant):
        return str(argument.values[0].value).rsplit(".", 1)[0], True
    return None


@cache
def imports(name: str, package: Path = PACKAGE) -> frozenset[str]:
    """The package's modules that module `name` imports anywhere in its source (parents included)."""
    known = modules(package)
    path = known[name]
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)  # `from package import module`
        elif isinstance(node, ast.Call) and (dynamic := _dynamic_name(node)):
            target, whole_package = dynamic
            found.add(target)
            if whole_package:
                found.update(other for other in known if other.startswith(target + "."))
    return frozenset(set().union(*(_with_parents(module, known) for module in found)) - {name})


def _recording(name: str) -> bool:
    return any(name == package or name.startswith(package + ".") for package in RECORDING)


def _cut(name: str, model: str) -> bool:
    """Another family's module, or one that records the run: not followed for `model`."""
    return (name in FAMILIES and not FAMILIES[name](model)) or _recording(name)


def reachable(roots: Iterable[str], model: str, package: Path = PACKAGE) -> set[str]:
    """The modules `roots` import, transitively, with the graph cut for `model` (`_cut`)."""
    seen: set[str] = set()
    waiting = [root for name in roots for root in _with_parents(name, modules(package))]
    while waiting:
        name = waiting.pop()
        if name in seen or _cut(name, model):
            continue
        seen.add(name)
        waiting.extend(imports(name, package))
    return seen


def training_modules(model: str, package: Path = PACKAGE) -> set[str]:
    """The modules whose code trains `model`: the training code's imports and its family's modules."""
    own = [name for name, builds in FAMILIES.items() if builds(model)]
    return reachable([*ROOTS, *own], model, package)


def model_sources(model: str, package: Path = PACKAGE) -> list[Path]:
    """The package files that define `model` and how it is trained, sorted."""
    known = modules(package)
    return sorted(known[name] for name in training_modules(model, package))


@cache
def training_code_version(model: str, package: Path = PACKAGE) -> str:
    digest = hashlib.sha256()
    for path in model_sources(model, package):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]
