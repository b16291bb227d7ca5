"""Checks a data set's raw files before anything trains, for `effunet check-data` and the data steps.

A format lists its samples (`Sample`: an id, the image's channel files, the annotation and region
files, a fixed split if the data set has one) and says how to decode one (`Decoded`); the checks
here are the same for every format: every problem names the file, and a summary gives counts,
native sizes and the foreground fraction. The workflow's data steps run the same checks and write
nothing for a data set that fails them.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from effunet.data.parallel import map_samples
from effunet.errors import EffunetError

log = logging.getLogger(__name__)
MAX_LISTED = 20  # problems listed in an error; the count says how many more


@dataclass(frozen=True)
class Sample:
    """One image of a data set with the files that make its truth."""

    id: str
    channels: tuple[Path, ...]  # one file (grey or colour), or one file per channel
    annotation: tuple[Path, ...] = ()  # mask, label image, or per-object masks (DSB2018)
    region: Path | None = None
    split: str | None = None  # a split the data set fixes (split.csv, a separate test folder)
    extra: tuple[tuple[str, str], ...] = ()  # format-specific manifest columns

    @property
    def image(self) -> str:
        """The image as the manifest records it (channel files joined by images.CHANNEL_SEPARATOR)."""
        from effunet.data.images import CHANNEL_SEPARATOR

        return CHANNEL_SEPARATOR.join(str(path) for path in self.channels)


@dataclass
class Decoded:
    """A sample read: RGB image, binary truth, instance labels and region, all at native size."""

    rgb: np.ndarray
    truth: np.ndarray
    labels: np.ndarray | None = None
    region: np.ndarray | None = None


@dataclass
class Finding:
    """What checking one sample found."""

    id: str
    split: str | None
    height: int = 0
    width: int = 0
    foreground: int = 0
    scored: int = 0
    objects: int | None = None
    problem: str | None = None


@dataclass
class Report:
    """The outcome of checking a data set: problems (errors, each naming a file) and a summary."""

    name: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    splits: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        good = [f for f in self.findings if f.problem is None]
        lines = [f"{self.name}: {len(self.findings)} images, {len(self.problems)} problem(s)"]
        if self.splits:
            lines.append("  split: " + ", ".join(f"{k} {v}" for k, v in self.splits.items()))
        if good:
            heights = np.array([f.height for f in good])
            widths = np.array([f.width for f in good])
            lines.append(
                f"  native height min/median/max: {heights.min()}/{int(np.median(heights))}/{heights.max()}; "
                f"width {widths.min()}/{int(np.median(widths))}/{widths.max()}"
            )
            scored = sum(f.scored for f in good)
            lines.append(
                f"  foreground fraction: {sum(f.foreground for f in good) / max(scored, 1):.4f} of the scored pixels"
            )
            objects = [f.objects for f in good if f.objects is not None]
            if objects:
                lines.append(
                    f"  objects (instance labels): {sum(objects)} in all, median {int(np.median(objects))} per image"
                )
        lines += [f"  note: {note}" for note in self.notes]
        lines += [f"  problem: {problem}" for problem in self.problems]
        return "\n".join(lines)

    def raise_if_failed(self, key: str) -> None:
        if self.problems:
            listed = self.problems[:MAX_LISTED]
            more = len(self.problems) - len(listed)
            raise EffunetError(
                f"{self.name} (config key {key}) fails its checks with {len(self.problems)} problem(s), so "
                "nothing was prepared:\n  "
                + "\n  ".join(listed)
                + (f"\n  ... and {more} more" if more else "")
                + "\n(`effunet check-data` lists them all)"
            )


def duplicate_problems(stems: list[tuple[str, Path]], what: str) -> list[str]:
    """Files of one folder that share a stem (img.png and img.tif): the sample would be ambiguous."""
    by_stem: dict[str, list[Path]] = {}
    for stem, path in stems:
        by_stem.setdefault(stem, []).append(path)
    return [
        f"duplicate {what} stem {stem!r}: {', '.join(map(str, paths))}"
        for stem, paths in sorted(by_stem.items())
        if len(paths) > 1
    ]


def _check_one(sample: Sample, decode: Callable[[Sample], Decoded]) -> Finding:
    return check_one(sample, decode)[0]


def check_one(sample: Sample, decode: Callable[[Sample], Decoded]) -> tuple[Finding, Decoded | None]:
    """Decode one sample and check it: the finding, and the decoded arrays where it passed."""
    finding = Finding(sample.id, sample.split)
    try:
        decoded = decode(sample)
    except EffunetError as error:
        finding.problem = str(error)
        return finding, None
    height, width = decoded.rgb.shape[:2]
    finding.height, finding.width = height, width
    for what, array in (("annotation", decoded.truth), ("region", decoded.region)):
        if array is not None and array.shape != (height, width):
            files = sample.annotation if what == "annotation" else (sample.region,)
            finding.problem = (
                f"{', '.join(map(str, files[:1]))}: the {what} is {array.shape[1]}x{array.shape[0]} "
                f"but its image {sample.image} is {width}x{height} (width x height)"
            )
            return finding, None
    scored = decoded.region if decoded.region is not None else np.ones((height, width), bool)
    finding.scored = int(scored.sum())
    finding.foreground = int((decoded.truth & scored).sum())
    if decoded.labels is not None:
        finding.objects = int(len(np.unique(decoded.labels)) - 1)
    return finding, decoded


def check_samples(
    name: str,
    samples: list[Sample],
    decode: Callable[[Sample], Decoded],
    workers: int = 1,
    problems: list[str] = (),
    image_size=None,
    splits: dict[str, int] | None = None,
) -> Report:
    """Decode every sample (on `workers` processes) and collect every problem, naming its file."""
    findings = map_samples(functools.partial(_check_one, decode=decode), samples, workers, f"check {name}")
    return report_of(name, samples, findings, problems, image_size, splits)


def report_of(
    name: str,
    samples: list[Sample],
    findings: list[Finding],
    problems=(),
    image_size=None,
    splits: dict[str, int] | None = None,
) -> Report:
    """The report of checked samples: their problems, empty masks, small images and split sizes."""
    report = Report(name, list(problems), findings=findings)
    report.problems += [f.problem for f in findings if f.problem]
    good = [f for f in findings if f.problem is None]
    empty = [f.id for f in good if f.foreground == 0]
    if empty:
        report.notes.append(f"{len(empty)} image(s) with an empty mask (no foreground), e.g. {empty[0]}")
    if image_size is not None:
        small = [f.id for f in good if f.height < image_size[0] or f.width < image_size[1]]
        if small:
            report.notes.append(
                f"{len(small)} image(s) smaller than image_size {image_size[0]}x{image_size[1]}, "
                f"e.g. {small[0]}: train.input native_crops pads them by reflection"
            )
    if not samples and not report.problems:
        report.problems.append("no images found")
    if splits is None and any(f.split for f in findings):
        counted = Counter(f.split for f in findings)
        splits = {split: counted.get(split, 0) for split in ("train", "val", "test")}
    report.splits = dict(splits or {})
    for split, count in report.splits.items():
        if count == 0:
            report.problems.append(f"the {split} split is empty")
    return report
