"""A retrain that is killed must not leave the previous model's evaluation, plots or table looking current."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from effunet.layout import Layout

from test_workflow import SNAKEMAKE
from test_workflow import TINY as FIRST

TINY = {**FIRST, "mlflow": {**FIRST["mlflow"], "experiment": "stale-test"}}
LAYOUT = Layout("stale-test")
RUN = LAYOUT.run("dsb2018", "unet", 0)


def made_from_model(workdir: Path) -> set[Path]:
    """Every result file but the run's own outputs (and checkpoint) and what comes from the data alone."""
    own = {RUN.model, RUN.history, RUN.run, LAYOUT.reference("dsb2018")}
    files = {path.relative_to(workdir) for path in (workdir / LAYOUT.results).rglob("*") if path.is_file()}
    return {path for path in files - own if RUN.checkpoint not in path.parents}


def run(workdir: Path, config: Path, **kwargs):
    return subprocess.Popen([*SNAKEMAKE, "-d", str(workdir), "--configfile", str(config)], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs)


@pytest.mark.slow
def test_a_killed_retrain_resumes_and_redoes_everything_made_from_the_model(tmp_path):
    config, settings = tmp_path / "c.yaml", json.loads(json.dumps(TINY))
    config.write_text(yaml.safe_dump(settings))
    first = run(tmp_path, config)
    out, _ = first.communicate(timeout=1800)
    assert first.returncode == 0, out[-3000:]
    made = made_from_model(tmp_path)
    assert {RUN.metrics, RUN.plot("examples"), LAYOUT.comparison("md"), LAYOUT.comparison_plot("comparison")} <= made
    old = {path: (tmp_path / path).stat().st_mtime_ns for path in made}

    # a changed setting reruns train; kill the job after its first epoch is checkpointed
    settings["datasets"]["dsb2018"]["train"]["max_epochs"] = 2
    config.write_text(yaml.safe_dump(settings))
    second = run(tmp_path, config)
    pointer = tmp_path / RUN.checkpoint / "latest"
    train_log = tmp_path / LAYOUT.run_log("train", "dsb2018", "unet", 0)
    deadline = time.monotonic() + 1200
    while not pointer.exists():
        assert second.poll() is None and time.monotonic() < deadline, second.stdout.read()[-3000:]
        time.sleep(0.05)
    pid = int(re.findall(r"training unet, seed 0 \(process (\d+)\)", train_log.read_text())[-1])
    os.kill(pid, signal.SIGKILL)
    out, _ = second.communicate(timeout=900)
    assert second.returncode != 0, out[-3000:]
    # nothing made from the old model is left to look up to date next to the missing new model
    assert made_from_model(tmp_path) == set()

    third = run(tmp_path, config)  # the same command again
    out, _ = third.communicate(timeout=1800)
    assert third.returncode == 0, out[-3000:]
    log = train_log.read_text()
    assert "resuming from" in log and log.count("training unet, seed 0") == 2  # the log keeps both attempts
    summary = json.loads((tmp_path / RUN.run).read_text())
    assert summary["epochs_trained"] == 2 and summary["resumed_after_epochs"] == [1]
    model_time = (tmp_path / RUN.model).stat().st_mtime_ns
    assert made_from_model(tmp_path) == made
    for path in made:
        assert (tmp_path / path).stat().st_mtime_ns > max(old[path], model_time), path
    dry = subprocess.run([*SNAKEMAKE, "-d", str(tmp_path), "-n", "--configfile", str(config)], capture_output=True,
                         text=True)
    assert "Nothing to be done" in dry.stdout + dry.stderr


