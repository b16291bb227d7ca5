"""The synthetic data must look like the originals to the code that reads them."""

import io
import re
import zipfile

import numpy as np
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
