"""DSB2018 / BBBC038: merge per-nucleus masks, then resize images and masks and write the manifest.

Layout of the original: `<id>/images/<id>.png` and `<id>/masks/<mask_id>.png` (one binary PNG per
nucleus, same size as the image). The merged instance label image keeps one id per nucleus at
native size; the binary mask is its foreground (`labels > 0`).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from effunet.data import checks, images, manifest, synthetic
from effunet.data.formats import Format, Native
from effunet.data.origin import original_names
from effunet.data.parallel import map_samples
from effunet.errors import EffunetError
from effunet.files import atomic_dir

log = logging.getLogger(__name__)
MAX_INSTANCES = np.iinfo(np.uint16).max


@dataclass(frozen=True)
class Sample:
    id: str
    image: Path
    masks: tuple[Path, ...]


def find_samples(raw_dir: str | os.PathLike) -> list[Sample]:
    """Every `<id>/images/<id>.png` under `raw_dir` (at any depth), with its mask files."""
    raw_dir = Path(raw_dir)
    samples = [_sample(folder.parent) for folder in sorted(raw_dir.rglob("images")) if folder.is_dir()]
    if not samples:
        raise EffunetError(f"no DSB2018 samples (<id>/images/<id>.png) found under {raw_dir}")
    log.info("found %d DSB2018 samples under %s", len(samples), raw_dir)
    return samples


def _sample(folder: Path) -> Sample:
    image_files = images.list_files(folder / "images", (".png",))
    if len(image_files) != 1:
        raise EffunetError(f"{folder / 'images'} should hold exactly one PNG image, found {len(image_files)}")
    mask_folder = folder / "masks"
    masks = tuple(images.list_files(mask_folder, (".png",))) if mask_folder.is_dir() else ()
    if not masks:
        raise EffunetError(f"image folder {folder} has no masks: expected PNG files in {mask_folder}")
    return Sample(folder.name, image_files[0], masks)


def merge_sample(sample: Sample) -> np.ndarray:
    """The instance label image: mask k (in file-name order) becomes label k."""
    height, width = images.image_size(sample.image)
    if len(sample.masks) > MAX_INSTANCES:
        raise EffunetError(f"{sample.image}: {len(sample.masks)} masks exceed the uint16 label range")
    labels = np.zeros((height, width), dtype=np.uint16)
    for label, mask_path in enumerate(sample.masks, start=1):
        mask = images.open_gray(mask_path)
        if mask.size != (width, height):
            raise EffunetError(f"mask {mask_path} is {mask.width}x{mask.height} but its image "
                               f"{sample.image} is {width}x{height} (width x height)")
        box = mask.getbbox()  # only the nucleus' bounding box is compared and written: big images are mostly empty
        if box:
            left, top, right, bottom = box
            labels[top:bottom, left:right][np.asarray(mask.crop(box)) > 127] = label
    return labels


def _merge_and_write(sample: Sample, labels_dir: Path) -> None:
    images.write_png(labels_dir / images.png_name(sample.id), merge_sample(sample))


def merge_masks(raw_dir: str | os.PathLike, labels_dir: str | os.PathLike, workers: int = 1) -> int:
    """Write `labels_dir/<id>.png` (uint16 instance ids, native size) for every sample."""
    with original_names(raw_dir):
        samples = find_samples(raw_dir)
        with atomic_dir(labels_dir) as staging:
            map_samples(functools.partial(_merge_and_write, labels_dir=staging), samples, workers,
                        "merge masks")
    return len(samples)


def _resize_sample(sample: Sample, labels_dir: Path, images_dir: Path, masks_dir: Path,
                   size: images.Size, targets: str = "hard") -> dict:
    rgb = images.read_rgb(sample.image)
    labels = images.read_labels(labels_dir / images.png_name(sample.id))
    if labels.shape != rgb.shape[:2]:
        raise EffunetError(f"labels for {sample.id} are {labels.shape} but the image {sample.image} "
                           f"is {rgb.shape[:2]}; rerun merge_masks")
    images.write_png(images_dir / images.png_name(sample.id), images.resize_rgb(rgb, size))
    images.write_png(masks_dir / images.png_name(sample.id), images.resize_target(labels > 0, size, targets))
    return {"id": sample.id, "height": rgb.shape[0], "width": rgb.shape[1], "image": str(sample.image),
            "masks": str(sample.image.parent.parent / "masks"), "nuclei": int(len(np.unique(labels)) - 1)}


def resize(raw_dir: str | os.PathLike, labels_dir: str | os.PathLike, images_dir: str | os.PathLike,
           masks_dir: str | os.PathLike, manifest_path: str | os.PathLike, size: images.Size,
           test_fraction: float, val_fraction: float, seed: int, workers: int = 1, targets: str = "hard",
           key: str = "datasets.dsb2018.split") -> int:
    """Resized RGB images and masks (`images.resize_target`: 0/255, or area fractions for "soft"),
    plus the manifest with a seeded train/val/test split."""
    with original_names(raw_dir):
        samples = find_samples(raw_dir)
    with atomic_dir(images_dir) as image_staging, atomic_dir(masks_dir) as mask_staging:
        job = functools.partial(_resize_sample, labels_dir=Path(labels_dir), images_dir=image_staging,
                                masks_dir=mask_staging, size=tuple(size), targets=targets)
        with original_names(raw_dir):
            rows = map_samples(job, samples, workers, f"resize to {size[0]}x{size[1]}")
        splits = manifest.split_by_fraction([row["id"] for row in rows], test_fraction, val_fraction, seed,
                                            key=key)
        for row in rows:
            row["split"] = splits[row["id"]]
        table = manifest.write_manifest(rows, manifest_path)
    log.info("DSB2018 split: %s", table["split"].value_counts().to_dict())
    return len(rows)


# --- the format ------------------------------------------------------------------------------------

# Training images of sources whose size is known before they are downloaded, by sha256.
KNOWN_SOURCES = {"eaa2f0f8d1ee2978aeb581604b93e4facce6aeca79ead3a581112bcd2e7b00ac": 670}  # BBBC038 stage1_train


def check_config(name: str, settings: dict) -> None:
    """Empty splits, found from the config where the image count is known (synthetic data, a source
    with a known checksum); the data step checks the rest when it counts the images."""
    n = (settings["synthetic"]["n_images"] if settings["source"] == "synthetic"
         else KNOWN_SOURCES.get((settings.get("sha256") or "").lower()))
    if n is not None:
        split = settings["split"]
        manifest.check_split_counts(manifest.split_counts(n, split["test_fraction"], split["val_fraction"]),
                                    f"datasets.{name}.split")


def prepare_data(raw_dir, labels_dir, prepared, settings: dict, name: str, workers: int = 1) -> int:
    return resize(raw_dir, labels_dir, prepared.images, prepared.masks, prepared.manifest, settings["image_size"],
                  workers=workers, targets=settings["targets"], key=f"datasets.{name}.split", **settings["split"])


def write_labels(raw_dir, labels_dir, settings: dict, name: str, workers: int = 1) -> int:
    return merge_masks(raw_dir, labels_dir, workers)


def native(prepared, row) -> Native:
    labels = images.read_labels(prepared.label(row.id))
    return Native(labels > 0, None, labels)


def _decode(sample: checks.Sample) -> checks.Decoded:
    labels = merge_sample(Sample(sample.id, sample.channels[0], sample.annotation))
    return checks.Decoded(images.read_rgb(sample.image), labels > 0, labels)


def check(raw_dir, settings: dict, name: str, workers: int = 1) -> checks.Report:
    with original_names(raw_dir):
        try:
            found = find_samples(raw_dir)
        except EffunetError as error:
            return checks.Report(name, [str(error)])
    samples = [checks.Sample(s.id, (s.image,), s.masks) for s in found]
    report = checks.check_samples(name, samples, _decode, workers, image_size=settings.get("image_size"))
    split = settings["split"]
    report.splits = manifest.split_counts(len(samples), split["test_fraction"], split["val_fraction"])
    return report


FORMAT = Format(
    name="dsb2018",
    title="DSB2018",
    describe="2018 Data Science Bowl / BBBC038 stage1_train: <id>/images/<id>.png and one mask PNG per nucleus",
    prepare=prepare_data,
    native=native,
    check=check,
    instances=lambda settings: True,
    write_labels=write_labels,
    check_config=check_config,
    study="dsb2018",
    split_only_variant=True,  # the study's prepared paths stay what they were before formats existed
    synthetic=synthetic.write_dsb2018_zip,
)


# --- the same images in the other formats ------------------------------------------------------------


def _export_one(sample: Sample, out: Path, layout: str, test_ids: frozenset) -> None:
    labels = merge_sample(sample)
    if layout == "folder":
        shutil.copy(sample.image, out / "images" / f"{sample.id}.png")
        images.write_png(out / "labels" / f"{sample.id}.png", labels)
    else:
        test = sample.id in test_ids
        shutil.copy(sample.image, out / ("imagesTs" if test else "imagesTr") / f"{sample.id}_0000.png")
        images.write_png(out / ("labelsTs" if test else "labelsTr") / f"{sample.id}.png", (labels > 0).astype(np.uint8))


def export(raw_dir: str | os.PathLike, out: str | os.PathLike, layout: str, splits: dict[str, str] | None = None,
           workers: int = 1) -> Path:
    """The DSB2018 images in the `folder` layout (images/, labels/ with the merged instance labels, and
    split.csv where `splits` is given) or the `nnunet` one (dataset.json, the image as one RGB `_0000`
    file, label 1 = nucleus, and the test split of `splits` in imagesTs/ + labelsTs/)."""
    out = Path(out)
    folders = ("images", "labels") if layout == "folder" else ("imagesTr", "labelsTr", "imagesTs", "labelsTs")
    with original_names(raw_dir):
        samples = find_samples(raw_dir)
    with atomic_dir(out) as staging:
        for folder in folders:
            (staging / folder).mkdir()
        test_ids = frozenset(sample for sample, split in (splits or {}).items() if split == "test")
        job = functools.partial(_export_one, out=staging, layout=layout, test_ids=test_ids)
        map_samples(job, samples, workers, f"export to the {layout} layout")
        if layout == "folder" and splits:
            (staging / "split.csv").write_text("id,split\n" + "".join(f"{k},{v}\n" for k, v in sorted(splits.items())))
        if layout == "nnunet":
            description = {"channel_names": {"0": "R", "1": "G", "2": "B"}, "labels": {"background": 0, "nucleus": 1},
                           "numTraining": len(samples) - len(test_ids), "file_ending": ".png"}
            (staging / "dataset.json").write_text(json.dumps(description, indent=2) + "\n")
    return out
