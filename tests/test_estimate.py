"""`effunet estimate`: a study's training and evaluation time from earlier runs or measured now."""

import json

import pytest
import yaml

from effunet import cli, estimate, throughput
from effunet.estimate import about
from effunet.run import Settings
from effunet.throughput import Measured

CONFIG = {
    "seeds": [0, 1],
    "models": ["unet"],
    "model_options": {"unet": {"base_filters": 4}},
    "datasets": {
        "dsb2018": {
            "source": "synthetic",
            "synthetic": {"n_images": 40, "seed": 0},
            "image_size": [64, 64],
            "split": {"test_fraction": 0.2, "val_fraction": 0.2, "seed": 42},
            "train": {"max_epochs": 9, "patience": 9, "batch_size": 4},
        }
    },
    "train": {"encoder_weights": "none", "mixed_precision": "off"},
    "threads": {"train": 1},
    "mlflow": {"tracking_uri": "sqlite:///results/mlflow.db", "experiment": "est"},
}
RUN = "results/est/dsb2018/unet/study/seed{seed}"
LOG = "logs/est/{rule}/dsb2018/unet/study/seed{seed}.log"


class FakeMeasurer:
    """Known figures instead of measuring; records what it was asked to measure."""

    def __init__(self, measured=None, scoring=0.05, startup=3.0):
        self.measured = measured or Measured(0.5, 0.1, 0.01, 3.0, 2.0, 7.0)
        self.asked, self.score, self.start = [], scoring, startup

    def model(self, model, size, settings):
        self.asked.append((model, tuple(size), settings["batch_size"]))
        return self.measured

    def tiles(self, native, size):
        return 12

    def scoring(self, config, dataset, native, size):
        return self.score

    def startup(self):
        return self.start


def _validate(config):
    return estimate.configs.validate(config, estimate.schema())


def write_run(seed, epochs, wall, *, batch_size=4, device="the CPU", size="64x64", scoring_s=4.0):
    """A finished run: run.json (first epoch 5 s, then 2 s an epoch, 26 training images), its train log,
    eval/metrics.json (50 images/s inference, 40 images scored) and an evaluate log spanning `scoring_s`."""
    run = RUN.format(seed=seed)
    record = {
        "epochs_trained": epochs,
        "best_epoch": epochs,
        "wall_seconds": wall,
        "first_epoch_seconds": 5.0,
        "seconds_per_epoch": 2.0,
        "train_images": 26,
        # as the training job records them: every setting, those added after the study left out at default
        "settings": Settings(
            batch_size=batch_size, encoder_weights="none", mixed_precision="off", model_options={"base_filters": 4}
        ).params(),
    }
    write(f"{run}/run.json", json.dumps(record))
    splits = {name: {"native": {"images": n}} for name, n in (("train", 26), ("val", 6), ("test", 8))}
    write(f"{run}/eval/metrics.json", json.dumps({"inference_images_per_s": 50.0, "splits": splits}))
    write(
        LOG.format(rule="train", seed=seed),
        f"2026-12-07 07:06:38,471 INFO effunet.models.runtime: training on {device} with the tensorflow backend\n"
        f"2026-12-07 07:06:38,423 INFO effunet.training.dataset: loaded 26 train images of {size} from x\n",
    )
    stamp = f"2026-12-07 07:10:{10 + scoring_s:06.3f}".replace(".", ",")
    write(
        LOG.format(rule="evaluate", seed=seed),
        "2026-12-07 07:10:10,000 INFO effunet.evaluate: threshold 0.50 (fixed)\n"
        f"{stamp} INFO effunet.evaluate: train (native, pooled): dice 0.1\n"
        f"{stamp} INFO effunet.evaluate: test (native, pooled): dice 0.1\n",
    )


def write(path, text):
    from pathlib import Path

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)


@pytest.mark.parametrize(
    "seconds, words",
    [
        (0.2, "about 1 s"),
        (40, "about 40 s"),
        (7 * 60 + 10, "about 7 min"),
        (90 * 60, "about 1 h 30 min"),
        (3 * 3600 + 10 * 60 + 120, "about 3 h 10 min"),
        (3 * 3600 + 14 * 60, "about 3 h 10 min"),
        (24 * 3600, "about 24 h"),
        (2 * 86400 + 5 * 3600, "about 2 days 5 h"),
        (3 * 86400, "about 3 days"),
    ],
)
def test_durations_read_as_words(seconds, words):
    assert about(seconds) == words


