"""The GPU check: model throughput on JAX vs segmentation_models_pytorch, and one real training run.

Run by `gpu_check.sh` on the GPU machine (KERAS_BACKEND=jax, no TensorFlow), or by hand:

    KERAS_BACKEND=jax python benchmarks/gpu_check.py --data .gpu-check/dsb2018-128.tar.gz
    KERAS_BACKEND=jax python benchmarks/gpu_check.py --data small.tar.gz --sizes 32 --steps 1 \
        --repeats 1 --max-epochs 1 --patience 1                     # dry run of the logic on a CPU

Prints (a) `bench_models.py`'s table (training and inference images/s, keras/smp ratios, peak GPU
memory) for effunet-b0 and resnet50-unet at each size, fp32 and mixed precision; (b) one training
run of effunet-b0 on the packed DSB2018 data (study settings: batch 16, Adam 1e-3, BCE, early
stopping patience 55, at most 100 epochs) with its epochs, seconds per epoch and pooled test metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="tarball from gpu_prepare.py (required but with --check-imports)")
    parser.add_argument(
        "--check-imports", action="store_true", help="import every module the check needs (`IMPORTS`), then stop"
    )
    parser.add_argument("--sizes", nargs="+", type=int, default=[128, 512])
    parser.add_argument("--models", nargs="+", default=["effunet-b0", "resnet50-unet"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "mixed"], choices=["fp32", "mixed"])
    parser.add_argument("--steps", type=int, default=None, help="bench_models.py --steps")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bench-timeout", type=float, default=420, help="seconds for all of part (a)")
    parser.add_argument("--max-epochs", type=int, default=100)
    parser.add_argument("--patience", type=int, default=55)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--encoder-weights", default="none", help="'none' (offline) or a no-top weights file")
    parser.add_argument("--skip-bench", action="store_true")
    parser.add_argument("--skip-train", action="store_true")
    args = parser.parse_args(argv)
    if args.data is None and not args.check_imports:
        parser.error("the following arguments are required: --data")
    return args


# What the check imports: (b) and bench_models.py's Keras side; TORCH_IMPORTS, its PyTorch side, where
# torch is installed (the GPU machine has it; CI has not: the test checks the carried wheels' metadata).
IMPORTS = (
    "keras",
    "keras.src.saving.saving_lib",
    "effunet.layout",
    "effunet.models",
    "effunet.models.runtime",
    "effunet.training.dataset",
    "effunet.training.loop",
    "effunet.training.losses",
    "numpy",
    "jax",
)
TORCH_IMPORTS = ("torch", "segmentation_models_pytorch")


def check_imports() -> list[str]:
    """Import `IMPORTS` (and `TORCH_IMPORTS` where torch is installed); any missing one fails here,
    naming it, before the long steps. Returns the modules imported."""
    import importlib
    import importlib.util

    names = list(IMPORTS)
    if importlib.util.find_spec("torch") is not None:
        names += TORCH_IMPORTS
    for name in names:
        importlib.import_module(name)
    import keras

    build = importlib.import_module("effunet.models").build
    model = build("effunet-b0", (32, 32, 3), encoder_weights="none")  # the check's model, with every layer
    with tempfile.TemporaryDirectory() as work:
        model.save(Path(work) / "m.keras")  # .keras files: h5py, saving_lib
        keras.models.load_model(Path(work) / "m.keras", compile=False)
    return names


def bench_commands(args) -> list[list[str]]:
    """One bench_models.py call per precision (each times every model and size)."""
    commands = []
    for precision in args.precisions:
        command = [
            sys.executable,
            str(HERE / "bench_models.py"),
            "--precision",
            precision,
            "--repeats",
            str(args.repeats),
            "--sizes",
            *map(str, args.sizes),
            "--models",
            *args.models,
        ]
        if args.steps:
            command += ["--steps", str(args.steps), "--warmup", str(args.steps)]
        commands.append(command)
    return commands


def run_bench(args) -> None:
    deadline = time.monotonic() + args.bench_timeout
    for command in bench_commands(args):
        left = deadline - time.monotonic()
        print(f"\n## (a) {' '.join(command[1:])}", flush=True)
        try:
            subprocess.run(command, check=False, timeout=max(left, 1))
        except subprocess.TimeoutExpired:
            print(f"(a) stopped: past --bench-timeout {args.bench_timeout:.0f} s", flush=True)
            return


def unpack(tarball: Path, into: Path) -> Path:
    with tarfile.open(tarball) as tar:
        tar.extractall(into, filter="data")
    return into / "dsb2018"


def train_and_test(args, prepared: Path, out: Path) -> dict:
    """The study's effunet-b0 run on the packed data; pooled metrics on the test split."""
    from effunet.layout import PreparedData
    from effunet.models import runtime
    from effunet.training import dataset, loop

    settings = loop.Settings(
        max_epochs=args.max_epochs,
        patience=args.patience,
        batch_size=args.batch_size,
        encoder_weights=args.encoder_weights,
    )
    outputs = loop.Outputs(out / "model.keras", out / "history.csv", out / "run.json", out / "checkpoint")
    prepared = PreparedData.in_folder(prepared)
    summary = loop.train(prepared, "effunet-b0", 0, settings, outputs)
    import keras

    from effunet.training import losses

    model = keras.models.load_model(outputs.model, compile=False)  # saved without its optimizer
    model.compile(loss=losses.make_loss(settings.loss), metrics=losses.make_metrics())
    test_images, test_masks = dataset.load_split(prepared, "test")
    metrics = model.evaluate(
        dataset.make_dataset(test_images, test_masks, args.batch_size, shuffle=False), verbose=0, return_dict=True
    )
    predict = runtime.make_predict_fn(model)
    batch = test_images[: args.batch_size].astype("float32")
    predict(batch)
    start, repeats = time.perf_counter(), 5
    for _ in range(repeats):
        import numpy as np

        np.asarray(predict(batch))
    return {
        "backend": runtime.backend(),
        "gpus": runtime.gpus(),
        **{
            k: summary[k]
            for k in (
                "epochs_trained",
                "best_epoch",
                "best_val_loss",
                "stop_reason",
                "seconds_per_epoch",
                "wall_seconds",
                "mixed_precision",
            )
        },
        "test": {k: float(v) for k, v in metrics.items()},
        "test_images": len(test_images),
        "inference_images_per_s": repeats * len(batch) / (time.perf_counter() - start),
    }


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.check_imports:
        names = check_imports()
        print(f"imports ok ({len(names)} modules, Keras on {os.environ.get('KERAS_BACKEND', 'tensorflow')})")
        return
    print(f"# GPU check, Keras backend {os.environ.get('KERAS_BACKEND', 'tensorflow')}", flush=True)
    if not args.skip_bench:
        run_bench(args)
    if not args.skip_train:
        print(
            f"\n## (b) effunet-b0 on {args.data}, batch {args.batch_size}, patience {args.patience}, "
            f"at most {args.max_epochs} epochs, encoder weights {args.encoder_weights}",
            flush=True,
        )
        import logging

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
        with tempfile.TemporaryDirectory() as work:
            prepared = unpack(args.data, Path(work))
            result = train_and_test(args, prepared, Path(work) / "run")
        print("(b) " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
