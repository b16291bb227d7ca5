"""Training and inference throughput: effunet's Keras models against segmentation_models_pytorch.

    python benchmarks/bench_models.py                       # effunet-b0 and resnet50-unet, 128 and 512
    python benchmarks/bench_models.py --sizes 128 --models effunet-b0 --repeats 7

For each (model, size) both libraries build the same architecture (smp ``Unet`` with the same
encoder, decoder widths and bilinear upsampling, random init), each in its own process (TF's and
torch's thread pools in one process slow each other down), warm up, then run interleaved
repeats: Keras train, torch train, Keras infer, torch infer. A repeat times `steps` steps of
batch `--batch`; the table shows the median images/s and keras/smp ratios.

- Keras training step: ``model.train_on_batch`` after ``compile(effunet.training.optimizers.Adam (the training jobs' fused Adam), binary cross-entropy,
  jit_compile=effunet.models.jit_compile_default())``, i.e. the step function ``fit`` runs.
- Keras inference: ``effunet.models.make_predict_fn(model)`` (a traced ``tf.function`` on TensorFlow,
  Keras' jitted ``predict_on_batch`` on jax; ``KERAS_BACKEND`` picks the backend).
- torch training: ``model.train()``, Adam, ``BCEWithLogitsLoss``, ``zero_grad/backward/step``.
- torch inference: ``model.eval()`` under ``torch.inference_mode()``.
- ``--precision mixed``: Keras ``mixed_float16`` (GPU) / ``mixed_bfloat16`` (CPU) against torch
  autocast to the same dtype (with a GradScaler for float16). Default fp32 for both.

Both run on the same device with the same number of threads (`--threads`, default: the CPUs
this process may use). torch and segmentation_models_pytorch come from the `bench` extra. On a GPU
the table adds each library's peak GPU memory (its allocator's statistics).
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SMP_ENCODERS = {"effunet-b0": "efficientnet-b0", "resnet50-unet": "resnet50"}
DEFAULT_STEPS = {128: 10, 256: 4, 512: 2}
# The environment that limits both libraries' kernels to an ISA, set in each worker before TF or
# torch start: oneDNN (TF's and torch's convolutions), ATen's own vectorised kernels, MKL (torch's
# GEMMs) and XLA's CPU code generation. TF's Eigen kernels are compiled for AVX (the wheel's
# start-up notice lists AVX2 and AVX-512 as not used), so they are the same on every kind.
ISA_LIMITS = {
    "native": {},
    "avx2": {
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "ATEN_CPU_CAPABILITY": "avx2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "XLA_FLAGS": "--xla_cpu_max_isa=AVX2",
    },
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(SMP_ENCODERS), choices=list(SMP_ENCODERS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[128, 512])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timed repeats (median)")
    parser.add_argument("--steps", type=int, default=None, help="steps per repeat (default by size)")
    parser.add_argument("--warmup", type=int, default=4, help="untimed steps before timing")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--decoder-widths", type=int, nargs=5, default=[256, 128, 64, 32, 16])
    parser.add_argument("--only", choices=["keras", "smp"], help="run one library only")
    parser.add_argument("--upsampling", choices=["bilinear", "nearest"], default="bilinear")
    parser.add_argument(
        "--smp-upsampling",
        choices=["bilinear", "nearest"],
        help="smp's decoder_interpolation if not --upsampling (smp's own default is nearest)",
    )
    parser.add_argument(
        "--isa",
        nargs="+",
        choices=list(ISA_LIMITS),
        default=["native"],
        help="CPU kinds to measure side by side: native (this CPU), avx2 (oneDNN, ATen, MKL and XLA "
        "limited to AVX2: an AVX2-only CPU emulated on an AVX-512 one)",
    )
    parser.add_argument(
        "--keras-env",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="environment of the Keras worker only, set before TensorFlow starts (levers such as "
        "TF_ENABLE_ONEDNN_OPTS=0, KERAS_BACKEND=jax)",
    )
    parser.add_argument("--inter-op", type=int, help="TensorFlow's inter-op threads (default: a training job's)")
    parser.add_argument(
        "--jit", choices=["default", "on", "off"], default="default", help="Keras jit_compile (XLA); default: effunet's"
    )
    parser.add_argument(
        "--aligned-upsampling",
        choices=["kernel", "formula"],
        default="kernel",
        help="effunet's AlignedUpSampling2D on TensorFlow: its resize kernel (default) or its formula "
        "in slices and concatenations (the implementation before 2026-12-07, for an A/B)",
    )
    parser.add_argument(
        "--precision",
        choices=["fp32", "mixed"],
        default="fp32",
        help="mixed: float16 on GPU (Keras mixed_float16 / torch autocast + GradScaler), bfloat16 on CPU",
    )
    return parser.parse_args(argv)


def set_threads(threads: int, lib: str, inter_op: int | None = None) -> None:
    """The same thread count for both: TF's intra- and inter-op pools, torch's intra-op pool."""
    if lib == "keras":
        import keras

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            from effunet.models import runtime

            runtime.limit_threads(threads)  # as a training job: inter-op threads from the CPU kind's settings
            if inter_op:
                tf.config.threading.set_inter_op_parallelism_threads(inter_op)
        elif keras.backend.backend() == "torch":
            import torch

            torch.set_num_threads(threads)
    else:
        import torch

        torch.set_num_threads(threads)
        # TF flushes denormals to zero on its threads; torch does not by default, and random-init
        # weights push activations into denormals that make torch's CPU kernels ~5x slower.
        torch.set_flush_denormal(True)


@functools.cache
def import_smp():
    """Import segmentation_models_pytorch; works around a torchvision without its C ops.

    PyPI's Linux torchvision wheels link CUDA torch; next to a CPU torch its ``_C`` fails to load
    and torchvision's import dies registering fakes for the undefined ``nms``/``qnms`` ops. smp's
    Unet never calls them, so declaring their schemas first lets torchvision, timm and smp import.
    """
    import importlib.util

    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is not None and spec.submodule_search_locations:
        library = os.path.join(spec.submodule_search_locations[0], "_C.so")
        if os.path.isfile(library):  # torchvision 0.29+ has none: its ops come from _C_stable.so
            try:
                torch.ops.load_library(library)
            except OSError:
                import_smp.library = torch.library.Library("torchvision", "DEF")
                for op in ("nms", "qnms"):
                    import_smp.library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    import segmentation_models_pytorch as smp

    return smp


class KerasRunner:
    def __init__(self, model_name: str, size: int, batch: int, args):
        import keras
        import numpy as np

        from effunet.models import build, jit_compile_default, make_predict_fn, runtime
        from effunet.models.layers import AlignedUpSampling2D
        from effunet.training.optimizers import Adam

        if getattr(args, "aligned_upsampling", "kernel") == "formula":
            AlignedUpSampling2D.call = lambda layer, x: layer._double(layer._double(x, 1), 2)

        gpus = runtime.gpus()
        if args.precision == "mixed":  # compile() adds loss scaling for mixed_float16
            keras.mixed_precision.set_global_policy("mixed_float16" if gpus else "mixed_bfloat16")
        widths = tuple(args.decoder_widths)
        self.model = build(model_name, (size, size, 3), decoder_widths=widths, upsampling=args.upsampling)
        self.model.compile(
            optimizer=Adam(1e-3),  # the training jobs' Adam (one fused update op per variable on TF)
            loss=keras.losses.BinaryCrossentropy(),
            jit_compile={"on": True, "off": False}.get(getattr(args, "jit", "default"), jit_compile_default()),
        )
        rng = np.random.default_rng(0)
        self.x = keras.ops.convert_to_tensor(rng.uniform(0, 255, (batch, size, size, 3)).astype("float32"))
        self.y = keras.ops.convert_to_tensor((rng.uniform(size=(batch, size, size, 1)) > 0.5).astype("float32"))
        self.predict = make_predict_fn(self.model)
        self.params = self.model.count_params()
        self.backend = runtime.backend()
        self.device_name = f"{gpus[0] if gpus else 'CPU'} ({self.backend})"

    def train(self, steps: int) -> None:
        for _ in range(steps):
            loss = self.model.train_on_batch(self.x, self.y)
        float(loss)

    def infer(self, steps: int) -> None:
        import numpy as np

        for _ in range(steps):
            out = self.predict(self.x)
        np.asarray(out)

    def peak_memory_mb(self) -> float:
        """Peak GPU memory of this process (jax, torch or TF allocator statistics); nan on the CPU."""
        return peak_gpu_memory_mb(self.backend)


class TorchRunner:
    def __init__(self, model_name: str, size: int, batch: int, args):
        import torch

        smp = import_smp()
        self.torch = torch
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        torch.backends.cudnn.benchmark = True
        half = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        self.autocast_dtype = half if args.precision == "mixed" else None
        self.scaler = torch.amp.GradScaler(enabled=self.autocast_dtype == torch.float16)
        self.model = smp.Unet(
            SMP_ENCODERS[model_name],
            encoder_weights=None,
            decoder_channels=tuple(args.decoder_widths),
            decoder_interpolation=args.smp_upsampling or args.upsampling,
            classes=1,
        ).to(self.device)
        gen = torch.Generator().manual_seed(0)
        self.x = (torch.rand(batch, 3, size, size, generator=gen) * 255).to(self.device)
        self.y = (torch.rand(batch, 1, size, size, generator=gen) > 0.5).float().to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.loss = torch.nn.BCEWithLogitsLoss()
        self.params = sum(p.numel() for p in self.model.parameters())
        self.device_name = torch.cuda.get_device_name() if self.device.type == "cuda" else "CPU"

    def _autocast(self):
        enabled = self.autocast_dtype is not None
        return self.torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=enabled)

    def train(self, steps: int) -> None:
        self.model.train()
        for _ in range(steps):
            self.optimizer.zero_grad(set_to_none=True)
            with self._autocast():
                loss = self.loss(self.model(self.x).float(), self.y)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        loss.item()

    def peak_memory_mb(self) -> float:
        return peak_gpu_memory_mb("torch")

    def infer(self, steps: int) -> None:
        self.model.eval()
        with self.torch.inference_mode(), self._autocast():
            for _ in range(steps):
                out = self.model(self.x)
            out.float().sum().item()


def peak_gpu_memory_mb(backend: str) -> float:
    """Peak memory the framework's allocator used on GPU 0, in MB; nan without a GPU."""
    try:
        if backend == "jax":
            import jax

            device = jax.devices()[0]
            return device.memory_stats()["peak_bytes_in_use"] / 2**20 if device.platform == "gpu" else float("nan")
        if backend == "torch":
            import torch

            return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else float("nan")
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            return float("nan")
        return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    except (ImportError, KeyError, RuntimeError, ValueError):
        return float("nan")


