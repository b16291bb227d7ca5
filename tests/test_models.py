"""Model zoo: registry, shapes, input contract, encoder weights, freezing, save/load, FLOPs."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import socket
import subprocess
import sys
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from effunet.errors import EffunetError
from effunet.models import (
    MODEL_NAMES,
    EncoderWarmup,
    FusedBatchNormalization,
    build,
    build_backbone,
    count_flops,
    get_encoder,
    jit_compile_default,
    make_predict_fn,
    model_complexity,
    set_encoder_trainable,
)
from effunet.models import encoders

ROOT = Path(__file__).resolve().parents[1]
EFFICIENTNET_B0_NOTOP_PARAMS = 4_049_571
RESNET50_NOTOP_PARAMS = 23_587_712


def images(n=2, size=(32, 32), seed=0) -> np.ndarray:
    """The input contract: float32 RGB in 0..255."""
    return np.random.default_rng(seed).uniform(0, 255, (n, *size, 3)).astype("float32")


def randomize(model: keras.Model, seed: int = 1) -> None:
    """Replace every weight by random values (variances kept positive)."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(w.dtype) for w in model.get_weights()])


def weights_by_name(model: keras.Model) -> dict[str, list[np.ndarray]]:
    """Layer name (auto-numbering such as normalization_3 dropped) -> weights."""
    return {re.sub(r"_\d+$", "", layer.name): layer.get_weights() for layer in model.layers if layer.weights}


# --- registry, shapes, input contract ------------------------------------------------------------


def test_registry_has_the_study_models():
    assert MODEL_NAMES == ("unet", "resnet50-unet", *(f"effunet-b{i}" for i in range(8)))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_builds_and_outputs_probabilities(name):
    kwargs = {"base_filters": 8} if name == "unet" else {}
    model = build(name, (32, 32, 3), **kwargs)
    assert model.input_shape == (None, 32, 32, 3)
    assert model.output_shape == (None, 32, 32, 1)
    out = model(images(2), training=False).numpy()
    assert out.shape == (2, 32, 32, 1)
    assert out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0


@pytest.mark.parametrize("shape", [(64, 96, 3), (96, 64, 3)])
def test_non_square_inputs(shape):
    model = build("effunet-b0", shape)
    assert model.output_shape == (None, *shape[:2], 1)


def test_unknown_spatial_size_accepts_multiples_of_32():
    model = build("resnet50-unet", (None, None, 3))
    assert model(images(1, (64, 96))).shape == (1, 64, 96, 1)
    assert model(images(1, (32, 32))).shape == (1, 32, 32, 1)


@pytest.mark.parametrize("shape", [(100, 100, 3), (128, 120, 3), (0, 32, 3)])
def test_size_not_multiple_of_32_is_a_clear_error(shape):
    with pytest.raises(EffunetError, match="multiples of 32") as err:
        build("effunet-b0", shape)
    assert str(shape) in str(err.value)


def test_grayscale_input_is_an_error():
    with pytest.raises(EffunetError, match=r"\(height, width, 3\)"):
        build("unet", (64, 64, 1))


def test_unknown_model_option_and_widths_are_errors():
    with pytest.raises(EffunetError, match="effunet-b9"):
        build("effunet-b9", (32, 32, 3))
    with pytest.raises(EffunetError, match="base_filters"):
        build("effunet-b0", (32, 32, 3), base_filters=8)
    with pytest.raises(EffunetError, match="decoder_widths"):
        build("effunet-b0", (32, 32, 3), decoder_widths=(64, 32))
    with pytest.raises(EffunetError, match="decoder_widths"):
        build("unet", (32, 32, 3), decoder_widths=(64, 32, 16, 8, 4))
    with pytest.raises(EffunetError, match="upsampling"):
        build("effunet-b0", (32, 32, 3), upsampling="cubic")


def test_default_and_custom_decoder_widths():
    model = build("effunet-b0", (32, 32, 3))
    assert [model.get_layer(f"decoder{i}_conv2").filters for i in range(5)] == [256, 128, 64, 32, 16]
    model = build("effunet-b0", (32, 32, 3), decoder_widths=(40, 30, 20, 10, 5))
    assert [model.get_layer(f"decoder{i}_conv2").filters for i in range(5)] == [40, 30, 20, 10, 5]
    unet = build("unet", (32, 32, 3), base_filters=4)
    assert [unet.get_layer(f"decoder{i}_conv2").filters for i in range(4)] == [32, 16, 8, 4]
    assert unet.get_layer("bottleneck_conv1").filters == 64


