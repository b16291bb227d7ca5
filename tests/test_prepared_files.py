"""A prepared file that is missing or damaged after its step finished (Snakemake sees the folder as
complete) stops training before it starts, naming the file and what to run."""

import pytest

from conftest import prepare_synthetic_dsb2018
from effunet.errors import EffunetError
from effunet.layout import PreparedData


@pytest.fixture
def prepared(tmp_path):
    folder = prepare_synthetic_dsb2018(tmp_path, n_images=6, seed=2, test_fraction=0.34, val_fraction=0.25)
    return PreparedData.in_folder(folder, "dsb2018")


@pytest.mark.backend
def test_a_truncated_prepared_png_is_named_with_what_to_run(prepared):
    from effunet.data.manifest import read_manifest
    from effunet.training import dataset

    table = read_manifest(prepared.manifest)
    victim = prepared.mask(table.loc[table["split"] == "train", "id"].iloc[-1])
    victim.write_bytes(victim.read_bytes()[:60])  # truncated: "Invalid PNG data" in TensorFlow's words
    with pytest.raises(EffunetError) as error:
        dataset.load_split(prepared, "train")
    message = str(error.value)
    assert str(victim) in message and "--forcerun prepare prepare_with_region" in message


def test_a_missing_prepared_png_is_named_with_what_to_run(prepared):
    from effunet.data.manifest import read_manifest
    from effunet.training import dataset

    table = read_manifest(prepared.manifest)
    victim = prepared.image(table.loc[table["split"] == "val", "id"].iloc[0])
    victim.unlink()
    with pytest.raises(EffunetError, match="prepared file missing: .*--forcerun prepare"):
        dataset.load_split(prepared, "val")
