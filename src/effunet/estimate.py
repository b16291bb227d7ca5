"""How long a config's study takes, before it starts (`effunet estimate --configfile CONFIG`).

For every kind of run the config would start (data set x model x recipe, times its seeds, as
`workflow/rules/common.smk` enumerates them) the training job is estimated as

    start-up (imports) + fixed time in the job + first epoch (tracing included) + (epochs - 1) x seconds per epoch

and the evaluation job as start-up + images x (inference + scoring) seconds per image. The figures
come, per kind, from (a) the last runs of the same data set, model and recipe under the config's
results folder (`run.json`, `eval/metrics.json` and the evaluate log; any seed), where they ran on the
same kind of device with the same speed-relevant settings, else (b) measuring now on this machine
(`effunet.throughput`). Epochs: `max_epochs` is the upper bound; earlier runs' `epochs_trained` the
expected value where there are any. Not counted: downloading and preparing the data, plots and the
comparison table (seconds to a few minutes, once per config).
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
import statistics
from dataclasses import dataclass

from effunet import config as configs
from effunet import layout as layouts
from effunet import timings
from effunet.errors import EffunetError
from effunet.run import setting
from effunet.timings import Figures

DRIVE_IMAGES = 20  # DRIVE: 20 training and 20 test images
DSB2018_MEAN_SIDE = 393  # real BBBC038 stage1_train: the side of a square of its mean native area (670 images)


@dataclass(frozen=True)
class Images:
    """A data set's image counts per split and the side of its mean native image, and where they came from."""

    train: int | None
    val: int | None
    test: int | None
    source: str
    native: tuple[int, int] | None = None

    @property
    def total(self) -> int | None:
        return None if self.train is None else self.train + self.val + self.test


def image_counts(config: dict, dataset: str) -> Images:
    """From the prepared manifest where it exists, else what the data set's format knows before download."""
    from effunet.data import dsb2018, manifest, synthetic

    manifest_path = layouts.prepared_of(config, dataset).manifest
    if manifest_path.exists():
        table = manifest.read_manifest(manifest_path)
        counts = table["split"].value_counts()
        side = round(math.sqrt((table["height"] * table["width"]).mean())) if "height" in table else None
        return Images(
            *(int(counts.get(s, 0)) for s in ("train", "val", "test")),
            f"manifest {manifest_path}",
            (side, side) if side else None,
        )
    settings = config["datasets"][dataset]
    fmt, synthetic_source = settings["format"], settings["source"] == "synthetic"
    if fmt == "dsb2018":
        n = (
            settings["synthetic"]["n_images"]
            if synthetic_source
            else dsb2018.KNOWN_SOURCES.get((settings.get("sha256") or "").lower())
        )
        if n is not None:
            split = manifest.split_counts(n, settings["split"]["test_fraction"], settings["split"]["val_fraction"])
            sizes = synthetic.DSB_SIZES if synthetic_source else [(DSB2018_MEAN_SIDE, DSB2018_MEAN_SIDE)]
            side = round(math.sqrt(statistics.mean(h * w for h, w in sizes)))
            how = "synthetic n_images" if synthetic_source else "the known DSB2018 checksum"
            return Images(split["train"], split["val"], split["test"], f"{n} images ({how})", (side, side))
    if fmt == "drive":
        n_train = settings["synthetic"]["n_train"] if synthetic_source else DRIVE_IMAGES
        n_test = settings["synthetic"]["n_test"] if synthetic_source else DRIVE_IMAGES
        val = settings["split"]["val_count"]
        how = "synthetic n_train/n_test" if synthetic_source else "DRIVE's 20 + 20 images"
        return Images(n_train - val, val, n_test, how, synthetic.DRIVE_SIZE)
    return Images(
        None, None, None, "unknown until the data is prepared (effunet check-data, or snakemake --until prepare)"
    )


