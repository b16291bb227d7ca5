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
