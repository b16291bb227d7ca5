"""The CPU-side steps of the GPU check: wheel list, data packing, and the check's logic on a CPU."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from effunet.data import synthetic
from effunet.data.manifest import read_manifest

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_wheel_list_pins_what_is_installed_here_for_the_gpu_machine(tmp_path):
    from importlib.metadata import version

    prepare = load("gpu_prepare")
    reqs = prepare.requirements(("keras", "numpy"))
    assert reqs == [f"keras=={version('keras')}", f"numpy=={version('numpy')}"]
    command = prepare.pip_download_command(reqs, tmp_path)
    assert command[1:4] == ["-m", "pip", "download"] and "--no-deps" in command
    assert command[command.index("--python-version") + 1] == "3.12" and command[-2:] == reqs
    assert "manylinux2014_x86_64" in command  # binary wheels (optree) for the GPU machine's platform


def test_packing_runs_the_workflow_data_steps_with_the_default_split(tmp_path):
    prepare = load("gpu_prepare")
    archive = synthetic.write_dsb2018_zip(tmp_path / "stage1_train.zip", n_images=20, seed=1)
    counts = prepare.pack_dsb2018(archive, tmp_path / "data.tar.gz", size=32)
    assert sum(counts.values()) == 20 and set(counts) == {"train", "val", "test"}
    with tarfile.open(tmp_path / "data.tar.gz") as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "out", filter="data")
    table = read_manifest(tmp_path / "out/dsb2018/manifest.csv")
    assert sorted(n for n in names if n.startswith("dsb2018/images/")) == sorted(
        f"dsb2018/images/{i}.png" for i in table["id"]
    )
    assert table["split"].value_counts().to_dict() == counts
    assert not list(tmp_path.glob("*.partial"))


def test_bench_commands_cover_models_sizes_and_precisions(tmp_path):
    check = load("gpu_check")
    args = check.parse_args(["--data", "x.tar.gz"])
    commands = check.bench_commands(args)
    assert [c[c.index("--precision") + 1] for c in commands] == ["fp32", "mixed"]
    for command in commands:
        sizes = command[command.index("--sizes") + 1 : command.index("--models")]
        assert sizes == ["128", "512"] and command[command.index("--models") + 1 :] == ["effunet-b0", "resnet50-unet"]
    assert subprocess.run(["bash", "-n", str(ROOT / "benchmarks/gpu_check.sh")]).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax not installed")
@pytest.mark.skipif(
    os.environ.get("EFFUNET_GPU_CHECK_DRY_RUN") != "1",
    reason="compiles and trains effunet-b0 on jax's CPU backend (10-20 min on 2 cores): set EFFUNET_GPU_CHECK_DRY_RUN=1",
)
def test_dry_run_on_the_jax_cpu_backend(tmp_path):
    """The whole check on tiny sizes, Keras on jax (CPU) as on the GPU machine: (a) then (b)."""
    prepare = load("gpu_prepare")
    archive = synthetic.write_dsb2018_zip(tmp_path / "stage1_train.zip", n_images=20, seed=1)
    prepare.pack_dsb2018(archive, tmp_path / "data.tar.gz", size=32)
    env = {**os.environ, "KERAS_BACKEND": "jax", "CUDA_VISIBLE_DEVICES": ""}
    command = [
        sys.executable,
        str(ROOT / "benchmarks/gpu_check.py"),
        "--data",
        str(tmp_path / "data.tar.gz"),
        "--sizes",
        "32",
        "--models",
        "effunet-b0",
        "--precisions",
        "fp32",
        "--steps",
        "1",
        "--repeats",
        "1",
        "--max-epochs",
        "2",
        "--patience",
        "1",
        "--batch-size",
        "4",
    ]
    if importlib.util.find_spec("segmentation_models_pytorch") is None:
        command.append("--skip-bench")
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    line = next(line for line in out.splitlines() if line.startswith("(b) "))
    summary = json.loads(line[4:])
    assert summary["backend"] == "jax" and summary["gpus"] == [] and 1 <= summary["epochs_trained"] <= 2
    assert set(summary["test"]) >= {"loss", "accuracy", "iou", "dice"} and summary["test_images"] == 2
    if "--skip-bench" not in command:
        assert "| effunet-b0 | 32x32 |" in out and "Keras backend jax" in out


def gpu_machine_blocked_imports(prepare) -> set[str]:
    """Top-level modules of the packages installed here that the GPU machine lacks (and effunet's own
    dependencies among them): tensorflow, mlflow, snakemake, jsonschema, and keras, namex, optree..."""
    import re
    from importlib.metadata import packages_distributions

    def normal(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    machine = {normal(name) for name in prepare.GPU_MACHINE_PACKAGES}
    return {
        module
        for module, dists in packages_distributions().items()
        if not any(normal(dist) in machine for dist in dists) and normal(dists[0]) != "effunet"
    }


@pytest.fixture(scope="module")
def carried(tmp_path_factory):
    """gpu_prepare.py's wheels (from PyPI), as the GPU check carries them."""
    prepare = load("gpu_prepare")
    dest = tmp_path_factory.mktemp("gpu-check")
    prepare.main(["--dest", str(dest), "--skip-data"])
    return prepare, dest


