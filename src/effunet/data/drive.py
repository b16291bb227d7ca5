"""DRIVE: TIFF images, GIF manual annotations and FOV masks become resized PNGs plus a manifest.

Official layout (inside DRIVE.zip, possibly under a `DRIVE/` folder):
`training/images/21_training.tif`, `training/1st_manual/21_manual1.gif`,
`training/mask/21_training_mask.gif`, and `test/...` likewise (ids 01..20), where
`test/2nd_manual/01_manual2.gif` holds a second observer's annotation.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

from effunet.data import images, manifest
from effunet.data.origin import original_names
from effunet.data.parallel import map_samples
from effunet.errors import EffunetError
from effunet.files import atomic_dir

log = logging.getLogger(__name__)
SPLIT_FOLDERS = ("training", "test")


def find_root(raw_dir: str | os.PathLike) -> Path:
    """The folder that holds `training/images` and `test/images`."""
    raw_dir = Path(raw_dir)
    for candidate in [raw_dir, *sorted(p for p in raw_dir.rglob("*") if p.is_dir())]:
        if (candidate / "training" / "images").is_dir() and (candidate / "test" / "images").is_dir():
            return candidate
    raise EffunetError(f"no DRIVE layout (training/images and test/images) found under {raw_dir}")


def _required(path: Path, what: str) -> Path:
    if not path.is_file():
        raise EffunetError(f"missing DRIVE {what}: {path}")
    return path


def find_samples(raw_dir: str | os.PathLike) -> list[dict]:
    """One dict per image: id (e.g. `21_training`), official split, and the paths of its files."""
    root = find_root(raw_dir)
    samples = []
    for folder in SPLIT_FOLDERS:
        for image in images.list_files(root / folder / "images", (".tif", ".tiff")):
            number = image.stem.split("_")[0]
            manual2 = root / folder / "2nd_manual" / f"{number}_manual2.gif"
            samples.append({
                "id": image.stem, "official_split": folder, "image": str(image),
                "manual1": str(_required(root / folder / "1st_manual" / f"{number}_manual1.gif", "annotation")),
                "fov": str(_required(root / folder / "mask" / f"{image.stem}_mask.gif", "FOV mask")),
                "manual2": str(manual2) if manual2.is_file() else "",
            })
    if not any(s["official_split"] == "training" for s in samples):
        raise EffunetError(f"no DRIVE training images (*.tif) in {root / 'training' / 'images'}")
    log.info("found %d DRIVE images under %s", len(samples), root)
    return samples


def _convert_sample(sample: dict, images_dir: Path, masks_dir: Path, fov_dir: Path,
                    size: images.Size, targets: str = "soft") -> dict:
    rgb = images.read_rgb(sample["image"])
    name = images.png_name(sample["id"])
    for key, folder in (("manual1", masks_dir), ("fov", fov_dir)):
        mask = images.read_mask(sample[key])
        if mask.shape != rgb.shape[:2]:
            raise EffunetError(f"{sample[key]} is {mask.shape[1]}x{mask.shape[0]} but its image "
                               f"{sample['image']} is {rgb.shape[1]}x{rgb.shape[0]} (width x height)")
        # the FOV stays binary (it selects scored pixels); the annotation is the training target
        images.write_png(folder / name, images.resize_target(mask, size, targets if key == "manual1" else "hard"))
    images.write_png(images_dir / name, images.resize_rgb(rgb, size))
    return {**sample, "height": rgb.shape[0], "width": rgb.shape[1]}


def convert(raw_dir: str | os.PathLike, images_dir: str | os.PathLike, masks_dir: str | os.PathLike,
            fov_dir: str | os.PathLike, manifest_path: str | os.PathLike, size: images.Size,
            val_count: int, seed: int, workers: int = 1, targets: str = "soft") -> int:
    """Resized PNGs of images, 1st_manual annotations (`images.resize_target`: area fractions by
    default, "hard" for 0/255) and binary FOV masks, plus the manifest."""
    with original_names(raw_dir):
        samples = find_samples(raw_dir)
    with atomic_dir(images_dir) as image_staging, atomic_dir(masks_dir) as mask_staging, \
            atomic_dir(fov_dir) as fov_staging:
        job = functools.partial(_convert_sample, images_dir=image_staging, masks_dir=mask_staging,
                                fov_dir=fov_staging, size=tuple(size), targets=targets)
        with original_names(raw_dir):
            rows = map_samples(job, samples, workers, f"convert DRIVE to {size[0]}x{size[1]} PNG")
        splits = manifest.split_with_fixed_test(
            [r["id"] for r in rows if r["official_split"] == "training"],
            [r["id"] for r in rows if r["official_split"] == "test"], val_count, seed,
            key="datasets.drive.split")
        for row in rows:
            row["split"] = splits[row["id"]]
        table = manifest.write_manifest(rows, manifest_path)
    log.info("DRIVE split: %s", table["split"].value_counts().to_dict())
    return len(rows)
