"""Time the DSB2018 data half on the real stage1_train.zip against the starter-kernel approach, and the
same 670 images prepared from the `folder` and `nnunet` layouts against the `dsb2018` format.

    python benchmarks/bench_prepare.py --zip ../shared/data/dsb2018/stage1_train.zip
    python benchmarks/bench_prepare.py --zip ../shared/data/dsb2018/stage1_train.zip --formats

With --formats the extracted zip is first exported (untimed) to a folder data set (images/ + labels/
with the merged instance labels) and an nnU-Net v2 raw one (one RGB _0000 file per case, label 1),
then each format's preparation is timed from its raw files to the prepared PNGs and manifest, as the
workflow runs it (instance labels where the format has them, then the prepare step), in the same
process with the same workers, and printed with its ratio to the dsb2018 format.

Ours: zip -> extracted originals -> merged uint16 instance labels -> 128x128 RGB/mask PNGs and
manifest, on --workers processes. Peer, in the same process on the extracted files: the widespread
Kaggle starter-kernel loop (skimage `imread` + `resize` of the image and of every mask, then
`np.maximum` into the mask), which writes nothing. Needs scikit-image (pip install -e '.[bench]').
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from effunet.data import archives, dsb2018


def prepare_ours(zip_path: Path, work: Path, size: int, workers: int) -> dict[str, float]:
    times = {}
    start = time.perf_counter()
    archives.extract(zip_path, work / "raw")
    times["extract"] = time.perf_counter() - start
    dsb2018.merge_masks(work / "raw", work / "labels", workers=workers)
    times["merge"] = time.perf_counter() - start - times["extract"]
    dsb2018.resize(work / "raw", work / "labels", work / "images", work / "masks", work / "manifest.csv",
                   (size, size), test_fraction=0.1, val_fraction=0.1, seed=42, workers=workers)
    times["total"] = time.perf_counter() - start
    times["resize"] = times["total"] - times["extract"] - times["merge"]
    return times


def starter_kernel(raw: Path, size: int, limit: int | None) -> tuple[float, int]:
    from skimage.io import imread
    from skimage.transform import resize

    folders = sorted(p for p in raw.iterdir() if p.is_dir())[:limit]
    start = time.perf_counter()
    for folder in folders:
        image = imread(folder / "images" / f"{folder.name}.png")[:, :, :3]
        resize(image, (size, size), mode="constant", preserve_range=True)
        mask = np.zeros((size, size, 1), dtype=bool)
        for mask_file in sorted((folder / "masks").iterdir()):
            one = resize(imread(mask_file), (size, size), mode="constant", preserve_range=True)
            mask = np.maximum(mask, one[..., None])
    return time.perf_counter() - start, len(folders)


def compare_formats(zip_path: Path, size: int, workers: int) -> None:
    from effunet.config import SCHEMA, validate
    from effunet.data import formats
    from effunet.layout import PreparedData

    with tempfile.TemporaryDirectory(dir=Path.cwd()) as scratch:
        work = Path(scratch)
        archives.extract(zip_path, work / "dsb2018")
        start = time.perf_counter()
        dsb2018.export(work / "dsb2018", work / "folder", "folder", workers=workers)
        dsb2018.export(work / "dsb2018", work / "nnunet", "nnunet", workers=workers)
        print(f"export to the folder and nnunet layouts (untimed below): {time.perf_counter() - start:.1f} s")
        blocks = {"dsb2018": {"format": "dsb2018"}, "folder": {"format": "folder", "annotations": "labels"},
                  "nnunet": {"format": "nnunet"}}
        seconds = {}
        for name, block in blocks.items():
            settings = validate({"datasets": {name: {**block, "image_size": [size, size]}}}, SCHEMA)["datasets"][name]
            entry = formats.get(name)
            out = work / f"out-{name}"
            labels = out / "labels" if entry.instances(settings) else None
            prepared = PreparedData(out / "manifest.csv", out / "images", out / "masks", labels=labels, format=name)
            start = time.perf_counter()
            if labels is not None:
                entry.write_labels(work / name, labels, settings, name, workers)
            entry.prepare(work / name, labels, prepared, settings, name, workers)
            seconds[name] = time.perf_counter() - start
    print(f"machine: {os.cpu_count()} cores ({cpu_name()}); 670 images at {size}x{size}; workers: {workers}")
    for name, value in seconds.items():
        print(f"{name:8s} {value:6.1f} s   ratio to dsb2018: {value / seconds['dsb2018']:.2f}x")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                flags = Path("/proc/cpuinfo").read_text()
                kind = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
                return f"{line.split(':', 1)[1].strip()}, {kind}"
    except OSError:
        pass
    return "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, default=Path("../shared/data/dsb2018/stage1_train.zip"))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--baseline-images", type=int, default=None,
                        help="time the peer on the first N images only and extrapolate (default: all)")
    parser.add_argument("--formats", action="store_true", help="time the dsb2018, folder and nnunet formats instead")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.formats:
        return compare_formats(args.zip, args.size, args.workers)
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as work:
        ours = prepare_ours(args.zip, Path(work), args.size, args.workers)
        n_images = len(list((Path(work) / "images").iterdir()))
        peer_s, peer_images = starter_kernel(Path(work) / "raw", args.size, args.baseline_images)
    peer_all = peer_s * n_images / peer_images
    print(f"machine: {os.cpu_count()} cores; images: {n_images}; size {args.size}x{args.size}; "
          f"workers: {args.workers}")
    print(f"ours   extract {ours['extract']:.1f} s + merge {ours['merge']:.1f} s + resize/manifest "
          f"{ours['resize']:.1f} s = {ours['total']:.1f} s wall")
    note = "" if peer_images == n_images else f" (timed on {peer_images} images, extrapolated)"
    print(f"peer   starter kernel on the extracted files: {peer_all:.1f} s{note}")
    print(f"ratio  peer / ours (ours incl. extraction): {peer_all / ours['total']:.1f}x faster; "
          f"excl. extraction: {peer_all / (ours['total'] - ours['extract']):.1f}x")


if __name__ == "__main__":
    main()
