import copy

import pytest
import yaml

from effunet import config as effconfig
from effunet import run
from effunet.errors import ConfigError
from conftest import ROOT

SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"


def load(name):
    return yaml.safe_load((ROOT / name).read_text())


@pytest.mark.parametrize("name", ["config.yaml", "config/demo.yaml", "config/dsb2018-recipes.yaml"])
def test_shipped_configs_are_valid(name):
    effconfig.validate(load(name), SCHEMA)


def test_defaults_are_filled_in():
    config = effconfig.validate({"datasets": {"dsb2018": {"source": "synthetic"}}}, SCHEMA)
    assert config["datasets"]["dsb2018"]["image_size"] == [128, 128]
    assert config["datasets"]["dsb2018"]["split"] == {"test_fraction": 0.1, "val_fraction": 0.1, "seed": 42}
    assert config["train"]["patience"] == 55 and config["seeds"] == [0, 1, 2]
    assert config["mlflow"]["tracking_uri"] == "sqlite:///results/mlflow.db"


def test_train_settings_apply_data_set_overrides():
    config = effconfig.validate(load("config.yaml"), SCHEMA)
    assert effconfig.train_settings(config, "drive")["max_epochs"] == 200
    assert effconfig.train_settings(config, "dsb2018")["max_epochs"] == 100
    assert effconfig.train_settings(config, "drive")["patience"] == 55


def test_recipe_settings_resolve_defaults_train_data_set_then_recipe():
    """schema defaults <- train <- datasets.<d>.train <- recipes.<r> (only the keys the recipe sets)."""
    config = effconfig.validate(
        {
            "datasets": {"dsb2018": {"source": "synthetic", "train": {"max_epochs": 7, "batch_size": 4}}},
            "train": {"loss": "dice", "learning_rate": 0.01},
            "recipes": {"study": {}, "modern": {"loss": "bce+dice", "batch_size": 8}},
        },
        SCHEMA,
    )
    study = effconfig.train_settings(config, "dsb2018", "study")
    assert study == effconfig.train_settings(config, "dsb2018")  # `study: {}` is the train blocks as they are
    assert (study["loss"], study["learning_rate"], study["max_epochs"], study["batch_size"]) == ("dice", 0.01, 7, 4)
    assert study["patience"] == 55  # the schema's default
    modern = effconfig.train_settings(config, "dsb2018", "modern")
    assert modern == {**study, "loss": "bce+dice", "batch_size": 8}
    assert not set(run.PLACEMENT_KEYS) & set(modern)
    with pytest.raises(ConfigError, match="no recipe named 'fancy'"):
        effconfig.train_settings(config, "dsb2018", "fancy")


def test_recipes_default_to_the_study_and_are_validated_like_train_blocks():
    config = effconfig.validate({"datasets": {"dsb2018": {"source": "synthetic"}}}, SCHEMA)
    assert config["recipes"] == {"study": {}}
    for recipes, message in (
        ({"modern": {"loss": "focal"}}, "config key recipes.modern.loss: 'focal' is not one of"),
        ({"modern": {"max_epoch": 3}}, "config key recipes.modern.max_epoch: unknown key"),
        ({"modern": {"device": "cpu"}}, "config key recipes.modern.device: unknown key"),  # placement: not a recipe's
        ({"new/recipe": {}}, "config key recipes.new/recipe: a recipe name is a letter"),
        ({"1st": {}}, "config key recipes.1st: a recipe name"),
        ({}, "config key recipes: {} should be non-empty"),
    ):
        with pytest.raises(ConfigError) as error:
            effconfig.validate({"datasets": {"dsb2018": {"source": "synthetic"}}, "recipes": recipes}, SCHEMA)
        assert message in str(error.value), str(error.value)


def test_a_recipe_and_a_data_set_train_block_accept_every_training_setting():
    """Keys added to $defs/train must be added to train_overrides too (recipes and data sets use it)."""
    defs = yaml.safe_load(SCHEMA.read_text())["$defs"]
    settings = set(defs["train"]["properties"]) - set(run.PLACEMENT_KEYS)
    assert set(defs["train_overrides"]["properties"]) == settings


@pytest.mark.parametrize(
    "edit, key, reason",
    [
        (lambda c: c["datasets"]["dsb2018"].update(imagesize=[1, 2]), "datasets.dsb2018.imagesize", "unknown key"),
        (lambda c: c.update(sedds=[1]), "sedds", "unknown key"),
        (
            lambda c: c["datasets"]["dsb2018"].update(image_size=[100, 128]),
            "datasets.dsb2018.image_size[0]",
            "multiple of 32",
        ),
        (
            lambda c: c["datasets"]["dsb2018"]["split"].update(test_fraction=1.5),
            "datasets.dsb2018.split.test_fraction",
            "maximum of 1",
        ),
        (lambda c: c["train"].update(learning_rate="fast"), "train.learning_rate", "'fast' is not a number"),
        (lambda c: c.update(models=["unet", "vgg-unet"]), "models[1]", "not one of"),
        (lambda c: c["datasets"]["drive"]["train"].update(max_epochs=0), "datasets.drive.train.max_epochs", "minimum"),
        (lambda c: c["mlflow"].update(experiment="my study/1"), "mlflow.experiment", "does not match"),
    ],
)
def test_bad_config_names_the_key(edit, key, reason):
    config = copy.deepcopy(load("config.yaml"))
    edit(config)
    with pytest.raises(ConfigError) as error:
        effconfig.validate(config, SCHEMA)
    assert f"config key {key}:" in str(error.value)
    assert reason in str(error.value)


