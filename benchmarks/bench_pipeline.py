"""Is the input pipeline a bottleneck? Step time fed by effunet's tf.data pipeline vs in-memory tensors.

    python benchmarks/bench_pipeline.py --model effunet-b0 --size 128 --batch 8
    python benchmarks/bench_pipeline.py --augment strong --native-crops   # the modern recipe's inputs

Prepares synthetic DSB2018-format data with the workflow's own data code, then times `model.fit`
for one epoch at a time (as the training loop does) fed (a) by `effunet.training.dataset.make_dataset`
(per-epoch permutation, uint8 -> float32, batching, prefetch) and (b) by the same batches already
materialised as float32 tensors. Interleaved repeats; medians; the difference should stay under 5%.
`--augment` and `--native-crops` time the pipeline with `train.augment` and `train.input:
native_crops` (crops from the native-size synthetic images, drawn in NumPy via tf.numpy_function).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import keras
import tensorflow as tf

from effunet.data import archives, dsb2018, synthetic
from effunet.layout import PreparedData
from effunet.training import dataset, loop


def prepared_data(work: Path, n_images: int, size: int) -> Path:
    archive = synthetic.write_dsb2018_zip(work / "dsb.zip", n_images=n_images)
    archives.extract(archive, work / "raw")
    dsb2018.merge_masks(work / "raw", work / "labels", workers=2)
    dsb2018.resize(work / "raw", work / "labels", work / "prepared/images", work / "prepared/masks",
                   work / "prepared/manifest.csv", (size, size), test_fraction=0.05, val_fraction=0.05,
                   seed=0, workers=2)
    return work / "prepared"


def time_epoch(model: keras.Model, data: tf.data.Dataset) -> float:
    start = time.perf_counter()
    model.fit(data, epochs=1, verbose=0, shuffle=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="effunet-b0")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--augment", default="false", choices=["false", "true", "none", "flips", "strong"])
    parser.add_argument("--native-crops", action="store_true", help="crops at --size from the native images")
    args = parser.parse_args()
    augment = {"false": False, "true": True}.get(args.augment, args.augment)
    with tempfile.TemporaryDirectory() as work:
        folder = prepared_data(Path(work), args.images, args.size)
        prepared = PreparedData(folder / "manifest.csv", folder / "images", folder / "masks", labels=Path(work) / "labels")
        images, masks = dataset.load_split(prepared, "train")
        crop = None
        if args.native_crops:
            images, masks = dataset.load_native_split(prepared, "train")
            crop = (args.size, args.size)
    settings = loop.Settings(batch_size=args.batch, encoder_weights="none")
    model = loop.build_compiled(args.model, (args.size, args.size, 3), settings)
    options = dict(augment=augment, crop_size=crop)
    batches = list(dataset.make_dataset(images, masks, args.batch, seed=0, epoch=0, **options))
    in_memory = tf.data.Dataset.from_tensor_slices(
        (tf.stack([b[0] for b in batches[:-1]]), tf.stack([b[1] for b in batches[:-1]])))
    steps = len(batches) - 1
    time_epoch(model, in_memory), time_epoch(model, dataset.make_dataset(images, masks, args.batch, **options))  # warm-up
    piped, memory = [], []
    for repeat in range(args.repeats):
        pipeline = dataset.make_dataset(images, masks, args.batch, seed=0, epoch=repeat, **options).take(steps)
        piped.append(time_epoch(model, pipeline) / steps)
        memory.append(time_epoch(model, in_memory) / steps)
    piped_s, memory_s = statistics.median(piped), statistics.median(memory)
    print(f"model {args.model}, {args.size}x{args.size}, batch {args.batch}, {steps} steps per epoch, "
          f"{args.repeats} interleaved repeats, augment {args.augment}, native crops {args.native_crops}, "
          f"device: {'GPU' if tf.config.list_physical_devices('GPU') else 'CPU'}")
    print(f"step time fed by the tf.data pipeline: {1000 * piped_s:.1f} ms")
    print(f"step time on in-memory tensors:        {1000 * memory_s:.1f} ms")
    print(f"pipeline overhead: {100 * (piped_s / memory_s - 1):+.1f}%  (target: under 5%)")


if __name__ == "__main__":
    main()
