"""Instance separation (`train.instances: boundary`): the boundary target, the two-channel models and
loss, the marker-controlled watershed, the DRIVE refusal, and a tiny run trained and evaluated with it."""

import json

import numpy as np
import pandas as pd
import pytest

from effunet import metrics
from effunet.config import check_instances
from conftest import prepare_synthetic_dsb2018
from effunet.errors import ConfigError
from effunet.layout import PreparedData
from effunet.training import instances


def squares(size=32):
    """Two touching 8x8 squares (labels 1 and 2, meeting between columns 11 and 12) and a lone 4x4 one."""
    labels = np.zeros((size, size), np.uint16)
    labels[8:16, 4:12] = 1
    labels[8:16, 12:20] = 2
    labels[24:28, 24:28] = 3
    return labels


def band(rows, cols):
    """Pixels within one pixel (8-neighbourhood) of the outline of the filled rectangle rows x cols
    (inclusive ranges): the ring just outside it and the ring just inside it."""
    out = np.zeros((32, 32), bool)
    out[rows[0] - 1 : rows[1] + 2, cols[0] - 1 : cols[1] + 2] = True
    out[rows[0] + 1 : rows[1], cols[0] + 1 : cols[1]] = False
    return out


def test_boundary_target_of_two_touching_squares_is_the_band_around_their_outlines():
    target = instances.boundary_target(squares(), (32, 32))  # native = training size: no resizing
    assert set(np.unique(target)) == {0, 255}
    expected = band((8, 15), (4, 11)) | band((8, 15), (12, 19)) | band((24, 27), (24, 27))
    np.testing.assert_array_equal(target == 255, expected)
    # the touching zone: both columns beside the contact line, from one row above to one below
    assert (target[7:17, 11:13] == 255).all()
    assert not target[9:15, 5:11].any() and not target[9:15, 13:19].any()  # the cores stay clear


def test_boundary_target_is_width_in_training_pixels_whatever_the_native_size():
    small = squares()
    native = np.kron(small, np.ones((2, 2), small.dtype))  # the same nuclei at twice the size
    np.testing.assert_array_equal(
        instances.boundary_target(native, (32, 32)), instances.boundary_target(small, (32, 32))
    )
    tall = np.kron(small, np.ones((3, 1), small.dtype))  # anisotropic: 96x32 squashed to 32x32
    np.testing.assert_array_equal(instances.boundary_target(tall, (32, 32)), instances.boundary_target(small, (32, 32)))


def test_boundary_map_ignores_the_image_edge_and_marks_gaps_between_almost_touching_nuclei():
    labels = np.zeros((10, 10), np.uint16)
    labels[:, :4] = 1  # touches the image edge on three sides
    labels[:, 5:] = 2  # one background column between them
    marked = instances.boundary_map(labels, (1, 1))
    np.testing.assert_array_equal(np.nonzero(marked.any(axis=0))[0], [3, 4, 5])  # borders and the gap
    assert marked[:, 3:6].all() and not marked[:, :3].any() and not marked[:, 6:].any()


def test_boundary_channel_is_refused_without_instance_labels(tmp_path):
    with pytest.raises(ConfigError, match="train.instances"):
        instances.add_targets(
            ((None, np.zeros((1, 32, 32, 1))),),
            PreparedData(tmp_path / "m.csv", tmp_path, tmp_path),
            "boundary",
            splits=("train",),
        )
    with pytest.raises(ConfigError, match="train.instances"):
        instances.output_channels("contours")


def discs(touching: bool):
    """Foreground probability of two discs of radius 10 (or one) and a boundary map that is high on
    every rim and on the line between the discs, as a model trained on the target would draw them."""
    rows, cols = np.mgrid[:48, :64]
    centres = [(24, 20), (24, 38)] if touching else [(24, 30)]
    inside = [np.hypot(rows - r, cols - c) <= 10 for r, c in centres]
    truth = np.zeros((48, 64), np.int32)
    for label, disc in enumerate(inside, start=1):
        truth[disc & (truth == 0)] = label
    foreground = np.where(truth > 0, 0.95, 0.05)
    rim = instances.boundary_map(truth.astype(np.uint16), (1, 1))
    boundary = np.where(rim, 0.8, 0.1)
    return truth, foreground, boundary


def test_watershed_splits_two_touching_discs_into_exactly_two():
    truth, foreground, boundary = discs(touching=True)
    assert metrics.label_components(foreground > 0.5).max() == 1  # connected components merge them
    decoded = metrics.watershed_instances(foreground, boundary)
    assert decoded.max() == 2
    assert ((decoded > 0) == (truth > 0)).all()  # every foreground pixel labelled, none outside
    precisions = metrics.instance_precisions(truth, decoded)
    assert precisions[:8].tolist() == [1.0] * 8  # both discs matched at IoU > 0.85


def test_watershed_leaves_a_single_disc_whole_and_keeps_nuclei_without_a_core():
    truth, foreground, boundary = discs(touching=False)
    np.testing.assert_array_equal(metrics.watershed_instances(foreground, boundary), truth)
    no_core = metrics.watershed_instances(foreground, np.full_like(boundary, 0.9))  # all boundary: no marker
    np.testing.assert_array_equal(no_core, truth)
    assert metrics.watershed_instances(np.zeros((8, 8)), np.zeros((8, 8))).max() == 0


