"""The `effunet` command: `effunet predict MODEL INPUT OUTPUT` applies a trained model to new images;
`effunet check-data` checks a data set before anything trains; `effunet synthetic` writes a small
example data set in any format; `effunet check-config` checks config files; `effunet ui [RESULTS]`
opens the MLflow UI on the runs table."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
import threading
from importlib import metadata
from pathlib import Path

from effunet.errors import EffunetError
from effunet.layout import Layout


def version() -> str:
    try:
        return metadata.version("effunet")
    except metadata.PackageNotFoundError:  # a source tree on PYTHONPATH, not installed
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="effunet", description=__doc__)
    parser.add_argument("--version", action="version", version=f"effunet {version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="segment an image or a folder of images")
    predict.add_argument("model", help=f"a trained model.keras ({Layout.run_pattern().root.as_posix()}/)")
    predict.add_argument("input", help="an image file or a folder of images (PNG, TIFF, JPEG, BMP, GIF)")
    predict.add_argument(
        "output",
        help="folder for <name>_mask.png (0/255, each image's own size); inputs "
        "that share a name (img.png, img.jpg) get <name>_<suffix>_mask.png",
    )
    predict.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="a pixel is foreground where its probability is above this (default: %(default)s; the study's "
        "evaluate.threshold)",
    )
    predict.add_argument(
        "--inference",
        choices=("resize", "sliding"),
        help="resize to the training size, or overlapping tiles at native resolution (sliding); "
        "default: the run's train.inference, from the run.json beside the model (resize without one)",
    )
    predict.add_argument(
        "--probabilities", action="store_true", help="also write <name>_prob.png (16-bit, probability x 65535)"
    )
    predict.add_argument(
        "--overwrite",
        action="store_true",
        help="replace masks (and probability files) already in OUTPUT; without it, the command stops before "
        "predicting and names the first one",
    )
    predict.add_argument(
        "--device",
        choices=("auto", "gpu", "cpu"),
        default="auto",
        help="auto (default): a free GPU slot, shared with the workflow's training jobs (effunet.devices), else "
        "the CPU; gpu: wait for a GPU slot, fail without a GPU; cpu: GPUs hidden",
    )
    predict.add_argument("--quiet", action="store_true", help="no progress lines, only the summary and errors")
    predict.add_argument("--tf-logs", action="store_true", help="show TensorFlow's C++ log lines (hidden by default)")
    check = commands.add_parser(
        "check-config", help="check config files: YAML syntax (file and line), then every key against the schema"
    )
    check.add_argument("configs", nargs="+", help="config files, e.g. config.yaml config/demo.yaml")
    check.add_argument(
        "--schema",
        default="workflow/schemas/config.schema.yaml",
        help="the workflow's schema (default: %(default)s, from the repository root)",
    )
    data = commands.add_parser(
        "check-data",
        help="check a data set before anything trains: unmatched, unreadable or mis-sized files, bad mask "
        "values, empty masks and splits; every problem names the file, then a summary",
    )
    data.add_argument("folder", nargs="?", help="a data set folder or archive (with --format), instead of --config")
    data.add_argument("--config", help="a config file: check its data sets (all, or those of --dataset)")
    data.add_argument("--dataset", action="append", help="a data set of --config (repeatable)")
    data.add_argument("--format", help="the folder's format: folder, nnunet, dsb2018 or drive")
    data.add_argument("--annotations", choices=("masks", "labels"), help="folder format: masks/ or labels/")
    data.add_argument("--roi", action="store_true", help="folder format: score only inside roi/")
    data.add_argument("--image-size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"), help="the training size")
    data.add_argument("--workers", type=int, default=1, help="processes that read the files (default 1)")
    data.add_argument("--schema", default=None, help=argparse.SUPPRESS)
    ui = commands.add_parser(
        "ui",
        help="open the MLflow UI of a results folder: relocates a moved store, starts the UI on loopback "
        "(one worker) and prints the URL of each experiment's runs table",
    )
    ui.add_argument("results", nargs="?", default="results", help="the folder with mlflow.db (default: %(default)s)")
    ui.add_argument("--port", type=int, default=5000, help="default %(default)s (another free port if taken)")
    example = commands.add_parser("synthetic", help="write a small synthetic data set (nuclei) in a format")
    example.add_argument("output", help="the folder to write (or a .zip)")
    example.add_argument("--format", default="folder", help="folder (default), nnunet, dsb2018 or drive")
    example.add_argument("--n-images", type=int, default=24)
    example.add_argument("--seed", type=int, default=0)
    example.add_argument("--annotations", choices=("masks", "labels"), default="labels", help="folder format")
    example.add_argument("--roi", action="store_true", help="folder format: add roi/ region masks")
    from effunet import estimate

    estimate.add_parser(commands)
    return parser


def check_data(args) -> int:
    """Check the data sets of a config, or one folder; 0 when every check passes, 1 when any fails."""
    from effunet.config import SCHEMA, load, validate
    from effunet.data import sources

    args.schema = args.schema or SCHEMA
    if bool(args.config) == bool(args.folder):
        print(
            "effunet: error: check-data takes a folder (with --format) or --config, not both or neither",
            file=sys.stderr,
        )
        return 2
    if args.config:
        config = load(args.config, args.schema)
        names = args.dataset or [name for name, block in config["datasets"].items() if block.get("source")]
        unknown = [name for name in names if name not in config["datasets"]]
        if unknown:
            raise EffunetError(
                f"{args.config}: no data set named {unknown[0]!r} (datasets: {', '.join(config['datasets'])})"
            )
        datasets = {name: config["datasets"][name] for name in names}
    else:
        if not args.format:
            raise EffunetError("check-data FOLDER needs --format (folder, nnunet, dsb2018 or drive)")
        block = {"format": args.format, "source": str(Path(args.folder).resolve())}
        if args.annotations:
            block["annotations"] = args.annotations
        if args.roi:
            block["roi"] = True
        if args.image_size:
            block["image_size"] = list(args.image_size)
        datasets = validate({"datasets": {"data": block}}, args.schema)["datasets"]
    status = 0
    for name, settings in datasets.items():
        report = sources.check_source(name, settings, workers=args.workers)
        print(report.summary())
        status = max(status, 0 if report.ok else 1)
    return status


def synthetic_data(args) -> int:
    import inspect

    from effunet.data import formats

    wanted = {"n_images": args.n_images, "seed": args.seed, "annotations": args.annotations, "roi": args.roi}
    writer = formats.get(args.format).synthetic
    accepted = inspect.signature(writer).parameters if writer else {}
    options = {key: value for key, value in wanted.items() if key in accepted}  # each generator takes its own
    path = formats.write_synthetic(args.format, args.output, **options)
    print(f"wrote a synthetic {args.format} data set to {path}")
    return 0


def check_config(args) -> int:
    from effunet.config import load

    status = 0
    for path in args.configs:
        try:
            load(path, args.schema)
            print(f"{path}: ok")
        except EffunetError as error:
            print(
                f"effunet: error: {path}: {error}" if not str(error).startswith(path) else f"effunet: error: {error}",
                file=sys.stderr,
            )
            status = 2
    return status


# TensorFlow's C++ log lines: absl's "I0000 00:00:17.. 123 file.cc:31] ..." and the older
# "2025-01-01 12:00:00.123: I external/...] ..." format, and absl's warning about its own set-up.
TF_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\)"
    r"|[IWEF]\d{4} \d+:\d+:\d+\.\d+ +\d+ \S+:\d+\]"
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] \S+:\d+\])"
)


@contextlib.contextmanager
def quiet_tensorflow():
    """Keep TensorFlow's C++ start-up lines (CUDA probing, cuInit, oneDNN notes) off the terminal.

    TF_CPP_MIN_LOG_LEVEL (set before TensorFlow is imported; a user's own value wins) no longer
    silences the lines logged through absl, so the process's stderr goes through a filter that
    drops TensorFlow's C++ log lines and passes everything else on as it comes.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved, terminal_fd = os.dup(2), os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def forward():
        with os.fdopen(read_end, "rb") as lines, os.fdopen(terminal_fd, "wb", buffering=0) as terminal:
            for line in lines:
                if not TF_NOISE.match(line.decode(errors="replace")):
                    terminal.write(line)

    thread = threading.Thread(target=forward, daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the thread reads to the end
        os.close(saved)
        thread.join(timeout=5)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        return check_config(args)
    if args.command == "estimate":
        from effunet.estimate import command

        with quiet_tensorflow():
            return command(args)
    if args.command == "ui":
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        try:
            from effunet.tracking.ui import serve

            return serve(args.results, port=args.port, say=lambda line: print(line, flush=True))
        except EffunetError as error:
            print(f"effunet: error: {error}", file=sys.stderr)
            return 2
    if args.command in ("check-data", "synthetic"):
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        try:
            return (check_data if args.command == "check-data" else synthetic_data)(args)
        except EffunetError as error:
            print(f"effunet: error: {error}", file=sys.stderr)
            return 2
    if args.tf_logs:
        return _main(args)
    with quiet_tensorflow():
        return _main(args)


def _main(args) -> int:
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    for noisy in ("absl", "tensorflow", "keras"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        from effunet import devices

        devices.prepare_predict(args.device)  # before Keras starts: the GPU lease, or the CPU
        from effunet.predict import predict_files

        result = predict_files(
            args.model,
            args.input,
            args.output,
            args.threshold,
            args.probabilities,
            inference=args.inference,
            overwrite=args.overwrite,
            device=args.device,
        )
    except EffunetError as error:
        print(f"effunet: error: {error}", file=sys.stderr)
        return 2
    print(
        f"wrote {len(result.written)} mask(s) to {args.output} in {result.seconds:.1f} s "
        f"({result.images_per_second:.2f} images/s)",
        end="",
    )
    if not result.failed:
        print()
        return 0
    print(f"; {len(result.failed)} image(s) failed:")
    for path, reason in result.failed:
        print(f"  {path}: {reason}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