def measured(config: dict, kind: tuple[str, str, str], images: Images, device: str, measurer) -> Figures:
    """Figures measured now: training steps, validation and inference batches, and scoring (`measurer`)."""
    dataset, model, recipe = kind
    settings = {
        **configs.train_settings(config, dataset, recipe),
        "model_options": config["model_options"].get(model, {}),
    }
    size = tuple(config["datasets"][dataset]["image_size"])
    m = measurer.model(model, size, settings)
    if images.train is None:
        raise EffunetError(f"datasets.{dataset}: {images.source}; cannot estimate its epochs")
    batch = setting(settings, "batch_size")
    epoch_s = math.ceil(images.train / batch) * m.step_s + math.ceil(images.val / batch) * m.val_batch_s
    native = images.native or size
    inference = m.inference_image_s * (
        measurer.tiles(native, size) if setting(settings, "inference") == "sliding" else 1
    )
    scoring = measurer.scoring(config, dataset, native, size)
    return Figures(
        f"measured now ({m.measuring_s:.0f} s)", device, epoch_s, epoch_s + m.trace_s, m.build_s, inference + scoring
    )


@dataclass
class Row:
    """One run kind: its runs, images, epochs and the seconds of one run's jobs."""

    kind: tuple[str, str, str]
    runs: int
    images: Images
    figures: Figures
    epochs_expected: float
    max_epochs: int
    startup_s: float

    def train_s(self, epochs: float) -> float:
        f = self.figures
        return self.startup_s + f.train_fixed_s + f.first_epoch_s + max(0.0, epochs - 1) * f.epoch_s

    @property
    def eval_s(self) -> float:
        return self.startup_s + (self.images.total or 0) * (self.figures.eval_image_s or 0.0)


def estimate(config: dict, *, measure: bool = False, measurer=None, device: tuple[str, str] | None = None) -> tuple:
    """(rows, device description, start-up seconds) for a validated config: one row per data set x model x
    recipe, its figures from earlier runs unless `measure`, else measured now by `measurer`."""
    from effunet import throughput

    measurer = measurer or throughput.Measurer(config["threads"]["train"])
    if device is None:
        device = throughput.device_description(config["train"].get("device", "auto"))
    datasets, _ = configs.active_datasets(config)
    startup = measurer.startup()
    rows = []
    for dataset in datasets:
        images = image_counts(config, dataset)
        for recipe in config["recipes"]:
            for model in config["models"]:
                kind = (dataset, model, recipe)
                figures, why = (
                    (None, "--measure") if measure else timings.from_runs(config, kind, images.train, device[0])
                )
                if figures is None:
                    figures = measured(config, kind, images, device[0], measurer)
                    figures.source += f" ({why})" if why != "no earlier run" else " (no earlier run)"
                elif figures.eval_image_s is None:
                    figures.eval_image_s = measured(config, kind, images, device[0], measurer).eval_image_s
                max_epochs = configs.train_settings(config, dataset, recipe)["max_epochs"]
                expected = statistics.mean(figures.epochs_seen) if figures.epochs_seen else max_epochs
                rows.append(
                    Row(kind, len(config["seeds"]), images, figures, min(expected, max_epochs), max_epochs, startup)
                )
    return rows, device[1], startup


def about(seconds: float) -> str:
    """A duration as a person reads it: about 40 s, about 7 min, about 3 h 10 min, about 2 days 5 h."""
    if seconds < 60:
        return f"about {max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min"
    minutes = round(seconds / 600) * 10 if seconds >= 3 * 3600 else minutes
    hours, rest = divmod(minutes, 60)
    if hours < 48:
        return f"about {hours} h" + (f" {rest} min" if rest else "")
    days, hours = divmod(round(seconds / 3600), 24)
    return f"about {days} days" + (f" {hours} h" if hours else "")


def totals(rows: list[Row], slots: int, upper: bool = False) -> tuple[float, float]:
    """(job seconds of every run, wall seconds with `slots` jobs at once): the job seconds spread over the
    slots, but never less than the longest single run (its training, then its evaluation)."""
    runs = [(row.train_s(row.max_epochs if upper else row.epochs_expected) + row.eval_s, row.runs) for row in rows]
    job_s = sum(seconds * count for seconds, count in runs)
    return job_s, max(job_s / max(1, slots), max((s for s, _ in runs), default=0.0))


