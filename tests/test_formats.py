"""Data set formats: your own folder of images and masks or labels, nnU-Net v2 raw data sets, the
checks `effunet check-data` and the prepare step run, and what each format offers downstream."""

import json
import shutil
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import ROOT
from effunet import evaluate
from effunet.config import SCHEMA, validate
from effunet.data import archives, dsb2018, folder, formats, images, nnunet
from effunet.errors import ConfigError, EffunetError
from effunet.layout import PreparedData


def settings_of(block: dict, name: str = "mine") -> dict:
    """A data set block validated by the schema (defaults filled in)."""
    return validate({"datasets": {name: block}}, SCHEMA)["datasets"][name]


def prepared_in(root, fmt: str, region: bool = False, labels=None) -> PreparedData:
    return PreparedData(
        root / "manifest.csv",
        root / "images",
        root / "masks",
        fov=root / "fov" if region else None,
        labels=labels,
        format=fmt,
    )


def prepare(raw, out, block, name="mine", workers=1) -> PreparedData:
    settings = settings_of(block, name)
    entry = formats.get(settings["format"])
    can = formats.Capabilities(entry.name, entry.instances(settings), entry.region(settings), "", None)
    labels = None
    if can.instances:
        labels = out / "labels"
        entry.write_labels(raw, labels, settings, name, workers)
    prepared = prepared_in(out / "variant", entry.name, can.region, labels)
    entry.prepare(raw, labels, prepared, settings, name, workers)
    return prepared


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """A synthetic folder data set with instance labels and regions (effunet synthetic --format folder)."""
    root = tmp_path_factory.mktemp("own") / "data"
    folder.write_synthetic(root, n_images=10, seed=3, annotations="labels", roi=True)
    return root


def copy(own, tmp_path):
    target = tmp_path / "data"
    shutil.copytree(own, target)
    return target


# --- the folder format ---------------------------------------------------------------------------


def test_folder_with_labels_and_roi_prepares_like_the_originals(own, tmp_path):
    prepared = prepare(
        own,
        tmp_path,
        {
            "format": "folder",
            "annotations": "labels",
            "roi": True,
            "image_size": [64, 64],
            "split": {"test_fraction": 0.2, "val_fraction": 0.25},
        },
    )
    table = pd.read_csv(prepared.manifest, dtype={"id": str})
    assert sorted(table["id"]) == [f"img{i:03d}" for i in range(10)]
    assert table["split"].value_counts().to_dict() == {"train": 6, "test": 2, "val": 2}
    for row in table.itertuples():
        original = np.asarray(Image.open(own / "labels" / f"{row.id}.png"))
        np.testing.assert_array_equal(images.read_labels(prepared.label(row.id)), original)
        assert (row.height, row.width) == original.shape
        expected = images.resize_target(original > 0, (64, 64), "hard")
        np.testing.assert_array_equal(np.asarray(Image.open(prepared.mask(row.id))), expected)
        region = np.asarray(Image.open(own / "roi" / f"{row.id}.png")) > 0
        np.testing.assert_array_equal(
            images.read_mask(prepared.region(row.id)), images.resize_target(region, (64, 64), "hard") > 127
        )
        native = formats.native(prepared, row)
        np.testing.assert_array_equal(native.truth, original > 0)
        np.testing.assert_array_equal(native.region, region)
        assert native.labels is not None and native.second_observer is None


def test_folder_masks_any_nonzero_is_foreground_and_16_bit_images_are_scaled(tmp_path):
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for index in range(6):
        gray16 = (rng.integers(0, 65535, (40, 48))).astype(np.uint16)
        Image.fromarray(gray16).save(root / "images" / f"s{index}.tif")
        mask = np.zeros((40, 48), np.uint8)
        mask[5:20, 10:30] = 1  # 0/1 masks: 1 is foreground
        Image.fromarray(mask).save(root / "masks" / f"s{index}.png")
    prepared = prepare(
        root,
        tmp_path,
        {"format": "folder", "image_size": [32, 32], "split": {"test_fraction": 0.3, "val_fraction": 0.3}},
    )
    table = pd.read_csv(prepared.manifest, dtype={"id": str})
    row = next(table.itertuples())
    np.testing.assert_array_equal(
        formats.native(prepared, row).truth, np.asarray(Image.open(root / "masks" / f"{row.id}.png")) == 1
    )
    rgb = images.read_rgb(prepared.image(row.id))
    assert rgb.shape == (32, 32, 3) and rgb.max() > 127  # scaled from 16 bits, not clipped to 255
    assert prepared.labels is None and not (tmp_path / "labels").exists()


