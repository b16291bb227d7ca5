"""The synthetic data must look like the originals to the code that reads them."""

import io
import re
import zipfile

import numpy as np
import pytest
from PIL import Image


def open_member(archive, name):
    return Image.open(io.BytesIO(archive.read(name)))


def test_dsb2018_zip_has_the_official_layout(dsb_zip):
    with zipfile.ZipFile(dsb_zip) as archive:
        names = archive.namelist()
        image_names = [n for n in names if re.fullmatch(r"([0-9a-f]{64})/images/\1\.png", n)]
        assert len(image_names) == 8
        modes, sizes = set(), set()
        for name in image_names:
            image = open_member(archive, name)
            modes.add(image.mode)
            sizes.add(image.size)
            sample_id = name.split("/")[0]
            masks = [n for n in names if n.startswith(f"{sample_id}/masks/") and n.endswith(".png")]
            assert len(masks) >= 2
            for mask_name in masks[:3]:
                mask = open_member(archive, mask_name)
                assert mask.mode == "L" and mask.size == image.size
                assert set(np.unique(np.asarray(mask))) == {0, 255}
        assert modes == {"RGBA", "RGB"} and len(sizes) >= 3
        assert f"{image_names[0].split('/')[0]}/masks/" in names  # folder entries like the original


def test_drive_zip_has_official_names_and_formats(drive_zip):
    with zipfile.ZipFile(drive_zip) as archive:
        names = set(archive.namelist())
        expected = {"DRIVE/training/images/21_training.tif", "DRIVE/training/1st_manual/21_manual1.gif",
                    "DRIVE/training/mask/21_training_mask.gif", "DRIVE/test/images/01_test.tif",
                    "DRIVE/test/1st_manual/01_manual1.gif", "DRIVE/test/2nd_manual/01_manual2.gif",
                    "DRIVE/test/mask/01_test_mask.gif"}
        assert expected <= names
        image = open_member(archive, "DRIVE/training/images/21_training.tif")
        assert (image.format, image.mode, image.size) == ("TIFF", "RGB", (565, 584))
        vessels = open_member(archive, "DRIVE/training/1st_manual/21_manual1.gif")
        fov = open_member(archive, "DRIVE/training/mask/21_training_mask.gif")
        assert vessels.format == fov.format == "GIF" and vessels.size == (565, 584)
        vessel_mask = np.asarray(vessels.convert("L"))
        fov_mask = np.asarray(fov.convert("L"))
        assert set(np.unique(vessel_mask)) == {0, 255} and set(np.unique(fov_mask)) == {0, 255}
        assert 0.03 < (vessel_mask > 0).mean() < 0.3
        assert not ((vessel_mask > 0) & (fov_mask == 0)).any()  # vessels only inside the FOV
        pixels = np.asarray(image).astype(float)
        assert pixels[vessel_mask > 0, 1].mean() < pixels[(vessel_mask == 0) & (fov_mask > 0), 1].mean()


def test_nucleus_count_and_size_options_shape_the_nuclei(tmp_path):
    import math

    from effunet.data import synthetic

    path = synthetic.write_dsb2018_zip(tmp_path / "s.zip", n_images=4, nuclei=(3, 3), nucleus_radius=(30, 30))
    with zipfile.ZipFile(path) as archive:
        masks = [n for n in archive.namelist() if "/masks/" in n and n.endswith(".png")]
        areas = [int((np.asarray(open_member(archive, n)) > 0).sum()) for n in masks]
    assert 4 <= len(masks) <= 12  # at most 3 per image (one may not fit)
    circle = math.pi * 30**2
    assert max(areas) <= 1.02 * circle and np.median(areas) >= 0.6 * circle  # touching ones lose a little


def test_vessel_width_option_widens_the_vessels(tmp_path):
    from effunet.data import synthetic

    fractions = []
    for width in (1.0, 3.0):
        path = synthetic.write_drive_zip(tmp_path / f"d{width}.zip", n_train=2, n_test=1, vessel_width=width)
        with zipfile.ZipFile(path) as archive:
            fractions.append((np.asarray(open_member(archive, "DRIVE/training/1st_manual/21_manual1.gif")) > 0).mean())
    assert fractions[1] > 2 * fractions[0]  # same tree (same seed), three times the line width


def _prepared_pixels(prepared, split):
    """RGB and 5x5-mean RGB per pixel (features), the mask and the scored region of one split."""
    import pandas as pd
    from scipy import ndimage

    table = pd.read_csv(prepared / "manifest.csv")
    features, truth, region = [], [], []
    for sample in table.loc[table["split"] == split, "id"]:
        image = np.asarray(Image.open(prepared / "images" / f"{sample}.png").convert("RGB"), dtype=np.float32)
        mean = ndimage.uniform_filter(image, size=(5, 5, 1))
        features.append(np.concatenate([image, mean], axis=-1).reshape(-1, 6))
        truth.append(np.asarray(Image.open(prepared / "masks" / f"{sample}.png")).reshape(-1) > 127)
        fov = prepared / "fov" / f"{sample}.png"
        region.append(np.asarray(Image.open(fov)).reshape(-1) > 127 if fov.exists() else np.ones_like(truth[-1]))
    return np.concatenate(features), np.concatenate(truth), np.concatenate(region)


@pytest.mark.slow
def test_demo_data_is_learnable_at_the_demo_size(tmp_path):
    """The demo's synthetic data, shaped by config/demo.yaml and prepared at its image size by the
    workflow's own code, separates nuclei and vessels from background well: a per-pixel forest on
    colour and local mean reaches test Dice >= 0.8 (nuclei) and >= 0.7 (vessels), so the encoder
    models have something to learn in a few epochs."""
    from pathlib import Path

    import yaml
    from sklearn.ensemble import RandomForestClassifier

    from effunet.data import archives, drive, dsb2018, formats

    demo = yaml.safe_load((Path(__file__).resolve().parents[1] / "config/demo.yaml").read_text())["datasets"]
    for name, floor in (("dsb2018", 0.8), ("drive", 0.7)):
        options = dict(demo[name]["synthetic"])
        if name == "dsb2018":
            options["n_images"] = 12  # fewer images than the demo, same shapes
        else:
            options.update(n_train=4, n_test=2)
        raw, prepared = tmp_path / name / "raw", tmp_path / name / "prepared"
        archives.extract(formats.write_synthetic(name, tmp_path / f"{name}.zip", **options), raw)
        size = tuple(demo[name]["image_size"])
        if name == "dsb2018":
            dsb2018.merge_masks(raw, tmp_path / "labels")
            dsb2018.resize(raw, tmp_path / "labels", prepared / "images", prepared / "masks", prepared / "manifest.csv",
                           size, test_fraction=0.25, val_fraction=0.25, seed=0)
        else:
            drive.convert(raw, prepared / "images", prepared / "masks", prepared / "fov", prepared / "manifest.csv",
                          size, val_count=1, seed=0)
        x, y, region = _prepared_pixels(prepared, "train")
        forest = RandomForestClassifier(n_estimators=20, max_depth=12, random_state=0, n_jobs=1)
        forest.fit(x[region], y[region])
        x, y, region = _prepared_pixels(prepared, "test")
        predicted = forest.predict(x[region])
        truth = y[region]
        dice = 2 * (predicted & truth).sum() / (predicted.sum() + truth.sum())
        assert 0.05 < truth.mean() < 0.6, (name, truth.mean())  # objects are visible at this size
        assert dice >= floor, (name, dice)
