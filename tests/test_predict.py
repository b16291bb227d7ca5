"""`effunet predict`: nothing overwritten, per-image failures reported, readable errors, a quiet CLI."""

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from PIL import Image

from effunet import cli, predict
from effunet.errors import EffunetError


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A model that says foreground everywhere (known answer: every mask pixel is 255)."""
    path = tmp_path_factory.mktemp("model") / "m.keras"
    keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(
                1,
                1,
                activation="sigmoid",
                kernel_initializer="zeros",
                bias_initializer=keras.initializers.Constant(20.0),
            ),
        ]
    ).save(path)
    return path


def image(path, height, width):
    Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(path)


def test_inputs_that_share_a_name_get_their_own_masks(model, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    image(folder / "img.png", 40, 30)
    image(folder / "img.jpg", 20, 50)
    image(folder / "other.png", 33, 33)
    assert cli.main(["predict", str(model), str(folder), str(tmp_path / "out")]) == 0
    assert "wrote 3 mask(s)" in capsys.readouterr().out
    sizes = {p.name: Image.open(p).size for p in (tmp_path / "out").iterdir()}
    assert sizes == {"img_png_mask.png": (30, 40), "img_jpg_mask.png": (50, 20), "other_mask.png": (33, 33)}


def test_names_that_still_collide_are_refused_before_anything_is_written(model, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "a.jpg", "a_png.bmp"):
        image(folder / name, 32, 32)
    assert cli.main(["predict", str(model), str(folder), str(tmp_path / "out")]) == 2
    assert "a_png_mask.png" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    with pytest.raises(EffunetError, match="rename one"):
        predict.output_stems([folder / "X.png", folder / "x.tif", folder / "x_TIF.png"])


@pytest.mark.parametrize("probabilities", [False, True])
def test_a_second_call_does_not_overwrite_masks_without_overwrite(model, tmp_path, capsys, probabilities):
    """`predict m a/ out/` then `predict m b/ out/`, both with img.png: the second call stops before
    predicting, names the colliding file and leaves it as it was; --overwrite replaces it."""
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    image(tmp_path / "a/img.png", 32, 32)
    image(tmp_path / "a/only_a.png", 32, 32)
    image(tmp_path / "b/img.png", 40, 20)
    image(tmp_path / "b/new.png", 32, 32)
    out = tmp_path / "out"
    extra = ["--probabilities"] if probabilities else []
    assert cli.main(["predict", str(model), str(tmp_path / "a"), str(out), "--quiet", *extra]) == 0
    if probabilities:  # only the probability file is left to collide
        (out / "img_mask.png").unlink()
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    capsys.readouterr()
    assert cli.main(["predict", str(model), str(tmp_path / "b"), str(out), "--quiet", *extra]) == 2
    err = capsys.readouterr().err
    colliding = out / ("img_prob.png" if probabilities else "img_mask.png")
    assert f"{colliding} already exists" in err and "--overwrite" in err
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before  # nothing predicted, new.png neither
    assert cli.main(["predict", str(model), str(tmp_path / "b"), str(out), "--quiet", "--overwrite", *extra]) == 0
    assert Image.open(out / "img_mask.png").size == (20, 40) and (out / "new_mask.png").exists()
    assert (out / "only_a_mask.png").read_bytes() == before["only_a_mask.png"]


def test_the_overwrite_check_comes_before_the_model_is_loaded(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out/img_mask.png").write_bytes(b"earlier")
    image(tmp_path / "img.png", 32, 32)
    with pytest.raises(EffunetError, match="img_mask.png already exists"):
        predict.predict_files(tmp_path / "missing.keras", tmp_path / "img.png", tmp_path / "out")


def test_a_failing_image_is_reported_and_the_others_are_kept(model, tmp_path, capsys, caplog):
    caplog.set_level("INFO")
    folder = tmp_path / "in"
    folder.mkdir()
    image(folder / "a.png", 40, 40)
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    image(folder / "c.png", 20, 20)
    assert cli.main(["predict", str(model), str(folder), str(tmp_path / "out")]) == 1
    captured = capsys.readouterr()
    assert "wrote 2 mask(s)" in captured.out and "1 image(s) failed" in captured.out
    assert "b.png" in captured.err and "corrupt or truncated" in captured.err
    for name, size in (("a_mask.png", 40), ("c_mask.png", 20)):
        mask = np.asarray(Image.open(tmp_path / "out" / name))
        assert mask.shape == (size, size) and mask.min() == 255
    assert not (tmp_path / "out/b_mask.png").exists()
    assert "[1/3] a.png -> a_mask.png" in caplog.text and "[3/3] c.png" in caplog.text  # progress


@pytest.mark.parametrize(
    "content, message",
    [
        (b"just some notes\n", "is not a Keras model file"),
        (None, "is a folder, not a model file"),
    ],
)
def test_a_file_that_is_no_model_says_so(model, tmp_path, capsys, content, message):
    path = tmp_path / "model.keras"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    image(tmp_path / "a.png", 32, 32)
    assert cli.main(["predict", str(path), str(tmp_path / "a.png"), str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_status:
        cli.main(["--version"])
    assert exit_status.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("effunet ") and out.strip() != "effunet"


@pytest.mark.slow
def test_the_command_is_quiet_and_predict_needs_no_training_code(tmp_path):
    """A model trained with the package's custom losses loads without importing effunet.training,
    and TensorFlow's C++ start-up lines (I0000/W0000/E0000 ..., cuInit) stay off the terminal."""
    from effunet.training import loop

    trained = tmp_path / "trained.keras"
    settings = loop.Settings(encoder_weights="none", loss="bce+dice", model_options={"base_filters": 2})
    loop.build_compiled("unet", (32, 32, 3), settings).save(trained)
    image(tmp_path / "a.png", 32, 32)
    script = textwrap.dedent(f"""
        import sys
        from effunet import cli
        status = cli.main(["predict", {str(trained)!r}, {str(tmp_path / "a.png")!r}, {str(tmp_path / "out")!r}])
        print("training imported:", any(m.startswith("effunet.training") for m in sys.modules))
        sys.exit(status)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "training imported: False" in result.stdout
    noise = [
        line
        for line in result.stderr.splitlines()
        if line[:5] in ("I0000", "W0000", "E0000") or "cuInit" in line or "absl::InitializeLog" in line
    ]
    assert noise == [], result.stderr
    assert (tmp_path / "out/a_mask.png").exists()


@pytest.mark.parametrize(
    "line, noise",
    [
        ("I0000 00:00:1796008553.960028   17606 cudart_stub.cc:31] Could not find cuda drivers", True),
        ("E0000 00:00:1796008581.308340   17606 cuda_platform.cc:52] failed call to cuInit", True),
        ("2025-09-17 14:44:05.157831: I external/local_xla/xla/tsl/cuda/cudart_stub.cc:32] Could not", True),
        ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR", True),
        ("[1/3] a.png -> a_mask.png (0.4 s, about 1 s left)", False),
        ("effunet: error: model file not found: m.keras", False),
        ("Traceback (most recent call last):", False),
    ],
)
def test_only_tensorflows_cpp_lines_are_filtered(line, noise):
    assert bool(cli.TF_NOISE.match(line)) is noise


def test_predict_says_what_it_does_from_the_first_line_to_the_last(model, tmp_path, capsys, caplog):
    """The model named with its data set, training size and inference mode once read; per-image lines
    with each image's own time, an ETA from the second image on; a closing line with images/s."""
    import json
    import logging

    run = tmp_path / "results/demo/dsb2018/effunet-b0/study/seed0"
    run.mkdir(parents=True)
    (run / "model.keras").write_bytes(model.read_bytes())
    (run / "run.json").write_text(json.dumps({"settings": {"inference": "sliding"}}))
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "b", "c"):
        image(folder / f"{name}.png", 40, 40)
    with caplog.at_level(logging.INFO, logger="effunet.predict"):
        assert cli.main(["predict", str(run / "model.keras"), str(folder), str(tmp_path / "out")]) == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "effunet.predict"]
    assert lines[0] == f"reading model {run / 'model.keras'} (starting TensorFlow) ..."
    assert lines[1].startswith(
        f"model {run / 'model.keras'}: effunet-b0 trained on dsb2018 (study, seed0), training size 32x32, "
        "inference sliding (read in "
    )
    steps = lines[2:]
    assert [line.split(" (")[0] for line in steps] == [
        "[1/3] a.png -> a_mask.png",
        "[2/3] b.png -> b_mask.png",
        "[3/3] c.png -> c_mask.png",
    ]
    assert "left" not in steps[0] and "about" in steps[1] and "left" not in steps[2]  # no ETA from the first
    closing = capsys.readouterr().out
    assert closing.startswith(f"wrote 3 mask(s) to {tmp_path / 'out'} in ") and "images/s)" in closing


