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
