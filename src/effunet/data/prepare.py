"""Preparation shared by the image-and-annotation formats (`folder`, `nnunet`): one pass that checks
every sample, writes the training-size images, targets and regions, and the manifest.

Everything is written to staging folders that become the outputs only if every sample passed its
checks (`effunet.data.checks`), so a data set that fails them leaves nothing behind.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np

from effunet.data import checks, images, manifest
from effunet.data.origin import original_names
from effunet.data.parallel import map_samples
from effunet.errors import EffunetError
from effunet.files import atomic_dir

log = logging.getLogger(__name__)


def assign_splits(samples: list[checks.Sample], split: dict, key: str) -> dict[str, str]:
    """Each sample's split: the data set's own where it fixes one (every sample, or the test set),
    else `split.test_fraction` of the images to test and `split.val_fraction` of the rest to val."""
    fixed = {s.id: s.split for s in samples if s.split}
    if fixed and len(fixed) == len(samples) and set(fixed.values()) != {"test"}:
        return fixed  # every sample's split given (split.csv): empty splits are reported by the checks
    if fixed:  # a fixed test set (nnU-Net's imagesTs/labelsTs): validation carved out of the rest
        train = [s.id for s in samples if s.id not in fixed]
        val_count = max(1, round(len(train) * split["val_fraction"]))
        return manifest.split_with_fixed_test(train, sorted(fixed), val_count, split["seed"], key=key)
    return manifest.split_by_fraction(
        [s.id for s in samples], split["test_fraction"], split["val_fraction"], split["seed"], key=key
    )


def _prepare_one(
    sample: checks.Sample,
    decode: Callable,
    images_dir: Path,
    masks_dir: Path,
    fov_dir: Path | None,
    size: images.Size,
    targets: str,
) -> tuple[checks.Finding, dict | None]:
    finding, decoded = checks.check_one(sample, decode)
    if decoded is None:
        return finding, None
    name = images.png_name(sample.id)
    images.write_png(images_dir / name, images.resize_rgb(decoded.rgb, size))
    images.write_png(masks_dir / name, images.resize_target(decoded.truth, size, targets))
    if fov_dir is not None:
        region = decoded.region if decoded.region is not None else np.ones(decoded.truth.shape, bool)
        images.write_png(fov_dir / name, images.resize_target(region, size, "hard"))
    row = {
        "id": sample.id,
        "height": finding.height,
        "width": finding.width,
        "image": sample.image,
        "mask": str(sample.annotation[0]) if sample.annotation else "",
        **({"region": str(sample.region) if sample.region else ""} if fov_dir is not None else {}),
        **dict(sample.extra),
    }
    if finding.objects is not None:
        row["objects"] = finding.objects
    return finding, row


def prepare_samples(
    name: str,
    raw_dir: str | os.PathLike,
    samples: list[checks.Sample],
    decode: Callable,
    prepared,
    size: images.Size,
    split: dict,
    targets: str,
    key: str,
    workers: int = 1,
    problems: list[str] = (),
) -> int:
    """Check and prepare every sample into `prepared` (images/, masks/, fov/ where it has a region,
    manifest.csv). Raises, leaving nothing written, when any sample fails its checks."""
    size = tuple(size)
    with original_names(raw_dir):
        if problems:
            checks.report_of(name, samples, [], problems).raise_if_failed(key)
        splits = assign_splits(samples, split, f"{key}.split")
        samples = [checks.Sample(s.id, s.channels, s.annotation, s.region, splits[s.id], s.extra) for s in samples]
        with (
            atomic_dir(prepared.images) as image_staging,
            atomic_dir(prepared.masks) as mask_staging,
            _optional_dir(prepared.fov) as fov_staging,
        ):
            job = functools.partial(
                _prepare_one,
                decode=decode,
                images_dir=image_staging,
                masks_dir=mask_staging,
                fov_dir=fov_staging,
                size=size,
                targets=targets,
            )
            results = map_samples(job, samples, workers, f"prepare {name} at {size[0]}x{size[1]}")
            report = checks.report_of(name, samples, [finding for finding, _ in results], image_size=size)
            report.raise_if_failed(key)
            rows = [row for _, row in results]
            for row in rows:
                row["split"] = splits[row["id"]]
            table = manifest.write_manifest(rows, prepared.manifest)
    log.info("%s split: %s", name, table["split"].value_counts().to_dict())
    for note in report.notes:
        log.info("%s: %s", name, note)
    return len(rows)


class _optional_dir:
    """`atomic_dir(path)` where the prepared data has that folder, else nothing (yields None)."""

    def __init__(self, path):
        self.context = atomic_dir(path) if path is not None else None

    def __enter__(self):
        return self.context.__enter__() if self.context is not None else None

    def __exit__(self, *exc):
        return self.context.__exit__(*exc) if self.context is not None else False


def write_labels(
    name: str,
    raw_dir: str | os.PathLike,
    samples: list[checks.Sample],
    decode: Callable,
    labels_dir: str | os.PathLike,
    key: str,
    workers: int = 1,
    problems: list[str] = (),
) -> int:
    """Check every sample and write its native-size uint16 instance labels to `labels_dir`."""
    with original_names(raw_dir):
        if problems:
            checks.report_of(name, samples, [], problems).raise_if_failed(key)
        with atomic_dir(labels_dir) as staging:
            job = functools.partial(_labels_one, decode=decode, labels_dir=staging)
            findings = map_samples(job, samples, workers, f"instance labels of {name}")
            checks.report_of(name, samples, findings).raise_if_failed(key)
    return len(samples)


def _labels_one(sample: checks.Sample, decode: Callable, labels_dir: Path) -> checks.Finding:
    finding, decoded = checks.check_one(sample, decode)
    if decoded is not None:
        if decoded.labels is None:
            raise EffunetError(f"{sample.image}: this data set has no instance labels")
        images.write_png(labels_dir / images.png_name(sample.id), decoded.labels.astype(np.uint16))
    return finding


def check_found(name: str, found, decode: Callable, settings: dict, workers: int = 1) -> checks.Report:
    """`effunet check-data` for a format that lists its samples as (samples, problems, notes): every
    sample decoded and checked, and where the data set fixes no split, the sizes the seeded fractions
    would give (an empty one is a problem)."""
    samples, problems, notes = found
    report = checks.check_samples(name, samples, decode, workers, problems, settings.get("image_size"))
    report.notes += notes
    if samples and not any(s.split for s in samples):
        split = settings["split"]
        report.splits = manifest.split_counts(len(samples), split["test_fraction"], split["val_fraction"])
        report.problems += [
            f"the {part} split would be empty (config key datasets.{name}.split)"
            for part, count in report.splits.items()
            if count == 0
        ]
    return report


def prepare_found(name: str, raw_dir, found, decode: Callable, prepared, settings: dict, workers: int = 1) -> int:
    """The prepare step for a format that lists its samples as (samples, problems, notes)."""
    samples, problems, notes = found
    for note in notes:
        log.info("%s: %s", name, note)
    return prepare_samples(
        name,
        raw_dir,
        samples,
        decode,
        prepared,
        settings["image_size"],
        settings["split"],
        settings["targets"],
        f"datasets.{name}",
        workers,
        problems,
    )