def test_eta_comes_from_the_images_after_the_first():
    assert predict.eta([20.0], 5) is None  # the first image includes tracing: no estimate from it
    assert predict.eta([20.0, 0.1, 0.3], 10) == pytest.approx(2.0)


def test_threshold_help_gives_its_default(capsys):
    with pytest.raises(SystemExit):
        cli.main(["predict", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--threshold THRESHOLD a pixel is foreground where its probability is above this (default: 0.5" in help_text


def test_inference_batches_hold_32_images_of_128_and_give_the_probabilities_of_batches_of_8(tmp_path):
    """The batch evaluation and predict use (`inference_batch`) changes their speed, not one bit of
    a probability: effunet-b0 (depthwise convolutions, batch norm, squeeze-excitation, resizes)."""
    from effunet.models import build

    assert [predict.inference_batch(s) for s in [(128, 128), (64, 64), (256, 256), (512, 512)]] == [32, 128, 8, 8]
    assert predict.inference_batch((None, None)) == 8
    keras.utils.set_random_seed(0)
    build("effunet-b0", (64, 64, 3), encoder_weights=None).save(tmp_path / "b0.keras")
    pictures = np.random.default_rng(0).integers(0, 256, (40, 64, 64, 3), dtype=np.uint8)
    default, eights = predict.Predictor(tmp_path / "b0.keras"), predict.Predictor(tmp_path / "b0.keras", batch_size=8)
    assert (default.batch_size, eights.batch_size) == (128, 8)  # all 40 in one call, or in 5
    together, in_eights = default.outputs(pictures), eights.outputs(pictures)
    assert together.shape == (40, 64, 64, 1) and np.ptp(together) > 0.01
    assert np.array_equal(together, in_eights)
