"""Issue 21, the evaluation side: evaluation, scoring, predict and the reference rows import nothing from
`effunet.training` (the losses and the boundary target they share with training are below both:
`effunet.losses`, `effunet.boundary`), and none of their files is over 300 lines. Imports are read
from the source with `ast`, inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "effunet"
EVALUATION = [
    "evaluate.py",
    "scoring.py",
    "sliding.py",
    "predict.py",
    "prediction_files.py",
    "reference.py",
    "losses.py",
    "boundary.py",
    "metrics",
]


def files() -> list[Path]:
    return sorted(
        p
        for entry in EVALUATION
        for p in ([PACKAGE / entry] if entry.endswith(".py") else (PACKAGE / entry).rglob("*.py"))
    )


def imports(path: Path) -> set[str]:
    """Every module a file's import statements name (``from a.b import c``: a.b and a.b.c)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_the_reader_sees_imports_inside_functions():
    assert "effunet.losses" in imports(PACKAGE / "scoring.py")  # imported inside image_losses


@pytest.mark.parametrize("path", files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_evaluation_imports_nothing_from_training_and_stays_short(path):
    training = sorted(
        name for name in imports(path) if name == "effunet.training" or name.startswith("effunet.training.")
    )
    assert not training, f"{path.name} imports {training}"
    assert len(path.read_text().splitlines()) <= 300
