"""effunet.run: the run's identity, settings with the schema's defaults, and run.json's one reader."""

import json
from dataclasses import fields

import pytest
import yaml

from effunet import run
from effunet.errors import EffunetError
from effunet.run import RunId, RunRecord, Settings


def test_settings_are_the_schemas_train_keys_with_its_defaults():
    train = yaml.safe_load(run.SCHEMA.read_text())["$defs"]["train"]["properties"]
    settings = {f.name: f.default for f in fields(Settings) if f.name != "model_options"}
    assert settings == {key: spec["default"] for key, spec in train.items() if key not in run.PLACEMENT_KEYS}
    assert set(run.ADDED_AFTER_STUDY) <= set(settings)


def test_params_leave_out_the_keys_added_after_the_study_at_their_default():
    study = Settings().params()
    assert not set(run.ADDED_AFTER_STUDY) & set(study)
    assert Settings.from_params(study) == Settings()
    modern = Settings(inference="sliding", warmup_epochs=2, max_epochs=7)
    assert modern.params()["inference"] == "sliding" and modern.params()["max_epochs"] == 7
    assert Settings.from_params(modern.params()) == modern
    assert run.setting({}, "inference") == "resize" and run.setting({"inference": "sliding"}, "inference") == "sliding"


def test_from_params_ignores_placement_and_names_unknown_keys():
    assert Settings.from_params({"backend": "jax", "batch_size": 4}).batch_size == 4
    with pytest.raises(EffunetError, match="unknown training setting.*max_epoch\\b"):
        Settings.from_params({"max_epoch": 3})


def test_run_id_name_is_the_tracking_run_name():
    from effunet.tracking import run_name

    identity = RunId("dsb2018", "effunet-b0", 2, "modern")
    assert identity.name == "dsb2018/effunet-b0/modern/seed2" == run_name("dsb2018", "effunet-b0", 2, "modern")
    assert RunId("d", "m", 0).recipe == run.STUDY_RECIPE


def test_record_round_trips_and_reads_settings_old_and_new(tmp_path):
    summary = {
        "run_id": "abc",
        "best_epoch": 3,
        "epochs_trained": 5,
        "stop_reason": "max_epochs",
        "loss": "dice",
        "settings": {**Settings(loss="dice", instances="boundary").params()},
        "seconds_per_epoch": 2.0,
    }
    path = RunRecord(summary).write(tmp_path / "run.json")
    record = RunRecord.read(path, require=run.REQUIRED)
    assert record.data == summary and record.run_id == "abc" and record["best_epoch"] == 3
    assert record.settings == Settings(loss="dice", instances="boundary")
    assert record.loss_function == "dice per channel (boundary)" and record.censored
    assert record.training()["seconds_per_epoch"] == 2.0 and record.training()["wall_seconds"] is None
    old = RunRecord({"loss": "bce+dice", "instances": "none", "stop_reason": "early_stopping"})
    assert old.settings == Settings(loss="bce+dice") and old.loss_function == "bce+dice" and not old.censored
    assert RunRecord.beside(tmp_path / "model.keras").run_id == "abc"
    assert RunRecord.beside(tmp_path / "other" / "model.keras") is None


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "not found"),
        ("{broken", "not valid JSON"),
        ("[1]", "JSON object"),
        (json.dumps({"run_id": "x"}), "lacks key.*best_epoch"),
        (json.dumps({**dict.fromkeys(run.REQUIRED, 1), "settings": {"patiense": 3}}), "unknown training setting"),
    ],
)
def test_bad_records_name_the_file(tmp_path, content, message):
    path = tmp_path / "run.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(EffunetError, match=message) as error:
        assert RunRecord.read(path, require=run.REQUIRED).settings is None
    assert str(path) in str(error.value)


def test_epoch_timing_is_the_records_timing_keys():
    history = [{"epoch": i + 1, "seconds": s} for i, s in enumerate([10.0, 2.0, 4.0])]
    assert tuple(run.epoch_timing(history, best_epoch=2, train_images=6)) == run.TIMING
    assert set(run.TIMING) <= set(run.TRAINING)


def test_a_copy_of_the_package_finds_the_schema_of_the_repository_it_was_installed_from(tmp_path):
    """A copy of src/ on PYTHONPATH (as tests/test_workflow.py edits one) has no workflow/ beside it:
    the schema comes from the installed repository; a copy that cannot find it says which file is missing."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    shutil.copytree(Path(run.__file__).parent, tmp_path / "src" / "effunet")
    code = "import effunet.run as r; print(r.SCHEMA); print(r.__file__)"
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    schema, module = result.stdout.split()
    assert module.startswith(str(tmp_path)) and schema == str(run.SCHEMA) and Path(schema).is_file()
    # no repository recorded by pip (-I -S: no site-packages, so no install record; PyYAML copied beside)
    # and none beside the copy
    shutil.copytree(Path(yaml.__file__).parent, tmp_path / "deps" / "yaml")
    path = [str(tmp_path / "src"), str(tmp_path / "deps")]
    isolated = [sys.executable, "-I", "-S", "-c", f"import sys; sys.path[:0] = {path!r}; {code}"]
    result = subprocess.run(isolated, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode != 0
    assert f"the workflow's schema {tmp_path / 'workflow/schemas/config.schema.yaml'} is missing" in result.stderr
