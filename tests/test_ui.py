"""`effunet ui` as a person uses it: a results folder, moved, opened in MLflow's server on loopback;
checked through the server's REST API (what the UI's pages read)."""

import json
import shutil
import urllib.parse
import urllib.request

import pytest

from effunet import cli, tracking
from effunet.tracking import ui
from effunet.tracking.names import HEADLINE, metric_key

EXPERIMENT = "ui-test"
RUNS = ("dsb2018/unet/study/seed0", "dsb2018/effunet-b0/study/seed0")


def test_metric_keys_are_grouped_by_prefix():
    assert [metric_key(k) for k in ("loss", "val_dice", "learning_rate", "seconds", "test_dice_image_mean")] == [
        "train/loss",
        "val/dice",
        "train/learning_rate",
        "time/epoch_seconds",
        "test/dice_image_mean",
    ]
    assert metric_key("inference_images_per_s") == "test/inference_images_per_s"
    assert metric_key("eval.threshold") == "eval/threshold" and metric_key("val/loss") == "val/loss"


def _experiment(results):
    """Two runs logged as training and evaluation log them: curves, outcome, evaluation, plot, data set, model."""
    uri = f"sqlite:///{results / 'mlflow.db'}"
    tracking.prepare_store(uri, EXPERIMENT)
    manifest = results.parent / "prepared" / "manifest.csv"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("id,split\na,train\nb,train\nc,val\nd,test\n")
    files = {}
    for number, name in enumerate(RUNS):
        dataset, model, recipe, seed = name.split("/")
        folder = results / EXPERIMENT / name
        (folder / "plots").mkdir(parents=True)
        (folder / "model.keras").write_bytes(b"PK model %d" % number)
        (folder / "plots" / "learning_curves.png").write_bytes(b"png %d" % number)
        tags = tracking.default_tags(dataset, model, seed[4:], recipe=recipe)
        with tracking.RunTracker.open(uri, EXPERIMENT, name, tags=tags) as run:
            run.log_params({"model": model, "max_epochs": 2})
            for epoch in (1, 2):
                run.log_metrics(
                    {"loss": 1 / epoch, "val_loss": 1.1 / epoch, "learning_rate": 3e-3, "seconds": 2.0}, step=epoch
                )
            outcome = {"best_epoch": 2, "best_val_loss": 0.55, "epochs_trained": 2, "first_epoch_seconds": 2.0}
            assert run.logged_steps("epochs_trained") == set()
            run.log_metrics(outcome, step=2)  # as training.loop logs its outcome
            assert run.logged_steps("epochs_trained") == {2} and run.logged_steps("val_loss") == {1, 2}
            run.log_evaluation(
                {"test_dice_image_mean": 0.8 + number / 10, "test_dice": 0.7, "inference_images_per_s": 9.0},
                {"threshold": 0.5, "threshold_chosen_on": "fixed"},
            )
            run.log_artifact(folder / "plots" / "learning_curves.png", "plots")
            run.log_manifest(manifest)
            model_file = (folder / "model.keras").relative_to(results.parent)  # as the workflow gives it
            model_id = run.log_model_reference(model_file)
            assert model_id and run.log_model_reference(model_file) == model_id  # once per file
            files[run.run_id] = name
    return files


def _get(url, route, **query):
    with urllib.request.urlopen(f"{url}/{route}?{urllib.parse.urlencode(query)}", timeout=30) as answer:
        return answer.read()


def _post(url, path, body):
    request = urllib.request.Request(f"{url}/{path}", json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


@pytest.mark.slow
def test_ui_of_a_moved_results_folder_lists_headline_metric_plots_data_set_and_model(tmp_path):
    files = _experiment(tmp_path / "old" / "results")
    shutil.move(tmp_path / "old", tmp_path / "new")  # the results folder moved with its store
    results = tmp_path / "new" / "results"
    uri = ui.store_uri(results)
    said = []
    found = ui.prepare(uri, said.append)
    assert [(name, count) for _, name, count in found] == [(EXPERIMENT, 2)]
    assert said and "moved" in said[0] and str(results / "mlartifacts") in said[0]
    assert ui.prepare(uri, said.append) and len(said) == 1  # nothing moved the second time: nothing said
    server, url = ui.start_server(uri, port=ui.free_port(), timeout_s=240)
    try:
        experiment_id = found[0][0]
        page = ui.runs_url(url, experiment_id)
        assert page == (
            f"{url}/#/experiments/{experiment_id}/runs?workflowType=machine_learning&viewStateShareKey=effunet-runs"
        )
        assert _get(url, "").startswith(b"<!doctype html>") or b"<html" in _get(url, "")[:500].lower()
        experiment = json.loads(_get(url, "api/2.0/mlflow/experiments/get", experiment_id=experiment_id))
        tags = {t["key"]: t["value"] for t in experiment["experiment"]["tags"]}
        assert tags["mlflow.experimentKind"] == "custom_model_development"
        view = json.loads(tags["mlflow.sharedViewState.effunet-runs"])
        assert f"metrics.`{HEADLINE}`" in view["selectedColumns"] and view["orderByKey"] == f"metrics.`{HEADLINE}`"
        runs = _post(url, "api/2.0/mlflow/runs/search", {"experiment_ids": [experiment_id]})["runs"]
        assert {run["info"]["run_name"] for run in runs} == set(RUNS)
        models = _post(url, "api/2.0/mlflow/logged-models/search", {"experiment_ids": [experiment_id]})["models"]
        by_run = {model["info"]["source_run_id"]: model["info"] for model in models}
        for run in runs:
            run_id = run["info"]["run_id"]
            name = files[run_id]
            folder = results / EXPERIMENT / name
            metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
            params = {p["key"]: p["value"] for p in run["data"]["params"]}
            assert HEADLINE in metrics and all("/" in key for key in metrics), sorted(metrics)  # sections
            assert {"train/loss", "val/loss", "time/epoch_seconds", "eval/threshold"} <= set(metrics)
            assert params["best_epoch"] == "2" and params["epochs_trained"] == "2" and "best_epoch" not in metrics
            (dataset,) = run["inputs"]["dataset_inputs"]
            assert dataset["dataset"]["name"] == "dsb2018" and "prepared" in dataset["dataset"]["source"]
            plot = _get(url, "get-artifact", path="plots/learning_curves.png", run_uuid=run_id)
            assert plot == (folder / "plots" / "learning_curves.png").read_bytes()
            model = by_run[run_id]
            assert model["status"] == "LOGGED_MODEL_READY" and model["name"].startswith(name.split("/")[1])
            link = _get(
                url,
                f"ajax-api/2.0/mlflow/logged-models/{model['model_id']}/artifacts/files",
                artifact_file_path="model_file.json",
            )
            assert (results.parent / json.loads(link)["model_file"]).resolve() == (folder / "model.keras").resolve()
            tags = {t["key"]: t["value"] for t in model["tags"]}
            assert tags["mlflow.model.isExternal"] == "true" and tags["model_file"] == json.loads(link)["model_file"]
        assert not list(results.rglob("mlartifacts/**/model.keras"))  # the model is kept once, not copied
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_ui_without_a_store_names_the_folder(tmp_path, capsys):
    assert cli.main(["ui", str(tmp_path)]) == 2
    assert f"no MLflow store at {tmp_path / 'mlflow.db'}" in capsys.readouterr().err