def test_split_csv_fixes_the_split(own, tmp_path):
    root = copy(own, tmp_path)
    rows = ["id,split"] + [f"img{i:03d},{'test' if i < 3 else 'val' if i < 5 else 'train'}" for i in range(10)]
    (root / "split.csv").write_text("\n".join(rows) + "\n")
    prepared = prepare(root, tmp_path / "out", {"format": "folder", "annotations": "labels", "image_size": [32, 32]})
    table = pd.read_csv(prepared.manifest, dtype={"id": str}).set_index("id")
    assert table.loc["img000", "split"] == "test" and table.loc["img004", "split"] == "val"
    assert table["split"].value_counts().to_dict() == {"train": 5, "test": 3, "val": 2}


BAD_INPUTS = {
    "unmatched image": (
        lambda r: (r / "labels/img001.png").unlink(),
        "images/img001.png: no label with the stem 'img001'",
    ),
    "unmatched label": (
        lambda r: (r / "images/img002.png").unlink(),
        "labels/img002.png: no image with the stem 'img002'",
    ),
    "duplicate stem": (
        lambda r: shutil.copy(r / "images/img003.png", r / "images/img003.tif"),
        "duplicate image stem 'img003'",
    ),
    "size mismatch": (
        lambda r: Image.new("I;16", (20, 20)).save(r / "labels/img004.png"),
        "labels/img004.png: the annotation is 20x20 but its image",
    ),
    "unreadable": (lambda r: (r / "images/img005.png").write_bytes(b"not a png"), "images/img005.png"),
    "jpeg label": (
        lambda r: Image.open(r / "labels/img006.png").convert("L").save(r / "labels/img006x.jpg"),
        "labels/img006x.jpg: a label must be lossless",
    ),
    "colour label": (
        lambda r: Image.new("RGB", Image.open(r / "images/img007.png").size).save(r / "labels/img007.png"),
        "labels/img007.png: a label image has one channel",
    ),
    "split.csv gap": (
        lambda r: (r / "split.csv").write_text("id,split\nimg000,test\n"),
        "split.csv: 9 image(s) have no split",
    ),
    "split.csv value": (
        lambda r: (r / "split.csv").write_text("id,split\n" + "".join(f"img{i:03d},training\n" for i in range(10))),
        "split 'training' is not one of train, val, test",
    ),
    "empty split": (
        lambda r: (r / "split.csv").write_text(
            "id,split\n" + "".join(f"img{i:03d},{'test' if i < 3 else 'train'}\n" for i in range(10))
        ),
        "the val split is empty",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_every_bad_input_is_named_and_nothing_is_written(own, tmp_path, case):
    break_it, message = BAD_INPUTS[case]
    root = copy(own, tmp_path)
    break_it(root)
    block = {"format": "folder", "annotations": "labels", "image_size": [32, 32]}
    report = folder.check(root, settings_of(block), "mine")
    assert not report.ok and any(message in problem for problem in report.problems), report.problems
    out = tmp_path / "out"
    with pytest.raises(EffunetError, match="fails its checks") as error:
        prepare(root, out, block)
    assert message in str(error.value) and "datasets.mine" in str(error.value)
    assert not (out / "labels").exists() and not (out / "variant").exists()  # nothing written


def test_mask_values_that_are_neither_binary_nor_labels(tmp_path):
    root = tmp_path / "data"
    folder.write_synthetic(root, n_images=4, annotations="labels")
    (root / "labels").rename(root / "masks")  # label images where binary masks belong
    report = folder.check(root, settings_of({"format": "folder"}), "mine")
    assert any("a mask has two values (0 and one other)" in p and "annotations: labels" in p for p in report.problems)
    with pytest.raises(EffunetError, match="no labels/ folder .*/masks exists: set annotations: masks"):
        folder.check(root, settings_of({"format": "folder", "annotations": "labels"}), "mine")


def test_empty_masks_and_small_images_are_counted_not_refused(own, tmp_path):
    root = copy(own, tmp_path)
    Image.fromarray(np.zeros(Image.open(root / "labels/img000.png").size[::-1], np.uint16)).save(
        root / "labels/img000.png"
    )
    report = folder.check(
        root, settings_of({"format": "folder", "annotations": "labels", "image_size": [512, 512]}), "mine"
    )
    assert report.ok, report.problems
    assert any("1 image(s) with an empty mask" in note for note in report.notes)
    assert any("10 image(s) smaller than image_size 512x512" in note for note in report.notes)
    summary = report.summary()
    assert "10 images, 0 problem(s)" in summary and "foreground fraction" in summary and "256/" in summary


def test_check_data_cli_exit_codes_and_messages(own, tmp_path, capsys):
    from effunet.cli import main

    assert main(["check-data", str(own), "--format", "folder", "--annotations", "labels", "--roi"]) == 0
    assert "10 images, 0 problem(s)" in capsys.readouterr().out
    root = copy(own, tmp_path)
    (root / "labels/img001.png").unlink()
    assert main(["check-data", str(root), "--format", "folder", "--annotations", "labels"]) == 1
    assert "no label with the stem 'img001'" in capsys.readouterr().out
    config = tmp_path / "c.yaml"
    config.write_text(
        json.dumps({"datasets": {"cells": {"format": "folder", "source": str(root), "annotations": "labels"}}})
    )
    assert main(["check-data", "--config", str(config)]) == 1
    assert main(["check-data", "--config", str(config), "--dataset", "other"]) == 2
    assert "no data set named 'other'" in capsys.readouterr().err


def test_synthetic_sources_of_the_new_formats_through_fetch(tmp_path):
    from effunet.data.download import fetch

    settings = settings_of(
        {
            "format": "folder",
            "source": "synthetic",
            "annotations": "masks",
            "roi": True,
            "synthetic": {"n_images": 5},
            "split": {"test_fraction": 0.2, "val_fraction": 0.25},
        }
    )
    raw = fetch(
        "cells",
        "synthetic",
        tmp_path / "raw",
        tmp_path / "dl",
        fmt="folder",
        synthetic_options=formats.synthetic_options(settings),
    )
    root = folder.find_root(raw)
    assert len(list((root / "masks").glob("*.png"))) == 5 and len(list((root / "roi").glob("*.png"))) == 5
    assert folder.check(raw, settings, "cells").ok


# --- the nnU-Net format --------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_nnunet_cases_and_channels_become_rgb_and_labels_ts_is_the_test_split(tmp_path, channels):
    root = nnunet.write_synthetic(tmp_path / "Dataset001", n_images=8, n_test=2, channels=channels, seed=1)
    prepared = prepare(
        root, tmp_path / "out", {"format": "nnunet", "image_size": [64, 64], "split": {"val_fraction": 0.2}}
    )
    table = pd.read_csv(prepared.manifest, dtype={"id": str}).set_index("id")
    assert table["split"].value_counts().to_dict() == {"train": 5, "test": 2, "val": 1}
    assert set(table.index[table["split"] == "test"]) == {"nuclei_006", "nuclei_007"}
    row = next(table.reset_index().itertuples())
    native = images.read_rgb(row.image)
    files = sorted((root / ("imagesTs" if row.split == "test" else "imagesTr")).glob(f"{row.id}_*.png"))
    assert len(files) == channels
    for channel in range(3):
        np.testing.assert_array_equal(
            native[..., channel], np.asarray(Image.open(files[channel if channels == 3 else 0]))
        )
    label = np.asarray(Image.open(next(root.rglob(f"labelsT*/{row.id}.png"))))
    np.testing.assert_array_equal(formats.native(prepared, row).truth, label > 0)


def test_nnunet_foreground_labels_choose_the_foreground(tmp_path):
    root = nnunet.write_synthetic(tmp_path / "d", n_images=6, seed=2)
    description = json.loads((root / "dataset.json").read_text())
    description["labels"] = {"background": 0, "nucleus": 1, "border": 2}
    (root / "dataset.json").write_text(json.dumps(description))
    for path in (root / "labelsTr").glob("*.png"):
        values = np.asarray(Image.open(path)).copy()
        values[:, :8] = 2  # a band of label 2
        Image.fromarray(values).save(path)
    prepared = prepare(
        root,
        tmp_path / "out",
        {
            "format": "nnunet",
            "image_size": [32, 32],
            "foreground_labels": [2],
            "split": {"test_fraction": 0.34, "val_fraction": 0.25},
        },
    )
    row = next(pd.read_csv(prepared.manifest, dtype={"id": str}).itertuples())
    values = np.asarray(Image.open(root / "labelsTr" / f"{row.id}.png"))
    np.testing.assert_array_equal(formats.native(prepared, row).truth, values == 2)
    with pytest.raises(EffunetError, match="foreground_labels: 3 is not a label"):
        prepare(root, tmp_path / "out3", {"format": "nnunet", "foreground_labels": [3]})


def test_nnunet_3d_volumes_and_other_channel_counts_are_refused_before_anything_is_written(tmp_path):
    root = nnunet.write_synthetic(tmp_path / "d", n_images=4)
    description = json.loads((root / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps({**description, "file_ending": ".nii.gz"}))
    (root / "imagesTr" / "case_0000.nii.gz").write_bytes(b"\x1f\x8b")
    with pytest.raises(EffunetError, match=r"imagesTr/case_0000.nii.gz: a 3D volume"):
        prepare(root, tmp_path / "out", {"format": "nnunet"})
    assert not (tmp_path / "out").exists()
    two = nnunet.write_synthetic(tmp_path / "two", n_images=4, channels=3)
    for path in (two / "imagesTr").glob("*_0002.png"):
        path.unlink()
    with pytest.raises(EffunetError, match="has 2 channel files; 1 .* or 3 .* are supported"):
        prepare(two, tmp_path / "out2", {"format": "nnunet"})
    assert not (tmp_path / "out2").exists()


# --- the registry and the config ---------------------------------------------------------------


def test_what_each_format_offers():
    def can(block):
        return formats.Capabilities(
            *(
                lambda s: (
                    s["format"],
                    formats.get(s["format"]).instances(s),
                    formats.get(s["format"]).region(s),
                    formats.get(s["format"]).headline(s),
                    formats.get(s["format"]).study,
                )
            )(settings_of(block))
        )

    assert can({"format": "dsb2018"}) == formats.Capabilities("dsb2018", True, False, "per_image_mean", "dsb2018")
    assert can({"format": "drive"}) == formats.Capabilities("drive", False, True, "pooled", "drive")
    assert can({"format": "folder"}) == formats.Capabilities("folder", False, False, "per_image_mean", None)
    assert can(
        {"format": "folder", "annotations": "labels", "roi": True, "headline": "pooled"}
    ) == formats.Capabilities("folder", True, True, "pooled", None)
    assert can({"format": "nnunet"}) == formats.Capabilities("nnunet", False, False, "per_image_mean", None)


def test_data_set_names_formats_and_defaults_in_the_config():
    config = validate(
        {"datasets": {"dsb2018": {"source": "synthetic"}, "cells-2": {"format": "folder", "source": "x"}}}, SCHEMA
    )
    assert config["datasets"]["dsb2018"]["format"] == "dsb2018"
    assert config["datasets"]["cells-2"]["annotations"] == "masks" and config["datasets"]["cells-2"]["roi"] is False
    with pytest.raises(ConfigError, match=r"config key datasets.cells.format: not set"):
        validate({"datasets": {"cells": {"source": "x"}}}, SCHEMA)
    with pytest.raises(ConfigError, match=r"config key datasets.Cells: a data set name is lower-case"):
        validate({"datasets": {"Cells": {"format": "folder", "source": "x"}}}, SCHEMA)
    with pytest.raises(ConfigError, match=r"datasets.cells.annotations"):
        validate({"datasets": {"cells": {"format": "folder", "annotations": "outlines"}}}, SCHEMA)
    with pytest.raises(ConfigError, match=r"datasets.cells.split: the val split of 5 images would be empty"):
        validate(
            {"datasets": {"cells": {"format": "folder", "source": "synthetic", "synthetic": {"n_images": 5}}}}, SCHEMA
        )
    with pytest.raises(ConfigError, match=r"datasets.cells.val_count: unknown key"):
        validate({"datasets": {"cells": {"format": "folder", "val_count": 2}}}, SCHEMA)
    # a data set without instance labels gets no boundary recipe
    with pytest.raises(
        ConfigError, match=r"recipes.b.instances: instances 'boundary' needs instance labels, and cells"
    ):
        validate(
            {"datasets": {"cells": {"format": "folder", "source": "x"}}, "recipes": {"b": {"instances": "boundary"}}},
            SCHEMA,
        )
    validate(
        {
            "datasets": {"cells": {"format": "folder", "source": "x", "annotations": "labels"}},
            "recipes": {"b": {"instances": "boundary"}},
        },
        SCHEMA,
    )


def test_shipped_configs_say_no_format_and_keep_their_historical_ones():
    import yaml

    for path in sorted((ROOT / "config").glob("*.yaml")) + [ROOT / "config.yaml"]:
        config = validate(yaml.safe_load(path.read_text()), SCHEMA)
        for name, settings in config["datasets"].items():
            assert settings["format"] == formats.default_format(name, {}) or settings["format"] in formats.names()


# --- the same numbers as the dsb2018 format --------------------------------------------------------


def test_folder_and_nnunet_copies_of_dsb2018_give_the_same_prepared_files_and_scores(tmp_path, dsb_zip):
    raw = tmp_path / "raw"
    archives.extract(dsb_zip, raw)
    split = {"test_fraction": 0.25, "val_fraction": 0.34, "seed": 5}
    reference = prepare(raw, tmp_path / "dsb", {"format": "dsb2018", "image_size": [32, 32], "split": split})
    table = pd.read_csv(reference.manifest, dtype={"id": str})
    splits = dict(zip(table["id"], table["split"]))
    own = dsb2018.export(raw, tmp_path / "own", "folder", splits)
    nn = dsb2018.export(raw, tmp_path / "nn", "nnunet", splits)
    as_folder = prepare(own, tmp_path / "f", {"format": "folder", "annotations": "labels", "image_size": [32, 32]})
    as_nnunet = prepare(nn, tmp_path / "n", {"format": "nnunet", "image_size": [32, 32], "split": split})
    nn_table = pd.read_csv(as_nnunet.manifest, dtype={"id": str}).set_index("id")
    assert (nn_table.loc[table["id"], "split"] == "test").tolist() == (table["split"] == "test").tolist()
    for other in (as_folder, as_nnunet):
        other_table = pd.read_csv(other.manifest, dtype={"id": str})
        assert sorted(other_table["id"]) == sorted(table["id"])
        for sample in table["id"]:
            for name in ("image", "mask"):
                np.testing.assert_array_equal(
                    np.asarray(Image.open(getattr(reference, name)(sample))),
                    np.asarray(Image.open(getattr(other, name)(sample))),
                    err_msg=f"{name} {sample}",
                )
    pd.testing.assert_series_equal(
        pd.read_csv(as_folder.manifest, dtype={"id": str}).set_index("id")["split"], table.set_index("id")["split"]
    )
    # the truth evaluation scores against, and the protocol ceiling (a model that predicts the truth)
    from effunet.reference import protocol_ceiling

    cases = {
        name: evaluate.load_cases(prepared)
        for name, prepared in (("dsb2018", reference), ("folder", as_folder), ("nnunet", as_nnunet))
    }
    ceiling = {name: protocol_ceiling(sorted(found, key=lambda c: c.id)) for name, found in cases.items()}
    for name in ("folder", "nnunet"):
        for weighting in ("pooled", "per_image_mean"):
            for metric in ("dice", "iou", "accuracy"):
                assert ceiling[name][weighting][metric] == ceiling["dsb2018"][weighting][metric], (
                    name,
                    weighting,
                    metric,
                )
    assert ceiling["folder"]["per_image_mean"]["instance_ap"] == ceiling["dsb2018"]["per_image_mean"]["instance_ap"]
    assert "instance_ap" not in ceiling["nnunet"]["per_image_mean"]
    # a zip of the folder is a source too
    with zipfile.ZipFile(tmp_path / "own.zip", "w") as archive:
        for path in own.rglob("*"):
            archive.write(path, f"top/{path.relative_to(own)}")
    archives.extract(tmp_path / "own.zip", tmp_path / "x")
    assert folder.check(tmp_path / "x", settings_of({"format": "folder", "annotations": "labels"}), "mine").ok


# --- through the workflow ----------------------------------------------------------------------------


@pytest.mark.slow
def test_own_data_through_the_workflow_two_folder_data_sets_side_by_side(tmp_path):
    """The README's own-data flow: effunet synthetic writes the folders, check-data passes, and the
    shipped config/own-data.yaml (trimmed to one seed, one model and 2 epochs, plus a second data set of
    the same format with binary masks and a region) trains, evaluates and compares both."""
    import subprocess
    import sys

    import yaml

    from effunet.cli import main
    from test_workflow import snakemake

    assert main(["synthetic", str(tmp_path / "own-data"), "--n-images", "10"]) == 0
    assert (
        main(
            ["synthetic", str(tmp_path / "other"), "--n-images", "10", "--annotations", "masks", "--roi", "--seed", "1"]
        )
        == 0
    )
    config = yaml.safe_load((ROOT / "config/own-data.yaml").read_text())
    config.update(seeds=[0], models=["unet"])
    cells = config["datasets"]["cells"]
    cells.update(image_size=[32, 32], train={"max_epochs": 2, "patience": 2, "batch_size": 4})
    config["datasets"]["cells-roi"] = {**cells, "source": "other", "annotations": "masks", "roi": True}
    config["train"]["checkpoint_every_s"] = 0
    path = tmp_path / "own.yaml"
    path.write_text(yaml.safe_dump(config))
    check = subprocess.run(
        [sys.executable, "-m", "effunet.cli", "check-data", "--config", str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "cells: 10 images, 0 problem(s)" in check.stdout and "cells-roi: 10 images" in check.stdout
    result = snakemake(tmp_path, "--configfile", str(path), "--resources", "gpu=2")
    assert result.returncode == 0, result.stderr[-3000:]
    results = tmp_path / "results/own-data"
    table = pd.read_csv(results / "comparison.csv")
    assert set(table["dataset"]) == {"cells", "cells-roi"}
    runs = table[table["kind"] != "reference"].set_index("dataset")
    assert runs.loc["cells", "instance_ap_mean"] >= 0  # labels: instance AP
    assert "instance_ap_mean" not in runs.columns or pd.isna(runs.loc["cells-roi", "instance_ap_mean"])
    # the region data set is scored inside roi/ only: fewer pixels than the images have
    metrics = json.loads((results / "cells-roi/unet/study/seed0/eval/metrics.json").read_text())
    plain = json.loads((results / "cells/unet/study/seed0/eval/metrics.json").read_text())
    manifest = pd.read_csv(next((tmp_path / "resources/prepared/cells-roi").rglob("manifest.csv")))
    test = manifest[manifest["split"] == "test"]
    all_pixels = int((test["height"] * test["width"]).sum())
    scored = metrics["splits"]["test"]["native"]["pooled"]["pixels"]
    assert 0.5 * all_pixels < scored < all_pixels
    assert "instance_ap" in plain["splits"]["test"]["native"]["per_image_mean"]
    assert "instance_ap" not in metrics["splits"]["test"]["native"]["per_image_mean"]
    assert "cells" in (results / "comparison.md").read_text() and "cells-roi" in (results / "comparison.md").read_text()


def test_a_3d_nnunet_folder_is_refused_at_start_up_and_jpeg_endings_are_refused(tmp_path):
    root = nnunet.write_synthetic(tmp_path / "d", n_images=4)
    description = json.loads((root / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps({**description, "file_ending": ".nii.gz"}))
    with pytest.raises(ConfigError, match=r"config key datasets.scans.source: .*3D volume"):
        validate({"datasets": {"scans": {"format": "nnunet", "source": str(root)}}}, SCHEMA)
    (root / "dataset.json").write_text(json.dumps({**description, "file_ending": ".jpg"}))
    with pytest.raises(ConfigError, match=r"file_ending '.jpg' is not"):
        validate({"datasets": {"scans": {"format": "nnunet", "source": str(root)}}}, SCHEMA)


def test_configs_that_prepare_a_folder_differently_never_share_its_prepared_files():
    from effunet.layout import variant_tag

    masks = settings_of({"format": "folder", "source": "x"})
    tags = {
        variant_tag(masks),
        variant_tag(settings_of({"format": "folder", "source": "x", "annotations": "labels"})),
        variant_tag(settings_of({"format": "folder", "source": "x", "roi": True})),
        variant_tag(settings_of({"format": "folder", "source": "x", "targets": "soft"})),
        variant_tag(settings_of({"format": "nnunet", "source": "x", "foreground_labels": [2]})),
        variant_tag(settings_of({"format": "nnunet", "source": "x"})),
    }
    assert len(tags) == 6
    assert variant_tag(masks) == variant_tag(
        settings_of({"format": "folder", "source": "y", "headline": "pooled", "train": {"max_epochs": 3}})
    )
    # the study's data sets keep their paths: the split alone names their variant
    assert variant_tag(settings_of({"source": "x"}, "dsb2018")).endswith(
        variant_tag({"image_size": [128, 128], "split": settings_of({"source": "x"}, "dsb2018")["split"]})[-8:]
    )
