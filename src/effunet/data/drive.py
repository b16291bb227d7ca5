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

from effunet.data import checks, images, manifest, synthetic
from effunet.data.formats import Format, Native
from effunet.data.origin import original_names
from effunet.data.parallel import map_samples
from effunet.errors import ConfigError, EffunetError
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
            val_count: int, seed: int, workers: int = 1, targets: str = "soft", key: str = "datasets.drive.split") -> int:
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
            key=key)
        for row in rows:
            row["split"] = splits[row["id"]]
        table = manifest.write_manifest(rows, manifest_path)
    log.info("DRIVE split: %s", table["split"].value_counts().to_dict())
    return len(rows)


# --- the format ------------------------------------------------------------------------------------

TRAINING_IMAGES = 20  # the official DRIVE training set

MISSING_SOURCE = (
    "DRIVE may not be redistributed, so effunet cannot download it. To add it, request it from "
    "https://drive.grand-challenge.org/ ('Download'), then set datasets.{name}.source in your config file to "
    "the path of DRIVE.zip or of the extracted folder holding training/ and test/, or add to the command line: "
    "--config 'datasets={{{name}: {{source: /path/to/DRIVE.zip}}}}'. For an offline demo use source: synthetic."
)


def check_config(name: str, settings: dict) -> None:
    """A validation carve-out that leaves no training images (the count is known: 20, or synthetic)."""
    n = settings["synthetic"]["n_train"] if settings["source"] == "synthetic" else TRAINING_IMAGES
    if settings["split"]["val_count"] >= n:
        raise ConfigError(f"config key datasets.{name}.split.val_count: {settings['split']['val_count']} "
                          f"validation images leave none of the {n} training images for training")


def prepare_data(raw_dir, labels_dir, prepared, settings: dict, name: str, workers: int = 1) -> int:
    return convert(raw_dir, prepared.images, prepared.masks, prepared.fov, prepared.manifest, settings["image_size"],
                   workers=workers, targets=settings["targets"], key=f"datasets.{name}.split", **settings["split"])


def native(prepared, row) -> Native:
    """1st_manual inside the FOV mask (originals at native size); 2nd_manual where the test set has it."""
    observer = images.read_mask(row.manual2) if row.manual2 else None
    return Native(images.read_mask(row.manual1), images.read_mask(row.fov), None, observer)


def _decode(sample: checks.Sample) -> checks.Decoded:
    return checks.Decoded(images.read_rgb(sample.image), images.read_mask(sample.annotation[0]), None,
                          images.read_mask(sample.region))


def check(raw_dir, settings: dict, name: str, workers: int = 1) -> checks.Report:
    with original_names(raw_dir):
        try:
            found = find_samples(raw_dir)
        except EffunetError as error:
            return checks.Report(name, [str(error)])
    samples = [checks.Sample(s["id"], (Path(s["image"]),), (Path(s["manual1"]),), Path(s["fov"]),
                             "test" if s["official_split"] == "test" else None) for s in found]
    report = checks.check_samples(name, samples, _decode, workers, image_size=settings.get("image_size"))
    train = sum(s.split is None for s in samples)
    val = settings["split"]["val_count"]
    report.splits = {"train": max(train - val, 0), "val": val, "test": len(samples) - train}
    report.problems += [f"the {split} split is empty" for split, count in report.splits.items() if count == 0]
    return report


FORMAT = Format(
    name="drive",
    title="DRIVE",
    describe="DRIVE retinal vessels: training/ and test/ with images/*.tif, 1st_manual/*.gif and mask/*.gif",
    prepare=prepare_data,
    native=native,
    check=check,
    region=lambda settings: True,
    headline=lambda settings: "pooled",
    check_config=check_config,
    missing_source=lambda name: MISSING_SOURCE.format(name=name),
    study="drive",
    split_only_variant=True,  # the study's prepared paths stay what they were before formats existed
    synthetic=synthetic.write_drive_zip,
)