def test_image_counts_from_what_the_format_knows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    synthetic = estimate.image_counts(_validate(json.loads(json.dumps(CONFIG))), "dsb2018")
    assert (synthetic.train, synthetic.val, synthetic.test) == (
        26,
        6,
        8,
    )  # test 40 x 0.2, validation 32 x 0.2 (the demo's manifest)
    real = json.loads(json.dumps(CONFIG))
    real["datasets"]["dsb2018"].update(
        source="https://example.org/stage1_train.zip",
        sha256="eaa2f0f8d1ee2978aeb581604b93e4facce6aeca79ead3a581112bcd2e7b00ac",
    )
    counts = estimate.image_counts(_validate(real), "dsb2018")
    # 670 images: test 670 x 0.2 = 134, validation (670 - 134) x 0.2 = 107, the rest trains
    assert (counts.train, counts.val, counts.test) == (429, 107, 134) and "checksum" in counts.source
    real["datasets"]["dsb2018"]["sha256"] = "0" * 64
    assert estimate.image_counts(_validate(real), "dsb2018").total is None


def test_the_last_runs_timings_give_known_answers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_run(0, epochs=6, wall=20.0)  # fixed time in the job: 20 - 5 - 5 x 2 = 5 s
    write_run(1, epochs=8, wall=24.0)  # 24 - 5 - 7 x 2 = 5 s
    measurer = FakeMeasurer(startup=3.0)
    rows, device, startup = estimate.estimate(
        _validate(json.loads(json.dumps(CONFIG))), measurer=measurer, device=("cpu", "CPU test")
    )
    assert measurer.asked == []  # nothing measured: every figure from the runs
    (row,) = rows
    assert row.runs == 2 and row.epochs_expected == 7 and row.max_epochs == 9
    assert row.figures.epoch_s == 2.0 and row.figures.first_epoch_s == 5.0 and row.figures.train_fixed_s == 5.0
    assert row.train_s(row.epochs_expected) == pytest.approx(3 + 5 + 5 + 6 * 2)
    assert row.train_s(row.max_epochs) == pytest.approx(3 + 5 + 5 + 8 * 2)
    # evaluation: 1/50 s inference + 4 s / 40 images scoring, for 40 images, after start-up
    assert row.figures.eval_image_s == pytest.approx(0.02 + 0.1)
    assert row.eval_s == pytest.approx(3 + 40 * 0.12)
    assert "last runs (seed 0, 1" in row.figures.source
    job_s, wall_s = estimate.totals(rows, slots=2)
    assert job_s == pytest.approx(2 * (25 + 7.8)) and wall_s == pytest.approx(25 + 7.8)
    assert estimate.totals(rows, slots=1)[1] == pytest.approx(2 * 32.8)
    assert estimate.totals(rows, slots=2, upper=True)[1] == pytest.approx(29 + 7.8)


def test_runs_with_other_speed_settings_or_device_are_not_reused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_run(0, epochs=6, wall=20.0, batch_size=8)
    write_run(1, epochs=6, wall=20.0, device="the GPU")
    measurer = FakeMeasurer()
    (row,), _, _ = estimate.estimate(
        _validate(json.loads(json.dumps(CONFIG))), measurer=measurer, device=("cpu", "CPU test")
    )
    assert measurer.asked == [("unet", (64, 64), 4)]
    assert "measured now" in row.figures.source
    assert "seed0 had other batch_size" in row.figures.source and "seed1 ran on the GPU" in row.figures.source
    assert row.epochs_expected == 9  # no usable run: max_epochs
    write_run(2, epochs=6, wall=20.0, size="128x128")
    (row,), _, _ = estimate.estimate(
        _validate(json.loads(json.dumps(CONFIG))), measurer=FakeMeasurer(), device=("cpu", "CPU test")
    )
    assert "seed2 had other image_size [128, 128]" in row.figures.source