def test_model_options_in_the_schema_are_the_builders_options():
    """The schema checks model_options at start-up (no TensorFlow import there); this keeps it
    equal to what each builder's signature accepts."""
    from effunet.models import registry

    schema = yaml.safe_load(SCHEMA.read_text())
    per_model = schema["properties"]["model_options"]["properties"]
    assert set(per_model) == set(registry.MODEL_NAMES) == set(schema["properties"]["models"]["items"]["enum"])
    for name, reference in per_model.items():
        options = schema["$defs"][reference["$ref"].rsplit("/", 1)[1]]
        assert set(options["properties"]) == registry.option_names(name), name
        widths = options["properties"]["decoder_widths"]
        assert widths["minItems"] == widths["maxItems"] == registry.decoder_steps(name), name


@pytest.mark.parametrize(
    "options, key, reason",
    [
        ({"effunet-b0": {"decoder_widths": [8, 8]}}, "model_options.effunet-b0.decoder_widths", "too short"),
        ({"unet": {"decoder_widths": [8, 8, 8, 8, 8]}}, "model_options.unet.decoder_widths", "too long"),
        ({"unet": {"upsampling": "nearest"}}, "model_options.unet.upsampling", "unknown key"),
        ({"resnet50-unet": {"base_filters": 8}}, "model_options.resnet50-unet.base_filters", "unknown key"),
        ({"vgg-unet": {}}, "model_options.vgg-unet", "unknown key"),
    ],
)
def test_model_options_a_model_does_not_accept_stop_at_start_up(options, key, reason):
    config = load("config/demo.yaml")
    config["model_options"] = options
    with pytest.raises(ConfigError) as error:
        effconfig.validate(config, SCHEMA)
    assert f"config key {key}" in str(error.value) and reason in str(error.value)


@pytest.mark.parametrize(
    "edit, key, fix",
    [
        (
            lambda d: (d["synthetic"].update(n_images=24), d["split"].update(val_fraction=0.01)),
            "datasets.dsb2018.split",
            "the val split of 24 images",
        ),
        (
            lambda d: d["split"].update(test_fraction=0.01),
            "datasets.dsb2018.split",
            "raise datasets.dsb2018.split.test",
        ),
        (
            lambda d: (d["synthetic"].update(n_images=4), d["split"].update(test_fraction=0.1)),
            "datasets.dsb2018.split",
            "the test split of 4 images would be empty",
        ),
    ],
)
def test_an_empty_split_is_found_from_the_config(edit, key, fix):
    config = load("config/demo.yaml")
    edit(config["datasets"]["dsb2018"])
    with pytest.raises(ConfigError) as error:
        effconfig.validate(config, SCHEMA)
    assert f"config key {key}" in str(error.value) and fix in str(error.value)


def test_an_empty_split_is_found_for_the_real_data_sets():
    study = load("config.yaml")
    study["datasets"]["dsb2018"]["split"]["val_fraction"] = 0.0005  # 670 BBBC038 images: 0 for validation
    with pytest.raises(ConfigError, match="datasets.dsb2018.split: the val split of 670"):
        effconfig.validate(study, SCHEMA)
    study = load("config.yaml")
    study["datasets"]["drive"]["split"]["val_count"] = 20
    with pytest.raises(ConfigError, match="datasets.drive.split.val_count: 20 .* of the 20 training"):
        effconfig.validate(study, SCHEMA)
    demo = load("config/demo.yaml")
    n_train = demo["datasets"]["drive"]["synthetic"]["n_train"]
    demo["datasets"]["drive"]["split"]["val_count"] = n_train
    with pytest.raises(ConfigError, match=f"none of the {n_train} training images"):
        effconfig.validate(demo, SCHEMA)


def test_an_empty_split_found_when_the_images_are_counted_names_the_key():
    from effunet.data import manifest
    from effunet.errors import EffunetError

    ids = [f"i{k}" for k in range(9)]
    with pytest.raises(EffunetError, match="config key datasets.dsb2018.split: the val split of 9 images"):
        manifest.split_by_fraction(ids, 0.2, 0.05, 0, key="datasets.dsb2018.split")
    assert manifest.split_counts(9, 0.2, 0.3) == {"train": 5, "val": 2, "test": 2}


