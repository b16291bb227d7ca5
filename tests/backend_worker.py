"""Saves or loads a model on the Keras backend named by KERAS_BACKEND (used by tests/test_backends.py).

python backend_worker.py save MODEL OUT.keras IMAGES.npy PRED.npy   # build, train 2 steps, save, predict
python backend_worker.py load MODEL.keras IMAGES.npy PRED.npy       # load, predict (the Predictor path)
"""

import json
import sys

import numpy as np


def save(name: str, path: str, images_path: str, pred_path: str) -> None:
    import keras

    from effunet import models
    from effunet.training import losses

    keras.utils.set_random_seed(0)
    images = np.load(images_path)
    options = {"base_filters": 4} if name == "unet" else {"decoder_widths": [16, 8, 8, 4, 4]}
    model = models.build(name, images.shape[1:], **options)
    model.compile(
        optimizer="adam",
        loss=losses.make_loss("bce+dice"),
        metrics=losses.make_metrics(),
        jit_compile=models.jit_compile_default(),
    )
    targets = (images.mean(axis=-1, keepdims=True) > 127).astype("float32")
    for _ in range(2):  # moves the weights and the batch-norm statistics away from their initial values
        model.train_on_batch(images, targets)
    model.save(path)
    np.save(pred_path, np.asarray(models.make_predict_fn(model)(images)))


def load(path: str, images_path: str, pred_path: str) -> None:
    from effunet.predict import Predictor

    predictor = Predictor(path, batch_size=2)
    np.save(pred_path, predictor.probabilities(np.load(images_path))[..., None])


if __name__ == "__main__":
    import keras

    {"save": save, "load": load}[sys.argv[1]](*sys.argv[2:])
    print(json.dumps({"backend": keras.backend.backend()}))
