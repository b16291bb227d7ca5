"""The one map of the files: tags that separate configs with different inputs and join equal ones."""

from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from effunet import config as effunet_config
from effunet import layout

SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"


def load(path: Path) -> dict:
    return effunet_config.validate(yaml.safe_load(path.read_text()), SCHEMA)


def test_demo_and_study_write_to_disjoint_places():
    demo, study = load(ROOT / "config/demo.yaml"), load(ROOT / "config.yaml")
    assert layout.Layout.of(demo).results != layout.Layout.of(study).results
    assert layout.Layout.of(study).results == Path("results") / study["mlflow"]["experiment"]
    for dataset in ("dsb2018", "drive"):
        demo_data, study_data = layout.prepared_of(demo, dataset), layout.prepared_of(study, dataset)
        assert demo_data.manifest.parent != study_data.manifest.parent
        assert layout.configured(demo, dataset)[0] != layout.configured(study, dataset)[0]


def test_tags_change_exactly_with_what_the_files_depend_on():
    base = load(ROOT / "config/demo.yaml")["datasets"]["dsb2018"]
    source, variant = layout.source_tag(base), layout.variant_tag(base)
    assert variant.startswith("64x64-")
    resized = {**base, "image_size": [128, 96]}
    assert layout.source_tag(resized) == source and layout.variant_tag(resized).startswith("128x96-")
    resplit = {**base, "split": {**base["split"], "seed": 7}}
    assert layout.source_tag(resplit) == source and layout.variant_tag(resplit) != variant
    regenerated = {**base, "synthetic": {**base["synthetic"], "seed": 3}}
    assert layout.source_tag(regenerated) != source and layout.variant_tag(regenerated) == variant
    url = {**base, "source": "https://example.org/a.zip"}
    assert layout.source_tag(url).startswith("url-")
    assert layout.source_tag({**url, "sha256": "0" * 64}) != layout.source_tag(url)
    assert layout.source_tag({**base, "source": "/data/dsb"}).startswith("local-")
    import re

    for tag in (source, layout.source_tag(url)):
        assert re.fullmatch(layout.SOURCE_PATTERN, tag)
    assert re.fullmatch(layout.VARIANT_PATTERN, variant)


def test_prepared_files_and_run_files(tmp_path):
    (tmp_path / "p/labels").mkdir(parents=True)  # in_folder takes the optional folders that exist
    data = layout.PreparedData.in_folder(tmp_path / "p", "dsb2018")
    assert data.image("a") == tmp_path / "p/images/a.png" and data.label("a") == tmp_path / "p/labels/a.png"
    assert data.fov is None and data.format == "dsb2018"
    dsb = layout.Layout.prepared("dsb2018", "s", "v", labels=True)
    assert dsb.labels == layout.Layout.labels("dsb2018", "s") and dsb.fov is None
    with pytest.raises(ValueError, match="no scored region"):
        dsb.region("a")
    run = layout.Layout("exp").run("drive", "unet", 2)  # the study's recipe unless another is named
    assert run.model == Path("results/exp/drive/unet/study/seed2/model.keras")
    assert run.metrics == Path("results/exp/drive/unet/study/seed2/eval/metrics.json")
    assert layout.Layout("exp").run_log("train", "drive", "unet", 2) == Path(
        "logs/exp/train/drive/unet/study/seed2.log"
    )
    modern = layout.RunId("drive", "unet", 2, "modern")
    assert layout.Layout("exp").files(modern).model == Path("results/exp/drive/unet/modern/seed2/model.keras")
    assert layout.Layout("exp").files(modern).root == Path("results/exp") / modern.name
    assert layout.Layout("exp").run_log("evaluate", "drive", "unet", 2, "modern") == Path(
        "logs/exp/evaluate/drive/unet/modern/seed2.log"
    )
    assert layout.Layout("exp").curves_overlay("drive", "modern") == Path(
        "results/exp/plots/learning_curves_drive_modern.png"
    )


def test_help_texts_and_hints_name_a_runs_folder_as_layout_makes_it(tmp_path, capsys):
    """The run folder in `effunet predict --help` and in the not-a-model hint is Layout.run's."""
    from effunet import cli, predict
    from effunet.errors import EffunetError

    pattern = layout.Layout.run_pattern()
    assert pattern.root.as_posix() == "results/<experiment>/<dataset>/<model>/<recipe>/seed<seed>"
    assert layout.Layout("e").run("d", "m", 1, "r").root == Path("results/e/d/m/r/seed1")
    with pytest.raises(SystemExit):
        cli.main(["predict", "--help"])
    assert " ".join(capsys.readouterr().out.split()).count("/<recipe>/seed<seed>/") == 1
    (tmp_path / "notes.keras").write_text("notes")
    with pytest.raises(EffunetError, match=f"writes to {pattern.model.as_posix()}"):
        predict.check_model_file(tmp_path / "notes.keras")
