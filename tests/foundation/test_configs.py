"""Every main config composes, alone and with each data and model option; bad values fail at start."""

from pathlib import Path

import pytest

from bitpruner.config import validate_training
from bitpruner.errors import ConfigError
from bitpruner.models.checkpoint import build_from_config

CONF = Path(__file__).resolve().parents[2] / "conf"
MAIN_CONFIGS = sorted(p.stem for p in CONF.glob("*.yaml"))
# The stages that read a data set (`compare` aggregates other stages' outputs and composes none).
DATA_CONFIGS = [name for name in MAIN_CONFIGS if name != "compare"]
DATA_OPTIONS = sorted(p.stem for p in (CONF / "data").glob("*.yaml"))
MODEL_OPTIONS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
TORCHVISION_MODELS = {"resnet18", "vgg16", "alexnet", "mobilenet_v2"}


def torchvision_importable() -> bool:
    try:
        import torchvision  # noqa: F401
    except Exception:
        return False
    return True


def test_main_configs_exist():
    assert "train" in MAIN_CONFIGS
    assert {"mnist5k", "digits", "mnist_idx", "cifar10", "cifar100", "imagefolder"} <= set(DATA_OPTIONS)
    assert {"lenet5", "mlp", "vgg_small", "resnet20"} <= set(MODEL_OPTIONS)


@pytest.mark.parametrize("name", MAIN_CONFIGS)
def test_main_config_composes(compose, name, tmp_path):
    cfg = compose(name)
    assert cfg["stage"] == name
    assert cfg["paths"]["output_dir"] == f"{tmp_path}/outputs/{name}"
    if name in DATA_CONFIGS:
        assert cfg["data"]["_target_"].startswith("bitpruner.data")


@pytest.mark.parametrize("name", DATA_CONFIGS)
@pytest.mark.parametrize("data", DATA_OPTIONS)
def test_main_config_with_each_data_set(compose, name, data):
    cfg = compose(name, [f"data={data}"])
    assert cfg["data"]["batch_size"] > 0


@pytest.mark.parametrize("name", MAIN_CONFIGS)
@pytest.mark.parametrize("model", MODEL_OPTIONS)
def test_main_config_with_each_model_builds(compose, name, model):
    if "model" not in compose(name):
        pytest.skip(f"{name} takes its model from the input checkpoint")
    cfg = compose(name, [f"model={model}"])
    if model in TORCHVISION_MODELS:
        if not torchvision_importable():
            pytest.skip("torchvision (the vision extra) does not import here")
        geometry = {"in_channels": 3, "image_size": [64, 64], "num_classes": 10}
    else:
        geometry = {"in_channels": 1, "image_size": [8, 8], "num_classes": 10}
    model = build_from_config(cfg["model"], geometry)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_debug_config_runs_one_batch(compose):
    cfg = compose("train", ["debug=default"])
    assert cfg["trainer"]["max_epochs"] == 1
    assert cfg["trainer"]["limit_train_batches"] == 1


def test_hydra_run_dirs_are_outside_outputs(compose):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = hydra_compose("train", return_hydra_config=True)
    assert "/logs/" in cfg.hydra.run.dir
    assert "/logs/" in cfg.hydra.sweep.dir


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("trainer.max_epochs=-1", "trainer.max_epochs"),
        ("optimizer._target_=torch.optim.Adamx", "optimizer._target_"),
        ("optimizer.lr=0", "optimizer.lr"),
        ("scheduler._target_=torch.optim.lr_scheduler.LinearLRx", "scheduler._target_"),
        ("data.batch_size=0", "data.batch_size"),
        ("export=first", "export"),
    ],
)
def test_bad_values_name_the_key(compose, override, key):
    cfg = compose("train", [override])
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as info:
        validate_training(cfg)
    assert "\n" not in str(info.value)
    assert repr(override.split("=", 1)[1]) in str(info.value) or f"got {override.split('=', 1)[1]}," in str(info.value)
