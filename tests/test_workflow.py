"""The Snakemake workflow itself: dry runs of both configs, a real demo run, failures that stop cleanly."""

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


@pytest.mark.slow
def test_demo_data_half_runs_and_then_has_nothing_to_do(tmp_path):
    result = snakemake(tmp_path, "--configfile", str(ROOT / "config/demo.yaml"))
    assert result.returncode == 0, result.stderr[-3000:]
    dsb = pd.read_csv(tmp_path / "resources/prepared/dsb2018/manifest.csv")
    drive = pd.read_csv(tmp_path / "resources/prepared/drive/manifest.csv")
    assert len(dsb) == 24 and len(drive) == 9
    assert len(list((tmp_path / "resources/prepared/dsb2018/labels").glob("*.png"))) == 24
    assert len(list((tmp_path / "resources/prepared/drive/fov").glob("*.png"))) == 9
    assert "merge masks: 24 items" in (tmp_path / "logs/merge_masks/dsb2018.log").read_text()
    again = snakemake(tmp_path, "-n", "--configfile", str(ROOT / "config/demo.yaml"))
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
def test_drive_without_source_fails_with_instructions_and_no_output(tmp_path):
    config = write_config(tmp_path / "c.yaml", {"datasets": {"drive": {"source": None}}})
    result = snakemake(tmp_path, "--configfile", str(config))
    assert result.returncode != 0
    log = (tmp_path / "logs/download/drive.log").read_text()
    assert "datasets.drive.source" in log and "grand-challenge" in log
    assert not (tmp_path / "resources/raw/drive").exists()
