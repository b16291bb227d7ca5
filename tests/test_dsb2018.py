import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from effunet.data import archives, dsb2018, images
from effunet.errors import EffunetError


@pytest.fixture
def raw(tmp_path, dsb_zip):
    archives.extract(dsb_zip, tmp_path / "raw")
    return tmp_path / "raw"


def union_of_masks(sample):
    return np.logical_or.reduce([np.asarray(Image.open(m)) > 0 for m in sample.masks])


def test_find_samples_reads_the_original_layout(raw):
    samples = dsb2018.find_samples(raw)
    assert len(samples) == 8
    for sample in samples:
        assert sample.image.name == f"{sample.id}.png" and len(sample.masks) >= 2


def test_merged_labels_are_the_masks_one_id_each(raw):
    for sample in dsb2018.find_samples(raw):
        labels = dsb2018.merge_sample(sample)
        assert labels.dtype == np.uint16
        np.testing.assert_array_equal(labels > 0, union_of_masks(sample))
        for label, mask_path in enumerate(sample.masks, start=1):
            np.testing.assert_array_equal(labels == label, np.asarray(Image.open(mask_path)) > 0)


def test_touching_nuclei_keep_separate_ids(raw):
    """Nuclei that touch merge in the binary mask but stay apart in the label image."""
    from scipy import ndimage

    touching = 0
    for sample in dsb2018.find_samples(raw):
        labels = dsb2018.merge_sample(sample)
        components = ndimage.label(labels > 0)[1]
        touching += (labels.max() - components)
    assert touching > 0


def test_merge_then_resize_writes_pngs_and_manifest(raw, tmp_path):
    assert dsb2018.merge_masks(raw, tmp_path / "labels", workers=2) == 8
    dsb2018.resize(raw, tmp_path / "labels", tmp_path / "images", tmp_path / "masks",
                   tmp_path / "manifest.csv", size=(64, 96), test_fraction=0.25, val_fraction=0.34,
                   seed=1, workers=2)
    table = pd.read_csv(tmp_path / "manifest.csv", dtype={"id": str})
    assert list(table.columns[:5]) == ["id", "split", "height", "width", "image"]
    assert table["split"].value_counts().to_dict() == {"train": 4, "test": 2, "val": 2}
    for row in table.itertuples():
        image = Image.open(tmp_path / "images" / f"{row.id}.png")
        mask = np.asarray(Image.open(tmp_path / "masks" / f"{row.id}.png"))
        labels = images.read_labels(tmp_path / "labels" / f"{row.id}.png")
        assert image.mode == "RGB" and image.size == (96, 64)
        assert mask.shape == (64, 96) and set(np.unique(mask)) <= {0, 255}
        assert labels.shape == (row.height, row.width) and labels.max() == row.nuclei
        np.testing.assert_array_equal(mask, images.resize_mask(labels > 0, (64, 96)))


def test_split_is_seeded_and_stable(raw, tmp_path):
    dsb2018.merge_masks(raw, tmp_path / "labels")
    splits = []
    for attempt in range(2):
        manifest = tmp_path / f"m{attempt}.csv"
        dsb2018.resize(raw, tmp_path / "labels", tmp_path / "i", tmp_path / "k", manifest, (32, 32),
                       0.25, 0.2, seed=7)
        splits.append(pd.read_csv(manifest)[["id", "split"]])
    pd.testing.assert_frame_equal(splits[0], splits[1])


def test_mask_size_mismatch_names_both_files(raw, tmp_path):
    sample = dsb2018.find_samples(raw)[0]
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(sample.masks[1])
    with pytest.raises(EffunetError, match=f"mask .*{sample.masks[1].name} is 12x10 but its image .*{sample.id}.png"):
        dsb2018.merge_masks(raw, tmp_path / "labels", workers=2)
    assert not (tmp_path / "labels").exists()


def test_corrupt_mask_names_the_file(raw, tmp_path):
    sample = dsb2018.find_samples(raw)[3]
    sample.masks[0].write_bytes(sample.masks[0].read_bytes()[:40])
    with pytest.raises(EffunetError, match=sample.masks[0].name):
        dsb2018.merge_masks(raw, tmp_path / "labels")
    assert not (tmp_path / "labels").exists()


def test_corrupt_image_fails_resize_without_partial_output(raw, tmp_path):
    dsb2018.merge_masks(raw, tmp_path / "labels")
    sample = dsb2018.find_samples(raw)[2]
    sample.image.write_bytes(sample.image.read_bytes()[:100])
    with pytest.raises(EffunetError, match=f"{sample.id}.png"):
        dsb2018.resize(raw, tmp_path / "labels", tmp_path / "images", tmp_path / "masks",
                       tmp_path / "manifest.csv", (32, 32), 0.1, 0.1, 0, workers=2)
    assert not any((tmp_path / name).exists() for name in ("images", "masks", "manifest.csv"))


def test_image_folder_without_masks_is_named(raw):
    sample = dsb2018.find_samples(raw)[0]
    shutil.rmtree(sample.image.parent.parent / "masks")
    with pytest.raises(EffunetError, match=f"image folder .*{sample.id} has no masks"):
        dsb2018.find_samples(raw)


def test_no_samples_at_all(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EffunetError, match="no DSB2018 samples"):
        dsb2018.find_samples(tmp_path / "empty")