def test_every_carried_wheel_needs_only_what_the_gpu_machine_has_or_is_carried(carried):
    """Issue 24 item 5: each requirement of a carried wheel (keras: absl-py, rich, h5py, namex, optree...)
    is on the GPU machine or carried; binary wheels come for every Python of PYTHON_VERSIONS."""
    import re
    import zipfile

    prepare, dest = carried
    wheels = sorted((dest / "wheels").glob("*.whl"))
    names = {re.sub(r"[-_.]+", "-", w.name.split("-")[0]).lower() for w in wheels}
    assert names == set(prepare.WHEELS)
    have = names | {re.sub(r"[-_.]+", "-", n).lower() for n in prepare.GPU_MACHINE_PACKAGES}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            metadata = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA")))
        for line in metadata.decode().splitlines():
            if line.startswith("Requires-Dist:") and "extra ==" not in line:
                need = re.sub(r"[-_.]+", "-", re.match(r"Requires-Dist:\s*([\w.-]+)", line).group(1)).lower()
                assert need in have, f"{wheel.name} needs {need}: neither on the GPU machine nor carried"
        tags = wheel.name[:-4].split("-")[-3:]
        if tags[0] != "py3" and "abi3" not in tags[1]:  # a binary wheel for one CPython: one for each
            for version in prepare.PYTHON_VERSIONS:
                cp = "cp" + version.replace(".", "")
                assert any(f"-{cp}-" in w.name for w in wheels if w.name.startswith(wheel.name.split("-")[0])), cp


def test_the_checks_install_and_imports_pass_on_the_gpu_machines_python(carried, tmp_path):
    """gpu_check.sh's install step and its import check (GPU_CHECK_IMPORTS_ONLY=1), with this Python
    made to lack what the GPU machine lacks (tests/gpu_machine/sitecustomize.py): no TensorFlow,
    MLflow, Snakemake; Keras and the rest only from the carried wheels."""
    prepare, dest = carried
    blocked = gpu_machine_blocked_imports(prepare)
    assert {"tensorflow", "mlflow", "snakemake", "keras", "optree", "namex"} <= blocked
    python = Path(sys.executable).parent  # `python3` in the script: this environment's
    assert (python / "python3").exists()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KERAS_BACKEND")}
    env.update(
        {
            "PATH": f"{python}:{env['PATH']}",
            "TMPDIR": str(tmp_path),
            "GPU_CHECK_DIR": str(dest),
            "GPU_CHECK_IMPORTS_ONLY": "1",
            "PYTHONPATH": str(ROOT / "tests" / "gpu_machine"),
            "EFFUNET_BLOCKED_IMPORTS": ",".join(sorted(blocked)),
            "EFFUNET_CARRIED_SITE": str(tmp_path / "effunet-gpu-check-site"),
            "CUDA_VISIBLE_DEVICES": "",
        }
    )
    result = subprocess.run(
        ["bash", str(ROOT / "benchmarks/gpu_check.sh")], capture_output=True, text=True, env=env, timeout=900
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "imports ok" in result.stdout and "Keras on jax" in result.stdout
    # the blocker works: what the machine lacks and nothing carries cannot be imported
    probe = subprocess.run(
        [sys.executable, "-c", "import tensorflow"], capture_output=True, text=True, env=env, timeout=120
    )
    assert probe.returncode != 0 and "not on the GPU machine" in probe.stderr
