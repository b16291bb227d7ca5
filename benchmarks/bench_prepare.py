"""Time the DSB2018 data half on the real stage1_train.zip against the starter-kernel approach.

    python benchmarks/bench_prepare.py --zip ../shared/data/dsb2018/stage1_train.zip

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, default=Path("../shared/data/dsb2018/stage1_train.zip"))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--baseline-images", type=int, default=None,
                        help="time the peer on the first N images only and extrapolate (default: all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
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
