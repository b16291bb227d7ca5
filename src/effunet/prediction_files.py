"""The files `effunet predict` reads and writes (`effunet.predict.predict_files`): the input images,
each one's output names (``<stem>_mask.png``, ``<stem>_prob.png``), and the refusal to overwrite."""

from __future__ import annotations

from pathlib import Path

from effunet.data import images
from effunet.errors import EffunetError

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".gif")


def output_stems(files: list[Path]) -> dict[Path, str]:
    """Each input's output name stem: its own stem, or stem_suffix where stems collide (img.png and
    img.jpg -> img_png, img_jpg). Names are compared case-insensitively (macOS, Windows)."""
    by_stem: dict[str, list[Path]] = {}
    for path in files:
        by_stem.setdefault(path.stem.lower(), []).append(path)
    stems = {
        path: (path.stem if len(by_stem[path.stem.lower()]) == 1 else f"{path.stem}_{path.suffix[1:]}")
        for path in files
    }
    taken: dict[str, Path] = {}
    for path, stem in stems.items():
        if stem.lower() in taken:
            raise EffunetError(f"{path} and {taken[stem.lower()]} would both write {stem}_mask.png; rename one of them")
        taken[stem.lower()] = path
    return stems


def output_names(stem: str, out_dir: Path) -> tuple[Path, Path]:
    """The mask and the probability file of an input with output stem `stem`."""
    return out_dir / f"{stem}_mask.png", out_dir / f"{stem}_prob.png"


def output_paths(stems: dict[Path, str], out_dir: Path, save_probabilities: bool) -> list[Path]:
    """Every file a call writes, in input order: each mask, then its probability file if asked for."""
    return [name for stem in stems.values() for name in output_names(stem, out_dir)[: 2 if save_probabilities else 1]]


def refuse_existing(paths: list[Path]) -> None:
    """An EffunetError naming the first of `paths` that exists (an earlier call's output)."""
    existing = [path for path in paths if path.exists()]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise EffunetError(
            f"{existing[0]} already exists{more}; nothing was predicted. Give another output folder, "
            "or --overwrite to replace them"
        )


def input_files(source: Path) -> list[Path]:
    if source.is_dir():
        files = images.list_files(source, IMAGE_SUFFIXES)
        if not files:
            raise EffunetError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {source}")
        return files
    if source.is_file():
        return [source]
    raise EffunetError(f"input not found: {source}")