def _worker(conn, lib: str, model_name: str, size: int, args, isa: str = "native") -> None:
    """One library in its own process (no shared thread pools): build, then time on request."""
    os.environ.update(ISA_LIMITS[isa])  # before TF or torch start
    if lib == "keras":
        os.environ.update(dict(item.split("=", 1) for item in args.keras_env))
    set_threads(args.threads, lib, args.inter_op)
    runner_class = KerasRunner if lib == "keras" else TorchRunner
    runner = runner_class(model_name, size, args.batch, args)
    conn.send((runner.params, runner.device_name))
    while (request := conn.recv()) is not None:
        phase, steps = request
        if phase == "memory":
            conn.send(runner.peak_memory_mb())
            continue
        start = time.perf_counter()
        getattr(runner, phase)(steps)
        conn.send(steps * args.batch / (time.perf_counter() - start))


def start_workers(model_name: str, size: int, args, kinds=("native",)) -> dict:
    """A process per (kind, library), keyed so: both libraries on every CPU kind asked for."""
    context = multiprocessing.get_context("spawn")
    libs = [lib for lib in ("keras", "smp") if args.only in (None, lib)]
    workers = {}
    for isa in kinds:
        for lib in libs:
            parent, child = context.Pipe()
            process = context.Process(target=_worker, args=(child, lib, model_name, size, args, isa), daemon=True)
            process.start()
            workers[isa, lib] = (process, parent)
    return workers


