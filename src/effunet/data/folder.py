"""The `folder` format: a folder of images and their masks or instance labels, matched by file stem.

    images/<stem>.{png,tif,tiff,jpg,jpeg,bmp}   8 or 16 bit, grey, RGB or RGBA; native sizes may differ
    masks/<stem>.{png,tif,tiff,bmp}             binary: any non-zero pixel is foreground    (annotations: masks)
    labels/<stem>.{png,tif,tiff,bmp}            instance label images, 0 = background     (annotations: labels)
    roi/<stem>.{png,tif,tiff,bmp}               optional scored region, non-zero = scored (roi: true)
    split.csv                                   optional `id,split` (train/val/test) for every image

The folder may sit anywhere inside the source (an archive's top folder, say). Masks, labels and
regions must be lossless: a JPEG annotation is refused by name. Without split.csv the images are
split by the seeded fractions of `split`.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from effunet.data import checks, images, manifest, prepare, synthetic
from effunet.data.formats import Format, manifest_native
from effunet.errors import EffunetError
from effunet.files import atomic_dir, atomic_path

log = logging.getLogger(__name__)
ANNOTATIONS = ("masks", "labels")
SPLIT_FILE = "split.csv"
FOREGROUND = (("foreground", "nonzero"),)  # the manifest's rule for the native truth of a mask


def find_root(raw_dir: str | os.PathLike) -> Path:
    """The folder that holds `images/` (the source itself, or the first such folder inside it)."""
    raw_dir = Path(raw_dir)
    for candidate in [raw_dir, *sorted(p for p in raw_dir.rglob("*") if p.is_dir())]:
        if (candidate / "images").is_dir():
            return candidate
    raise EffunetError(
        f"no images/ folder found under {raw_dir} (the folder format: images/ with masks/ or labels/ beside it)"
    )


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _by_stem(folder: Path, what: str, allowed: tuple[str, ...], problems: list[str], notes: list[str]):
    """The files of `folder` by stem; files of other kinds are problems (annotations) or notes."""
    found: dict[str, Path] = {}
    stems = []
    for path in _files(folder):
        suffix = path.suffix.lower()
        if suffix in (".jpg", ".jpeg") and what != "image":
            problems.append(
                f"{path}: a {what} must be lossless (PNG, TIFF or BMP), not JPEG: its compression "
                "changes pixel values at the edges"
            )
            continue
        if suffix not in allowed:
            notes.append(f"ignored {path} (not a {'/'.join(s.lstrip('.') for s in allowed)} file)")
            continue
        stems.append((path.stem, path))
        found.setdefault(path.stem, path)
    problems += checks.duplicate_problems(stems, what)
    return found


def read_split_file(path: Path, ids: list[str], problems: list[str]) -> dict[str, str]:
    """`split.csv`: one `id,split` row per image, split in train/val/test; problems name the file."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        problems.append(f"{path}: cannot read it ({error})")
        return {}
    if rows and not {"id", "split"} <= set(rows[0]):
        problems.append(f"{path}: needs the columns id,split (found {', '.join(rows[0])})")
        return {}
    splits = {}
    for number, row in enumerate(rows, start=2):
        if row["split"] not in manifest.SPLITS:
            problems.append(f"{path}, line {number}: split {row['split']!r} is not one of train, val, test")
        elif row["id"] not in ids:
            problems.append(f"{path}, line {number}: no image with the stem {row['id']!r} in images/")
        else:
            splits[row["id"]] = row["split"]
    missing = [sample for sample in ids if sample not in splits]
    if missing:
        problems.append(f"{path}: {len(missing)} image(s) have no split, e.g. {missing[0]}")
    return splits


def find_samples(raw_dir: str | os.PathLike, settings: dict) -> tuple[list[checks.Sample], list[str], list[str]]:
    """The samples of a folder data set, with the problems and notes found on the way."""
    root = find_root(raw_dir)
    problems: list[str] = []
    notes: list[str] = []
    annotations = settings.get("annotations", "masks")
    folder = root / annotations
    if not folder.is_dir():
        other = root / ANNOTATIONS[1 - ANNOTATIONS.index(annotations)]
        hint = f"; {other} exists: set annotations: {other.name}" if other.is_dir() else ""
        raise EffunetError(f"no {annotations}/ folder beside {root / 'images'}{hint}")
    image_files = _by_stem(root / "images", "image", images.IMAGE_SUFFIXES, problems, notes)
    truth_files = _by_stem(folder, annotations[:-1], images.LOSSLESS_SUFFIXES, problems, notes)
    region_files = {}
    if settings.get("roi"):
        if not (root / "roi").is_dir():
            raise EffunetError(f"roi: true but there is no roi/ folder beside {root / 'images'}")
        region_files = _by_stem(root / "roi", "region", images.LOSSLESS_SUFFIXES, problems, notes)
    elif (root / "roi").is_dir():
        notes.append(f"{root / 'roi'} is ignored: set roi: true to score only inside it")
    problems += [
        f"{path}: no {annotations[:-1]} with the stem {stem!r} in {folder}"
        for stem, path in image_files.items()
        if stem not in truth_files
    ]
    problems += [
        f"{path}: no image with the stem {stem!r} in {root / 'images'}"
        for stem, path in truth_files.items()
        if stem not in image_files
    ]
    if settings.get("roi"):
        problems += [
            f"{path}: no region with the stem {stem!r} in {root / 'roi'}"
            for stem, path in image_files.items()
            if stem not in region_files
        ]
    ids = sorted(stem for stem in image_files if stem in truth_files)
    fixed = read_split_file(root / SPLIT_FILE, ids, problems) if (root / SPLIT_FILE).is_file() else {}
    samples = [
        checks.Sample(
            stem, (image_files[stem],), (truth_files[stem],), region_files.get(stem), fixed.get(stem), FOREGROUND
        )
        for stem in ids
    ]
    return samples, problems, notes


