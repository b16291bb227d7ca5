"""Issue 21: no import circle anywhere in effunet, no module over 300 lines, and the model layer
imports nothing above it (no job placement, no devices). Imports are read from the source with `ast`
(inside functions too, relative ones included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "effunet"


def module_name(path: Path) -> str:
    parts = ["effunet", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def absolute(path: Path, module: str | None, level: int) -> str:
    """The module a ``from <module> import`` names, relative ones (``from .x``) resolved against `path`."""
    if level == 0:
        return module or ""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    package = package[: len(package) - (level - 1)]
    return ".".join([*package, *([module] if module else [])])


def imported(path: Path) -> set[str]:
    """The effunet modules a file's import statements name (a ``from package import name`` counts
    the submodule `name` where there is one, else the package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = absolute(path, node.module, node.level)
            names = [f"{base}.{alias.name}" for alias in node.names]
            names = [name if name in MODULES else base for name in names]
        else:
            continue
        found.update(name for name in names if name in MODULES)
    return found


GRAPH = {name: imported(path) - {name} for name, path in MODULES.items()}


def test_the_import_reader_sees_imports_inside_functions_and_from_packages():
    assert "effunet.models.flops" in GRAPH["effunet.models.runtime"]  # top level: `from ... import count_flops`
    assert {"effunet.models.runtime", "effunet.devices"} <= GRAPH["effunet.placement"]
    assert "effunet.gpu_slots" in GRAPH["effunet.devices"]  # `from effunet import gpu_slots`
    assert "effunet.compare.aggregation" in GRAPH["effunet.compare"]  # `from .aggregation import aggregate`


def test_the_model_layer_imports_only_itself_and_the_errors():
    for name, targets in GRAPH.items():
        if name.startswith("effunet.models"):
            above = {target for target in targets if not target.startswith("effunet.models")} - {"effunet.errors"}
            assert not above, f"{name} imports {sorted(above)} from above the model layer"


def cycle_through(start: str) -> list[str] | None:
    """A path of imports from `start` back to itself, if there is one."""
    stack, seen = [(start, [start])], set()
    while stack:
        name, path = stack.pop()
        for target in GRAPH.get(name, ()):
            if target == start:
                return [*path, start]
            if target not in seen:
                seen.add(target)
                stack.append((target, [*path, target]))
    return None


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_import_circle_runs_through(name):
    assert cycle_through(name) is None, " -> ".join(cycle_through(name))


def test_a_constructed_circle_is_found():
    GRAPH["effunet.models.flops"].add("effunet.models.runtime")
    try:
        assert cycle_through("effunet.models.runtime") == [
            "effunet.models.runtime",
            "effunet.models.flops",
            "effunet.models.runtime",
        ]
    finally:
        GRAPH["effunet.models.flops"].discard("effunet.models.runtime")


@pytest.mark.parametrize("name", sorted(MODULES))
def test_at_most_300_lines(name):
    assert len(MODULES[name].read_text().splitlines()) <= 300


def test_the_training_loops_names_are_where_it_reads_them():
    """training/loop.py reads job placement from effunet.placement and the FLOPs from models.runtime."""
    from effunet import placement
    from effunet.models import flops, runtime

    for name in ("accelerated", "distribution_scope", "average_replicas", "single_device_copy", "single_device"):
        assert callable(getattr(placement, name))
    for name in ("require_device", "replicas"):
        assert callable(getattr(placement, name)) and not hasattr(runtime, name)
    assert runtime.count_flops is flops.count_flops