def test_measured_figures_give_known_answers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_run(0, epochs=6, wall=20.0)  # ignored: --measure
    measurer = FakeMeasurer(
        Measured(step_s=0.5, val_batch_s=0.1, inference_image_s=0.01, trace_s=3.0, build_s=2.0, measuring_s=7.0),
        scoring=0.05,
        startup=1.0,
    )
    (row,), _, _ = estimate.estimate(
        _validate(json.loads(json.dumps(CONFIG))), measure=True, measurer=measurer, device=("cpu", "CPU test")
    )
    # 26 training images in batches of 4: 7 steps; 6 validation images: 2 batches
    assert row.figures.epoch_s == pytest.approx(7 * 0.5 + 2 * 0.1)
    assert row.figures.first_epoch_s == pytest.approx(3.7 + 3.0)
    assert row.train_s(9) == pytest.approx(1 + 2 + 6.7 + 8 * 3.7)
    assert row.eval_s == pytest.approx(1 + 40 * (0.01 + 0.05))
    assert row.figures.source.startswith("measured now (7 s)") and row.epochs_expected == 9
    sliding = _validate(json.loads(json.dumps(CONFIG)))
    sliding["datasets"]["dsb2018"]["train"]["inference"] = "sliding"
    (row,), _, _ = estimate.estimate(sliding, measure=True, measurer=measurer, device=("cpu", "CPU test"))
    assert row.figures.eval_image_s == pytest.approx(12 * 0.01 + 0.05)  # 12 tiles an image


def test_measuring_runs_a_tiny_model_and_scores_constructed_images():
    settings = {"batch_size": 2, "mixed_precision": "off", "model_options": {"base_filters": 4}}
    measured = throughput.measure_model("unet", (32, 32), settings, steps=1)
    for value in (measured.step_s, measured.val_batch_s, measured.inference_image_s, measured.build_s):
        assert 0 < value < 60
    assert measured.measuring_s >= measured.build_s + measured.step_s
    assert 0 < throughput.measure_scoring((96, 80), (32, 32), instances=True, region=False, count=1) < 60
    assert 0 < throughput.measure_scoring((96, 80), (32, 32), instances=False, region=True, count=1, threads=2) < 60
    # tiles at half overlap: 256 -> starts 0, 64, 128; 320 -> 0, 64, 128, 192
    assert throughput.sliding_tiles((256, 320), (128, 128)) == 12
    assert throughput.sliding_tiles((64, 64), (128, 128)) == 1


def test_cpu_description_names_model_and_vector_flags():
    info = "processor\t: 0\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu sse avx2 avx512f\n\nprocessor\t: 1\n"
    assert throughput.cpu_description(info) == "CPU AMD EPYC 9B14 (2 logical CPUs; avx2, avx512f)"
    assert "no avx2/avx512/amx" in throughput.cpu_description("processor : 0\nflags : sse\n")


def test_cli_prints_the_table_and_totals(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    write_run(0, epochs=6, wall=20.0)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(CONFIG))
    monkeypatch.setattr(throughput, "startup_seconds", lambda: 3.0)
    monkeypatch.setattr(throughput, "device_description", lambda setting: ("cpu", "CPU test (2 logical CPUs)"))
    assert cli.main(["estimate", "--configfile", "c.yaml", "--jobs", "2"]) == 0
    out = capfd.readouterr().out
    assert "Figures for: CPU test (2 logical CPUs), 1 thread(s) a job" in out
    row = next(line for line in out.splitlines() if line.startswith("| dsb2018 | unet | study | 2 |"))
    # 6 epochs expected: 3 + 5 + 5 + 5 x 2 = 23 s; at most 9: 29 s; evaluation 3 + 40 x 0.12 = 7.8 s
    assert "| 6 (9) | 2 | about 23 s (at most about 29 s) | about 8 s | last runs (seed 0;" in row
    assert "2 runs: training and evaluation about 1 min of job time" in out
    assert "With 2 job(s) at once: about 31 s wall (about 37 s if every run trains max_epochs)" in out
    assert cli.main(["estimate", "--configfile", "c.yaml", "--gpus", "1"]) == 0
    assert "With 1 GPU(s) x 1 job(s) each" in capfd.readouterr().out


def test_cli_bad_config_names_the_file_and_key(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.yaml").write_text("seeds: [0\n")
    assert cli.main(["estimate", "--configfile", "broken.yaml"]) == 2
    assert "broken.yaml, line" in capfd.readouterr().err
    bad = {**CONFIG, "train": {"max_epoch": 3}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    assert cli.main(["estimate", "--configfile", "bad.yaml"]) == 2
    err = capfd.readouterr().err
    assert "bad.yaml" in err and "train.max_epoch: unknown key" in err
    assert cli.main(["estimate", "--configfile", "missing.yaml"]) == 2
    assert "missing.yaml" in capfd.readouterr().err