def render(rows: list[Row], device: str, startup: float, config: dict, jobs: int = 1, gpus: int = 0) -> str:
    """The estimate as text: a table per run kind, then the totals in words."""
    threads = config["threads"]["train"] or 1
    lines = [
        f"Figures for: {device}, {threads} thread(s) a job (threads.train); a job's start-up "
        f"(imports) {startup:.1f} s, measured now",
        "",
        "| data set | model | recipe | runs | images train/val/test | epochs expected (max) | s/epoch "
        "| training/run | evaluation/run | figures from |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        im = row.images
        lines.append(
            f"| {' | '.join(row.kind)} | {row.runs} | {im.train}/{im.val}/{im.test} ({im.source}) | "
            f"{row.epochs_expected:.3g} ({row.max_epochs}) | {row.figures.epoch_s:.3g} | "
            f"{about(row.train_s(row.epochs_expected))} (at most {about(row.train_s(row.max_epochs))}) | "
            f"{about(row.eval_s)} | {row.figures.source} |"
        )
    slots = gpus * config["train"]["jobs_per_gpu"] if gpus else jobs
    job_s, wall_s = totals(rows, slots)
    upper_job_s, upper_wall_s = totals(rows, slots, upper=True)
    on_gpu = bool(gpus) or device.startswith("GPU")
    hours = (
        f"{upper_job_s / 3600 * (config['train']['gpus_per_job'] if on_gpu else threads):.1f} "
        f"{'GPU' if on_gpu else 'CPU'} hours at most"
    )
    where = f"{gpus} GPU(s) x {config['train']['jobs_per_gpu']} job(s) each" if gpus else f"{jobs} job(s) at once"
    lines += [
        "",
        f"{sum(row.runs for row in rows)} runs: training and evaluation {about(job_s)} of job time ({hours}).",
        f"With {where}: {about(wall_s)} wall ({about(upper_wall_s)} if every run trains max_epochs).",
        "Not counted: downloading and preparing the data, plots and the comparison table.",
    ]
    return "\n".join(lines)


def schema():
    """The workflow's schema: effunet.config.SCHEMA, or effunet.run.SCHEMA where the run module holds it."""
    return getattr(configs, "SCHEMA", None) or importlib.import_module("effunet.run").SCHEMA


def add_parser(commands) -> None:
    """The `effunet estimate` subcommand's arguments."""
    parser = commands.add_parser(
        "estimate",
        help="before a study starts: each run's expected training and evaluation time (from the last runs' "
        "timings, else measured now on this machine) and the study's total in hours",
    )
    parser.add_argument("--configfile", required=True, help="the config file, e.g. config.yaml or config/demo.yaml")
    parser.add_argument("--measure", action="store_true", help="measure now even where earlier runs have timings")
    parser.add_argument("--jobs", type=int, default=1, help="jobs at once on the CPU (snakemake --cores / threads)")
    parser.add_argument("--gpus", type=int, default=0, help="GPUs the study runs on (each runs train.jobs_per_gpu)")
    parser.add_argument("--schema", default=None, help=argparse.SUPPRESS)


def command(args) -> int:
    """`effunet estimate`: print the estimate; 2 with a message naming the file for a bad config."""
    try:
        if args.jobs < 1 or args.gpus < 0:
            raise EffunetError("--jobs is at least 1 and --gpus at least 0")
        config = configs.load(args.configfile, args.schema or schema())
        print(f"effunet estimate: {args.configfile} (experiment {config['mlflow']['experiment']})", flush=True)
        rows, device, startup = estimate(config, measure=args.measure)
        print(render(rows, device, startup, config, jobs=args.jobs, gpus=args.gpus))
    except EffunetError as error:
        message = str(error)
        print(
            f"effunet: error: {message if args.configfile in message else f'{args.configfile}: {message}'}",
            file=sys.stderr,
        )
        return 2
    return 0
