"""The data half on the real BBBC038 stage1_train.zip, through the Snakemake workflow.

Enabled by EFFUNET_DSB2018_ZIP (the path of stage1_train.zip), which .ci/run sets when
../shared/data exists; skipped with that reason otherwise.
"""

import io
import os
import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from effunet.data import images
from test_workflow import configured_paths, snakemake, write_config

ZIP = os.environ.get("EFFUNET_DSB2018_ZIP")
SHA256 = "eaa2f0f8d1ee2978aeb581604b93e4facce6aeca79ead3a581112bcd2e7b00ac"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.realdata,
    pytest.mark.skipif(not ZIP or not Path(ZIP).is_file(),
                       reason="set EFFUNET_DSB2018_ZIP to the real stage1_train.zip to run"),
]


def masks_by_image(archive: zipfile.ZipFile) -> dict[str, list[str]]:
    masks = defaultdict(list)
    for name in archive.namelist():
        parts = name.split("/")
        if len(parts) == 3 and parts[1] == "masks" and parts[2].endswith(".png"):
            masks[parts[0]].append(name)
    return masks


def test_real_dsb2018_data_half(tmp_path):
    config = write_config(tmp_path / "real.yaml", {"datasets": {"dsb2018": {"source": ZIP, "sha256": SHA256}}})
    prepared = configured_paths(config)[1]("dsb2018")
    result = snakemake(tmp_path, str(prepared.manifest), "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(tmp_path / prepared.manifest, dtype={"id": str})
    assert len(table) == 670 and table["id"].is_unique
    assert table["split"].value_counts().to_dict() == {"train": 543, "test": 67, "val": 60}

    with zipfile.ZipFile(ZIP) as archive:
        masks = masks_by_image(archive)
        assert sum(len(m) for m in masks.values()) == 29461
        for row in table.itertuples():
            original = Image.open(io.BytesIO(archive.read(f"{row.id}/images/{row.id}.png")))
            assert (row.height, row.width) == (original.height, original.width)
            union = np.zeros((row.height, row.width), bool)
            for name in masks[row.id]:
                union |= np.asarray(Image.open(io.BytesIO(archive.read(name)))) > 0
            labels = images.read_labels(tmp_path / prepared.label(row.id))
            np.testing.assert_array_equal(labels > 0, union, err_msg=row.id)
            assert labels.max() == len(masks[row.id]) == row.nuclei
            image = Image.open(tmp_path / prepared.image(row.id))
            assert image.mode == "RGB" and image.size == (128, 128)
            mask = np.asarray(Image.open(tmp_path / prepared.mask(row.id)))
            np.testing.assert_array_equal(mask, images.resize_mask(union, (128, 128)), err_msg=row.id)


def test_real_dsb2018_as_a_folder_and_an_nnunet_data_set_prepares_and_scores_the_same(tmp_path):
    """The real stage1_train.zip in the folder layout (labels) and the nnU-Net layout, with the dsb2018
    format's split: identical prepared images and masks, and identical scores of the protocol ceiling
    (the truth through the 128x128 protocol, scored like a model) on the 67 test images."""
    from effunet import evaluate
    from effunet.config import SCHEMA, validate
    from effunet.data import archives, dsb2018, formats
    from effunet.layout import PreparedData
    from effunet.reference import protocol_ceiling

    archives.extract(Path(ZIP), tmp_path / "raw")
    raws = {"dsb2018": tmp_path / "raw"}
    blocks = {"dsb2018": {"format": "dsb2018"}, "folder": {"format": "folder", "annotations": "labels"},
              "nnunet": {"format": "nnunet"}}
    prepared = {}
    for name, block in blocks.items():
        settings = validate({"datasets": {name: block}}, SCHEMA)["datasets"][name]
        if name == "folder":
            table = pd.read_csv(prepared["dsb2018"].manifest, dtype={"id": str})
            splits = dict(zip(table["id"], table["split"]))
            raws["folder"] = dsb2018.export(raws["dsb2018"], tmp_path / "folder", "folder", splits, workers=2)
            raws["nnunet"] = dsb2018.export(raws["dsb2018"], tmp_path / "nnunet", "nnunet", splits, workers=2)
        entry, out = formats.get(name), tmp_path / f"out-{name}"
        labels = out / "labels" if entry.instances(settings) else None
        prepared[name] = PreparedData(out / "manifest.csv", out / "images", out / "masks", labels=labels, format=name)
        if labels is not None:
            entry.write_labels(raws[name], labels, settings, name, 2)
        entry.prepare(raws[name], labels, prepared[name], settings, name, 2)
    tables = {name: pd.read_csv(p.manifest, dtype={"id": str}).set_index("id") for name, p in prepared.items()}
    assert len(tables["folder"]) == len(tables["nnunet"]) == 670
    assert tables["folder"]["split"].equals(tables["dsb2018"]["split"])
    test = sorted(tables["dsb2018"].index[tables["dsb2018"]["split"] == "test"])
    assert sorted(tables["nnunet"].index[tables["nnunet"]["split"] == "test"]) == test and len(test) == 67
    for sample in tables["dsb2018"].index:
        for name in ("folder", "nnunet"):
            for kind in ("image", "mask"):
                np.testing.assert_array_equal(images.read_rgb(getattr(prepared["dsb2018"], kind)(sample)),
                                              images.read_rgb(getattr(prepared[name], kind)(sample)),
                                              err_msg=f"{name} {kind} {sample}")
    scores = {}
    for name, data in prepared.items():
        cases = sorted((c for c in evaluate.load_cases(data) if c.split == "test"), key=lambda c: c.id)
        scores[name] = protocol_ceiling(cases)
    for name in ("folder", "nnunet"):
        for weighting in ("pooled", "per_image_mean"):
            for metric in ("dice", "iou", "accuracy", "sensitivity", "precision"):
                assert scores[name][weighting][metric] == scores["dsb2018"][weighting][metric], (name, weighting, metric)
    for metric in ("instance_ap", "instance_ap_split"):
        assert scores["folder"]["per_image_mean"][metric] == scores["dsb2018"]["per_image_mean"][metric]
    assert "instance_ap" not in scores["nnunet"]["per_image_mean"]  # a label map has no instances
