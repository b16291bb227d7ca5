import copy

import pytest
import yaml

from effunet import config as effconfig
from effunet.errors import ConfigError
from conftest import ROOT

SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"


def load(name):
    return yaml.safe_load((ROOT / name).read_text())


@pytest.mark.parametrize("name", ["config.yaml", "config/demo.yaml"])
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


@pytest.mark.parametrize("edit, key, reason", [
    (lambda c: c["datasets"]["dsb2018"].update(imagesize=[1, 2]), "datasets.dsb2018.imagesize", "unknown key"),
    (lambda c: c.update(sedds=[1]), "sedds", "unknown key"),
    (lambda c: c["datasets"]["dsb2018"].update(image_size=[100, 128]), "datasets.dsb2018.image_size[0]",
     "multiple of 32"),
    (lambda c: c["datasets"]["dsb2018"]["split"].update(test_fraction=1.5), "datasets.dsb2018.split.test_fraction",
     "maximum of 1"),
    (lambda c: c["train"].update(learning_rate="fast"), "train.learning_rate", "not of type"),
    (lambda c: c.update(models=["unet", "vgg-unet"]), "models[1]", "not one of"),
    (lambda c: c["datasets"]["drive"]["train"].update(max_epochs=0), "datasets.drive.train.max_epochs",
     "minimum"),
    (lambda c: c["mlflow"].update(experiment="my study/1"), "mlflow.experiment", "does not match"),
])
def test_bad_config_names_the_key(edit, key, reason):
    config = copy.deepcopy(load("config.yaml"))
    edit(config)
    with pytest.raises(ConfigError) as error:
        effconfig.validate(config, SCHEMA)
    assert f"config key {key}:" in str(error.value)
    assert reason in str(error.value)