def test_the_protocol_ceiling_decodes_the_true_boundary_target_and_separates_touching_nuclei(tmp_path):
    """The synthetic nuclei touch in clumps: connected components of the true mask merge them, the
    true boundary target decoded by the watershed separates most of them (a perfect two-channel model)."""
    from effunet import reference

    work = tmp_path
    prepare_synthetic_dsb2018(work, (128, 128), n_images=6, seed=4, test_fraction=0.5, val_fraction=0.34)
    ceiling = reference.reference(PreparedData.in_folder(work / "p", "dsb2018"), "dsb2018", work / "r.json")
    mean = ceiling["protocol_ceiling"]["per_image_mean"]
    assert mean["instance_ap_watershed"] > mean["instance_ap"] + 0.3
    assert (
        abs(mean["predicted_objects_watershed"] - mean["true_objects"])
        < abs(mean["predicted_objects"] - mean["true_objects"]) / 2
    )


def test_watershed_cuts_on_the_ridge_of_the_boundary_map():
    """Two markers in a 1-px-high bar: the cut follows the boundary ridge, not the midpoint."""
    foreground = np.ones((1, 20))
    boundary = np.full((1, 20), 0.1)
    boundary[0, 1:15] = 0.6
    boundary[0, 13] = 0.9  # the ridge, off centre
    decoded = metrics.watershed_instances(foreground, boundary)
    np.testing.assert_array_equal(decoded[0], [1] * 13 + [2] * 7)


def test_watershed_matches_scikit_image_on_random_maps():
    """Reference: scikit-image's watershed (markers, mask) on a boundary map without ties."""
    from scipy import ndimage
    from skimage import segmentation  # the test extra installs it

    rng = np.random.default_rng(3)
    truth, foreground, _ = discs(touching=True)
    boundary = np.where(instances.boundary_map(truth.astype(np.uint16), (1, 1)), 0.8, 0.1)
    boundary = boundary + rng.uniform(0, 0.05, boundary.shape)
    mask = foreground > 0.5
    markers, _ = ndimage.label(mask & (boundary < 0.5), structure=np.ones((3, 3)))
    reference = segmentation.watershed(np.round(boundary * 64), markers, mask=mask, connectivity=2)
    ours = metrics.watershed_instances(foreground, boundary, levels=64)
    assert metrics.instance_ap(reference.astype(np.int32), ours) == 1.0


@pytest.mark.slow
def test_two_channel_models_build_predict_and_count_flops(tmp_path):
    from effunet import models
    from effunet.predict import Predictor

    for name, options in (("unet", {"base_filters": 2}), ("effunet-b0", {})):
        one = models.build(name, (32, 32, 3), **options)
        two = models.build(name, (32, 32, 3), channels=2, **options)
        assert one.output_shape == (None, 32, 32, 1) and two.output_shape == (None, 32, 32, 2)
        head_inputs = two.get_layer("mask").input.shape[-1]
        assert two.count_params() - one.count_params() == head_inputs + 1  # one more 1x1 filter and bias
        assert models.count_flops(two) > models.count_flops(one) > 0
    two.save(tmp_path / "m.keras")
    predictor = Predictor(tmp_path / "m.keras")
    batch = np.zeros((3, 32, 32, 3), np.uint8)
    assert predictor.outputs(batch).shape == (3, 32, 32, 2)
    np.testing.assert_array_equal(predictor.probabilities(batch), predictor.outputs(batch)[..., 0])
    assert predictor.native(np.zeros((50, 70, 3), np.uint8)).shape == (50, 70)


def test_channel_loss_is_the_recipes_loss_per_channel_and_metrics_read_the_foreground(tmp_path):
    from effunet.training import losses

    rng = np.random.default_rng(0)
    truth = (rng.random((2, 8, 8, 2)) > 0.6).astype(np.float32)
    predicted = rng.uniform(0.05, 0.95, (2, 8, 8, 2)).astype(np.float32)

    def bce(t, p):
        return float(np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p))))

    expected = bce(truth[..., 0], predicted[..., 0]) + instances.BOUNDARY_WEIGHT * bce(truth[..., 1], predicted[..., 1])
    assert float(instances.training_loss("bce", "boundary")(truth, predicted)) == pytest.approx(expected, rel=1e-5)
    assert isinstance(instances.training_loss("bce", "none"), type(losses.make_loss("bce")))
    for metric in losses.make_metrics():
        metric.update_state(truth, predicted)
        alone = type(metric)()
        alone.update_state(truth[..., :1], predicted[..., :1])
        assert float(metric.result()) == pytest.approx(float(alone.result())), metric.name
    # a checkpoint (compiled model) keeps the loss: resume rebuilds it from the .keras file
    import keras

    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 1, activation="sigmoid")])
    model.compile(loss=instances.training_loss("bce+dice", "boundary"))
    model.save(tmp_path / "c.keras")
    loaded = keras.models.load_model(tmp_path / "c.keras", compile=True).loss
    assert isinstance(loaded, losses.ChannelLoss) and (loaded.loss, loaded.boundary_weight) == ("bce+dice", 1.0)


