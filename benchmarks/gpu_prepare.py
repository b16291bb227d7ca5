"""CPU side of the GPU check: fetch the wheels the GPU machine lacks and pack the prepared data.

    python benchmarks/gpu_prepare.py                      # -> .gpu-check/ (ignored by git; never commit it)
    python benchmarks/gpu_prepare.py --zip path/to/stage1_train.zip --dest .gpu-check

The GPU machine (no network; CUDA 13, Python 3.12, JAX, PyTorch, timm, pandas, Pillow, h5py...
preinstalled, no TensorFlow) gets from here:

- ``wheels/``: Keras and what it and the check import that the machine lacks or may lack (`WHEELS`:
  keras and its pure-Python dependencies absl-py, rich (markdown-it-py, mdurl, pygments), namex; optree;
  segmentation-models-pytorch), at the versions installed here (`PINS` for those not installed here),
  downloaded with ``pip download --no-deps`` for manylinux x86-64: the pure-Python wheels once, the
  binary ones (optree) for each CPython of `PYTHON_VERSIONS`, so that ``pip install --find-links``
  there picks the one that fits its Python whatever it is; ``requirements.txt`` names them. What the
  machine has (`GPU_MACHINE_PACKAGES`: JAX, PyTorch, h5py, ml-dtypes, pandas...) is not carried;
  tests/test_gpu_check.py checks that every requirement of a carried wheel is one or the other;
- ``dsb2018-128.tar.gz``: the prepared 128x128 DSB2018 PNGs and manifest, made by the workflow's
  own data steps (merge_masks, resize) with the split the default config makes.

Then ``bash benchmarks/gpu_check.sh`` runs there (see its header).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHEELS = (
    "keras",
    "absl-py",
    "rich",
    "markdown-it-py",
    "mdurl",
    "pygments",
    "namex",
    "optree",
    "segmentation-models-pytorch",
)
PINS = {"segmentation-models-pytorch": "0.6.0"}  # for the wheels not installed here (the bench extra)
PYTHON_VERSION = "3.12"  # the GPU machine's (device tool notes, KINDS.md)
PYTHON_VERSIONS = ("3.11", "3.12", "3.13")  # binary wheels for each (Keras needs 3.11 or later)
# The GPU machine's Python packages (the device tool's KINDS.md, read 2026-11-17): not carried.
GPU_MACHINE_PACKAGES = frozenset(
    """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build
    certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
    cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
    flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
    huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt
    jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities
    linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes
    mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba
    numba-cuda numpy numpyro nvidia-ml-py onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax
    opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy
    portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing
    pyproject-hooks pyre-extensions pytest python-dateutil pytorch-lightning pyyaml regex requests rich
    sacrebleu safetensors scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece
    sentence-transformers setuptools shellingham simplejson six sortedcontainers statsmodels sympy tabulate
    tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch
    torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope triton typer
    typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl
    zipp""".split()
)
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)
DATA_NAME = "dsb2018-128.tar.gz"


def requirements(names=WHEELS) -> list[str]:
    """`name==version` for each wheel, pinned to the version installed here (else `PINS`)."""
    reqs = []
    for name in names:
        try:
            reqs.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            reqs.append(f"{name}=={PINS[name]}")
    return reqs


def download_wheels(reqs: list[str], dest: Path, python_versions=PYTHON_VERSIONS) -> list[Path]:
    """The wheels of `reqs` for every Python of `python_versions` (pure-Python ones come once)."""
    for python_version in python_versions:
        subprocess.run(pip_download_command(reqs, dest, python_version), check=True)
    return sorted(dest.glob("*.whl"))


def pip_download_command(reqs: list[str], dest: Path, python_version: str = PYTHON_VERSION) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        python_version,
        "--implementation",
        "cp",
        "-d",
        str(dest),
    ]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    return command + reqs


def pack_dsb2018(zip_path: str | os.PathLike, tarball: str | os.PathLike, size: int = 128) -> dict:
    """Run the workflow's DSB2018 steps on `zip_path` and pack images/, masks/ and manifest.csv.

    The split is the one the workflow makes with the default config (`datasets.dsb2018.split`).
    Returns the number of images per split.
    """
    from effunet import config
    from effunet.data import archives, dsb2018
    from effunet.data.manifest import read_manifest

    defaults = config.validate({"datasets": {"dsb2018": {}}}, ROOT / "workflow/schemas/config.schema.yaml")
    split = defaults["datasets"]["dsb2018"]["split"]
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        archives.extract(zip_path, work / "raw")
        dsb2018.merge_masks(work / "raw", work / "labels")
        prepared = work / "prepared"
        dsb2018.resize(
            work / "raw",
            work / "labels",
            prepared / "images",
            prepared / "masks",
            prepared / "manifest.csv",
            (size, size),
            test_fraction=split["test_fraction"],
            val_fraction=split["val_fraction"],
            seed=split["seed"],
        )
        partial = Path(f"{tarball}.partial")
        with tarfile.open(partial, "w:gz") as tar:
            for name in ("manifest.csv", "images", "masks"):
                tar.add(prepared / name, arcname=f"dsb2018/{name}")
        os.replace(partial, tarball)
        return read_manifest(prepared / "manifest.csv")["split"].value_counts().to_dict()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_zip = os.environ.get("EFFUNET_DSB2018_ZIP", str(ROOT.parent / "shared/data/dsb2018/stage1_train.zip"))
    parser.add_argument("--zip", default=default_zip, help="BBBC038 stage1_train.zip")
    parser.add_argument("--dest", type=Path, default=ROOT / ".gpu-check")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--skip-wheels", action="store_true")
    parser.add_argument("--skip-data", action="store_true", help="the wheels only (tests/test_gpu_check.py)")
    args = parser.parse_args(argv)
    args.dest.mkdir(parents=True, exist_ok=True)
    if not args.skip_wheels:
        wheels = args.dest / "wheels"
        shutil.rmtree(wheels, ignore_errors=True)
        reqs = requirements()
        (args.dest / "requirements.txt").write_text("\n".join(reqs) + "\n")
        download_wheels(reqs, wheels)
    if args.skip_data:
        return
    counts = pack_dsb2018(args.zip, args.dest / DATA_NAME, args.size)
    total = sum(f.stat().st_size for f in args.dest.rglob("*") if f.is_file())
    print(f"{args.dest}: {counts}, {total / 2**20:.1f} MiB in all (the device tool carries at most 64 MiB)")


if __name__ == "__main__":
    main()
