"""Every conf/data/*.yaml instantiates its DataModule once `paths` and `seed` are supplied."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from bitpruner.data import BaseDataModule, build_datamodule
from helpers.paths import CONFIG_DIR

CONF_DIR = CONFIG_DIR / "data"
SHARED_KEYS = {"_target_", "batch_size", "num_workers", "seed", "drop_last"}
CONFIGS = sorted(path.stem for path in CONF_DIR.glob("*.yaml"))


def compose(name: str, tmp_path: Path):
    root = OmegaConf.create(
        {"paths": {"data_dir": str(tmp_path / "data"), "cache_dir": str(tmp_path / "cache")}, "seed": 7}
    )
    root.data = OmegaConf.load(CONF_DIR / f"{name}.yaml")
    return root.data


def test_every_data_set_has_a_config():
    assert CONFIGS == ["cifar10", "cifar100", "digits", "imagefolder", "mnist5k", "mnist_idx"]


@pytest.mark.parametrize("name", CONFIGS)
def test_config_instantiates_with_shared_keys(name, tmp_path):
    node = compose(name, tmp_path)
    assert SHARED_KEYS <= set(node.keys())
    assert node.num_workers == 0
    dm = build_datamodule(node)
    assert isinstance(dm, BaseDataModule) and dm.name == name
    assert dm.seed == 7 and dm.batch_size == node.batch_size
    if "data_dir" in node:
        assert Path(node.data_dir) == tmp_path / "data" / name


def test_mnist5k_config_caches_under_paths_cache_dir(tmp_path):
    dm = build_datamodule(compose("mnist5k", tmp_path))
    assert dm.split_sizes() == {"train": 3500, "val": 500, "test": 1000}
    assert (tmp_path / "cache" / "mnist5k-v1.npz").is_file()


def test_cifar10_config_reads_the_data_dir(cifar10_dir, tmp_path):
    node = compose("cifar10", tmp_path)
    node.data_dir = str(cifar10_dir.parent)
    node.val_size = 8
    assert build_datamodule(node).split_sizes() == {"train": 32, "val": 8, "test": 6}


@pytest.mark.skipif(not (CONF_DIR.parent / "train.yaml").is_file(), reason="no main train config yet")
@pytest.mark.parametrize("name", ["digits", "cifar10"])
def test_main_config_composes_with_each_data_group(name, tmp_path, monkeypatch):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    monkeypatch.setenv("BITPRUNER_ROOT", str(tmp_path))
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR.parent)):
        cfg = hydra_compose("train", overrides=[f"data={name}", "data.batch_size=16"])
    dm = build_datamodule(cfg.data)
    assert dm.name == name and dm.seed == cfg.seed and dm.batch_size == 16
    if name == "cifar10":
        assert Path(dm.data_dir) == tmp_path / "data" / "cifar10"
