"""Does a model predict foreground along the image edges? Train briefly on prepared DSB2018 data and
measure, on the test images, the mean predicted probability on background pixels in each side of
the outer 4-pixel frame against the interior (docs/edge-artefact.md).

    python benchmarks/edge_artefact.py resources/prepared/dsb2018 --train-images 160 --epochs 3

Every model named in --models is trained from the same random start (seed), same batches, 1 CPU
thread; the table is printed after every epoch. Models: registry names, with ":unaligned" for
`align_upsampling=False` (the former decoder), e.g. effunet-b0 effunet-b0:unaligned unet:16
(unet with base_filters 16).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

FRAME = 4


def frame_table(probability: np.ndarray, truth: np.ndarray, frame: int = FRAME) -> dict[str, float]:
    """Mean probability over background pixels (truth 0) of each side of the frame and the interior,
    over a stack (N, H, W); the corners count in two sides."""
    _, h, w = probability.shape
    sides = {"top": np.s_[:, :frame, :], "bottom": np.s_[:, h - frame:, :], "left": np.s_[:, :, :frame],
             "right": np.s_[:, :, w - frame:], "interior": np.s_[:, frame:h - frame, frame:w - frame]}
    return {name: float(probability[index][~truth[index]].mean()) for name, index in sides.items()}


def build(spec: str, shape, batch_norm_momentum=None):
    from effunet.models import build as build_model

    name, _, option = spec.partition(":")
    options = {"batch_norm_momentum": batch_norm_momentum}
    if option == "unaligned":
        options["align_upsampling"] = False
    elif name == "unet" and option:
        options["base_filters"] = int(option)
    return build_model(name, shape, **options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prepared", type=Path)
    parser.add_argument("--models", nargs="+", default=["effunet-b0", "effunet-b0:unaligned", "unet:16"])
    parser.add_argument("--train-images", type=int, default=160)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-norm-momentum", type=float, default=None,
                        help="every model's batch-norm momentum (default Keras' 0.99; 0.9 settles in a short run)")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from effunet.layout import PreparedData
    from effunet.training.dataset import load_split, make_dataset

    prepared = PreparedData.in_folder(args.prepared)
    images, masks = load_split(prepared, "train")
    images, masks = images[: args.train_images], masks[: args.train_images]
    test_images, test_masks = load_split(prepared, "test")
    truth = test_masks[..., 0] > 127
    models = {}
    for spec in args.models:
        keras.utils.set_random_seed(args.seed)
        model = build(spec, images.shape[1:], args.batch_norm_momentum)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
        models[spec] = model
    print(f"{len(images)} training images, {len(test_images)} test images, background pixels only; "
          f"truth foreground share: " + ", ".join(f"{k} {v:.3f}" for k, v in
                                                  frame_table(truth.astype(float), np.zeros_like(truth)).items()))
    for epoch in range(1, args.epochs + 1):
        for spec, model in models.items():
            start = time.perf_counter()
            model.fit(make_dataset(images, masks, args.batch_size, seed=args.seed, epoch=epoch), epochs=1, verbose=0)
            probability = model.predict(test_images.astype(np.float32), batch_size=16, verbose=0)[..., 0]
            table = frame_table(probability, truth)
            ratio = max(table[s] for s in ("top", "bottom", "left", "right")) / table["interior"]
            print(f"epoch {epoch} {spec:22s} " + " ".join(f"{k} {v:.4f}" for k, v in table.items())
                  + f"  worst side/interior {ratio:.2f}  ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
