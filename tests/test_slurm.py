"""Profiles (workstation and SLURM), failure handling, and the workflow on a real SLURM cluster.

The cluster test starts a single-node SLURM 22.05 cluster on localhost (tests/slurm/cluster.py:
munged, MariaDB, slurmdbd, slurmctld, slurmd, all private to a temporary folder) and runs the
workflow with ``--executor slurm`` and the repository's profiles/slurm, its placeholders filled in
with the test cluster's account and partitions. Accounting goes through slurmdbd, as on production
clusters, so the executor plugin uses its default status query (sacct) and the test can read what
every job asked for (sacct's ReqTRES). It needs root and Debian's SLURM packages (.ci/run installs
them) and is skipped with the reason otherwise. Setting the cluster up takes about 10-15 s.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

_spec = importlib.util.spec_from_file_location("slurm_cluster", Path(__file__).parent / "slurm" / "cluster.py")
slurm_cluster = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(slurm_cluster)

SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
SLURM_PROFILE = ROOT / "profiles" / "slurm" / "config.yaml"
PLACEHOLDERS = ("your-account", "your-cpu-partition", "your-gpu-partition")


def snakemake(workdir: Path, *args: str, env: dict | None = None, timeout: float = 600):
    return subprocess.run([*SNAKEMAKE, "-d", str(workdir), *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def small_config(path: Path, **datasets) -> Path:
    """A config for a run of a few minutes: tiny synthetic data sets, one epoch, unet."""
    dsb = {"source": "synthetic", "synthetic": {"n_images": 8}, "image_size": [32, 32],
           "split": {"test_fraction": 0.25, "val_fraction": 0.34}, "train": {"max_epochs": 1, "batch_size": 4}}
    config = {"seeds": [0, 1], "models": ["unet"], "datasets": {"dsb2018": dsb, **datasets},
              # the test cluster's GPUs are gres entries on a CPU machine: the jobs train on the CPU
             "train": {"encoder_weights": "none", "device": "cpu"}, "threads": {"prepare": 1, "train": 1},
              "mlflow": {"tracking_uri": "sqlite:///results/mlflow.db", "experiment": "profile-test"}}
    path.write_text(yaml.safe_dump(config))
    return path


def planned_jobs(output: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) of every job a dry run lists."""
    jobs, rule = [], None
    for line in output.splitlines():
        if match := re.match(r"^(?:local)?rule (\w+):", line):
            rule = match.group(1)
        elif rule and (match := re.match(r"^\s+resources: (.*)", line)):
            jobs.append((rule, dict(item.split("=", 1) for item in match.group(1).split(", "))))
            rule = None
    return jobs


# -- profiles -------------------------------------------------------------------------------------


@pytest.mark.parametrize("gpus_per_job", [1, 2])
def test_slurm_profile_asks_gpus_for_training_and_cpus_for_the_rest(tmp_path, gpus_per_job):
    config = small_config(tmp_path / "c.yaml")
    if gpus_per_job != 1:  # the profile must not override train.gpus_per_job (set-resources beats the rule)
        settings = yaml.safe_load(config.read_text())
        settings["train"]["gpus_per_job"] = gpus_per_job
        config.write_text(yaml.safe_dump(settings))
    result = snakemake(tmp_path, "-n", "--configfile", str(config), "--workflow-profile", str(SLURM_PROFILE.parent))
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result.stdout + result.stderr)
    rules = {rule for rule, _ in jobs}
    assert {"download", "train", "evaluate", "aggregate"} <= rules
    for rule, resources in jobs:
        assert resources["slurm_account"] == "your-account"
        if rule == "train":
            assert resources["slurm_partition"] == "your-gpu-partition"
            assert resources["gpu"] == str(gpus_per_job) and resources["cpus_per_task"] == "1"  # = threads.train
            assert resources["mem_mb"] == "16000" and resources["runtime"] == "720"
        else:
            assert resources["slurm_partition"] == "your-cpu-partition"
            assert "gpu" not in resources and "cpus_per_task" not in resources
            assert resources["mem_mb"] == ("8000" if rule in ("evaluate", "reference") else "4000")
    profile = yaml.safe_load(SLURM_PROFILE.read_text())
    assert profile["executor"] == "slurm" and profile["keep-going"] and profile["retries"] >= 1
    assert "attempt" in profile["set-resources"]["train"]["mem_mb"]  # retries ask for more memory


