"""Workflow scripts only adapt the snakemake object: run one with a stub object, no Snakemake."""

import runpy
from types import SimpleNamespace

import pandas as pd

from conftest import ROOT


def test_download_merge_and_prepare_scripts_with_a_stub_snakemake(tmp_path, dsb_zip):
    download = runpy.run_path(str(ROOT / "workflow/scripts/download.py"))
    merge = runpy.run_path(str(ROOT / "workflow/scripts/merge_masks.py"))
    prepare = runpy.run_path(str(ROOT / "workflow/scripts/prepare.py"))
    download["main"](SimpleNamespace(
        wildcards=SimpleNamespace(dataset="dsb2018"), output=SimpleNamespace(raw=tmp_path / "raw"),
        config={"datasets": {"dsb2018": {"format": "dsb2018"}}},
        params=SimpleNamespace(source=str(dsb_zip), sha256=None, synthetic={}, downloads=tmp_path / "dl")))
    settings = {"format": "dsb2018", "image_size": [32, 64], "targets": "hard",
                "split": {"test_fraction": 0.5, "val_fraction": 0.5, "seed": 0}}
    merge["main"](SimpleNamespace(input=SimpleNamespace(raw=tmp_path / "raw"), wildcards=SimpleNamespace(dataset="nuclei"),
                                  output=SimpleNamespace(labels=tmp_path / "labels"), threads=1,
                                  params=SimpleNamespace(format="dsb2018", settings=settings)))
    prepare["main"](SimpleNamespace(
        input=SimpleNamespace(raw=tmp_path / "raw", labels=tmp_path / "labels"), wildcards=SimpleNamespace(dataset="nuclei"),
        output=SimpleNamespace(images=tmp_path / "i", masks=tmp_path / "m", manifest=tmp_path / "x.csv"),
        params=SimpleNamespace(format="dsb2018", settings=settings),
        threads=1))
    assert pd.read_csv(tmp_path / "x.csv")["split"].value_counts().to_dict() == {"test": 4, "train": 2, "val": 2}


def test_plot_curves_script_with_a_stub_snakemake(tmp_path):
    from test_plots import write_run

    histories, runs = [], []
    for k in range(3):
        folder = tmp_path / f"run{k}"
        folder.mkdir()
        history, run = write_run(folder, epochs=8, best=5)
        histories.append(history)
        runs.append(run)
    script = runpy.run_path(str(ROOT / "workflow/scripts/plot_curves.py"))
    script["main"](SimpleNamespace(
        input=SimpleNamespace(histories=histories, runs=runs),
        wildcards=SimpleNamespace(dataset="drive", recipe="study"),
        params=SimpleNamespace(models=["unet", "unet", "effunet-b0"]),
        output=SimpleNamespace(curves=tmp_path / "plots/curves.png")))
    assert (tmp_path / "plots/curves.png").stat().st_size > 10_000
    assert (tmp_path / "plots/curves.svg").stat().st_size > 10_000


def test_train_script_passes_the_code_hash_and_the_outputs_to_remove(tmp_path, monkeypatch):
    from pathlib import Path

    from effunet import devices
    from effunet.files import Untracked
    from effunet.training import loop

    calls = []
    monkeypatch.setattr(loop, "train", lambda **kwargs: calls.append(kwargs))
    stale = [str(tmp_path / "eval/metrics.json"), str(tmp_path / "comparison.md")]
    for path in stale:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text("made from an earlier model")

    def prepare_job(*args, **kwargs):  # no GPU slot for a stub; the first fallible step of a train job
        assert not any(Path(path).exists() for path in stale), "stale outputs must be gone before start-up"

    monkeypatch.setattr(devices, "prepare_job", prepare_job)
    train = runpy.run_path(str(ROOT / "workflow/scripts/train.py"))
    train["main"](SimpleNamespace(
        input=SimpleNamespace(manifest=tmp_path / "m.csv", images=tmp_path / "i", masks=tmp_path / "k"),
        output=SimpleNamespace(model=tmp_path / "model.keras", history=tmp_path / "h.csv", run=tmp_path / "r.json"),
        params=SimpleNamespace(settings={}, code="abc123", checkpoint=str(tmp_path / "ckpt"), stale=Untracked(stale)),
        wildcards=SimpleNamespace(dataset="dsb2018", model="unet", recipe="modern", seed="0"), threads=1,
        rule="train",
        config={"mlflow": {"tracking_uri": None, "experiment": "x"}, "datasets": {"dsb2018": {"format": "dsb2018"}},
                "train": {"device": "cpu", "backend": "tensorflow", "jobs_per_gpu": 1, "gpus_per_job": 1,
                          "checkpoint_every_s": 0}}))
    (call,) = calls
    assert call["code_version"] == "abc123"
    assert call["outputs"].stale == tuple(map(Path, stale))
    assert call["outputs"].checkpoint_dir == tmp_path / "ckpt"
    assert call["tracking_info"].recipe == "modern"  # the MLflow tag and run name