def test_effunet_decoder_is_bilinear_and_uses_last_block_of_each_resolution():
    model = build("effunet-b0", (64, 64, 3))
    up = model.get_layer("decoder0_up")
    assert up.interpolation == "bilinear" and up.grid_offset == 1.0  # aligned: tests/test_alignment.py
    encoder = get_encoder(model)
    skips = ["block1a_project_bn", "block2b_add", "block3b_add", "block5c_add", "block7a_project_bn"]
    assert all(out is encoder.get_layer(name).output for out, name in zip(encoder.outputs, skips, strict=True))
    assert [t.shape[1] for t in encoder.outputs] == [32, 16, 8, 4, 2]


def test_b7_skips_are_the_last_blocks():
    backbone = keras.applications.EfficientNetB7(include_top=False, weights=None, input_shape=(32, 32, 3))
    names = encoders.feature_layer_names(backbone, "efficientnet-b7")
    assert names == ["block1d_add", "block2g_add", "block3g_add", "block5j_add", "block7d_add"]


def test_encoder_parameter_counts_match_keras_backbones():
    head = build("effunet-b0", (64, 64, 3), encoder_head=True)
    assert get_encoder(head).count_params() == EFFICIENTNET_B0_NOTOP_PARAMS
    # The default Eff-UNet decodes from the last block: everything but the 1x1 head conv + BN.
    keras_b0 = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(64, 64, 3))
    assert keras_b0.count_params() == EFFICIENTNET_B0_NOTOP_PARAMS
    head_params = keras_b0.get_layer("top_conv").count_params() + keras_b0.get_layer("top_bn").count_params()
    default = build("effunet-b0", (64, 64, 3))
    assert get_encoder(default).count_params() == EFFICIENTNET_B0_NOTOP_PARAMS - head_params
    resnet = build("resnet50-unet", (64, 64, 3))
    assert get_encoder(resnet).count_params() == RESNET50_NOTOP_PARAMS


def test_resnet_preprocessing_is_keras_preprocess_input():
    x = images(2)
    ours = encoders.CaffePreprocess()(x).numpy()
    np.testing.assert_allclose(ours, keras.applications.resnet50.preprocess_input(x.copy()), atol=1e-4)
    model = build("resnet50-unet", (32, 32, 3))
    assert isinstance(model.layers[1], encoders.CaffePreprocess)


def test_efficientnet_normalises_with_imagenet_statistics():
    backbone = build_backbone("efficientnet-b0", (32, 32, 3))
    normalization = next(l for l in backbone.layers if isinstance(l, keras.layers.Normalization))
    x = images(1)
    normalized = keras.Model(backbone.inputs, normalization.output)(x).numpy()
    expected = (x / 255.0 - np.array(encoders.IMAGENET_MEAN_RGB)) / np.array(encoders.IMAGENET_STD_RGB)
    np.testing.assert_allclose(normalized, expected, atol=1e-4)


def test_mixed_precision_keeps_float32_probabilities():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build("effunet-b0", (32, 32, 3))
        out = model(images(1), training=True)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("decoder0_conv1").compute_dtype == "bfloat16"
    assert out.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(out)) and float(tf.reduce_max(out)) <= 1.0


# --- encoder weights -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def b0_weights(tmp_path_factory):
    """A randomised no-top EfficientNetB0 and its weights written as Keras 3 .weights.h5."""
    backbone = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(32, 32, 3))
    randomize(backbone)
    path = tmp_path_factory.mktemp("weights") / "b0.weights.h5"
    backbone.save_weights(path)
    return backbone, path


def write_legacy_h5(model: keras.Model, path: Path) -> Path:
    """The legacy HDF5 weights format of the files keras.applications downloads."""
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return path


def assert_encoder_holds(model: keras.Model, backbone: keras.Model) -> int:
    """Every weight of the model's encoder equals the backbone layer of the same name."""
    expected = weights_by_name(backbone)
    compared = 0
    for name, weights in weights_by_name(get_encoder(model)).items():
        for got, want in zip(weights, expected[name], strict=True):
            np.testing.assert_array_equal(got, want, err_msg=name)
            compared += 1
    return compared


def test_weights_path_loads_exactly_those_weights(b0_weights):
    backbone, path = b0_weights
    model = build("effunet-b0", (64, 64, 3), encoder_weights=str(path), encoder_head=True)
    assert assert_encoder_holds(model, backbone) == len(backbone.weights)
    default = build("effunet-b0", (64, 64, 3), encoder_weights=path)  # a Path works too
    head = len(backbone.get_layer("top_conv").weights) + len(backbone.get_layer("top_bn").weights)
    assert assert_encoder_holds(default, backbone) == len(backbone.weights) - head


