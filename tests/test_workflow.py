"""The Snakemake workflow itself: dry runs of both configs, a real demo run, failures that stop cleanly."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT

SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", "2"]


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, "-d", str(workdir), *args], capture_output=True, text=True,
                          timeout=600)


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("configfile", ["config.yaml", "config/demo.yaml"])
def test_dry_run_plans_the_data_half(tmp_path, configfile):
    result = snakemake(tmp_path, "-n", "--configfile", str(ROOT / configfile))
    assert result.returncode == 0, result.stderr
    for rule in ("download", "merge_masks", "resize_dsb2018", "convert_drive"):
        assert rule in result.stdout


def test_bad_config_key_stops_at_start_up(tmp_path):
    result = snakemake(tmp_path, "-n", "--configfile", str(ROOT / "config/demo.yaml"),
                       "--config", "seedz=[1]")
    assert result.returncode != 0
    assert "config key seedz: unknown key" in result.stdout + result.stderr


DATA_TARGETS = ["resources/prepared/dsb2018/manifest.csv", "resources/prepared/drive/manifest.csv"]


@pytest.mark.slow
def test_demo_data_half_runs_and_then_has_nothing_to_do(tmp_path):
    result = snakemake(tmp_path, "--configfile", str(ROOT / "config/demo.yaml"), *DATA_TARGETS)
    assert result.returncode == 0, result.stderr[-3000:]
    dsb = pd.read_csv(tmp_path / "resources/prepared/dsb2018/manifest.csv")
    drive = pd.read_csv(tmp_path / "resources/prepared/drive/manifest.csv")
    assert len(dsb) == 24 and len(drive) == 9
    assert len(list((tmp_path / "resources/prepared/dsb2018/labels").glob("*.png"))) == 24
    assert len(list((tmp_path / "resources/prepared/drive/fov").glob("*.png"))) == 9
    assert "merge masks: 24 items" in (tmp_path / "logs/merge_masks/dsb2018.log").read_text()
    again = snakemake(tmp_path, "-n", "--configfile", str(ROOT / "config/demo.yaml"), *DATA_TARGETS)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
def test_drive_without_source_fails_with_instructions_and_no_output(tmp_path):
    config = write_config(tmp_path / "c.yaml", {"datasets": {"drive": {"source": None}}})
    result = snakemake(tmp_path, "--configfile", str(config))
    assert result.returncode != 0
    log = (tmp_path / "logs/download/drive.log").read_text()
    assert "datasets.drive.source" in log and "grand-challenge" in log
    assert not (tmp_path / "resources/raw/drive").exists()


@pytest.mark.slow
def test_training_jobs_run_side_by_side_and_each_is_tracked(tmp_path):
    from mlflow.tracking import MlflowClient

    config = write_config(tmp_path / "c.yaml", {
        "seeds": [0, 1], "models": ["unet", "effunet-b0"],
        "datasets": {"dsb2018": {"source": "synthetic", "synthetic": {"n_images": 10}, "image_size": [32, 32],
                                 "split": {"test_fraction": 0.2, "val_fraction": 0.25},
                                 "train": {"max_epochs": 2, "batch_size": 4}}},
        "train": {"encoder_weights": "none"}, "threads": {"prepare": 2, "train": 1},
        "mlflow": {"tracking_uri": "sqlite:///results/mlflow.db", "experiment": "wf-test"}})
    result = snakemake(tmp_path, "--configfile", str(config), "--resources", "gpu=2")
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/results/mlflow.db")
    runs = {r.info.run_name: r for r in client.search_runs([client.get_experiment_by_name("wf-test").experiment_id])}
    expected = {f"dsb2018/{m}/seed{s}" for m in ("unet", "effunet-b0") for s in (0, 1)}
    assert set(runs) == expected
    for name in expected:
        run_dir = tmp_path / "results" / name
        summary = json.loads((run_dir / "run.json").read_text())
        run = runs[name]
        assert run.info.run_id == summary["run_id"] and run.info.status == "FINISHED"
        assert run.data.tags["snakemake_rule"] == "train" and run.data.tags["seed"] == name[-1]
        assert run.data.params["max_epochs"] == "2" and int(run.data.params["parameters"]) == summary["parameters"]
        assert len(pd.read_csv(run_dir / "history.csv")) == 2
        assert "epoch 2/2" in (tmp_path / "logs/train" / f"{name}.log").read_text()
        assert "test_native_dice" in run.data.metrics and "val_native_iou_image_mean" in run.data.metrics
        for plot in ("learning_curves", "examples"):
            assert (run_dir / "plots" / f"{plot}.png").stat().st_size > 10_000
    table = pd.read_csv(tmp_path / "results/comparison.csv")
    assert list(table.model) == ["unet", "effunet-b0"] and (table.seeds == 2).all()
    assert {"dice_mean", "dice_std", "instance_ap_mean", "epochs_trained_mean", "flops_mean"} <= set(table.columns)
    assert len(pd.read_csv(tmp_path / "results/paired_tests.csv")) == 1
    again = snakemake(tmp_path, "-n", "--configfile", str(config))
    assert "Nothing to be done" in again.stdout + again.stderr
    report = snakemake(tmp_path, "--configfile", str(config), "--report", "report.html")
    assert report.returncode == 0, report.stderr[-2000:]
    text = (tmp_path / "report.html").read_text()
    assert "Learning curves" in text and "Comparison" in text
