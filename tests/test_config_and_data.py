from __future__ import annotations

import numpy as np
import pytest
import yaml

from elasticnas.data import DataConfig, load_data
from elasticnas.experiment import EXPERIMENTS, ExperimentConfig, load_experiment, quickstart_config, recipe_for
from elasticnas.supernet import ConfigError


def test_default_config_is_the_quickstarts_and_parses_into_typed_dataclasses():
    config = load_experiment()
    assert isinstance(config, ExperimentConfig) and config == load_experiment("mnist_quickstart")
    assert config.data.name == "mnist5k" and config.sampler.name == "uniform"
    assert config.sampler.options == {"num_subnets": 2, "with_smallest": True} and config.train.epochs == 20
    assert config.train.evaluate_every == 4 and config.train.bn_calibration_images == 1000
    assert isinstance(config.optim.lr, float)


@pytest.mark.parametrize("name", ["uniform", "sandwich", "progressive_shrinking", "complexity_aware",
                                  "performance_aware", "delayed_shrinking"])
def test_one_config_per_strategy(name):
    config = load_experiment(f"mnist_{name}")
    assert config.sampler.name == name
    from elasticnas.supernet import create_space
    from elasticnas.supernet.samplers import create_strategy

    create_strategy(name, create_space(config.supernet.name, num_classes=10, in_channels=1), config.sampler.options)


def test_overrides_and_errors_name_the_key_and_allowed_values():
    config = load_experiment("mnist_sandwich", ["train.epochs=2", "data.name=digits", "optim.lr=0.01"])
    assert (config.train.epochs, config.data.name, config.optim.lr) == (2, "digits", 0.01)
    with pytest.raises(ConfigError, match=r"train\.epoch.*allowed keys: epochs"):
        load_experiment("mnist_sandwich", ["train.epoch=2"])
    with pytest.raises(ConfigError, match=r"data\.name='svhn'.*mnist5k"):
        load_experiment("mnist_sandwich", ["data.name=svhn"])
    with pytest.raises(ConfigError, match=r"train\.epochs must be an integer"):
        load_experiment("mnist_sandwich", ["train.epochs=two"])
    with pytest.raises(ConfigError, match="key.path=value"):
        load_experiment("mnist_sandwich", ["train.epochs"])
    with pytest.raises(ConfigError, match="mnist_sandwich.yaml"):
        load_experiment("no_such_config")


@pytest.mark.parametrize("name", ["mnist5k", "digits"])
def test_splits_are_fixed_disjoint_and_stratified(name):
    a, b = load_data(DataConfig(name=name)), load_data(DataConfig(name=name))
    for split in ("train", "val", "test"):
        assert np.array_equal(getattr(a, split).tensors[1].numpy(), getattr(b, split).tensors[1].numpy())
    train, val, test = (getattr(a, s).tensors[0].reshape(len(getattr(a, s)), -1) for s in ("train", "val", "test"))
    assert len(train) + len(val) + len(test) == {"mnist5k": 5000, "digits": 1797}[name]
    # no image of the validation or test split appears in the training split
    train_rows = {row.tobytes() for row in train.numpy()}
    assert not any(row.tobytes() in train_rows for row in val.numpy()[:200])
    counts = np.bincount(a.val.tensors[1].numpy(), minlength=10)
    assert counts.min() >= 0.8 * counts.max()
    assert a.num_classes == 10 and a.in_channels == 1
    other = load_data(DataConfig(name=name, split_seed=1))
    assert not np.array_equal(other.val.tensors[0].numpy(), a.val.tensors[0].numpy())


def test_on_disk_datasets_explain_what_is_missing(tmp_path):
    with pytest.raises(ConfigError, match="data.root|torchvision"):
        load_data(DataConfig(name="cifar10"))
    with pytest.raises(ConfigError, match="does not exist|torchvision"):
        load_data(DataConfig(name="imagefolder", root=str(tmp_path / "none")))


def test_a_recipe_is_the_plainest_matching_config_whatever_the_file_names(tmp_path):
    plain, variant = (yaml.safe_load((EXPERIMENTS / f"{name}.yaml").read_text())
                      for name in ("mnist_uniform", "mnist_uniform_smallest"))
    (tmp_path / "mnist_a_variant.yaml").write_text(yaml.safe_dump(variant))  # sorts first
    (tmp_path / "mnist_b_plain.yaml").write_text(yaml.safe_dump(plain))
    assert recipe_for("tiny_mbv3", "uniform", folder=tmp_path) == "mnist_b_plain"
    (tmp_path / "mnist_c_plain_too.yaml").write_text(yaml.safe_dump(plain))
    with pytest.raises(ConfigError, match=r"mnist_b_plain.*mnist_c_plain_too.*1 sampler options"):
        recipe_for("tiny_mbv3", "uniform", folder=tmp_path)


def test_the_quickstart_trains_its_own_config_on_its_supernet_and_recipes_on_others():
    assert quickstart_config() == quickstart_config("tiny_mbv3") == "mnist_quickstart"
    own = load_experiment("mnist_quickstart")
    assert own.supernet.name == "tiny_mbv3" and own.sampler.name == "uniform"
    assert own.sampler.options["with_smallest"] is True and own.train.epochs == 20
    assert quickstart_config("tiny_resnet") == "mnist_resnet_sandwich"
    assert quickstart_config("ofa_resnet50") == "mnist_sandwich"  # no recipe: the default config
    assert recipe_for("tiny_mbv3", "uniform") == "mnist_uniform"  # the quickstart's is a variant
    assert recipe_for("tiny_gpt") is None and quickstart_config("tiny_gpt") == "text_tiny_gpt"  # its own strategy


def test_a_quickstart_begun_with_another_config_resumes_with_its_own(tmp_path):
    (tmp_path / "config.yaml").write_text((EXPERIMENTS / "mnist_sandwich.yaml").read_text())
    chosen = quickstart_config(None, tmp_path)
    assert chosen == str(tmp_path / "config.yaml")
    assert load_experiment(chosen).sampler.name == "sandwich"
    assert quickstart_config(None, tmp_path / "new") == "mnist_quickstart"


def test_a_preset_trains_with_its_bundled_sandwich_recipe_or_none():
    assert recipe_for("tiny_mbv3") == "mnist_sandwich"
    assert recipe_for("tiny_mbv3", "uniform") == "mnist_uniform"
    assert recipe_for("ofa_resnet50") is None
    for name in ("tiny_mbv3", "tiny_resnet"):
        config = load_experiment(recipe_for(name))
        assert config.supernet.name == name and config.sampler.name == "sandwich"


def test_a_supernet_and_data_of_different_kinds_are_refused_before_training(tmp_path):
    from elasticnas.experiment import build_run

    config = load_experiment("mnist_quickstart", ["data.name=digits", "supernet.name=tiny_gpt"])
    with pytest.raises(ConfigError, match="'tiny_gpt' reads text, but dataset 'digits' holds image"):
        build_run(config)
    config = load_experiment("mnist_quickstart", ["data.name=pydoc_topics"])
    with pytest.raises(ConfigError, match="'tiny_mbv3' reads image, but dataset 'pydoc_topics' holds text"):
        build_run(config)
    config = load_experiment("mnist_quickstart", ["data.name=pydoc_topics", "data.context=100",
                                                  "supernet.name=tiny_gpt"])
    with pytest.raises(ConfigError, match="up to 128 tokens, but data.context=100"):
        build_run(config)