def test_random_init_differs_from_loaded(b0_weights):
    backbone, _ = b0_weights
    model = build("effunet-b0", (32, 32, 3), encoder_weights="none")
    with pytest.raises(AssertionError):
        assert_encoder_holds(model, backbone)


def test_keras_download_format_loads_and_fixes_the_variance_quirk(tmp_path):
    # Keras' ImageNet EfficientNet files store the std as the normalisation variance.
    backbone = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(32, 32, 3))
    randomize(backbone)
    norm = next(l for l in backbone.layers if isinstance(l, keras.layers.Normalization))
    norm.set_weights([np.array(encoders.IMAGENET_MEAN_RGB), np.array(encoders.IMAGENET_STD_RGB), norm.get_weights()[2]])
    path = write_legacy_h5(backbone, tmp_path / "efficientnetb0_notop.h5")
    loaded = build_backbone("efficientnet-b0", (32, 32, 3), str(path))
    assert loaded.get_layer("block3b_project_conv").get_weights()[0].tolist() == (
        backbone.get_layer("block3b_project_conv").get_weights()[0].tolist()
    )
    loaded_norm = next(l for l in loaded.layers if isinstance(l, keras.layers.Normalization))
    np.testing.assert_allclose(loaded_norm.get_weights()[1], np.square(encoders.IMAGENET_STD_RGB), rtol=1e-6)


def test_foreign_or_missing_weights_file_is_a_clear_error(tmp_path, b0_weights):
    _, b0_path = b0_weights
    with pytest.raises(EffunetError, match="b0.weights.h5"):
        build("resnet50-unet", (32, 32, 3), encoder_weights=b0_path)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not hdf5")
    with pytest.raises(EffunetError, match="garbage.h5"):
        build("effunet-b0", (32, 32, 3), encoder_weights=garbage)
    with pytest.raises(EffunetError, match="missing.h5"):
        build("effunet-b0", (32, 32, 3), encoder_weights=tmp_path / "missing.h5")
    with pytest.raises(EffunetError, match="unet has no pretrained encoder"):
        build("unet", (32, 32, 3), encoder_weights=b0_path)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network (any connect fails) and an empty Keras cache."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled by test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return tmp_path / "keras_home" / "models"


