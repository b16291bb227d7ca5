"""Where a started Keras backend runs a job's model: the GPUs it was given, checked
(`require_device`), and data-parallel training over several of them (`distribution_scope`).

`effunet.devices` decides before the backend starts which GPUs a job gets (``CUDA_VISIBLE_DEVICES``);
this module works once it has started, with what `effunet.models.runtime` reports the backend sees.
It sits above the model layer (it imports `effunet.models.runtime` and `effunet.devices`; nothing in
`effunet.models` imports it).

| concern | tensorflow | jax | torch |
|---|---|---|---|
| several GPUs (`replicas`, `distribution_scope`) | `MirroredStrategy` | `keras.distribution.DataParallel` | one GPU |
| replicas' batch-norm statistics (`average_replicas`) | averaged after each epoch | one global copy (batch statistics over the whole batch) | - |

Data-parallel training splits each batch evenly over the replicas (the training loop rounds the
batch size to a multiple of their number) and validates on one device (`single_device`,
`single_device_copy`), so the validation loss and metrics are those one GPU would give.
``EFFUNET_CPU_REPLICAS=N`` stands N logical CPU devices in for N GPUs (tests and CI: the strategy,
mixed precision and the batch handling run as on GPUs, with no speed-up); JAX needs
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` set before it starts.
"""

from __future__ import annotations

import contextlib
import logging
import os

import keras

from effunet import devices
from effunet.errors import EffunetError
from effunet.models import runtime

log = logging.getLogger(__name__)
CPU_REPLICAS_VARIABLE = "EFFUNET_CPU_REPLICAS"  # N logical CPU devices standing in for N GPUs (tests, CI)


def require_device(device: str, cpu_hint: str = "set train.device: cpu to train on the CPU") -> list[str]:
    """Check, once the backend has started, that it sees the GPUs the job was given.

    A job given GPUs (``CUDA_VISIBLE_DEVICES``, else the driver's list) that the backend cannot use
    fails, with ``auto`` as with ``gpu`` (typically TensorFlow installed without its CUDA libraries):
    the message names the install and `cpu_hint` (``train.device: cpu``; predict: ``--device cpu``).
    ``gpu`` with no GPU at all fails too; ``auto`` then runs on the CPU. Returns the GPUs seen.
    """
    devices.check_device(device)
    seen = runtime.gpus() if device != "cpu" else []
    if seen or device == "cpu":
        return seen
    given = devices.listed_gpus()
    given = devices.driver_gpus() if given is None else given
    hint = devices.BACKEND_INSTALL_HINTS.get(runtime.backend(), "install its GPU build")
    if given:
        raise EffunetError(
            f"the job was given GPU(s) {','.join(given)} but {runtime.backend()} cannot use them "
            f"(train.device: {device}): {hint}; or {cpu_hint}"
        )
    if device == "gpu":
        raise EffunetError(
            f"config key train.device is 'gpu' but {runtime.backend()} sees no GPU (no GPU is visible); {hint}"
        )
    return seen


def cpu_replicas(env=os.environ) -> int:
    """The logical CPU devices standing in for GPUs (``EFFUNET_CPU_REPLICAS``); 0 when not asked."""
    value = env.get(CPU_REPLICAS_VARIABLE, "").strip()
    if not value:
        return 0
    try:
        count = int(value)
    except ValueError:
        raise EffunetError(f"{CPU_REPLICAS_VARIABLE} must be a number of devices, not {value!r}") from None
    return count if count > 1 else 0


def _cpu_devices(count: int) -> list[str]:
    """`count` logical CPU devices of the backend (made here on TensorFlow, before it starts)."""
    name = runtime.backend()
    if name == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
        except RuntimeError:  # TensorFlow already started: use the logical devices it has
            pass
        found = [device.name for device in tf.config.list_logical_devices("CPU")]
    elif name == "jax":
        found = keras.distribution.list_devices("cpu")
    else:
        found = []
    if len(found) < count:
        how = {
            "jax": "set XLA_FLAGS=--xla_force_host_platform_device_count=N before JAX starts",
            "tensorflow": "set it before TensorFlow starts",
        }.get(name, f"{name} cannot split the CPU")
        raise EffunetError(f"{CPU_REPLICAS_VARIABLE}={count} but {name} has {len(found)} CPU device(s): {how}")
    return found[:count]


