"""Backend-specific ways to run the models fast, behind one interface with a plain-Keras fallback.

The models, losses, metrics and training loop are Keras 3 code and run on the tensorflow (default),
jax and torch backends (``KERAS_BACKEND``, or the config key ``train.backend``). What only one
backend has lives here:

| concern | tensorflow | jax | torch |
|---|---|---|---|
| GPUs seen (`gpus`) | `tf.config` | `jax.devices()` | `torch.cuda` |
| XLA (`jit_compile_default`) | on a GPU only (~4x slower on CPU) | always (Keras' jax path is XLA) | off |
| inference (`make_predict_fn`) | traced `tf.function` | `predict_on_batch` (jitted by Keras) | `predict_on_batch` |
| threads (`limit_threads`) | TF's thread pools | XLA's own | `torch.set_num_threads` |
| several GPUs (`distribution_scope`) | `MirroredStrategy` | `keras.distribution.DataParallel` | one GPU |
| FLOPs (`count_flops`) | TF profiler | convolutions and dense layers counted from shapes | same |

The fused batch norm (`effunet.models.layers.FusedBatchNormalization`) falls back to Keras'
own batch norm on other backends by itself.
"""

from __future__ import annotations

import contextlib
import logging

import keras

from effunet import devices
from effunet.errors import EffunetError

log = logging.getLogger(__name__)


def backend() -> str:
    return keras.backend.backend()


def gpus() -> list[str]:
    """The GPUs the Keras backend sees (after CUDA_VISIBLE_DEVICES)."""
    name = backend()
    if name == "tensorflow":
        import tensorflow as tf

        return [device.name for device in tf.config.list_physical_devices("GPU")]
    if name == "jax":
        import jax

        return [str(device) for device in jax.devices() if device.platform == "gpu"]
    if name == "torch":
        import torch

        return [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    return []


def has_gpu() -> bool:
    return bool(gpus())


def require_device(device: str, cpu_hint: str = "set train.device: cpu to train on the CPU") -> list[str]:
    """Check, once the backend has started, that it sees the GPUs the job was given.

    A job given GPUs (``CUDA_VISIBLE_DEVICES``, else the driver's list) that the backend cannot use
    fails, with ``auto`` as with ``gpu`` (typically TensorFlow installed without its CUDA libraries):
    the message names the install and `cpu_hint` (``train.device: cpu``; predict: ``--device cpu``).
    ``gpu`` with no GPU at all fails too; ``auto`` then runs on the CPU. Returns the GPUs seen.
    """
    devices.check_device(device)
    seen = gpus() if device != "cpu" else []
    if seen or device == "cpu":
        return seen
    given = devices.listed_gpus()
    given = devices.driver_gpus() if given is None else given
    hint = devices.BACKEND_INSTALL_HINTS.get(backend(), "install its GPU build")
    if given:
        raise EffunetError(
            f"the job was given GPU(s) {','.join(given)} but {backend()} cannot use them "
            f"(train.device: {device}): {hint}; or {cpu_hint}"
        )
    if device == "gpu":
        raise EffunetError(f"config key train.device is 'gpu' but {backend()} sees no GPU (no GPU is visible); {hint}")
    return seen


def jit_compile_default() -> bool:
    """`model.compile(jit_compile=...)`: XLA where it pays off (TF: a GPU; jax: always; torch: never)."""
    name = backend()
    if name == "jax":
        return True
    if name == "tensorflow":
        return has_gpu()
    return False


def make_predict_fn(model: keras.Model, jit_compile: bool | None = None):
    """A compiled ``model(images, training=False)`` for float32 batches (N, H, W, 3) in 0..255.

    TensorFlow: a `tf.function` traced once per input shape (`reduce_retracing` lets one trace serve
    varying batch sizes); other backends: Keras' own compiled `predict_on_batch`. Returns
    (N, H, W, 1) probabilities as a tensor or array (``np.asarray`` takes both).
    """
    if backend() != "tensorflow":
        return model.predict_on_batch
    import tensorflow as tf

    jit = jit_compile_default() if jit_compile is None else jit_compile

    @tf.function(reduce_retracing=True, jit_compile=jit)
    def predict(images):
        return model(images, training=False)

    return predict


def limit_threads(threads: int | None) -> None:
    """Use the cores the scheduler gave the job; must run before the backend executes anything."""
    if not threads:
        return
    name = backend()
    if name == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
        except RuntimeError:  # TensorFlow already started in this process (tests, notebooks): keep its pools
            log.info("TensorFlow already initialised; keeping its thread pools")
    elif name == "torch":
        import torch

        torch.set_num_threads(threads)


def distribution_scope():
    """A context to build and train the model in: several GPUs only when the job was given several."""
    found = gpus()
    name = backend()
    if len(found) > 1 and name == "tensorflow":
        import tensorflow as tf

        log.info("training on %d GPUs with MirroredStrategy", len(found))
        return tf.distribute.MirroredStrategy().scope()
    if len(found) > 1 and name == "jax":
        log.info("training on %d GPUs with keras.distribution.DataParallel", len(found))
        keras.distribution.set_distribution(keras.distribution.DataParallel())
    elif len(found) > 1:
        log.warning("the %s backend trains on one GPU; the job was given %d", name, len(found))
    else:
        log.info("training on %s with the %s backend", "the GPU" if found else "the CPU", name)
    return contextlib.nullcontext()


def count_flops(model: keras.Model, input_shape=None) -> int:
    """Forward FLOPs of one image: TF's profiler on TensorFlow, the convolution count elsewhere."""
    from effunet.models import flops

    if backend() == "tensorflow":
        return flops.profiler_flops(model, input_shape)
    return flops.layer_flops(model, input_shape)
