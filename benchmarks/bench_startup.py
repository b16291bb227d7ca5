"""Start-up cost of a training job: building the first training step with Keras' Adam vs effunet's fused Adam.

    python benchmarks/bench_startup.py --model effunet-b0 --size 64

Each variant runs in a fresh process (so nothing is cached between them): build and compile the
model as the training loop does, then time the first `fit` step (tracing and graph optimisation,
plus one step) and a second step, in CPU seconds of the process (robust on a shared machine) and
wall seconds. Prints the ratio keras/fused of the first step.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def one(model_name: str, size: int, optimizer: str) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    from effunet import models
    from effunet.training import losses, optimizers

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    model = models.build(model_name, (size, size, 3))
    chosen = {"keras": keras.optimizers.Adam, "fused": optimizers.Adam}[optimizer](1e-3)
    model.compile(optimizer=chosen, loss=losses.make_loss("bce"), metrics=losses.make_metrics(), jit_compile=False)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (4, size, size, 3)).astype("float32")
    y = (rng.random((4, size, size, 1)) > 0.5).astype("float32")
    result = {}
    for label in ("first_step", "second_step"):
        cpu, wall = time.process_time(), time.perf_counter()
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
        result[label] = {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="effunet-b0")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--child", choices=["keras", "fused"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one(args.model, args.size, args.child)))
        return
    results = {}
    for optimizer in ("keras", "fused"):
        out = subprocess.run(
            [sys.executable, __file__, "--model", args.model, "--size", str(args.size), "--child", optimizer],
            capture_output=True,
            text=True,
            check=True,
        )
        results[optimizer] = json.loads(out.stdout.strip().splitlines()[-1])
        first, second = results[optimizer]["first_step"], results[optimizer]["second_step"]
        print(
            f"{args.model} {args.size}x{args.size}, {optimizer:5s} Adam: first step {first['cpu_s']:6.1f} s CPU "
            f"({first['wall_s']:6.1f} s wall), second step {second['cpu_s']:5.2f} s CPU"
        )
    ratio = results["keras"]["first_step"]["cpu_s"] / results["fused"]["first_step"]["cpu_s"]
    print(f"first step, CPU seconds: keras / fused = {ratio:.1f}x")


if __name__ == "__main__":
    main()
