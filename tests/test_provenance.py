"""The code that defines a model's training is derived from the imports: every module a training job
imports is in its hash, and a change to one reruns the models it trains (and only those)."""

import ast
import json
import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT, prepare_synthetic_dsb2018
from effunet import provenance


def relative(paths):
    return {path.relative_to(provenance.PACKAGE).as_posix() for path in paths}


def test_the_files_follow_the_imports_and_keep_the_per_model_split():
    unet, b0 = relative(provenance.model_sources("unet")), relative(provenance.model_sources("effunet-b0"))
    for shared in (
        "data/images.py",
        "data/manifest.py",
        "training/loop.py",
        "training/dataset.py",
        "models/registry.py",
        "models/decoder.py",
        "__init__.py",
        "errors.py",
    ):
        assert shared in unet and shared in b0
    assert "data/dsb2018.py" in unet  # data.formats imports its formats with importlib.import_module(f"...")
    assert "models/unet.py" in unet and "models/unet.py" not in b0
    assert "models/encoders.py" in b0 and "models/encoders.py" not in unet
    assert relative(provenance.model_sources("resnet50-unet")) == b0
    for left_out in ("tracking/runs.py", "logs.py", "evaluate.py", "plots/panels.py", "cli.py"):
        assert left_out not in unet | b0


@pytest.fixture
def package(tmp_path):
    """A copy of the package to edit."""
    return shutil.copytree(provenance.PACKAGE, tmp_path / "effunet", ignore=shutil.ignore_patterns("__pycache__"))


def versions(package):
    return {model: provenance.training_code_version(model, package) for model in ("unet", "effunet-b0")}


@pytest.mark.parametrize(
    "edited, rerun",
    [
        ("data/images.py", {"unet", "effunet-b0"}),
        ("training/instances.py", {"unet", "effunet-b0"}),
        ("models/unet.py", {"unet"}),
        ("models/encoders.py", {"effunet-b0"}),
        ("tracking/runs.py", set()),
        ("evaluate.py", set()),
    ],
)
def test_an_edit_reruns_the_models_whose_training_imports_it(package, edited, rerun):
    before = versions(package)
    with open(package / edited, "a") as handle:
        handle.write("\n# edited\n")
    provenance.imports.cache_clear()  # both read each file once per process (a Snakefile's parse)
    provenance.training_code_version.cache_clear()
    after = versions(package)
    assert {model for model in before if before[model] != after[model]} == rerun


def test_a_new_module_that_training_imports_joins_the_files(package):
    (package / "data/brightness.py").write_text("SCALE = 1\n")
    dataset = package / "training/dataset.py"
    dataset.write_text(
        dataset.read_text().replace(
            "import numpy as np\n", "import numpy as np\n\nfrom effunet.data import brightness\n", 1
        )
    )
    assert "effunet.data.brightness" in provenance.training_modules("unet", package)
    assert "effunet.data.brightness" in provenance.training_modules("effunet-b0", package)


def script_imports(script):
    """The effunet modules a script names in its imports."""
    names = set()
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.update([node.module, *(f"{node.module}.{alias.name}" for alias in node.names)])
    return sorted(name for name in names if name in provenance.modules())


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    folder = prepare_synthetic_dsb2018(
        tmp_path_factory.mktemp("prepared"), n_images=10, seed=5, test_fraction=0.2, val_fraction=0.2
    )
    return folder


@pytest.mark.slow
def test_every_module_a_training_job_imports_is_in_its_files(prepared, tmp_path):
    """A training job's process (the train script's imports, then one epoch of the U-Net and an
    Eff-UNet built) imports no effunet module that its model's files leave out, other than the modules
    that record a run and another family's model code."""
    imported = script_imports(ROOT / "workflow/scripts/train.py")
    assert "effunet.training.loop" in imported
    script = textwrap.dedent(f"""
        import importlib, json, sys
        for name in {imported!r}:
            importlib.import_module(name)
        from effunet.layout import PreparedData
        from effunet.training import loop
        out = {str(tmp_path)!r}
        settings = loop.Settings(max_epochs=1, batch_size=4, encoder_weights="none", model_options={{"base_filters": 2}})
        outputs = loop.Outputs(out + "/m.keras", out + "/h.csv", out + "/run.json", out + "/ckpt")
        loop.train(PreparedData.in_folder({str(prepared)!r}), "unet", 0, settings, outputs, threads=1)
        unet = sorted(name for name in sys.modules if name.startswith("effunet"))
        loop.build_compiled("effunet-b0", (32, 32, 3), loop.Settings(encoder_weights="none",
                            model_options={{"decoder_widths": [8, 8, 8, 8, 8]}}))
        b0 = sorted(name for name in sys.modules if name.startswith("effunet"))
        print("IMPORTED", json.dumps({{"unet": unet, "effunet-b0": b0}}))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("IMPORTED "))
    for model, names in json.loads(line.removeprefix("IMPORTED ")).items():
        other_families = {name for name, builds in provenance.FAMILIES.items() if not builds(model)}
        missing = [
            name
            for name in names
            if name not in provenance.training_modules(model)
            and name not in other_families
            and not name.startswith(provenance.RECORDING)
        ]
        assert missing == [], f"{model}'s training imports modules its code version leaves out: {missing}"
        assert "effunet.data.images" in names
