"""Image I/O and resizing: every reader names the file it failed on."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from effunet.errors import EffunetError
from effunet.files import atomic_path

Size = tuple[int, int]  # (height, width), the order NumPy shapes use


def open_image(path: str | os.PathLike) -> Image.Image:
    """Open and decode an image file; any failure becomes an error naming the file."""
    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError:
        raise EffunetError(f"image file not found: {path}") from None
    except Exception as error:  # PIL raises OSError, SyntaxError, ValueError, zlib.error...
        raise EffunetError(f"cannot read image {path}: corrupt or truncated ({error})") from error
    return image


def image_size(path: str | os.PathLike) -> Size:
    """(height, width) from the header only, without decoding the pixels."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except FileNotFoundError:
        raise EffunetError(f"image file not found: {path}") from None
    except Exception as error:
        raise EffunetError(f"cannot read image {path}: {error}") from error
    return height, width


def to_rgb(image: Image.Image) -> np.ndarray:
    """RGB uint8: alpha dropped, grayscale expanded, 16-bit and 32-bit integers scaled to 0..255."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        values = np.asarray(image, dtype=np.float64)
        scale = 255.0 / 65535.0 if values.max() > 255 or image.mode.startswith("I;16") else 1.0
        gray = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    if image.mode != "RGB":
        image = image.convert("RGB")  # drops alpha, expands L/P/1, converts CMYK/YCbCr
    return np.asarray(image)


CHANNEL_SEPARATOR = "|"  # an image made of channel files (nnU-Net's _0000, _0001, _0002): "a.png|b.png|c.png"


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """An RGB image from one file, or from three single-channel files joined by `CHANNEL_SEPARATOR`."""
    parts = str(path).split(CHANNEL_SEPARATOR)
    if len(parts) == 1:
        return to_rgb(open_image(path))
    if len(parts) != 3:
        raise EffunetError(
            f"an image of {len(parts)} channel files ({path}) cannot be shown as RGB; "
            "1 (grey) or 3 (RGB) channels are supported"
        )
    channels = [to_rgb(open_image(part))[..., 0] for part in parts]
    shapes = {channel.shape for channel in channels}
    if len(shapes) != 1:
        raise EffunetError(f"the channel files {', '.join(parts)} differ in size ({sorted(shapes)})")
    return np.stack(channels, axis=-1)


def read_annotation(path: str | os.PathLike) -> np.ndarray:
    """An annotation (mask, label or region image) as integers, as stored: single-channel files as
    they are (1, L, P, I;16, I), colour files as the largest of their R, G and B values."""
    image = open_image(path)
    if image.mode in ("RGB", "RGBA", "CMYK", "YCbCr", "LA", "PA"):
        values = np.asarray(image.convert("RGB")).max(axis=-1)
    elif image.mode == "F":
        raise EffunetError(f"{path}: a floating-point image is not a mask or label image")
    else:
        values = np.asarray(image)
    return values.astype(np.int64) if values.dtype != np.bool_ else values.astype(np.uint8)


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """A binary mask as bool: any single-channel or colour file, foreground where brighter than 127."""
    return np.asarray(open_gray(path)) > 127


def open_gray(path: str | os.PathLike) -> Image.Image:
    image = open_image(path)
    return image if image.mode in ("L", "1") else image.convert("L")


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """An instance label image (uint16, 0 = background)."""
    return np.asarray(open_image(path), dtype=np.uint16)


def write_png(path: str | os.PathLike, array: np.ndarray, compress_level: int = 1) -> None:
    """Write uint8 (L or RGB) or uint16 (I;16) arrays as PNG, atomically."""
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    if array.dtype == np.uint16:
        image = Image.fromarray(array)  # mode I;16, a 16-bit PNG
    elif array.dtype == np.uint8:
        image = Image.fromarray(array)
    else:
        raise TypeError(f"write_png expects uint8, uint16 or bool, got {array.dtype}")
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", compress_level=compress_level)


def resize_rgb(rgb: np.ndarray, size: Size) -> np.ndarray:
    """Antialiased bilinear resize (area-like when shrinking)."""
    height, width = size
    if rgb.shape[:2] == (height, width):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BILINEAR))


def resize_mask(mask: np.ndarray, size: Size) -> np.ndarray:
    """Resize a binary mask so it stays binary: smooth resize of 0/255, then threshold at half."""
    height, width = size
    values = mask.astype(np.uint8) * 255
    if mask.shape != (height, width):
        values = np.asarray(Image.fromarray(values).resize((width, height), Image.Resampling.BILINEAR))
    return np.where(values >= 128, 255, 0).astype(np.uint8)


TARGETS = ("hard", "soft")


def resize_target(mask: np.ndarray, size: Size, targets: str = "hard") -> np.ndarray:
    """A training target (uint8 PNG values) from a binary mask, resized to `size`.

    "hard": `resize_mask`, 0 or 255 (the study's; a 1-px line can vanish or break into dashes).
    "soft": the fraction of each target pixel's area that the mask covers (box filter), as 0..255,
    so 1-px structures keep their mass and stay connected. Readers take value / 255 as the target
    and value > 127 (area fraction above one half) where they need a binary mask.
    """
    if targets == "hard":
        return resize_mask(mask, size)
    if targets != "soft":
        raise EffunetError(f"targets must be one of {', '.join(TARGETS)}, got {targets!r}")
    fraction = area_weights(size[0], mask.shape[0]) @ mask.astype(np.float32) @ area_weights(size[1], mask.shape[1]).T
    return np.clip(np.rint(fraction * 255), 0, 255).astype(np.uint8)


def area_weights(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) matrix: the share of output pixel o's extent that input pixel i covers.

    Output pixel o spans [o, o + 1) * n_in / n_out in input pixels; rows sum to 1, so a weighted
    sum is an exact area average (PIL's BOX filter is not one for non-integer ratios)."""
    scale = n_in / n_out
    start = np.arange(n_out)[:, None] * scale
    edges = np.arange(n_in)[None, :]
    overlap = np.minimum(edges + 1, start + scale) - np.maximum(edges, start)
    return (np.clip(overlap, 0, None) / scale).astype(np.float32)


def png_name(sample_id: str) -> str:
    return f"{sample_id}.png"


IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
LOSSLESS_SUFFIXES = (".png", ".tif", ".tiff", ".bmp")


def list_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