def test_default_profile_is_used_on_a_workstation(tmp_path):
    """profiles/default is read without being named: one GPU, so training jobs run one at a time
    (that a real run gets gpu=1 from it is checked in the failure test below)."""
    profile = yaml.safe_load((ROOT / "profiles/default/config.yaml").read_text())
    assert profile["resources"] == {"gpu": 1} and profile["cores"] == "all"
    config = small_config(tmp_path / "c.yaml")
    result = snakemake(tmp_path, "-n", "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"Using workflow specific profile \S*profiles/default ", result.stdout + result.stderr)


# -- failure handling, locally --------------------------------------------------------------------


def job_counts(output: str) -> dict[str, int]:
    """Snakemake's 'Job stats' table: rule -> number of jobs run."""
    table = output.split("Job stats:")[-1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)
            if m.group(1) not in ("job", "total")}


@pytest.mark.slow
def test_failed_training_job_names_its_log_others_finish_and_a_rerun_resumes(tmp_path):
    """One training job fails at run time (a DRIVE setting no U-Net can honour); with --keep-going
    the DSB2018 runs still train, evaluate and plot; after the fix a rerun does only what is left."""
    drive = {"source": "synthetic", "synthetic": {"n_train": 3, "n_test": 2}, "image_size": [32, 32],
             "split": {"val_count": 1}, "train": {"max_epochs": 1, "batch_size": 2}}
    weights = tmp_path / "encoder.weights.h5"
    weights.write_bytes(b"not used by a U-Net")
    config = small_config(tmp_path / "c.yaml", drive={**drive, "train": {**drive["train"], "encoder_weights": str(weights)}})
    yaml_config = yaml.safe_load(config.read_text())
    yaml_config["seeds"] = [0]
    config.write_text(yaml.safe_dump(yaml_config))

    failed = snakemake(tmp_path, "--cores", "2", "--keep-going", "--configfile", str(config))
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert re.search(r'Provided resources: gpu=(Resource\("gpu", )?1\b', output)  # profiles/default
    log = "logs/profile-test/train/drive/unet/study/seed0.log"
    assert re.search(rf"Error in rule train:.*?log: {re.escape(log)}", output, re.DOTALL), output[-3000:]
    assert "encoder_weights" in (tmp_path / log).read_text().splitlines()[-1]
    assert not (tmp_path / "results/profile-test/drive/unet/study/seed0/model.keras").exists()
    for plot in ("learning_curves", "examples"):  # the independent branch went on to the end
        assert (tmp_path / f"results/profile-test/dsb2018/unet/study/seed0/plots/{plot}.png").exists()
    assert not (tmp_path / "results/profile-test/comparison.csv").exists()
    finished_run = (tmp_path / "results/profile-test/dsb2018/unet/study/seed0/run.json").stat().st_mtime_ns

    yaml_config["datasets"]["drive"]["train"]["encoder_weights"] = "none"
    config.write_text(yaml.safe_dump(yaml_config))
    rerun = snakemake(tmp_path, "--cores", "2", "--keep-going", "--configfile", str(config))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    counts = job_counts(rerun.stdout + rerun.stderr)
    assert counts["train"] == 1 and counts["evaluate"] == 1 and "download" not in counts, counts
    assert (tmp_path / "results/profile-test/dsb2018/unet/study/seed0/run.json").stat().st_mtime_ns == finished_run
    assert (tmp_path / "results/profile-test/comparison.csv").exists()


# -- a real SLURM cluster -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = slurm_cluster.missing_requirements()
    if reason:
        pytest.skip(f"no SLURM test cluster: {reason}")
    test_cluster = slurm_cluster.Cluster(tmp_path_factory.mktemp("slurm-cluster"))
    try:
        test_cluster.start()
        yield test_cluster
    finally:
        test_cluster.stop()


