"""The Snakemake workflow itself: dry runs of both configs, a real demo run, failures that stop cleanly."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT, mlflow_server

ARTIFACTS = ROOT / "test-artifacts"  # kept after the run (CI can publish it); ignored by git

SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", "2"]


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, "-d", str(workdir), *args], capture_output=True, text=True,
                          timeout=600)


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def configured_paths(config: dict | Path):
    """(Layout, prepared-data function, validated config) of a config, from effunet.layout."""
    from effunet import config as effunet_config
    from effunet import layout

    values = yaml.safe_load(Path(config).read_text()) if isinstance(config, Path) else json.loads(json.dumps(config))
    values = effunet_config.validate(values, ROOT / "workflow/schemas/config.schema.yaml")
    return layout.Layout.of(values), lambda dataset: layout.prepared_of(values, dataset), values


def test_dry_run_plans_the_data_half_of_the_demo(tmp_path):
    result = snakemake(tmp_path, "-n", "--configfile", str(ROOT / "config/demo.yaml"))
    assert result.returncode == 0, result.stderr
    for rule in ("download", "merge_masks", "prepare", "prepare_with_region"):
        assert f"rule {rule}:" in result.stdout


def test_study_without_a_drive_source_runs_dsb2018_and_says_once_how_to_add_drive(tmp_path):
    """config.yaml ships with datasets.drive.source: null (DRIVE may not be redistributed)."""
    assert yaml.safe_load((ROOT / "config.yaml").read_text())["datasets"]["drive"]["source"] is None
    result = snakemake(tmp_path, "-n", "--configfile", str(ROOT / "config.yaml"), "--resources", "gpu=1")
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert output.count("DRIVE is skipped") == 1
    assert "datasets.drive.source" in output and "--config 'datasets={drive: {source:" in output
    for rule in ("download", "merge_masks", "prepare", "train", "aggregate"):
        assert f"rule {rule}:" in output
    assert "prepare_with_region" not in output and "dataset=drive" not in output
    assert "dataset=dsb2018, model=effunet-b0, recipe=study, seed=2" in output

    # The command line the message suggests adds DRIVE to the same study.
    added = snakemake(tmp_path, "-n", "--configfile", str(ROOT / "config.yaml"), "--resources", "gpu=1",
                      "--config", "datasets={drive: {source: /somewhere/DRIVE.zip}}")
    assert added.returncode == 0, added.stderr
    assert "DRIVE is skipped" not in added.stdout + added.stderr
    assert "rule prepare_with_region:" in added.stdout and "dataset=dsb2018, model=unet" in added.stdout


def test_no_data_set_with_a_source_stops_at_start_up(tmp_path):
    config = write_config(tmp_path / "c.yaml", {"datasets": {"drive": {"source": None}}})
    result = snakemake(tmp_path, "-n", "--configfile", str(config))
    assert result.returncode != 0
    assert "config key datasets: no data set has a source" in result.stdout + result.stderr


def test_bad_config_key_stops_at_start_up(tmp_path):
    result = snakemake(tmp_path, "-n", "--configfile", str(ROOT / "config/demo.yaml"),
                       "--config", "seedz=[1]")
    assert result.returncode != 0
    assert "config key seedz: unknown key" in result.stdout + result.stderr


def test_nested_config_values_are_read_as_the_schemas_types(tmp_path):
    """Snakemake passes a nested --config value as text ('2'); it is read as the schema's integer, and
    text that is no integer names the key."""
    nested = "datasets={dsb2018: {train: {max_epochs: 2}, image_size: [64, 64]}}"
    result = snakemake(tmp_path, "-n", "--configfile", str(ROOT / "config/demo.yaml"), "--config", nested)
    assert result.returncode == 0, result.stderr
    assert "/64x64-" in result.stdout  # the prepared variant of the 64x64 training size
    bad = snakemake(tmp_path, "-n", "--configfile", str(ROOT / "config/demo.yaml"),
                    "--config", "datasets={dsb2018: {train: {max_epochs: two}}}")
    assert bad.returncode != 0
    assert "config key datasets.dsb2018.train.max_epochs: 'two' is not an integer" in bad.stdout + bad.stderr


@pytest.mark.slow
def test_demo_data_half_runs_and_then_has_nothing_to_do(tmp_path):
    from effunet.layout import Layout, configured

    demo = ROOT / "config/demo.yaml"
    _, prepared, values = configured_paths(demo)
    # Targets go before --configfile, which takes several values.
    targets = [str(prepared("dsb2018").manifest), str(prepared("drive").manifest)]
    result = snakemake(tmp_path, *targets, "--configfile", str(demo))
    assert result.returncode == 0, result.stderr[-3000:]
    dsb = pd.read_csv(tmp_path / prepared("dsb2018").manifest)
    drive = pd.read_csv(tmp_path / prepared("drive").manifest)
    n_dsb = values["datasets"]["dsb2018"]["synthetic"]["n_images"]
    n_drive = values["datasets"]["drive"]["synthetic"]["n_train"] + values["datasets"]["drive"]["synthetic"]["n_test"]
    assert len(dsb) == n_dsb and len(drive) == n_drive
    assert len(list((tmp_path / prepared("dsb2018").labels).glob("*.png"))) == n_dsb
    assert len(list((tmp_path / prepared("drive").fov).glob("*.png"))) == n_drive
    source = configured(values, "dsb2018")[0]
    assert f"merge masks: {n_dsb} items" in (tmp_path / Layout.data_log("merge_masks", "dsb2018", source)).read_text()
    again = snakemake(tmp_path, "-n", *targets, "--configfile", str(ROOT / "config/demo.yaml"))
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
def test_a_broken_drive_source_fails_clearly_and_writes_nothing(tmp_path):
    from effunet.layout import Layout, configured

    missing = tmp_path / "nowhere" / "DRIVE.zip"
    config = write_config(tmp_path / "c.yaml", {"datasets": {"drive": {"source": str(missing)}}})
    values = configured_paths(config)[2]
    raw = Layout.raw("drive", configured(values, "drive")[0])
    result = snakemake(tmp_path, str(raw), "--configfile", str(config))
    assert result.returncode != 0
    logs = list((tmp_path / "logs/data/download/drive").glob("*.log"))
    assert len(logs) == 1
    log = logs[0].read_text()
    assert "datasets.drive.source" in log.splitlines()[-1] and str(missing) in log
    assert not (tmp_path / raw).exists()


SMALL = {
    "seeds": [0], "models": ["unet", "effunet-b0"], "model_options": {"unet": {"base_filters": 8}},
    "datasets": {
        "dsb2018": {"source": "synthetic", "synthetic": {"n_images": 10}, "image_size": [32, 32],
                    "split": {"test_fraction": 0.2, "val_fraction": 0.25}, "train": {"max_epochs": 2, "batch_size": 4}},
        "drive": {"source": "synthetic", "synthetic": {"n_train": 3, "n_test": 2}, "image_size": [64, 64],
                  "split": {"val_count": 1}, "train": {"max_epochs": 2, "batch_size": 2}}},
    "train": {"encoder_weights": "none"}, "threads": {"prepare": 2, "train": 1},
    "mlflow": {"tracking_uri": "sqlite:///results/mlflow.db", "experiment": "wf-test"}}
RUNS = {f"{d}/{m}/study/seed0" for d in ("dsb2018", "drive") for m in ("unet", "effunet-b0")}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A small two-data-set, two-model workflow run to the end against a real `mlflow server`, as
    on a cluster; training jobs run side by side. Yields (workdir, config, server URL)."""
    workdir = tmp_path_factory.mktemp("finished")
    with mlflow_server(workdir) as url:
        config = write_config(workdir / "c.yaml", {**SMALL, "mlflow": {"tracking_uri": url, "experiment": "wf-test"}})
        result = snakemake(workdir, "--configfile", str(config), "--resources", "gpu=2")
        assert result.returncode == 0, result.stderr[-3000:]
        yield workdir, config, url