@pytest.mark.slow
def test_an_untracked_param_reaches_the_job_but_does_not_rerun_it(tmp_path):
    """The train rule passes the paths to remove as `Untracked`: adding an output to a later rule
    must not retrain every model, while a plain param still reruns its job."""
    (tmp_path / "Snakefile").write_text(
        "from effunet.files import Untracked\n\n"
        "rule make:\n"
        "    output: 'out.txt'\n"
        "    params:\n"
        "        tracked=config.get('tracked', 1),\n"
        "        untracked=lambda w: Untracked((config.get('untracked', 'a'),)),\n"
        "    run:\n"
        "        open(output[0], 'w').write(repr(params.untracked.value))\n")
    command = [sys.executable, "-m", "snakemake", "-d", str(tmp_path), "-s", str(tmp_path / "Snakefile"), "-c1"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0 and (tmp_path / "out.txt").read_text() == "('a',)", first.stderr[-2000:]
    untracked = subprocess.run([*command, "-n", "--config", "untracked=b"], capture_output=True, text=True)
    assert "Nothing to be done" in untracked.stdout + untracked.stderr
    tracked = subprocess.run([*command, "-n", "--config", "tracked=2"], capture_output=True, text=True)
    assert "Params have changed" in tracked.stdout + tracked.stderr


def _train_processes(workdir: Path) -> list[int]:
    """Process ids of the workflow's running train script (Snakemake copies it under .snakemake/scripts/)."""
    found = subprocess.run(["pgrep", "-f", f"{workdir}/.snakemake/scripts/.*train.py"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def _kill_train_when(workdir: Path, process: subprocess.Popen, ready, timeout_s: float = 900) -> None:
    deadline = time.monotonic() + timeout_s
    while not (ready() and _train_processes(workdir)):
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()[-3000:]
        time.sleep(0.02)
    for pid in _train_processes(workdir):
        os.kill(pid, signal.SIGKILL)
    out, _ = process.communicate(timeout=900)
    assert process.returncode != 0, out[-3000:]


def _plans_the_retrain(workdir: Path, config: Path) -> None:
    dry = subprocess.run([*SNAKEMAKE, "-d", str(workdir), "-n", "--configfile", str(config)], capture_output=True,
                         text=True, timeout=300)
    output = dry.stdout + dry.stderr
    assert "Nothing to be done" not in output
    for rule in ("train", "evaluate", "plot_run", "aggregate"):
        assert f"rule {rule}:" in output, (rule, output[-3000:])


@pytest.mark.slow
def test_a_retrain_that_dies_at_start_up_or_in_epoch_1_leaves_nothing_looking_current(tmp_path):
    """Killed at start-up, failing at start-up (a GPU asked for where there is none), killed in epoch 1
    before its first checkpoint: after each, a plain run plans the retrain and everything after it,
    and the last one trains with the new setting and remakes every result."""
    config, settings = tmp_path / "c.yaml", json.loads(json.dumps(TINY))
    config.write_text(yaml.safe_dump(settings))
    first = run(tmp_path, config)
    out, _ = first.communicate(timeout=1800)
    assert first.returncode == 0, out[-3000:]
    made = made_from_model(tmp_path)
    old = {path: (tmp_path / path).stat().st_mtime_ns for path in made}
    train_log = tmp_path / LAYOUT.run_log("train", "dsb2018", "unet", 0)

    settings["datasets"]["dsb2018"]["train"]["max_epochs"] = 2
    settings["train"]["checkpoint_every_s"] = 3600  # no checkpoint before the job ends
    config.write_text(yaml.safe_dump(settings))
    _kill_train_when(tmp_path, run(tmp_path, config), lambda: True)  # at start-up: the script has just started
    _plans_the_retrain(tmp_path, config)

    gpu = tmp_path / "gpu.yaml"
    gpu.write_text(yaml.safe_dump({**settings, "train": {**settings["train"], "device": "gpu"}}))
    failed = run(tmp_path, gpu)
    out, _ = failed.communicate(timeout=900)
    assert failed.returncode != 0, out[-3000:]
    _plans_the_retrain(tmp_path, config)

    def trainings() -> int:
        return train_log.read_text().count("training unet, seed 0") if train_log.exists() else 0

    before = trainings()
    _kill_train_when(tmp_path, run(tmp_path, config), lambda: trainings() > before)  # in epoch 1
    assert not (tmp_path / RUN.checkpoint / "latest").exists()
    _plans_the_retrain(tmp_path, config)

    last = run(tmp_path, config)
    out, _ = last.communicate(timeout=1800)
    assert last.returncode == 0, out[-3000:]
    assert json.loads((tmp_path / RUN.run).read_text())["epochs_trained"] == 2
    model_time = (tmp_path / RUN.model).stat().st_mtime_ns
    assert made_from_model(tmp_path) == made
    for path in made:
        assert (tmp_path / path).stat().st_mtime_ns > max(old[path], model_time), path
    dry = subprocess.run([*SNAKEMAKE, "-d", str(tmp_path), "-n", "--configfile", str(config)], capture_output=True,
                         text=True)
    assert "Nothing to be done" in dry.stdout + dry.stderr

    # an evaluation removed by hand (or by an interrupted --forcerun evaluate) is remade by a plain run
    (tmp_path / RUN.metrics).unlink()
    dry = subprocess.run([*SNAKEMAKE, "-d", str(tmp_path), "-n", "--configfile", str(config)], capture_output=True,
                         text=True)
    assert "rule evaluate:" in dry.stdout and "rule train:" not in dry.stdout, dry.stdout[-3000:]