def test_instances_are_refused_for_drive_naming_the_key():
    def config(train=None, drive_train=None, recipes=None, drive_source="synthetic"):
        made = {
            "train": {"instances": "none", **(train or {})},
            "datasets": {
                "dsb2018": {"format": "dsb2018", "source": "synthetic", "train": {}},
                "drive": {"format": "drive", "source": drive_source, "train": drive_train or {}},
            },
        }
        if recipes is not None:
            made["recipes"] = recipes
        return made

    with pytest.raises(ConfigError, match=r"config key train\.instances: .*drive \(DRIVE\) has none"):
        check_instances(config(train={"instances": "boundary"}))
    with pytest.raises(ConfigError, match=r"config key datasets\.drive\.train\.instances"):
        check_instances(config(drive_train={"instances": "boundary"}))
    with pytest.raises(ConfigError, match=r"config key recipes\.nuclei\.instances"):
        check_instances(config(recipes={"study": {}, "nuclei": {"instances": "boundary"}}))
    check_instances(config(train={"instances": "boundary"}, drive_train={"instances": "none"}))
    check_instances(config(train={"instances": "boundary"}, drive_source=None))  # DRIVE skipped
    check_instances(config(train={"instances": "boundary"}, recipes={"a": {"instances": "none"}}))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    folder = prepare_synthetic_dsb2018(
        tmp_path_factory.mktemp("dsb"), n_images=10, seed=4, test_fraction=0.2, val_fraction=0.25
    )
    return PreparedData.in_folder(folder, "dsb2018")


def test_strong_augmentation_keeps_the_boundary_channel_in_both_pipelines(prepared):
    """The modern recipe's sampled batches (tf.data and NumPy) carry both target channels, the same."""
    from effunet.training import dataset

    data = dataset.load_split(prepared, "train"), dataset.load_split(prepared, "val")
    (images, masks), _ = instances.add_targets(data, prepared, "boundary")
    batches = {
        pipeline: list(dataset.make_dataset(images, masks, 4, seed=1, epoch=2, augment="strong", pipeline=pipeline))
        for pipeline in ("tf.data", "numpy")
    }
    assert len(batches["tf.data"]) == len(batches["numpy"])
    for (tf_images, tf_targets), (np_images, np_targets) in zip(batches["tf.data"], batches["numpy"], strict=True):
        assert tf_targets.shape[-1] == 2 and tuple(tf_targets.shape[1:3]) == masks.shape[1:3]
        np.testing.assert_array_equal(np.asarray(tf_targets), np_targets)
        np.testing.assert_array_equal(np.asarray(tf_images), np_images)


@pytest.mark.slow
@pytest.mark.parametrize(
    "recipe",
    [{}, {"augment": "strong", "loss": "bce+dice", "lr_schedule": "cosine", "warmup_epochs": 1}],
    ids=["study", "modern"],
)
def test_a_tiny_model_with_boundaries_trains_and_is_evaluated_with_the_watershed_column(prepared, tmp_path, recipe):
    import keras

    from effunet import evaluate
    from effunet.training import dataset, loop

    data = dataset.load_split(prepared, "train"), dataset.load_split(prepared, "val")
    (_, masks), _ = instances.add_targets(data, prepared, "boundary")
    assert masks.shape[-1] == 2 and masks[..., 1].max() == 255 and (masks[..., 1] > 0).mean() < 0.5
    settings = loop.Settings(
        max_epochs=1,
        batch_size=4,
        encoder_weights="none",
        instances="boundary",
        model_options={"base_filters": 2},
        **recipe,
    )
    outputs = loop.Outputs(tmp_path / "model.keras", tmp_path / "history.csv", tmp_path / "run.json", tmp_path / "c")
    summary = loop.train(prepared, "unet", 0, settings, outputs)
    assert json.loads(outputs.run.read_text())["instances"] == "boundary" and summary["flops"] > 0
    assert keras.models.load_model(outputs.model).output_shape[-1] == 2
    history = pd.read_csv(outputs.history)
    assert np.isfinite(history[["loss", "val_loss", "dice", "val_dice"]].to_numpy()).all()
    result = evaluate.evaluate(
        outputs.model,
        prepared,
        tmp_path / "metrics.json",
        tmp_path / "per_image.csv",
        tmp_path / "examples.npz",
        run_json=outputs.run,
    )
    test = result["splits"]["test"]["native"]["per_image_mean"]
    assert {"instance_ap", "instance_ap_split", "instance_ap_watershed"} <= set(test)
    rows = pd.read_csv(tmp_path / "per_image.csv")
    native = rows[rows.resolution == "native"]
    assert native["instance_ap_watershed"].between(0, 1).all() and native["predicted_objects_watershed"].ge(0).all()
    assert "test_instance_ap_watershed_image_mean" in evaluate.tracked_metrics(result)