def planned_jobs(workdir: Path, config: Path, env: dict | None = None) -> list[str]:
    """`rule`, `rule:dataset` or `rule:dataset/model` for every job a dry run plans, with `@recipe` after
    it for a recipe other than `study`."""
    result = subprocess.run([*SNAKEMAKE, "-d", str(workdir), "-n", "--configfile", str(config)],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    jobs, rule = [], None
    for line in result.stdout.splitlines():
        if line.startswith("rule ") and line.endswith(":"):
            rule = line[5:-1]
            jobs.append(rule)
        elif line.strip().startswith("wildcards:") and rule and jobs[-1] == rule:
            values = dict(part.split("=") for part in line.split(":", 1)[1].strip().split(", "))
            recipe = f"@{values['recipe']}" if values.get("recipe", "study") != "study" else ""
            if "model" in values:
                jobs[-1] = f"{rule}:{values['dataset']}/{values['model']}{recipe}"
            elif "dataset" in values:
                jobs[-1] = f"{rule}:{values['dataset']}{recipe}"
    return sorted(jobs)


def rest(url: str, endpoint: str, body: dict | None = None) -> dict:
    """One call of MLflow's REST API (GET with a query string, or POST with a JSON body)."""
    import urllib.parse
    import urllib.request

    if body is None:
        request = urllib.request.Request(f"{url}/api/2.0/mlflow/{endpoint}")
    else:
        request = urllib.request.Request(f"{url}/api/2.0/mlflow/{endpoint}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def server_runs(url: str, experiment: str) -> tuple[str, dict]:
    experiment_id = rest(url, f"experiments/get-by-name?experiment_name={experiment}")["experiment"]["experiment_id"]
    runs = rest(url, "runs/search", {"experiment_ids": [experiment_id], "max_results": 100})["runs"]
    return experiment_id, {run["info"]["run_name"]: run for run in runs}


@pytest.mark.slow
def test_every_training_run_is_tracked_evaluated_plotted_and_reported(finished):
    workdir, config, url = finished
    _, runs = server_runs(url, "wf-test")
    assert set(runs) == RUNS  # one run per data set x model x seed, no duplicates
    layout = configured_paths(config)[0]
    for name in RUNS:
        run_dir = workdir / layout.results / name
        summary = json.loads((run_dir / "run.json").read_text())
        run = runs[name]
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        metrics = {m["key"] for m in run["data"]["metrics"]}
        assert run["info"]["run_id"] == summary["run_id"] and run["info"]["status"] == "FINISHED"
        assert tags["snakemake_rule"] == "train" and tags["seed"] == "0" and tags["recipe"] == "study"
        assert summary["recipe"] == "study" and summary["settings"]["max_epochs"] == 2
        assert params["max_epochs"] == "2" and int(params["parameters"]) == summary["parameters"]
        epochs = rest(url, f"metrics/get-history?run_id={summary['run_id']}&metric_key=val/loss")["metrics"]
        assert sorted(m["step"] for m in epochs) == [1, 2]
        # Browsable: the per-epoch curves and a handful of headline test metrics, in sections (train/,
        # val/, time/, test/, eval/); the training outcome as params; the rest are files.
        curves = {"train/loss", "train/accuracy", "train/iou", "train/dice", "val/loss", "val/accuracy", "val/iou",
                  "val/dice", "time/epoch_seconds"}
        headline = {"test/loss", "test/dice", "test/iou", "test/accuracy", "test/roc_auc", "test/pr_auc",
                    "test/dice_image_mean", "test/inference_images_per_s", "eval/threshold"}
        timing = {"best_epoch", "epochs_trained", "first_epoch_seconds", "seconds_per_epoch", "seconds_to_best",
                  "train_images_per_s"}
        assert curves | headline <= metrics and len(metrics) <= 30 and all("/" in k for k in metrics), sorted(metrics)
        assert timing <= set(params) and not timing & metrics and params["best_epoch"] == str(summary["best_epoch"])
        assert ("test/instance_ap_image_mean" in metrics) == name.startswith("dsb2018")
        assert [i["dataset"]["name"] for i in run["inputs"]["dataset_inputs"]] == [name.split("/")[0]]
        assert tags["eval.threshold"] == "0.5" and tags["eval.step"] == "1" and "eval.threshold" not in params
        assert tags["model_file"] == str(layout.results / name / "model.keras")
        listed = rest(url, f"artifacts/list?run_id={summary['run_id']}&path=")
        listed = {f["path"] for f in listed.get("files", [])}
        assert {"history.csv", "run.json", "eval", "plots"} <= listed and "model.keras" not in listed
        for folder, files in (("eval", {"metrics.json", "per_image.csv"}),
                              ("plots", {"learning_curves.png", "examples.png"})):
            inside = rest(url, f"artifacts/list?run_id={summary['run_id']}&path={folder}")["files"]
            assert {f["path"] for f in inside} == {f"{folder}/{file}" for file in files}
        assert len(pd.read_csv(run_dir / "history.csv")) == 2
        assert "epoch 2/2" in (workdir / layout.logs / "train" / f"{name}.log").read_text()
        for plot in ("learning_curves", "examples"):
            assert (run_dir / "plots" / f"{plot}.png").stat().st_size > 10_000
            assert (run_dir / "plots" / f"{plot}.svg").stat().st_size > 10_000
    table = pd.read_csv(workdir / layout.comparison("csv"))
    models = table[table.kind == "model"]
    assert sorted(zip(models.dataset, models.model, models.recipe)) == sorted(
        tuple(name.split("/")[:3]) for name in RUNS)
    references = table[table.kind == "reference"]
    assert sorted(zip(references.dataset, references.model)) == [
        ("drive", "2nd observer"), ("drive", "protocol ceiling"), ("dsb2018", "protocol ceiling")]
    assert references.dice_mean.between(0.5, 1).all()
    assert {"dice_mean", "dice_std", "instance_ap_mean", "epochs_trained_mean", "flops_mean", "test_loss_mean",
            "best_epoch_mean", "seconds_per_epoch_mean", "dice_pooled_mean"} <= set(table.columns)
    paired = pd.read_csv(workdir / layout.paired_tests)
    assert sorted(zip(paired.dataset, paired.quantity)) == [("drive", "test dice"), ("drive", "test loss"),
                                                           ("dsb2018", "test dice"), ("dsb2018", "test loss")]
    assert set(paired.verdict) == {"needs >= 3 seeds"}  # one seed: numbers, no verdict
    assert set(paired.family) == {"architectures, study"}  # one recipe: no recipe-vs-study rows
    cost = pd.read_csv(workdir / layout.cost)
    assert len(cost) == len(RUNS) and (cost.parameters_mean > 0).all() and (cost.flops_mean > 0).all()
    assert cost.seconds_to_best_mean.gt(0).all() and cost.dice_image_mean_mean.between(0, 1).all()
    assert len(pd.read_csv(workdir / layout.claims)) == 9
    assert "## The study's claims" in (workdir / layout.comparison("md")).read_text()
    assert "seeds to see 0.02" in (workdir / layout.comparison("md")).read_text()  # compare.target_difference
    assert "## Quality vs cost" in (workdir / layout.comparison("md")).read_text()
    for figure in ("comparison", "training_speed", "cost", "learning_curves_dsb2018_study",
                   "learning_curves_drive_study"):
        for suffix in (".png", ".svg"):
            assert ((workdir / layout.comparison_plot(figure)).with_suffix(suffix)).stat().st_size > 10_000
    report = snakemake(workdir, "--configfile", str(config), "--report", "report.html")
    assert report.returncode == 0, report.stderr[-2000:]
    text = (workdir / "report.html").read_text()
    assert "Learning curves" in text and "Comparison" in text


@pytest.mark.slow
def test_mlflow_ui_lists_the_runs_in_headless_chromium(finished):
    """What users see: the experiment's run list, rendered by Debian's Chromium; kept as a PNG."""
    import shutil

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    _, _, url = finished
    experiment_id, _ = server_runs(url, "wf-test")
    from effunet.tracking.ui import runs_url

    page = runs_url(url, experiment_id)  # what `effunet ui` prints
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={finished[0] / 'chromium-profile'}", "--virtual-time-budget=20000"]
    dom = subprocess.run([*flags, "--dump-dom", page], capture_output=True, text=True, timeout=180).stdout
    for name in RUNS:
        assert name in dom  # the run list shows every run by name
    assert "test/dice_image_mean" in dom  # the headline metric's column (the view effunet ui opens)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "mlflow-ui-runs.png"
    subprocess.run([*flags, "--window-size=1600,900", f"--screenshot={shot}", page], capture_output=True,
                   timeout=180, check=True)
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == (1600, 900) and len(image.getcolors(1 << 20) or range(10_000)) > 50


@pytest.mark.slow
def test_a_finished_run_plans_nothing(finished):
    assert planned_jobs(*finished[:2]) == []


AFTER_DSB2018 = ["aggregate", "all", "plot_comparison", "plot_cost", "plot_curves:dsb2018"]  # after a DSB2018 run changes
AFTER_TRAINING = [*AFTER_DSB2018, "plot_curves:drive"]


@pytest.mark.slow
def test_adding_a_recipe_plans_only_its_runs_and_the_summaries(finished):
    """The study's finished runs stay as they are (their params and files do not change); the new
    recipe's runs, its learning-curve overlays and the tables and charts over all runs are planned."""
    workdir = finished[0]
    changed = json.loads(json.dumps(SMALL))
    changed["recipes"] = {"study": {}, "fast": {"max_epochs": 1, "learning_rate": 0.01}}
    jobs = planned_jobs(workdir, write_config(workdir / "recipes.yaml", changed))
    expected = [f"{rule}:{d}/{m}@fast" for rule in ("evaluate", "plot_run", "train") for d in ("dsb2018", "drive")
                for m in ("unet", "effunet-b0")]
    expected += ["aggregate", "all", "plot_comparison", "plot_cost", "plot_curves:dsb2018@fast",
                 "plot_curves:drive@fast"]
    assert jobs == sorted(expected)
    summary = subprocess.run([*SNAKEMAKE, "-d", str(workdir), "--summary", "--configfile",
                              str(workdir / "recipes.yaml")], capture_output=True, text=True, timeout=300)
    assert summary.returncode == 0, summary.stderr[-2000:]
    fast_train = [line for line in summary.stdout.splitlines() if "/fast/seed0/model.keras" in line]
    assert len(fast_train) == 4 and all("\tmissing\t" in line for line in fast_train)
    study_train = [line for line in summary.stdout.splitlines() if "/study/seed0/model.keras" in line]
    assert len(study_train) == 4 and all("\tok\t" in line for line in study_train), study_train


@pytest.mark.slow
def test_changing_one_models_option_reruns_only_that_model(finished):
    workdir = finished[0]
    changed = json.loads(json.dumps(SMALL))
    changed["model_options"]["unet"]["base_filters"] = 16
    jobs = planned_jobs(workdir, write_config(workdir / "unet16.yaml", changed))
    expected = [f"{rule}:{d}/unet" for rule in ("evaluate", "plot_run", "train") for d in ("dsb2018", "drive")]
    assert jobs == sorted(expected + AFTER_TRAINING)


@pytest.mark.slow
def test_switching_the_backend_reruns_every_training_and_naming_the_default_reruns_nothing(finished):
    """The backend is part of a run's settings except at its default (issue 24 item 3)."""
    workdir = finished[0]
    env = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}  # as the fixture ran
    for backend in ("tensorflow", "jax"):
        changed = json.loads(json.dumps(SMALL))
        changed["train"]["backend"] = backend
        jobs = planned_jobs(workdir, write_config(workdir / f"{backend}.yaml", changed), env=env)
        expected = [f"{rule}:{run.rsplit('/', 2)[0]}" for rule in ("evaluate", "plot_run", "train") for run in RUNS]
        assert jobs == ([] if backend == "tensorflow" else sorted(expected + AFTER_TRAINING)), backend


@pytest.mark.slow
def test_changing_dsb2018_image_size_reruns_dsb2018_and_nothing_of_drive(finished):
    workdir = finished[0]
    changed = json.loads(json.dumps(SMALL))
    changed["datasets"]["dsb2018"]["image_size"] = [64, 64]
    jobs = planned_jobs(workdir, write_config(workdir / "dsb64.yaml", changed))
    expected = ["prepare:dsb2018", "reference:dsb2018"] + [f"{rule}:dsb2018/{m}" for rule in ("evaluate", "plot_run", "train")
                                               for m in ("unet", "effunet-b0")]
    assert jobs == sorted(expected + AFTER_DSB2018)


@pytest.mark.slow
def test_editing_a_models_code_reruns_its_training(finished, tmp_path):
    """A copy of the package, edited, shadows the installed one through PYTHONPATH."""
    import os
    import shutil

    workdir, config, _ = finished
    shutil.copytree(ROOT / "src", tmp_path / "src")
    with open(tmp_path / "src/effunet/models/unet.py", "a") as handle:
        handle.write("\n# an edit to the U-Net's code\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src")}
    jobs = planned_jobs(workdir, config, env)
    expected = [f"{rule}:{d}/unet" for rule in ("evaluate", "plot_run", "train") for d in ("dsb2018", "drive")]
    assert jobs == sorted(expected + AFTER_TRAINING)


