"""Backend-specific ways to run the models fast, behind one interface with a plain-Keras fallback.

The models, losses, metrics and training loop are Keras 3 code and run on the tensorflow (default),
jax and torch backends (``KERAS_BACKEND``, or the config key ``train.backend``). What only one
backend has lives here:

| concern | tensorflow | jax | torch |
|---|---|---|---|
| GPUs seen (`gpus`) | `tf.config` | `jax.devices()` | `torch.cuda` |
| XLA (`jit_compile_default`) | on one GPU only (~4x slower on CPU; left to Keras, off, under `MirroredStrategy`) | always (Keras' jax path is XLA) | off |
| inference (`make_predict_fn`) | traced `tf.function` | `predict_on_batch` (jitted by Keras) | `predict_on_batch` |
| threads (`limit_threads`) | TF's thread pools | XLA's own | `torch.set_num_threads` |
| FLOPs (`count_flops`) | TF profiler | convolutions and dense layers counted from shapes | same |

The fused batch norm (`effunet.models.layers.FusedBatchNormalization`) falls back to Keras'
own batch norm on other backends by itself.

Where a started backend runs a job (the GPUs it was given, data-parallel replicas) is
`effunet.placement`, above this layer.
"""

from __future__ import annotations

import logging

import keras

from effunet.models.cpu_kind import cpu_settings
from effunet.models.flops import count_flops  # noqa: F401 (the training loop's name for it)

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


def jit_compile_default() -> bool | str:
    """`model.compile(jit_compile=...)`: XLA where it pays off (TF: a GPU; jax: always; torch: never).

    Under a TensorFlow distribution strategy with several replicas "auto": Keras switches XLA off
    there itself (an explicit True crashes `MirroredStrategy` training: "Trying to access resource
    .../replica_1 ... from device CPU:0").
    """
    name = backend()
    if name == "jax":
        return True
    if name == "tensorflow":
        import tensorflow as tf

        if tf.distribute.has_strategy() and tf.distribute.get_strategy().num_replicas_in_sync > 1:
            return "auto"
        return has_gpu() or cpu_settings().jit_compile
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

    jit = (jit_compile_default() is True) if jit_compile is None else jit_compile

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
            tf.config.threading.set_inter_op_parallelism_threads(min(threads, cpu_settings().inter_op_threads))
        except RuntimeError:  # TensorFlow already started in this process (tests, notebooks): keep its pools
            log.info("TensorFlow already initialised; keeping its thread pools")
    elif name == "torch":
        import torch

        torch.set_num_threads(threads)
