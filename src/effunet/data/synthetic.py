"""Synthetic data in the original formats, so the offline demo runs exactly the code real data runs.

DSB2018: a zip laid out like stage1_train.zip (`<id>/images/<id>.png`, `<id>/masks/<mask>.png`),
images of several sizes, RGBA and RGB, touching and separate nuclei, dark and bright backgrounds.
DRIVE: a zip laid out like DRIVE.zip (`DRIVE/training/images/21_training.tif`, `1st_manual/*.gif`,
`mask/*_mask.gif`, `test/...` with `2nd_manual/`), 565x584 RGB TIFF with a branching vessel tree
inside a circular field of view, GIF annotations 0/255.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from effunet.files import atomic_path

log = logging.getLogger(__name__)

DSB_SIZES = [(256, 256), (256, 320), (360, 360), (260, 347)]  # (height, width)
DRIVE_SIZE = (584, 565)  # (height, width)


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


# --- DSB2018 -------------------------------------------------------------------------------------

def _nucleus_labels(rng: np.random.Generator, size: tuple[int, int], count: int,
                    radius: tuple[float, float] = (6, 16)) -> np.ndarray:
    """Non-overlapping elliptical nuclei (semi-axes drawn from `radius`, in pixels); every third one
    is placed to touch the previous one."""
    height, width = size
    labels = np.zeros(size, dtype=np.uint16)
    rows, cols = np.mgrid[0:height, 0:width]
    previous = None
    for label in range(1, count + 1):
        ry, rx = rng.uniform(radius[0], radius[1], size=2)
        if previous is not None and label % 3 == 0:
            (py, px, pry, prx), angle = previous, rng.uniform(0, 2 * math.pi)
            cy, cx = py + math.sin(angle) * (pry + ry) * 0.95, px + math.cos(angle) * (prx + rx) * 0.95
        else:
            cy, cx = rng.uniform(ry, height - ry), rng.uniform(rx, width - rx)
        inside = ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1.0
        free = inside & (labels == 0)
        if free.sum() >= 20:
            labels[free] = label
            previous = (cy, cx, ry, rx)
    return _relabel(labels)


def _relabel(labels: np.ndarray) -> np.ndarray:
    ids = np.unique(labels[labels > 0])
    lookup = np.zeros(int(labels.max()) + 1, dtype=np.uint16)
    lookup[ids] = np.arange(1, len(ids) + 1, dtype=np.uint16)
    return lookup[labels]


def _nuclei_image(rng: np.random.Generator, labels: np.ndarray, fluorescent: bool) -> np.ndarray:
    height, width = labels.shape
    texture = rng.normal(0, 1, (height // 8 + 1, width // 8 + 1))
    texture = np.kron(texture, np.ones((8, 8)))[:height, :width]
    foreground = labels > 0
    if fluorescent:
        background, nucleus = rng.uniform(5, 25), rng.uniform(90, 200)
        gray = background + foreground * (nucleus + 20 * texture)
        rgb = np.stack([gray] * 3, axis=-1)
    else:
        background = np.array([225, 205, 225]) + rng.uniform(-15, 15, 3)
        nucleus = np.array([95, 60, 140]) + rng.uniform(-20, 20, 3)
        rgb = np.where(foreground[..., None], nucleus, background) + 12 * texture[..., None]
    rgb = rgb + rng.normal(0, 6, rgb.shape)
    image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    return np.asarray(image.filter(ImageFilter.GaussianBlur(1.0)))


def dsb_sample(rng: np.random.Generator, index: int, seed: int, nuclei=(8, 24), nucleus_radius=(6, 16)):
    sample_id = hashlib.sha256(f"dsb2018-{seed}-{index}".encode()).hexdigest()
    size = DSB_SIZES[index % len(DSB_SIZES)]
    count = int(rng.integers(nuclei[0], nuclei[1] + 1))
    labels = _nucleus_labels(rng, size, count=count, radius=tuple(nucleus_radius))
    fluorescent = index % 2 == 0
    rgb = _nuclei_image(rng, labels, fluorescent)
    image = Image.fromarray(rgb).convert("RGBA") if fluorescent else Image.fromarray(rgb)
    return sample_id, image, labels


def write_dsb2018_zip(path: str | os.PathLike, n_images: int = 24, seed: int = 0, nuclei=(8, 24),
                      nucleus_radius=(6, 16)) -> Path:
    """A stage1_train.zip look-alike with `n_images` images and one mask PNG per nucleus.

    Each image has between ``nuclei[0]`` and ``nuclei[1]`` nuclei (fewer where they would overlap)
    with semi-axes of ``nucleus_radius`` pixels in images of 256-360 pixels; larger, fewer nuclei
    stay visible when the demo shrinks the images to 64x64.
    """
    if not (1 <= nuclei[0] <= nuclei[1]) or not (1 <= nucleus_radius[0] <= nucleus_radius[1] <= 120):
        raise ValueError(f"nuclei {nuclei} and nucleus_radius {nucleus_radius} must be increasing pairs "
                         "(at least 1 nucleus, radii of 1 to 120 pixels)")
    rng = np.random.default_rng(seed)
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for index in range(n_images):
            sample_id, image, labels = dsb_sample(rng, index, seed, nuclei, nucleus_radius)
            for folder in (f"{sample_id}/", f"{sample_id}/images/", f"{sample_id}/masks/"):
                archive.writestr(folder, b"")
            archive.writestr(f"{sample_id}/images/{sample_id}.png", _encode(image, "PNG"))
            for label in range(1, int(labels.max()) + 1):
                mask_id = hashlib.sha256(f"{sample_id}-{label}".encode()).hexdigest()
                mask = Image.fromarray(((labels == label) * 255).astype(np.uint8))
                archive.writestr(f"{sample_id}/masks/{mask_id}.png", _encode(mask, "PNG"))
    log.info("wrote a synthetic DSB2018 archive with %d images to %s", n_images, path)
    return Path(path)


# --- DRIVE ---------------------------------------------------------------------------------------

def _fov(size: tuple[int, int]) -> np.ndarray:
    height, width = size
    rows, cols = np.mgrid[0:height, 0:width]
    return (rows - height / 2) ** 2 + (cols - width / 2) ** 2 <= (0.47 * min(height, width)) ** 2


def _vessel_tree(rng: np.random.Generator, size: tuple[int, int], width_scale: float = 1.0):
    """Branching vessels grown from an optic disc, drawn as lines of shrinking width."""
    height, width = size
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    disc = (width * rng.uniform(0.25, 0.35), height * rng.uniform(0.45, 0.55))
    stack = [(disc, angle, 11.0, 0) for angle in rng.uniform(-math.pi, math.pi, 5)]
    while stack:
        (x, y), angle, thickness, depth = stack.pop()
        length = rng.uniform(50, 110)
        end = (x + math.cos(angle) * length, y + math.sin(angle) * length)
        draw.line([(x, y), end], fill=255, width=max(1, round(thickness * width_scale)))
        if depth < 5 and thickness > 1.5:
            for turn in (-1, 1):
                stack.append((end, angle + turn * rng.uniform(0.2, 0.7), thickness * 0.72, depth + 1))
    return np.asarray(canvas) > 0


def _fundus_image(rng: np.random.Generator, vessels: np.ndarray, fov: np.ndarray,
                  contrast: float = 0.45) -> np.ndarray:
    height, width = vessels.shape
    rows, cols = np.mgrid[0:height, 0:width]
    radius = np.hypot(rows - height / 2, cols - width / 2) / (0.47 * min(height, width))
    shading = np.clip(1.0 - 0.45 * radius**2, 0, 1)[..., None]
    base = np.array([190, 90, 40]) + rng.uniform(-15, 15, 3)
    rgb = base * shading * (1.0 - contrast * vessels[..., None]) + rng.normal(0, 4, (height, width, 3))
    rgb = rgb * fov[..., None]
    image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    return image.filter(ImageFilter.GaussianBlur(0.8))


def _gif(mask: np.ndarray) -> bytes:
    return _encode(Image.fromarray(mask.astype(np.uint8) * 255, mode="L"), "GIF")


def _drive_sample(archive: zipfile.ZipFile, rng, split: str, number: int, vessel_width: float = 1.0,
                  vessel_contrast: float = 0.45) -> None:
    fov = _fov(DRIVE_SIZE)
    vessels = _vessel_tree(rng, DRIVE_SIZE, width_scale=vessel_width) & fov
    stem = f"{number:02d}_{split}"
    root = f"DRIVE/{split}"
    image = _fundus_image(rng, vessels, fov, contrast=vessel_contrast)
    archive.writestr(f"{root}/images/{stem}.tif", _encode(image, "TIFF"))
    archive.writestr(f"{root}/1st_manual/{number:02d}_manual1.gif", _gif(vessels))
    archive.writestr(f"{root}/mask/{stem}_mask.gif", _gif(fov))
    if split == "test":  # a second observer who misses the finest vessels
        eroded = Image.fromarray(vessels.astype(np.uint8) * 255).filter(ImageFilter.MinFilter(3))
        archive.writestr(f"{root}/2nd_manual/{number:02d}_manual2.gif", _gif(np.asarray(eroded) > 0))


def write_drive_zip(path: str | os.PathLike, n_train: int = 20, n_test: int = 20, seed: int = 0,
                    vessel_width: float = 1.0, vessel_contrast: float = 0.45) -> Path:
    """A DRIVE.zip look-alike: training images numbered from 21, test images from 01.

    `vessel_width` scales the vessels' line widths (11 pixels at the optic disc, 0.72x per branching);
    `vessel_contrast` is how much darker a vessel is than the background (0..1).
    """
    if vessel_width <= 0 or not 0 < vessel_contrast <= 1:
        raise ValueError(f"vessel_width {vessel_width} must be > 0 and vessel_contrast {vessel_contrast} in (0, 1]")
    rng = np.random.default_rng(seed)
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for number in range(21, 21 + n_train):
            _drive_sample(archive, rng, "training", number, vessel_width, vessel_contrast)
        for number in range(1, 1 + n_test):
            _drive_sample(archive, rng, "test", number, vessel_width, vessel_contrast)
    log.info("wrote a synthetic DRIVE archive (%d training, %d test) to %s", n_train, n_test, path)
    return Path(path)

