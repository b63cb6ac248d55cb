"""The experiment presets compose on every stage; sweeps get per-job folders and the sweep callback."""

import pytest

from helpers.paths import CONFIG_DIR

# Each preset on a different stage (composing costs seconds): the presets only touch groups all stages have.
CASES = [("lenet5_mnist5k", "train"), ("resnet20_cifar10", "prune_bits"), ("resnet18_imagenet", "simulate")]
PRESETS = {"lenet5_mnist5k": ("bitpruner.data.Mnist5kDataModule", "bitpruner"),
           "resnet20_cifar10": ("bitpruner.data.Cifar10DataModule", "bitpruner-cifar10"),
           "resnet18_imagenet": ("bitpruner.data.ImageFolderDataModule", "bitpruner-imagenet")}


@pytest.mark.parametrize(("preset", "stage"), CASES)
def test_presets_compose_on_every_stage(compose, stage, preset):
    cfg = compose(stage, [f"experiment={preset}"])
    target, experiment = PRESETS[preset]
    assert cfg["data"]["_target_"] == target
    assert cfg["logger"]["mlflow"]["experiment_name"] == experiment


def test_sweep_callback_and_job_folders_are_configured():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose("prune_bits", return_hydra_config=True)
    assert cfg.hydra.callbacks.mlflow_sweep._target_ == "bitpruner.sweeps.callback.MlflowSweepCallback"
    params = cfg.hydra.sweeper.params
    assert set(params) == {"paths.output_dir", "paths.ckpt_dir"}