def test_imagenet_offline_says_what_to_fetch_and_where(offline):
    with pytest.raises(EffunetError) as err:
        build("effunet-b0", (32, 32, 3), encoder_weights="imagenet")
    message = str(err.value)
    assert "efficientnetb0_notop.h5" in message
    assert "https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5" in message
    assert str(offline / "efficientnetb0_notop.h5") in message
    assert "Traceback" not in message
    with pytest.raises(EffunetError, match="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        build("resnet50-unet", (32, 32, 3), encoder_weights="imagenet")


def test_imagenet_uses_the_keras_cache_offline(offline, monkeypatch, b0_weights):
    backbone, _ = b0_weights
    offline.mkdir(parents=True)
    cached = write_legacy_h5(backbone, offline / "efficientnetb0_notop.h5")
    md5 = hashlib.md5(cached.read_bytes()).hexdigest()
    monkeypatch.setitem(encoders._NOTOP_MD5, "efficientnet-b0", md5)  # our stand-in for Keras' file
    model = build("effunet-b0", (32, 32, 3), encoder_weights="imagenet", encoder_head=True)
    assert assert_encoder_holds(model, backbone) == len(backbone.weights)


# --- freezing ------------------------------------------------------------------------------------


def test_set_encoder_trainable_changes_trainable_weights():
    model = build("effunet-b0", (32, 32, 3), decoder_widths=(16, 16, 8, 8, 4))
    total, in_encoder = len(model.trainable_weights), len(get_encoder(model).trainable_weights)
    assert 0 < in_encoder < total
    set_encoder_trainable(model, False)
    assert len(model.trainable_weights) == total - in_encoder
    assert not any(w.path.startswith("encoder/") for w in model.trainable_weights)
    assert model.trainable_weights  # the decoder still trains
    set_encoder_trainable(model, True)
    assert len(model.trainable_weights) == total
    with pytest.raises(EffunetError, match="no pretrained encoder"):
        set_encoder_trainable(build("unet", (32, 32, 3), base_filters=4), False)


class Snapshots(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.encoder, self.decoder = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.encoder.append([w.numpy().copy() for w in get_encoder(self.model).weights])
        self.decoder.append([w.numpy().copy() for w in self.model.get_layer("decoder4_conv1").weights])


@pytest.mark.slow  # three traces of the training step: about 20 s on 2 cores
def test_encoder_warmup_freezes_then_unfreezes():
    model = build("effunet-b0", (32, 32, 3), decoder_widths=(16, 16, 8, 8, 4))
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.BinaryCrossentropy(), jit_compile=False)
    before = [w.numpy().copy() for w in get_encoder(model).weights]
    x = images(4)
    y = (x[..., :1] > 127).astype("float32")
    snapshots = Snapshots()
    model.fit(x, y, batch_size=2, epochs=3, verbose=0, callbacks=[EncoderWarmup(freeze_epochs=2), snapshots])
    for epoch in (0, 1):  # frozen: every encoder weight, moving statistics included, unchanged
        for got, want in zip(snapshots.encoder[epoch], before, strict=True):
            np.testing.assert_array_equal(got, want)
    assert not np.array_equal(snapshots.decoder[0][0], snapshots.decoder[1][0])  # the decoder learns
    changed = [not np.array_equal(got, want) for got, want in zip(snapshots.encoder[2], before)]
    assert sum(changed) > len(before) // 2  # unfrozen in epoch 3
    assert get_encoder(model).trainable


def test_encoder_warmup_rejects_negative_epochs():
    with pytest.raises(EffunetError, match="freeze_epochs"):
        EncoderWarmup(-1)


# --- layers, save/load, inference ----------------------------------------------------------------


def test_fused_batch_norm_matches_keras_batch_norm():
    x = tf.constant(np.random.default_rng(0).normal(2, 3, (4, 8, 8, 5)).astype("float32"))
    plain, fused = keras.layers.BatchNormalization(momentum=0.5), FusedBatchNormalization(momentum=0.5)
    plain.build(x.shape)
    fused.build(x.shape)
    randomize(plain)
    fused.set_weights(plain.get_weights())
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y_plain, y_fused = plain(x, training=True), fused(x, training=True)
        loss_plain, loss_fused = tf.reduce_sum(y_plain**2), tf.reduce_sum(y_fused**2)
    np.testing.assert_allclose(y_fused, y_plain, atol=1e-5)
    for got, want in zip(fused.get_weights(), plain.get_weights()):  # moving mean and variance
        np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_allclose(tape.gradient(loss_fused, x), tape.gradient(loss_plain, x), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(fused(x, training=False), plain(x, training=False), atol=1e-5)


def test_backbone_batch_norms_are_fused_with_their_weights():
    model = build("effunet-b0", (32, 32, 3))
    bns = [l for l in model._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)]
    assert bns and all(type(l) is FusedBatchNormalization for l in bns)


def test_batch_norm_momentum_reaches_every_batch_norm_and_the_saved_file(tmp_path):
    model = build("effunet-b0", (32, 32, 3), decoder_widths=(8, 8, 8, 8, 8), batch_norm_momentum=0.9)
    bns = [l for l in model._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)]
    assert len(bns) > 40 and {l.momentum for l in bns} == {0.9}  # encoder's and decoder's
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert {l.momentum for l in loaded._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)} == {0.9}
    default = build("effunet-b0", (32, 32, 3), decoder_widths=(8, 8, 8, 8, 8))
    assert {l.momentum for l in default._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)} == {0.99}
    unet = build("unet", (32, 32, 3), base_filters=4, batch_norm_momentum=0.8)
    assert {l.momentum for l in unet._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)} == {0.8}
    # one training step moves the first moving mean by exactly (1 - momentum) of the batch mean
    stem = next(l for l in model._flatten_layers() if l.name == "stem_bn")
    probe = keras.Model(model.get_layer("encoder").inputs, model.get_layer("encoder").get_layer("stem_conv").output)
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    batch_mean = np.asarray(probe(x)).mean(axis=(0, 1, 2))
    before = np.asarray(stem.moving_mean)
    model(x, training=True)
    np.testing.assert_allclose(np.asarray(stem.moving_mean), 0.9 * before + 0.1 * batch_mean, rtol=1e-4, atol=1e-5)
    with pytest.raises(EffunetError, match="batch_norm_momentum"):
        build("effunet-b0", (32, 32, 3), batch_norm_momentum=1.0)


