"""Per-op profile of one training step: effunet's Keras model against segmentation_models_pytorch.

    python benchmarks/profile_step.py                                  # both models, both CPU kinds
    python benchmarks/profile_step.py --models effunet-b0 --isa avx2 --steps 3 --out profile.md

Each (model, CPU kind, library) runs in its own process, built exactly as `bench_models.py`
builds it (the same runners, batch, threads and ISA limits: ``--isa avx2`` limits oneDNN, ATen, MKL
and XLA to AVX2, an AVX2-only CPU emulated on an AVX-512 one). After `--warmup` untimed steps it
profiles `--steps` training steps:

- Keras (TensorFlow): ``tf.profiler.experimental`` traces the steps; the op kernels' events on the
  executor threads (``<op name>:<op type>``) are read back from the trace's XSpace.
- torch: ``torch.profiler`` (CPU); each aten op's self time, convolutions told apart by the shape of
  their weight (a depthwise convolution's weight is (C, 1, k, k)).

Ops are summed into categories (convolution, depthwise convolution, batch norm, upsampling,
activations and other element-wise ops, loss, optimizer, ...), each split into forward and
backward, in ms per step. TensorFlow runs independent ops side by side on its inter-op threads, so
its sum can exceed the step's wall time; torch runs one op at a time. The output is a Markdown
report (`--out`) with a table per model and kind and the ten slowest ops of each library.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_models  # noqa: E402  (the runners, thread settings and ISA limits of the benchmark)

CATEGORIES = (
    "convolution",
    "depthwise convolution",
    "batch norm",
    "upsampling",
    "activations, element-wise",
    "squeeze-excitation pooling",
    "loss",
    "optimizer",
    "other",
)
# TensorFlow op types (oneDNN's _MklNative / _Mkl prefixes and the fused "Ex" forms stripped).
TF_TYPES = [
    (r"^(Fused)?Conv2D(WithBias)?$|^_FusedConv2D$|^Conv2DBackprop", "convolution"),
    (r"^DepthwiseConv2dNative|^_FusedDepthwiseConv2dNative", "depthwise convolution"),
    (r"^FusedBatchNorm", "batch norm"),
    (r"^Resize", "upsampling"),
    (r"^(Mean|Sum|Max)$", "squeeze-excitation pooling"),
    (
        r"^(Sigmoid|SigmoidGrad|Relu|ReluGrad|Swish|Mul|AddV2|Add|AddN|Sub|RealDiv|Neg|Cast|BiasAdd|BiasAddGrad"
        r"|Tile|BroadcastTo|Select|SelectV2|Square|Sqrt|Rsqrt|Maximum|Minimum|Log|Log1p|Exp|ConcatV2|Pad)$",
        "activations, element-wise",
    ),
]


def tf_category(name: str, op_type: str) -> str:
    kind = re.sub(r"^_(MklNative|Mkl)", "", op_type)
    kind = re.sub(r"Ex$", "", kind)
    if "/adam/" in f"/{name}" or kind.startswith(("ResourceApply", "ApplyAdam")) or name.startswith("adam"):
        return "optimizer"
    if "crossentropy" in name or "compile_loss" in name:
        return "loss"
    if re.search(r"_up(_\d+)?/", name):  # the decoder's upsampling layers (AlignedUpSampling2D's ops)
        return "upsampling"
    return next((category for pattern, category in TF_TYPES if re.search(pattern, kind)), "other")


TORCH_OPS = [
    (r"convolution|conv2d|_convolution|mkldnn_conv", "convolution"),
    (r"batch_norm", "batch norm"),
    (r"upsample|interpolate|grid_sampler", "upsampling"),
    (r"binary_cross_entropy|log_sigmoid", "loss"),
    (r"adam|_foreach|addcdiv|addcmul|lerp", "optimizer"),
    (r"adaptive_avg_pool|^aten::mean$|^aten::sum$", "squeeze-excitation pooling"),
    (
        r"silu|sigmoid|relu|^aten::(mul|add|sub|div|cat|copy_|fill_|zero_|clone|neg|where|threshold)",
        "activations, element-wise",
    ),
]


def torch_category(name: str, shapes) -> str:
    category = next((category for pattern, category in TORCH_OPS if re.search(pattern, name)), "other")
    if category == "convolution" and shapes:
        weight = shapes[2] if "backward" in name and len(shapes) > 2 else shapes[1] if len(shapes) > 1 else []
        if len(weight) == 4 and weight[1] == 1 and weight[0] > 1 and weight[2] > 1:
            category = "depthwise convolution"
    return category


def backward(name: str) -> bool:
    return bool(re.search(r"gradient_tape|Backprop|Grad\b|Grad:|backward|Backward", name))


def profile_keras(model_name: str, args) -> dict:
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    runner = bench_models.KerasRunner(model_name, args.size, args.batch, args)
    runner.train(args.warmup)
    logdir = tempfile.mkdtemp(prefix="profile_step_")
    tf.profiler.experimental.start(logdir)
    start = time.perf_counter()
    runner.train(args.steps)
    wall = (time.perf_counter() - start) / args.steps
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    with open(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0], "rb") as f:
        space.ParseFromString(f.read())
    ops = collections.Counter()
    for plane in space.planes:
        names = plane.event_metadata
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = names[event.metadata_id].name
                if re.fullmatch(r"[^:]+:[^:]+", name):  # an op kernel "<op name>:<op type>"
                    ops[name] += event.duration_ps / 1e9 / args.steps
    rows = []
    for full, ms in ops.items():
        name, _, op_type = full.rpartition(":")
        rows.append((tf_category(name, op_type), backward(name), op_type, name, ms))
    return {"wall_ms": wall * 1e3, "ops": rows}


def profile_torch(model_name: str, args) -> dict:
    import torch

    runner = bench_models.TorchRunner(model_name, args.size, args.batch, args)
    runner.train(args.warmup)
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities, record_shapes=True) as profiler:
        start = time.perf_counter()
        runner.train(args.steps)
        wall = (time.perf_counter() - start) / args.steps
    rows = []
    for event in profiler.key_averages(group_by_input_shape=True):
        ms = event.self_cpu_time_total / 1e3 / args.steps
        if ms <= 0:
            continue
        name = event.key
        rows.append((torch_category(name, event.input_shapes), backward(name), name, str(event.input_shapes), ms))
    return {"wall_ms": wall * 1e3, "ops": rows}


def worker(model_name: str, lib: str, args) -> dict:
    bench_models.set_threads(args.threads, lib)
    return profile_keras(model_name, args) if lib == "keras" else profile_torch(model_name, args)


def run_one(model_name: str, isa: str, lib: str, args) -> dict:
    """One profile in a fresh process with the kind's ISA limit set before TF or torch start."""
    env = {**os.environ, **bench_models.ISA_LIMITS[isa], "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, os.path.abspath(__file__), "--worker", lib, "--models", model_name]
    command += ["--size", str(args.size), "--batch", str(args.batch), "--steps", str(args.steps)]
    command += ["--warmup", str(args.warmup), "--threads", str(args.threads)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{lib} {model_name} {isa} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarise(result: dict) -> dict:
    table = collections.defaultdict(float)
    for category, is_backward, *_, ms in result["ops"]:
        table[category, is_backward] += ms
    return table


def report(results: dict, args) -> str:
    lines = [
        "# Per-op profile of one training step",
        "",
        f"{bench_models.cpu_description()}; {args.threads} threads each; batch {args.batch}, "
        f"{args.size}x{args.size}, fp32; mean of {args.steps} profiled steps after {args.warmup} warm-up.",
        f"Made by `python benchmarks/profile_step.py {' '.join(args.argv)}`; "
        f"1-min load average {args.load[0]:.1f} before, {os.getloadavg()[0]:.1f} after.",
        "",
        "ms per step, forward / backward (TensorFlow's sum can exceed its wall time: its inter-op threads "
        "run independent ops side by side).",
    ]
    for (model_name, isa), by_lib in results.items():
        keras, torch = (summarise(by_lib[lib]) for lib in ("keras", "smp"))
        lines += ["", f"## {model_name}, CPU kind {isa}", ""]
        lines += ["| category | keras fwd | keras bwd | smp fwd | smp bwd | keras - smp |", "|---|---|---|---|---|---|"]
        for category in CATEGORIES:
            cells = [keras[category, False], keras[category, True], torch[category, False], torch[category, True]]
            difference = cells[0] + cells[1] - cells[2] - cells[3]
            lines.append(f"| {category} | " + " | ".join(f"{c:.1f}" for c in cells) + f" | {difference:+.1f} |")
        sums = [sum(keras.values()), sum(torch.values())]
        lines.append(f"| **sum of ops** | {sums[0]:.1f} | | {sums[1]:.1f} | | {sums[0] - sums[1]:+.1f} |")
        walls = [by_lib[lib]["wall_ms"] for lib in ("keras", "smp")]
        lines.append(f"| **step wall time** | {walls[0]:.1f} | | {walls[1]:.1f} | | {walls[0] - walls[1]:+.1f} |")
        for lib in ("keras", "smp"):
            top = sorted(by_lib[lib]["ops"], key=lambda row: -row[-1])[:10]
            lines += ["", f"Slowest {lib} ops ({model_name}, {isa}):", ""]
            lines += ["| ms | category | op | where |", "|---|---|---|---|"]
            lines += [f"| {row[-1]:.1f} | {row[0]} | {row[2]} | {row[3][:90]} |" for row in top]
    return "\n".join(lines) + "\n"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(bench_models.SMP_ENCODERS))
    parser.add_argument("--isa", nargs="+", default=["native", "avx2"], choices=list(bench_models.ISA_LIMITS))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--out", default=None, help="write the Markdown report here (else print it)")
    parser.add_argument("--worker", choices=["keras", "smp"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # what bench_models' runners read
    args.precision, args.upsampling, args.smp_upsampling = "fp32", "bilinear", None
    args.decoder_widths = bench_models.parse_args([]).decoder_widths
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.models[0], args.worker, args)))
        return
    args.argv, args.load = sys.argv[1:] if argv is None else argv, os.getloadavg()
    results = {}
    for model_name in args.models:
        for isa in args.isa:
            results[model_name, isa] = {lib: run_one(model_name, isa, lib, args) for lib in ("keras", "smp")}
            print(
                f"{model_name} {isa}: keras {results[model_name, isa]['keras']['wall_ms']:.0f} ms, "
                f"smp {results[model_name, isa]['smp']['wall_ms']:.0f} ms per step",
                flush=True,
            )
    text = report(results, args)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