def cluster_profile(cluster, folder: Path) -> Path:
    """profiles/slurm with its placeholders filled in for the test cluster and sizes for its node."""
    text = SLURM_PROFILE.read_text()
    assert all(p in text for p in PLACEHOLDERS)
    for placeholder, value in zip(PLACEHOLDERS, (cluster.account, cluster.cpu_partition, cluster.gpu_partition)):
        text = text.replace(placeholder, value)
    profile = yaml.safe_load(text)
    profile["default-resources"].update({"mem_mb": "2000 * attempt", "runtime": 15})
    profile["set-resources"]["evaluate"].update({"mem_mb": "3000 * attempt", "runtime": 15})
    # Seed 1's first training attempt gets too little memory and is killed out of memory; the
    # retry asks for more (the profile's retries), as a run that outgrew its memory would.
    profile["set-resources"]["train"].update(
        {"mem_mb": "300 if attempt == 1 and wildcards.seed == '1' else 3000", "runtime": 15})
    profile.update({"retries": 1, "latency-wait": 5, "slurm-init-seconds-before-status-checks": 2})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return folder


@pytest.mark.slow
@pytest.mark.slurm
def test_workflow_runs_on_slurm_with_a_gpu_per_training_job(cluster, tmp_path):
    config = small_config(tmp_path / "c.yaml")
    profile = cluster_profile(cluster, tmp_path / "profile")
    started = time.monotonic()
    result = snakemake(tmp_path / "work", "--configfile", str(config), "--workflow-profile", str(profile),
                       env=cluster.env, timeout=450)  # the whole test stays under 10 min
    output = result.stdout + result.stderr
    elapsed = time.monotonic() - started
    (tmp_path / "snakemake.out").write_text(output)  # kept for a look after a failure
    assert result.returncode == 0, output[-4000:] + cluster.logs_tail()

    work = tmp_path / "work"
    for seed in (0, 1):
        run = work / f"results/profile-test/dsb2018/unet/study/seed{seed}"
        for name in ("model.keras", "history.csv", "run.json", "eval/metrics.json",
                     "plots/learning_curves.png", "plots/examples.png"):
            assert (run / name).stat().st_size > 0, run / name
    for name in ("results/profile-test/comparison.csv", "results/profile-test/comparison.md",
                 "results/profile-test/plots/comparison.png"):
        assert (work / name).stat().st_size > 0, name

    # The out-of-memory attempt was reported with its logs (the rule's and SLURM's), then retried.
    error = re.search(r"Error in rule train:.*?log: logs/profile-test/train/dsb2018/unet/study/seed1\.log, (\S+\.log)", output, re.DOTALL)
    assert error, output[-4000:]
    assert "exceeded memory limit" in Path(error.group(1)).read_text()
    assert "Trying to restart job" in output

    jobs = cluster.sacct("JobID", "Partition", "Account", "State", "ReqTRES", "Comment")
    by_rule: dict[str, list[dict]] = {}
    for job in jobs:
        rule = re.match(r"rule_(\w+?)(?:_wildcards_|$)", job["Comment"]).group(1)
        by_rule.setdefault(rule, []).append(job)
    assert {"download", "merge_masks", "prepare", "train", "evaluate", "plot_run", "aggregate",
            "plot_comparison"} <= set(by_rule), by_rule.keys()
    for rule, rule_jobs in by_rule.items():
        for job in rule_jobs:
            assert job["Account"] == cluster.account
            if rule == "train":
                assert "gres/gpu=1" in job["ReqTRES"], job
                assert job["Partition"] == cluster.gpu_partition, job
            else:
                assert "gres/gpu" not in job["ReqTRES"], job
                assert job["Partition"] == cluster.cpu_partition, job
    train = sorted(((j["Comment"], int(j["JobID"])), j) for j in by_rule["train"])
    states = [(comment.split("_")[-1], j["State"], re.search(r"mem=(\w+)", j["ReqTRES"]).group(1))
              for (comment, _), j in train]
    # sacct marks the allocation FAILED (its step, killed over its memory limit, OUT_OF_MEMORY)
    assert states == [("0", "COMPLETED", "3000M"), ("1", "FAILED", "300M"), ("1", "COMPLETED", "3000M")], states
    print(f"cluster set-up {cluster.timings['total']:.0f} s, workflow on SLURM {elapsed:.0f} s, "
          f"{len(jobs)} SLURM jobs")