def replica_devices() -> list[str]:
    """The devices a job trains on data-parallel: its GPUs when it was given several (TensorFlow,
    jax), else the CPU stand-ins of ``EFFUNET_CPU_REPLICAS``; empty for one device. Call it before
    the backend executes anything (TensorFlow splits the CPU only before it starts)."""
    found = runtime.gpus()
    if len(found) > 1:
        return found if runtime.backend() in ("tensorflow", "jax") else []
    count = cpu_replicas()
    return _cpu_devices(count) if count and not found else []


def replicas() -> int:
    """How many replicas `distribution_scope` trains on (1: one device)."""
    return len(replica_devices()) or 1


def accelerated() -> bool:
    """A GPU, or the CPU stand-ins for several (mixed precision applies as on GPUs)."""
    return runtime.has_gpu() or cpu_replicas() > 0


def distribution_scope():
    """A context to build and train the model in: data-parallel only when the job was given several
    GPUs (or their CPU stand-ins, `replica_devices`)."""
    found = replica_devices()
    name = runtime.backend()
    on_gpus = len(runtime.gpus()) > 1
    kind = "GPUs" if on_gpus else "logical CPU devices standing in for GPUs"
    if found and name == "tensorflow":
        import tensorflow as tf

        log.info("training on %d %s with MirroredStrategy", len(found), kind)
        return tf.distribute.MirroredStrategy(None if on_gpus else found).scope()
    if found and name == "jax":
        log.info("training on %d %s with keras.distribution.DataParallel", len(found), kind)
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=found))
    elif len(runtime.gpus()) > 1:
        log.warning("the %s backend trains on one GPU; the job was given %d", name, len(runtime.gpus()))
    else:
        log.info("training on %s with the %s backend", "the GPU" if runtime.has_gpu() else "the CPU", name)
    return contextlib.nullcontext()


@contextlib.contextmanager
def single_device():
    """Run a model built in it on one device, outside any data-parallel distribution (validation:
    any batch size, the result one device gives). TensorFlow: outside the strategy's scope a model
    built there runs on one device already; jax: the global distribution is lifted meanwhile."""
    if runtime.backend() != "jax" or keras.distribution.distribution() is None:
        yield
        return
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(previous)


def single_device_copy(model: keras.Model, **compile_args) -> keras.Model:
    """A copy of `model` on one device (`single_device`), compiled with `compile_args`; its weights
    are set with ``copy.set_weights(model.get_weights())``."""
    with single_device():
        copy = keras.models.clone_model(model)
        copy.compile(jit_compile=runtime.jit_compile_default(), **compile_args)
    return copy


def average_replicas(model: keras.Model) -> int:
    """Set every replica's copy of the model's non-trainable float variables (batch-norm moving
    statistics) to the replicas' mean; returns how many variables differed.

    `MirroredStrategy` keeps these per replica, each updated from its share of the batches, and
    reads (saves, validates) replica 0's. Trainable variables and the optimizer's state are kept
    equal by the strategy itself; jax's `DataParallel` holds one global copy of everything.
    """
    if runtime.backend() != "tensorflow":
        return 0
    import tensorflow as tf

    changed = 0
    for variable in model.non_trainable_variables:
        copies = getattr(variable.value, "values", None)
        if not copies or len(copies) < 2 or not variable.value.dtype.is_floating:
            continue
        values = [tf.convert_to_tensor(copy) for copy in copies]
        mean = tf.add_n([tf.identity(value) for value in values]) / len(values)
        if any(bool(tf.reduce_any(value != mean)) for value in values):
            changed += 1
            for copy in copies:
                copy.assign(mean)
    return changed