def bench_pair(model_name: str, size: int, args, kinds=("native",)) -> list[dict]:
    """Median images/s of both libraries on each CPU kind, timed alternately (one process each,
    every process's repeat before the next repeat of any), and the keras/smp ratios; a row per kind."""
    steps = args.steps or DEFAULT_STEPS.get(size, 2)
    workers = start_workers(model_name, size, args, kinds)
    rows = {isa: {"model": model_name, "size": size, "isa": isa, "steps": steps} for isa in kinds}
    for row in rows.values():
        row["load_before"] = os.getloadavg()[0]
    for (isa, lib), (_, conn) in workers.items():
        rows[isa][f"{lib}_params"], rows[isa][f"{lib}_device"] = conn.recv()
    rates = {(isa, lib, phase): [] for isa, lib in workers for phase in ("train", "infer")}
    for repeat in range(-1, args.repeats):  # repeat -1 is the warm-up
        for phase in ("train", "infer"):
            for (isa, lib), (_, conn) in workers.items():
                conn.send((phase, steps if repeat >= 0 else max(args.warmup, 1)))
                rate = conn.recv()
                if repeat >= 0:
                    rates[isa, lib, phase].append(rate)
    for (isa, lib), (_, conn) in workers.items():
        rows[isa]["load_after"] = os.getloadavg()[0]  # 1-min load average: > threads means others competed
        conn.send(("memory", 0))
        rows[isa][f"{lib}_memory_mb"] = conn.recv()
    for process, conn in workers.values():
        conn.send(None)
        process.join()
    for (isa, lib, phase), values in rates.items():
        rows[isa][f"{lib}_{phase}"] = statistics.median(values)
    for row in rows.values():
        for phase in ("train", "infer"):
            if f"keras_{phase}" in row and f"smp_{phase}" in row:
                row[f"ratio_{phase}"] = row[f"keras_{phase}"] / row[f"smp_{phase}"]
    return list(rows.values())