@pytest.mark.parametrize("name", ["effunet-b0", "resnet50-unet", "unet"])
def test_keras_file_round_trips_in_safe_mode(name, tmp_path):
    kwargs = {"base_filters": 8} if name == "unet" else {}
    model = build(name, (32, 32, 3), **kwargs)
    rng = np.random.default_rng(2)
    for layer in model._flatten_layers():  # batch-norm statistics as after some training
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([gamma, beta, rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 2, variance.shape)])
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    x = images(2)
    expected = model(x, training=False).numpy()
    assert expected.max() - expected.min() > 1e-3  # not a constant output that would hide differences
    np.testing.assert_array_equal(loaded(x, training=False).numpy(), expected)
    assert loaded.name == model.name


def test_make_predict_fn_matches_the_model_and_does_not_retrace_per_batch_size():
    model = build("effunet-b0", (32, 32, 3))
    predict = make_predict_fn(model)
    x = images(3)
    np.testing.assert_allclose(predict(x).numpy(), model(x, training=False).numpy(), atol=1e-5)
    for n in (1, 2, 4, 5):
        assert predict(images(n)).shape == (n, 32, 32, 1)
    assert predict.experimental_get_tracing_count() <= 2


def test_xla_only_on_gpu():
    assert jit_compile_default() is bool(tf.config.list_physical_devices("GPU"))


# --- complexity ----------------------------------------------------------------------------------


def test_flops_of_a_convolution():
    conv = keras.Sequential([keras.Input((16, 24, 3)), keras.layers.Conv2D(8, 3, padding="same")])
    assert count_flops(conv) == 2 * 3 * 3 * 3 * 8 * 16 * 24 + 8 * 16 * 24


def test_flops_without_freezing_equal_the_frozen_graphs_count():
    """Reference: the profiler on the frozen graph (variables as constants), as count_flops once did."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    from tensorflow.python.profiler import model_analyzer, option_builder

    model = build("unet", (32, 32, 3), base_filters=4)
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(
        tf.TensorSpec((1, 32, 32, 3), tf.float32))
    options = option_builder.ProfileOptionBuilder(option_builder.ProfileOptionBuilder.float_operation())
    frozen = model_analyzer.profile(graph=convert_variables_to_constants_v2(concrete).graph,
                                    options=options.with_empty_output().build()).total_float_ops
    assert count_flops(model) == frozen > 0


def test_complexity_scales_with_pixels_and_counts_params():
    small = model_complexity("effunet-b0", (64, 64, 3))
    large = model_complexity("effunet-b0", (128, 128, 3))
    assert small["params"] == large["params"] == build("effunet-b0", (64, 64, 3)).count_params()
    assert small["encoder_params"] == EFFICIENTNET_B0_NOTOP_PARAMS - (320 * 1280 + 4 * 1280)
    assert small["trainable_params"] < small["params"]  # batch-norm statistics are not trainable
    assert 3.9 < large["flops"] / small["flops"] < 4.1


# --- benchmark -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_benchmark_runs_and_prints_ratios():
    if importlib.util.find_spec("segmentation_models_pytorch") is None:
        pytest.skip("the bench extra (torch, segmentation-models-pytorch) is not installed")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_models.py"), "--sizes", "32", "--models",
           "effunet-b0", "--repeats", "1", "--steps", "1", "--warmup", "1", "--isa", "native", "avx2"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=True)
    table_rows = [line for line in result.stdout.splitlines() if line.startswith("| effunet-b0 | 32x32")]
    assert len(table_rows) == 2
    for row, kind in zip(table_rows, ("native", "avx2"), strict=True):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[2] == kind
        assert cells[5].endswith("x") and float(cells[5][:-1]) > 0  # train ratio
        assert cells[8].endswith("x") and float(cells[8][:-1]) > 0  # infer ratio
    limited = next(line for line in result.stdout.splitlines() if line.startswith("CPU kind avx2:"))
    assert "ONEDNN_MAX_CPU_ISA=AVX2" in limited and "torch ATen: AVX2" in limited and "TF oneDNN: Intel AVX2" in limited


@pytest.mark.parametrize("given, expected", [
    (None, None), ("none", None), ("None", None), (" NONE ", None), ("imagenet", "imagenet"),
    ("ImageNet", "imagenet"), ("/w/b0.h5", "/w/b0.h5"),
])
def test_encoder_weights_are_read_in_one_place(given, expected):
    from effunet.models.encoders import normalise_weights

    assert normalise_weights(given) == expected


def test_find_encoder():
    from effunet import models

    assert models.find_encoder(models.build("unet", (32, 32, 3), base_filters=2)) is None
    model = models.build("effunet-b0", (32, 32, 3), encoder_weights="None")
    assert models.find_encoder(model) is models.get_encoder(model) and models.find_encoder(model).name == "encoder"