TINY = {
    "seeds": [0], "models": ["unet"], "model_options": {"unet": {"base_filters": 4}},
    "datasets": {"dsb2018": {"source": "synthetic", "synthetic": {"n_images": 8}, "image_size": [32, 32],
                             "split": {"test_fraction": 0.25, "val_fraction": 0.34},
                             "train": {"max_epochs": 1, "batch_size": 4}}},
    "train": {"encoder_weights": "none"}, "threads": {"prepare": 1, "train": 1},
    "mlflow": {"tracking_uri": "sqlite:///results/mlflow.db", "experiment": "first"}}


def file_times(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_two_configs_keep_their_results_apart_and_never_rerun_each_other(finished):
    """Like the demo and the study: each config writes under results/<experiment>/, shares the
    prepared data where its inputs are the same, and running one leaves the other finished. The
    first config is the module's finished run (one workflow run less for the suite)."""
    workdir, first, _ = finished
    second_values = yaml.safe_load(first.read_text())
    second_values["mlflow"]["experiment"] = "second"
    second_values["models"] = ["unet"]
    second_values["model_options"]["unet"]["base_filters"] = 4
    del second_values["datasets"]["drive"]
    second = write_config(workdir / "second.yaml", second_values)
    first_layout, second_layout = configured_paths(first)[0], configured_paths(second)[0]
    assert (first_layout.results, second_layout.results) == (Path("results/wf-test"), Path("results/second"))

    first_files = file_times(workdir / first_layout.results)
    assert "comparison.csv" in first_files and "dsb2018/unet/study/seed0/model.keras" in first_files
    # The same inputs: the prepared data is shared, only the second config's own runs are planned.
    assert planned_jobs(workdir, second) == sorted(
        ["train:dsb2018/unet", "evaluate:dsb2018/unet", "plot_run:dsb2018/unet", "reference:dsb2018",
         *AFTER_DSB2018])
    done = snakemake(workdir, "--configfile", str(second))
    assert done.returncode == 0, done.stderr[-3000:]

    assert file_times(workdir / first_layout.results) == first_files  # untouched by the second
    assert planned_jobs(workdir, first) == [] and planned_jobs(workdir, second) == []
    unet = [table[(table["dataset"] == "dsb2018") & (table["model"] == "unet")]["parameters_mean"].item()
            for table in (pd.read_csv(workdir / layout.comparison("csv")) for layout in (first_layout, second_layout))]
    assert unet[0] > unet[1]  # 8 vs 4 base filters


@pytest.mark.slow
def test_a_fixed_folder_source_reruns_download_and_its_errors_name_the_users_file(tmp_path, dsb_zip):
    from effunet.data import archives

    user = tmp_path / "my images"
    archives.extract(dsb_zip, user)
    broken = sorted(user.glob("*/masks/*.png"))[0]
    good = broken.read_bytes()
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    config = write_config(tmp_path / "c.yaml", {
        "datasets": {"dsb2018": {"source": str(user), "image_size": [32, 32]}},
        "mlflow": {"tracking_uri": "sqlite:///results/mlflow.db", "experiment": "local"}})
    target = str(configured_paths(config)[1]("dsb2018").manifest)
    work = tmp_path / "work"

    failed = snakemake(work, target, "--configfile", str(config))
    assert failed.returncode != 0
    (log,) = (work / "logs/data/merge_masks/dsb2018").glob("*.log")
    assert str(broken) in log.read_text().splitlines()[-1]  # the user's file, not the copy in resources/

    broken.write_bytes(good)  # the user fixes their file: download reruns, without --forcerun
    plan = snakemake(work, "-n", target, "--configfile", str(config))
    assert plan.returncode == 0 and "rule download:" in plan.stdout, plan.stdout[-2000:]
    fixed = snakemake(work, target, "--configfile", str(config))
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    assert len(pd.read_csv(work / target)) == 8
    again = snakemake(work, "-n", target, "--configfile", str(config))
    assert "Nothing to be done" in again.stdout + again.stderr