RELEVANT_FLAGS = ("avx2", "fma", "avx512", "amx")


def cpu_description(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name and its flags that decide the kernels (avx2, fma, avx512*, amx*)."""
    model, flags = "unknown CPU", []
    if os.path.exists(cpuinfo):
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model == "unknown CPU":
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = [flag for flag in value.split() if flag.startswith(RELEVANT_FLAGS)]
    return f"{model}; flags: {' '.join(flags) or 'none of ' + ', '.join(RELEVANT_FLAGS)}"


ISA_PROBE = """
import os, sys
import torch
print("torch ATen:", torch.backends.cpu.get_cpu_capability())
import tensorflow as tf
tf.nn.conv2d(tf.ones((1, 8, 8, 8)), tf.ones((3, 3, 8, 8)), 1, "SAME")
"""


def isa_in_effect(isa: str) -> str:
    """The ISA the kernels use under kind `isa`, as the libraries report it (a subprocess with
    ``ONEDNN_VERBOSE=1``: TF's oneDNN names its ISA; torch names ATen's capability)."""
    import subprocess
    import sys

    env = {**os.environ, **ISA_LIMITS[isa], "ONEDNN_VERBOSE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    try:
        out = subprocess.run([sys.executable, "-c", ISA_PROBE], env=env, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as error:
        return f"not probed ({error})"
    found = [line for line in out.stdout.splitlines() if line.startswith("torch ATen:")]
    found += [f"TF oneDNN: {line.split('isa:', 1)[1]}" for line in out.stdout.splitlines() if ",isa:" in line][:1]
    return "; ".join(found) or f"not probed (exit {out.returncode})"


def describe_machine(threads: int) -> str:
    """CPU model, flags and library versions, without importing TF or torch in this (idle) process."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(pkg):
        try:
            return f"{pkg} {version(pkg)}"
        except PackageNotFoundError:
            return None

    packages = ("tensorflow", "jax", "keras", "torch", "segmentation-models-pytorch")
    versions = ", ".join(filter(None, map(installed, packages)))
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    cpu = cpu_description()
    return f"{cpu}\n{os.cpu_count()} CPUs, {threads} threads; Keras backend {backend}; {versions}"


def format_table(rows: list[dict]) -> str:
    lines = [
        "| model | size | CPU kind | keras train | smp train | ratio | keras infer | smp infer | ratio "
        "| GPU MB keras/smp | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [r["model"], f"{r['size']}x{r['size']}", r.get("isa", "native")]
        for phase in ("train", "infer"):
            cells += [f"{r.get(f'keras_{phase}', float('nan')):.1f}", f"{r.get(f'smp_{phase}', float('nan')):.1f}"]
            cells.append(f"{r[f'ratio_{phase}']:.2f}x" if f"ratio_{phase}" in r else "-")
        memory = [r.get(f"{lib}_memory_mb", float("nan")) for lib in ("keras", "smp")]
        cells.append("-" if all(m != m for m in memory) else "/".join(f"{m:.0f}" for m in memory))
        cells.append(f"{r['load_before']:.1f}-{r['load_after']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    print(describe_machine(args.threads), flush=True)
    for isa in args.isa:
        limit = " ".join(f"{k}={v}" for k, v in ISA_LIMITS[isa].items()) or "no ISA limit"
        print(f"CPU kind {isa}: {limit}; in effect: {isa_in_effect(isa)}", flush=True)
    levers = " ".join([*args.keras_env, f"aligned upsampling {args.aligned_upsampling}", *([f"inter-op {args.inter_op}"] if args.inter_op else []), f"jit {args.jit}"])
    print(f"Keras settings: {levers}", flush=True)
    upsampling = f"keras {args.upsampling}, smp {args.smp_upsampling or args.upsampling} upsampling"
    print(f"batch {args.batch}, {args.precision}, {upsampling}, median of {args.repeats} interleaved repeats", flush=True)
    rows = []
    for size in args.sizes:
        for model_name in args.models:
            for row in bench_pair(model_name, size, args, args.isa):
                print(row, flush=True)
                rows.append(row)
    print("\nimages/s (higher is better); ratio = keras / smp; load = 1-min load average before-after\n")
    print(format_table(rows))


if __name__ == "__main__":
    main()
