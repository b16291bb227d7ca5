"""Evaluation of real DSB2018 (issue 23 item 1): today's `effunet.evaluate` against a baseline commit's,
in the same run, on the same prepared images and model, with the outputs compared value for value.

    python benchmarks/bench_evaluate.py                                   # zip from EFFUNET_DSB2018_ZIP
    python benchmarks/bench_evaluate.py --model results/.../model.keras --baseline 0183cc0
    python benchmarks/bench_evaluate.py --inference sliding --limit 100   # sliding windows, 100 images

The zip is prepared once into --work (merge_masks and resize at --size, the study's split). The model
is --model (a trained model.keras; its run.json is not read: --inference says the mode) or an
effunet-b0 with random weights at --size. The baseline is the commit's src/ (`git archive`, no
worktree is registered) and each side runs `effunet.evaluate.evaluate` in a process of its own
(the same package name cannot be imported twice in one), this file running as `--side`. Per stage,
the time is summed over the threads that spent it (each timed call counts its own time, calls nested
in it left out): inference (the model's calls), resize (native size and the split grid), pixel metrics
(confusion tables, AUCs, the threshold), split (components, the touching-nuclei split, carrying labels,
the boundary decoding), instance AP, the loss and reading; the total is the wall time of the call
(the rest, e.g. blending tiles and writing the files, is in it). Prints images/s per stage and in all, and whether metrics.json (all but the inference speed
and the protocol's text) and per_image.csv are identical.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("inference", "resize", "pixel metrics", "split", "instance AP", "loss", "reading")


class StageClock:
    """Exclusive time per stage, summed over threads: a timed call nested in another counts for its own."""

    def __init__(self):
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self._lock, self._local = threading.Lock(), threading.local()

    def wrap(self, owner, name: str, stage: str) -> None:
        function = getattr(owner, name)

        @functools.wraps(function)
        def timed(*args, **kwargs):
            stack = self._local.__dict__.setdefault("stack", [])
            stack.append(0.0)
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent = time.perf_counter() - start
                nested = stack.pop()
                if stack:
                    stack[-1] += spent
                with self._lock:
                    self.seconds[stage] += spent - nested

        setattr(owner, name, timed)


def instrument(clock: StageClock) -> None:
    """Time the stages of whichever evaluate is imported (today's or the baseline's)."""
    from effunet import evaluate, metrics, predict

    clock.wrap(predict.Predictor, "outputs", "inference")
    for module in (evaluate, predict, sys.modules.get("effunet.scoring"), sys.modules.get("effunet.sliding")):
        if module is not None and hasattr(module, "resize_probability"):
            clock.wrap(module, "resize_probability", "resize")
    clock.wrap(metrics, "confusion", "pixel metrics")
    clock.wrap(metrics.PooledAuc, "add", "pixel metrics")
    if hasattr(metrics.PooledAuc, "add_sorted"):
        clock.wrap(metrics.PooledAuc, "add_sorted", "pixel metrics")
    clock.wrap(metrics.PooledAuc, "roc_auc", "pixel metrics")
    clock.wrap(metrics.PooledAuc, "pr_auc", "pixel metrics")
    scoring = sys.modules.get("effunet.scoring")
    if scoring is not None:  # today's: the threshold's tables and the per-image pixel scores
        clock.wrap(scoring, "_grid_counts", "pixel metrics")
        clock.wrap(scoring, "_pixel_scores", "pixel metrics")
    else:  # the baseline's
        clock.wrap(evaluate, "_score", "pixel metrics")
        clock.wrap(evaluate, "choose_threshold", "pixel metrics")
    for name in ("label_components", "split_touching", "transfer_labels", "watershed_instances"):
        clock.wrap(metrics, name, "split")
    clock.wrap(metrics, "instance_ap", "instance AP")
    clock.wrap(evaluate, "image_losses", "loss")
    clock.wrap(evaluate, "load_cases", "reading")
    clock.wrap(evaluate, "training_targets", "reading")


def run_side(args) -> None:
    """One side: evaluate with stage clocks, write the timings beside the outputs."""
    sys.path.insert(0, args.src)
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    from effunet import evaluate
    from effunet.layout import PreparedData

    clock = StageClock()
    instrument(clock)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run_json = out / "run.json"
    run_json.write_text(json.dumps({"settings": {"inference": args.inference}}))
    prepared = PreparedData.in_folder(Path(args.prepared), "dsb2018")
    options = {"threads": args.threads} if "threads" in evaluate.evaluate.__code__.co_varnames else {}
    start = time.perf_counter()
    evaluate.evaluate(
        args.model,
        prepared,
        out / "metrics.json",
        out / "per_image.csv",
        out / "examples.npz",
        threshold=args.threshold,
        run_json=run_json,
        **options,
    )
    wall = time.perf_counter() - start
    (out / "timing.json").write_text(
        json.dumps(
            {"wall": wall, "stages": clock.seconds, "threads": options.get("threads", 1), "module": evaluate.__file__}
        )
    )


def prepare(zip_path: Path, work: Path, size: int, limit: int | None) -> Path:
    """The zip prepared as the study's data steps do (once per --work and --size), and a manifest of
    its first `limit` images."""
    sys.path.insert(0, str(ROOT / "src"))
    from effunet.data import archives, dsb2018

    folder = work / f"prepared-{size}"
    if not (folder / "manifest.csv").is_file():
        raw = work / "raw"
        if not raw.is_dir():
            archives.extract(zip_path, raw)
        dsb2018.merge_masks(raw, folder / "labels", workers=os.cpu_count() or 1)
        dsb2018.resize(
            raw,
            folder / "labels",
            folder / "images",
            folder / "masks",
            folder / "manifest.csv",
            (size, size),
            test_fraction=0.1,
            val_fraction=0.1,
            seed=42,
            workers=os.cpu_count() or 1,
        )
    if limit is None:
        return folder
    import pandas as pd

    subset = work / f"prepared-{size}-first{limit}"
    subset.mkdir(exist_ok=True)
    for name in ("images", "masks", "labels"):
        if not (subset / name).exists():
            (subset / name).symlink_to(folder / name)
    pd.read_csv(folder / "manifest.csv", dtype=str, keep_default_na=False).head(limit).to_csv(
        subset / "manifest.csv", index=False
    )
    return subset


def random_model(work: Path, size: int) -> Path:
    path = work / f"effunet-b0-random-{size}.keras"
    if not path.is_file():
        sys.path.insert(0, str(ROOT / "src"))
        import keras

        from effunet.models import build

        keras.utils.set_random_seed(0)
        build("effunet-b0", (size, size, 3), encoder_weights=None).save(path)
    return path


def baseline_src(commit: str, work: Path, models: str) -> Path:
    """The commit's src/ (`git archive`); with `models` "today", its effunet/models/ replaced by today's,
    so that both sides run the same network code and the comparison is of evaluation alone (layer
    changes since the commit, e.g. AlignedUpSampling2D's resize kernel, move probabilities by float
    round-off, which AUCs and the loss show)."""
    target = work / f"baseline-{commit}-models-{models}"
    if not (target / "src" / "effunet").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", commit, "src"], check=True, capture_output=True
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(target, filter="data")
        if models == "today":
            shutil.rmtree(target / "src" / "effunet" / "models")
            shutil.copytree(
                ROOT / "src" / "effunet" / "models",
                target / "src" / "effunet" / "models",
                ignore=shutil.ignore_patterns("__pycache__"),
            )
    return target / "src"


def comparable(folder: Path) -> tuple[dict, str]:
    result = json.loads((folder / "metrics.json").read_text())
    for key in ("inference_images_per_s", "protocol"):
        result.pop(key, None)
    return result, (folder / "per_image.csv").read_text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zip", default=os.environ.get("EFFUNET_DSB2018_ZIP"))
    parser.add_argument("--model", help="a trained model.keras (default: effunet-b0, random weights)")
    parser.add_argument("--size", type=int, default=128, help="training size (the study's 128)")
    parser.add_argument("--inference", choices=("resize", "sliding"), default="resize")
    parser.add_argument("--threshold", default="0.5", help="0.5 (the study's) or val")
    parser.add_argument("--baseline", default="0183cc0", help="the commit to compare with ('none': skip)")
    parser.add_argument(
        "--baseline-models",
        choices=("today", "commit"),
        default="today",
        help="the baseline's effunet/models: today's (compare evaluation alone) or the commit's",
    )
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--limit", type=int, help="the first N images of the manifest only")
    parser.add_argument("--work", default="/tmp/effunet-bench-evaluate")
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--src", help=argparse.SUPPRESS)
    parser.add_argument("--prepared", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        args.threshold = args.threshold if args.threshold == "val" else float(args.threshold)
        return run_side(args)
    if not args.zip or not Path(args.zip).is_file():
        parser.error("give --zip or set EFFUNET_DSB2018_ZIP to the real stage1_train.zip")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    prepared = prepare(Path(args.zip), work, args.size, args.limit)
    model = Path(args.model) if args.model else random_model(work, args.size)
    sides = {"today": ROOT / "src"}
    if args.baseline != "none":
        sides[f"baseline {args.baseline}"] = baseline_src(args.baseline, work, args.baseline_models)
    timings, outputs = {}, {}
    for name, src in sides.items():
        out = work / "out" / name.replace(" ", "-")
        command = [
            sys.executable,
            __file__,
            "--side",
            name,
            "--src",
            str(src),
            "--prepared",
            str(prepared),
            "--out",
            str(out),
            "--model",
            str(model),
            "--inference",
            args.inference,
            "--threshold",
            args.threshold,
            "--threads",
            str(args.threads),
        ]
        subprocess.run(command, check=True, env={**os.environ, "PYTHONPATH": str(src)})
        timings[name] = json.loads((out / "timing.json").read_text())
        outputs[name] = comparable(out)
    images = sum(1 for _ in open(prepared / "manifest.csv")) - 1
    print(
        f"\n{images} images at {args.size}x{args.size}, inference {args.inference}, threshold {args.threshold}, "
        f"model {model.name}; load average {os.getloadavg()[0]:.1f}"
    )
    names = list(timings)
    print("stage".ljust(16) + "".join(f"{n + ' s':>22}{'images/s':>10}" for n in names))
    for stage in STAGES:
        cells = []
        for name in names:
            seconds = timings[name]["stages"][stage]
            cells.append(f"{seconds:>22.1f}{images / seconds if seconds > 0 else float('inf'):>10.1f}")
        print(stage.ljust(16) + "".join(cells))
    print(
        "total (wall)".ljust(16)
        + "".join(f"{timings[n]['wall']:>22.1f}{images / timings[n]['wall']:>10.1f}" for n in names)
    )
    print("(stage seconds are summed over threads: " + ", ".join(f"{n} {timings[n]['threads']}" for n in names) + ")")
    if len(names) == 2:
        (a, csv_a), (b, csv_b) = outputs[names[0]], outputs[names[1]]
        print(
            f"speed-up {timings[names[1]]['wall'] / timings[names[0]]['wall']:.1f}x; metrics.json identical: "
            f"{a == b}; per_image.csv identical: {csv_a == csv_b}"
        )


if __name__ == "__main__":
    main()
