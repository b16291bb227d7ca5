"""The `nnunet` format: an nnU-Net v2 raw 2D data set.

    dataset.json                         channel_names, labels, file_ending (".png", ".tif", ...)
    imagesTr/<case>_0000<ending>         one file per channel (_0000, _0001, ...), or one RGB file
    labelsTr/<case><ending>              label map (0 = background)
    imagesTs/<case>_0000<ending>         optional; with labelsTs/<case><ending> a fixed test split

Channels become the model's input: one file is grey (or RGB where the file is RGB), three files
are R, G and B; other counts are refused for now. `foreground_labels` chooses the foreground
(default: every label > 0). 3D volumes (NIfTI) are refused before anything is written.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from effunet.data import checks, images, prepare, synthetic
from effunet.data.formats import Format, foreground, foreground_rule, manifest_native
from effunet.errors import ConfigError, EffunetError
from effunet.files import atomic_dir, atomic_path

log = logging.getLogger(__name__)
DATASET_JSON = "dataset.json"
VOLUME_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


def find_root(raw_dir: str | os.PathLike) -> Path:
    raw_dir = Path(raw_dir)
    for candidate in [raw_dir, *sorted(p for p in raw_dir.rglob("*") if p.is_dir())]:
        if (candidate / DATASET_JSON).is_file() and (candidate / "imagesTr").is_dir():
            return candidate
    raise EffunetError(f"no nnU-Net data set (dataset.json beside imagesTr/) found under {raw_dir}")


def read_dataset_json(root: Path) -> dict:
    path = root / DATASET_JSON
    try:
        description = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise EffunetError(f"{path}: not readable JSON ({error})") from None
    for key in ("channel_names", "labels", "file_ending"):
        if key not in description:
            raise EffunetError(f"{path}: lacks the key {key!r} (nnU-Net v2 dataset.json)")
    ending = description["file_ending"]
    if ending.lower() in VOLUME_ENDINGS:
        example = next(iter(sorted((root / "imagesTr").glob(f"*{ending}"))), root / "imagesTr")
        raise EffunetError(
            f"{example}: a 3D volume ({ending}); effunet compares 2D models on 2D images "
            "(file_ending .png, .tif or .bmp)"
        )
    if ending.lower() not in images.LOSSLESS_SUFFIXES:  # label maps share the ending: JPEG would blur them
        raise EffunetError(f"{path}: file_ending {ending!r} is not a 2D image format (.png, .tif, .tiff, .bmp)")
    return description


def _cases(folder: Path, ending: str, problems: list[str]) -> dict[str, tuple[Path, ...]]:
    """`<case>_<cccc><ending>` files of `folder` by case, channels in order."""
    pattern = re.compile(rf"^(?P<case>.+)_(?P<channel>\d{{4}}){re.escape(ending)}$")
    channels: dict[str, dict[int, Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        match = pattern.match(path.name)
        if not match:
            problems.append(f"{path}: not named <case>_<4-digit channel>{ending}")
            continue
        channels.setdefault(match["case"], {})[int(match["channel"])] = path
    cases = {}
    for case, found in sorted(channels.items()):
        if sorted(found) != list(range(len(found))):
            problems.append(f"{folder}: case {case!r} has the channels {sorted(found)}, not 0..{len(found) - 1}")
            continue
        cases[case] = tuple(found[index] for index in range(len(found)))
    return cases


def find_samples(raw_dir: str | os.PathLike, settings: dict):
    root = find_root(raw_dir)
    description = read_dataset_json(root)
    ending = description["file_ending"]
    problems: list[str] = []
    notes: list[str] = []
    label_values = {int(value) for value in description["labels"].values() if not isinstance(value, list)}
    wanted = settings.get("foreground_labels")
    for value in wanted or ():
        if value not in label_values:
            problems.append(
                f"config key foreground_labels: {value} is not a label of {root / DATASET_JSON} "
                f"({sorted(label_values)})"
            )
    rule = foreground_rule(wanted)
    samples = []
    folders = [("imagesTr", "labelsTr", None)]
    if (root / "imagesTs").is_dir():
        if (root / "labelsTs").is_dir():
            folders.append(("imagesTs", "labelsTs", "test"))
        else:
            notes.append(f"{root / 'imagesTs'} has no labelsTs/ beside it: not used (no truth to score)")
    for image_folder, label_folder, split in folders:
        cases = _cases(root / image_folder, ending, problems)
        label_dir = root / label_folder
        if not label_dir.is_dir():
            raise EffunetError(f"no {label_folder}/ folder beside {root / image_folder}")
        labels = {
            p.name[: -len(ending)]: p
            for p in sorted(label_dir.iterdir())
            if p.is_file() and p.name.endswith(ending) and not p.name.startswith(".")
        }
        problems += [
            f"{files[0]}: no label map {label_dir / (case + ending)}"
            for case, files in cases.items()
            if case not in labels
        ]
        problems += [
            f"{path}: no image {root / image_folder / (case + '_0000' + ending)}"
            for case, path in labels.items()
            if case not in cases
        ]
        for case, files in cases.items():
            if case not in labels:
                continue
            if len(files) not in (1, 3):
                problems.append(
                    f"{files[0]}: case {case!r} has {len(files)} channel files; 1 (grey or RGB) or 3 "
                    "(R, G, B) are supported for now"
                )
                continue
            samples.append(checks.Sample(case, files, (labels[case],), None, split, (("foreground", rule),)))
    duplicates = [s.id for s in samples]
    problems += [
        f"case {case!r} is in both imagesTr/ and imagesTs/"
        for case in sorted(set(duplicates))
        if duplicates.count(case) > 1
    ]
    return samples, problems, notes


def _decode(sample: checks.Sample) -> checks.Decoded:
    rgb = images.read_rgb(sample.image)
    path = sample.annotation[0]
    image = images.open_image(path)
    if image.mode not in ("1", "L", "P", "I", "I;16", "I;16B", "I;16L"):
        raise EffunetError(f"{path}: a label map has one channel of integer labels, this one is {image.mode}")
    values = np.asarray(image).astype(np.int64)
    return checks.Decoded(rgb, foreground(values, dict(sample.extra)["foreground"]))


def check(raw_dir, settings: dict, name: str, workers: int = 1) -> checks.Report:
    return prepare.check_found(name, find_samples(raw_dir, settings), _decode, settings, workers)


def prepare_data(raw_dir, labels_dir, prepared, settings: dict, name: str, workers: int = 1) -> int:
    return prepare.prepare_found(name, raw_dir, find_samples(raw_dir, settings), _decode, prepared, settings, workers)


def write_synthetic(
    path: str | os.PathLike,
    n_images: int = 24,
    seed: int = 0,
    nuclei=(8, 24),
    nucleus_radius=(6, 16),
    n_test: int = 0,
    channels: int = 1,
) -> Path:
    """An nnU-Net v2 raw data set of synthetic nuclei (the DSB2018 generator; label 1 = nucleus):
    `channels` 1 (grey) or 3 (R, G and B files), the last `n_test` cases in imagesTs/ and labelsTs/.
    A zip when `path` ends in .zip."""
    rng = np.random.default_rng(seed)
    files: dict[str, Image.Image] = {}
    for index in range(n_images):
        _, image, labels = synthetic.dsb_sample(rng, index, seed, nuclei, nucleus_radius)
        rgb = np.asarray(image.convert("RGB"))
        case = f"nuclei_{index:03d}"
        test = index >= n_images - n_test
        images_folder, labels_folder = ("imagesTs", "labelsTs") if test else ("imagesTr", "labelsTr")
        if channels == 1:
            files[f"{images_folder}/{case}_0000.png"] = Image.fromarray(rgb.mean(axis=-1).astype(np.uint8))
        else:
            for channel in range(3):
                files[f"{images_folder}/{case}_{channel:04d}.png"] = Image.fromarray(rgb[..., channel])
        files[f"{labels_folder}/{case}.png"] = Image.fromarray((labels > 0).astype(np.uint8))
    names = {"1": ["grey"], "3": ["R", "G", "B"]}[str(channels)]
    description = {
        "channel_names": {str(i): n for i, n in enumerate(names)},
        "labels": {"background": 0, "nucleus": 1},
        "numTraining": n_images - n_test,
        "file_ending": ".png",
    }
    _write_tree(Path(path), files, json.dumps(description, indent=2))
    log.info("wrote a synthetic nnU-Net data set with %d cases to %s", n_images, path)
    return Path(path)


def _write_tree(path: Path, files: dict[str, Image.Image], dataset_json: str) -> None:
    if path.suffix == ".zip":
        with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as archive:
            archive.writestr(f"Dataset001_Nuclei/{DATASET_JSON}", dataset_json)
            for name, image in files.items():
                buffer = io.BytesIO()
                image.save(buffer, format="PNG")
                archive.writestr(f"Dataset001_Nuclei/{name}", buffer.getvalue())
        return
    with atomic_dir(path) as staging:
        (staging / DATASET_JSON).write_text(dataset_json)
        for name, image in files.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            image.save(staging / name, format="PNG")


def check_config(name: str, settings: dict) -> None:
    """A local folder's dataset.json is read at start-up: a 3D data set (NIfTI) is refused there."""
    from effunet.data.download import local_path

    path = local_path(settings.get("source"))
    if path is None or not path.is_dir():
        return
    try:
        root = find_root(path)
    except EffunetError:
        return  # the data step says what is missing, naming the folder
    try:
        read_dataset_json(root)
    except EffunetError as error:
        raise ConfigError(f"config key datasets.{name}.source: {error}") from None


FORMAT = Format(
    title="nnU-Net data set",
    name="nnunet",
    describe="an nnU-Net v2 raw 2D data set (dataset.json, imagesTr/, labelsTr/, optional imagesTs/ + labelsTs/)",
    prepare=prepare_data,
    native=manifest_native,
    check=check,
    check_config=check_config,
    synthetic=write_synthetic,
)