def decoder(settings: dict):
    """How one sample is read and checked: labels or a binary mask, and the region."""
    return _decode_labels if settings.get("annotations", "masks") == "labels" else _decode_mask


def _decode_mask(sample: checks.Sample) -> checks.Decoded:
    rgb = images.read_rgb(sample.image)
    values = images.read_annotation(sample.annotation[0])
    distinct = np.unique(values)
    if len(distinct) > 2:
        raise EffunetError(
            f"{sample.annotation[0]}: a mask has two values (0 and one other), this one has "
            f"{len(distinct)} ({', '.join(map(str, distinct[:5]))}{', ...' if len(distinct) > 5 else ''}); "
            "instance label images go in labels/ (annotations: labels)"
        )
    return checks.Decoded(rgb, values != 0, None, _region(sample))


def _decode_labels(sample: checks.Sample) -> checks.Decoded:
    rgb = images.read_rgb(sample.image)
    path = sample.annotation[0]
    image = images.open_image(path)
    if image.mode not in ("1", "L", "P", "I", "I;16", "I;16B", "I;16L"):
        raise EffunetError(f"{path}: a label image has one channel of integer ids, this one is {image.mode}")
    values = np.asarray(image).astype(np.int64)
    if values.min() < 0 or values.max() > np.iinfo(np.uint16).max:
        raise EffunetError(f"{path}: label ids must lie in 0..65535, found {values.min()}..{values.max()}")
    labels = values.astype(np.uint16)
    return checks.Decoded(rgb, labels > 0, labels, _region(sample))


def _region(sample: checks.Sample) -> np.ndarray | None:
    if sample.region is None:
        return None
    values = images.read_annotation(sample.region)
    if len(np.unique(values)) > 2:
        raise EffunetError(f"{sample.region}: a region mask has two values (0 and one other)")
    return values != 0


def check(raw_dir, settings: dict, name: str, workers: int = 1) -> checks.Report:
    return prepare.check_found(name, find_samples(raw_dir, settings), decoder(settings), settings, workers)


def prepare_data(raw_dir, labels_dir, prepared, settings: dict, name: str, workers: int = 1) -> int:
    return prepare.prepare_found(
        name, raw_dir, find_samples(raw_dir, settings), decoder(settings), prepared, settings, workers
    )


def write_labels(raw_dir, labels_dir, settings: dict, name: str, workers: int = 1) -> int:
    samples, problems, _ = find_samples(raw_dir, settings)
    return prepare.write_labels(
        name, raw_dir, samples, decoder(settings), labels_dir, f"datasets.{name}", workers, problems
    )


def write_synthetic(
    path: str | os.PathLike,
    n_images: int = 24,
    seed: int = 0,
    nuclei=(8, 24),
    nucleus_radius=(6, 16),
    annotations: str = "labels",
    roi: bool = False,
) -> Path:
    """A folder data set of synthetic nuclei (the DSB2018 generator): images/, labels/ or masks/,
    roi/ (the image less a 10% border) if asked; a zip of the same when `path` ends in .zip."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    files = {}
    for index in range(n_images):
        sample_id, image, labels = synthetic.dsb_sample(rng, index, seed, nuclei, nucleus_radius)
        stem = f"img{index:03d}"
        files[f"images/{stem}.png"] = image
        annotation = labels if annotations == "labels" else (labels > 0).astype(np.uint8) * 255
        files[f"{annotations}/{stem}.png"] = Image.fromarray(annotation)
        if roi:
            height, width = labels.shape
            region = np.zeros((height, width), np.uint8)
            region[height // 10 : height - height // 10, width // 10 : width - width // 10] = 255
            files[f"roi/{stem}.png"] = Image.fromarray(region)
    if path.suffix == ".zip":
        with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as archive:
            for name, image in files.items():
                buffer = io.BytesIO()
                image.save(buffer, format="PNG")
                archive.writestr(f"own-data/{name}", buffer.getvalue())
    else:
        with atomic_dir(path) as staging:
            for name, image in files.items():
                (staging / name).parent.mkdir(parents=True, exist_ok=True)
                image.save(staging / name, format="PNG")
    log.info("wrote a synthetic folder data set with %d images to %s", n_images, path)
    return path


def check_config(name: str, settings: dict) -> None:
    """A synthetic source's image count is known at start-up: an empty split is refused there."""
    if settings.get("source") == "synthetic":
        split = settings["split"]
        manifest.check_split_counts(
            manifest.split_counts(settings["synthetic"]["n_images"], split["test_fraction"], split["val_fraction"]),
            f"datasets.{name}.split",
        )


FORMAT = Format(
    title="folder data set",
    name="folder",
    describe="images/ with masks/ (binary) or labels/ (instances), optional roi/ and split.csv, matched by stem",
    prepare=prepare_data,
    native=manifest_native,
    check=check,
    instances=lambda settings: settings.get("annotations", "masks") == "labels",
    region=lambda settings: bool(settings.get("roi", False)),
    write_labels=write_labels,
    check_config=check_config,
    synthetic=write_synthetic,
)
