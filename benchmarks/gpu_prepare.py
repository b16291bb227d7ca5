"""CPU side of the GPU check: fetch the wheels the GPU machine lacks and pack the prepared data.

    python benchmarks/gpu_prepare.py                      # -> .gpu-check/ (ignored by git; never commit it)
    python benchmarks/gpu_prepare.py --zip path/to/stage1_train.zip --dest .gpu-check

The GPU machine (no network; CUDA 13, Python 3.12, JAX, PyTorch, timm, pandas, Pillow, h5py...
preinstalled, no TensorFlow) gets from here:

- ``wheels/``: Keras and what it and the check need that the machine lacks (`WHEELS`: keras, namex,
  optree, segmentation-models-pytorch), at the versions installed here, downloaded with
  ``pip download --no-deps`` for CPython 3.12 on manylinux x86-64;
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
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHEELS = ("keras", "namex", "optree", "segmentation-models-pytorch")
PYTHON_VERSION = "3.12"
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)
DATA_NAME = "dsb2018-128.tar.gz"


def requirements(names=WHEELS) -> list[str]:
    """`name==version` for each wheel, pinned to the version installed here."""
    return [f"{name}=={version(name)}" for name in names]


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
    args = parser.parse_args(argv)
    args.dest.mkdir(parents=True, exist_ok=True)
    if not args.skip_wheels:
        wheels = args.dest / "wheels"
        shutil.rmtree(wheels, ignore_errors=True)
        reqs = requirements()
        (args.dest / "requirements.txt").write_text("\n".join(reqs) + "\n")
        subprocess.run(pip_download_command(reqs, wheels), check=True)
    counts = pack_dsb2018(args.zip, args.dest / DATA_NAME, args.size)
    total = sum(f.stat().st_size for f in args.dest.rglob("*") if f.is_file())
    print(f"{args.dest}: {counts}, {total / 2**20:.1f} MiB in all (the device tool carries at most 64 MiB)")


if __name__ == "__main__":
    main()