def test_config_values_given_as_text_are_read_as_the_schemas_types():
    """What Snakemake makes of --config "datasets={dsb2018: {...}}" (YAML's BaseLoader: all text)."""
    from snakemake.cli import parse_config
    from snakemake.utils import update_config

    config = copy.deepcopy(load("config.yaml"))
    update_config(
        config,
        parse_config(
            [
                "datasets={dsb2018: {train: {max_epochs: 2, learning_rate: 1e-3}, image_size: [64, 64]}, "
                "drive: {source: null}}",
                "evaluate={threshold: 0.3}",
                "train={augment: true}",
            ]
        ),
    )
    assert config["datasets"]["dsb2018"]["train"]["max_epochs"] == "2"  # as Snakemake passes it
    effconfig.validate(config, SCHEMA)
    dsb = config["datasets"]["dsb2018"]
    assert dsb["train"]["max_epochs"] == 2 and isinstance(dsb["train"]["max_epochs"], int)
    assert dsb["train"]["learning_rate"] == 1e-3 and dsb["image_size"] == [64, 64]
    assert config["datasets"]["drive"]["source"] is None
    assert config["evaluate"]["threshold"] == 0.3 and config["train"]["augment"] is True
    assert effconfig.train_settings(config, "dsb2018")["max_epochs"] == 2


@pytest.mark.parametrize(
    "edit, key, message",
    [
        (
            lambda c: c["datasets"]["dsb2018"]["train"].update(max_epochs="two"),
            "datasets.dsb2018.train.max_epochs",
            "'two' is not an integer (a --config value arrives as text",
        ),
        (
            lambda c: c["datasets"]["dsb2018"].update(image_size=["64", "6.5"]),
            "datasets.dsb2018.image_size[1]",
            "'6.5' is not an integer",
        ),
        (
            lambda c: c["datasets"]["dsb2018"].update(train={"max_epochs": "2", "patience": "1.5"}),
            "datasets.dsb2018.train.patience",
            "'1.5' is not an integer",
        ),
    ],
)
def test_text_that_is_not_the_schemas_type_names_the_key(edit, key, message):
    config = copy.deepcopy(load("config.yaml"))
    edit(config)
    with pytest.raises(ConfigError) as error:
        effconfig.validate(config, SCHEMA)
    assert f"config key {key}: {message}" in str(error.value)
    assert "--configfile" in str(error.value)


def test_an_all_digit_sha256_read_as_a_number_is_explained(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("datasets:\n  dsb2018:\n    source: synthetic\n    sha256: " + "1" * 64 + "\n")
    config = effconfig.load_yaml(path)
    assert isinstance(config["datasets"]["dsb2018"]["sha256"], int)  # what YAML does
    with pytest.raises(ConfigError, match="datasets.dsb2018.sha256: YAML read the checksum as a number.*quote"):
        effconfig.validate(config, SCHEMA)


def test_yaml_errors_name_the_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("seeds: [0, 1]\nmodels: [unet\ndatasets: {}\n")
    with pytest.raises(ConfigError, match=r"broken.yaml, line 3, column \d+: not valid YAML"):
        effconfig.load_yaml(path)
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="list.yaml: a config is a mapping"):
        effconfig.load_yaml(tmp_path / "list.yaml")


def test_check_config_command(tmp_path, capsys):
    from effunet import cli

    (tmp_path / "broken.yaml").write_text("seeds: [0\n")
    status = cli.main(
        ["check-config", str(ROOT / "config/demo.yaml"), str(tmp_path / "broken.yaml"), "--schema", str(SCHEMA)]
    )
    captured = capsys.readouterr()
    assert status == 2 and "demo.yaml: ok" in captured.out and "broken.yaml, line 2" in captured.err


def test_training_settings_defaults_are_the_schemas():
    """The schema is the one source of defaults; the library's Settings must not drift from it."""
    from dataclasses import fields

    from effunet.run import Settings

    schema = yaml.safe_load(SCHEMA.read_text())["$defs"]["train"]["properties"]
    defaults = {f.name: f.default for f in fields(Settings) if f.name != "model_options"}
    placement = set(run.PLACEMENT_KEYS)  # where a job runs (effunet.devices), not a training setting
    assert defaults == {name: spec["default"] for name, spec in schema.items() if name not in placement}


def test_boundary_targets_on_native_crops_are_refused_at_start_up():
    config = load("config/demo.yaml")
    del config["datasets"]["drive"]  # boundary targets need instance labels: DSB2018 only
    config["recipes"] = {"study": {}, "both": {"instances": "boundary", "input": "native_crops"}}
    with pytest.raises(ConfigError, match=r"config key recipes.both.instances: 'boundary' with input native_crops"):
        effconfig.validate(config, SCHEMA)
    config["recipes"]["both"]["input"] = "resize"
    effconfig.validate(config, SCHEMA)
