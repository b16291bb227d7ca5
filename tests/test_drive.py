import numpy as np
import pandas as pd
import pytest
from PIL import Image

from effunet.data import archives, drive
from effunet.errors import EffunetError


@pytest.fixture
def raw(tmp_path, drive_zip):
    archives.extract(drive_zip, tmp_path / "raw")
    return tmp_path / "raw"


def convert(raw, out, **overrides):
    options = dict(size=(64, 64), val_count=1, seed=3)
    options.update(overrides)
    return drive.convert(raw, out / "images", out / "masks", out / "fov", out / "manifest.csv", **options)


def test_convert_writes_resized_pngs_and_manifest(raw, tmp_path):
    assert convert(raw, tmp_path, targets="hard") == 5
    table = pd.read_csv(tmp_path / "manifest.csv", dtype=str, keep_default_na=False)
    assert table["split"].value_counts().to_dict() == {"train": 2, "val": 1, "test": 2}
    assert set(table.loc[table.split == "test", "id"]) == {"01_test", "02_test"}
    assert (table[["height", "width"]].astype(int) == [584, 565]).all().all()
    assert all(table.loc[table.split == "test", "manual2"].str.endswith("_manual2.gif"))
    assert all(table.loc[table.split != "test", "manual2"] == "")
    for row in table.itertuples():
        for folder, mode in (("images", "RGB"), ("masks", "L"), ("fov", "L")):
            image = Image.open(tmp_path / folder / f"{row.id}.png")
            assert image.mode == mode and image.size == (64, 64)
        mask = np.asarray(Image.open(tmp_path / "masks" / f"{row.id}.png"))
        assert set(np.unique(mask)) == {0, 255}


def test_annotation_matches_the_original_gif(raw, tmp_path):
    convert(raw, tmp_path, size=(584, 576), targets="hard")
    original = np.asarray(Image.open(next(raw.rglob("21_manual1.gif"))).convert("L")) > 127
    converted = np.asarray(Image.open(tmp_path / "masks" / "21_training.png")) > 0
    assert converted.shape == (584, 576)
    assert abs(converted.mean() - original.mean()) < 0.002


def test_default_targets_are_soft_area_fractions_and_the_fov_stays_binary(raw, tmp_path):
    convert(raw, tmp_path, size=(512, 512))  # DRIVE's training size, the default targets
    original = np.asarray(Image.open(next(raw.rglob("21_manual1.gif"))).convert("L")) > 127
    soft = np.asarray(Image.open(tmp_path / "masks" / "21_training.png")) / 255
    assert len(np.unique(soft)) > 2  # fractions, not 0/1
    assert soft.mean() == pytest.approx(original.mean(), abs=0.002)  # the vessel area is kept
    assert set(np.unique(np.asarray(Image.open(tmp_path / "fov" / "21_training.png")))) <= {0, 255}


def test_val_count_must_leave_training_images(raw, tmp_path):
    with pytest.raises(EffunetError, match="val_count"):
        convert(raw, tmp_path, val_count=3)


def test_missing_annotation_is_named(raw, tmp_path):
    next(raw.rglob("22_manual1.gif")).unlink()
    with pytest.raises(EffunetError, match="missing DRIVE annotation: .*22_manual1.gif"):
        convert(raw, tmp_path)


def test_annotation_of_wrong_size_is_named(raw, tmp_path):
    path = next(raw.rglob("21_training_mask.gif"))
    Image.fromarray(np.zeros((100, 100), np.uint8)).save(path)
    with pytest.raises(EffunetError, match="21_training_mask.gif is 100x100 but its image"):
        convert(raw, tmp_path)
    assert not (tmp_path / "manifest.csv").exists()


def test_not_a_drive_folder(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(EffunetError, match="no DRIVE layout"):
        drive.find_root(tmp_path / "x")
