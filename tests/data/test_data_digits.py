import torch
from omegaconf import OmegaConf

from bitpruner.data import DigitsDataModule, MnistIdxDataModule
from helpers.lightning import LinearClassifier, quiet_trainer


def test_digits_counts_shapes_and_hparams():
    dm = DigitsDataModule(batch_size=32, seed=2)
    assert dm.split_sizes() == {"train": 1258, "val": 180, "test": 359}
    assert dm.input_shape == (1, 8, 8) and dm.num_classes == 10
    images, labels = next(iter(dm.val_dataloader()))
    assert images.shape == (32, 1, 8, 8) and images.dtype == torch.float32 and labels.dtype == torch.int64
    assert dm.hparams["batch_size"] == 32 and dm.hparams["val_size"] == 0.1
    assert dm.info()["num_train"] == 1258


def test_worker_loaders_are_persistent_and_yield_the_same_batches():
    plain = DigitsDataModule(batch_size=16)
    workers = DigitsDataModule(batch_size=16, num_workers=1)
    assert not plain.val_dataloader().persistent_workers
    loader = workers.val_dataloader()
    assert loader.persistent_workers and loader.num_workers == 1
    assert torch.equal(next(iter(loader))[0], next(iter(plain.val_dataloader()))[0])


def test_drop_last_applies_to_train_only():
    dm = DigitsDataModule(batch_size=100, drop_last=True)
    assert len(dm.train_dataloader()) == 1258 // 100
    assert len(dm.val_dataloader()) == 2


def test_trainer_fits_and_tests_with_the_datamodule(tmp_path):
    dm = DigitsDataModule(batch_size=64, seed=0)
    model = LinearClassifier(dm.in_channels * dm.image_size[0] * dm.image_size[1], dm.num_classes)
    trainer = quiet_trainer(tmp_path, max_epochs=3, enable_checkpointing=False)
    trainer.fit(model, datamodule=dm)
    accuracy = trainer.test(model, datamodule=dm, verbose=False)[0]["acc"]
    assert accuracy > 0.85  # a linear model reaches ~0.95 on normalized digits


def test_checkpoint_with_datamodule_hparams_loads_weights_only(tmp_path, mnist_idx_dir):
    folder, _ = mnist_idx_dir(gz=True)
    names = OmegaConf.create(["a", "b", "c", "d"])  # Hydra passes lists as ListConfig
    dm = MnistIdxDataModule(data_dir=folder, val_size=4, class_names=names)
    assert dm.hparams["data_dir"] == str(folder) and dm.hparams["class_names"] == ["a", "b", "c", "d"]
    model = LinearClassifier(28 * 28, dm.num_classes)
    trainer = quiet_trainer(tmp_path, max_steps=1, enable_checkpointing=False)
    trainer.fit(model, datamodule=dm)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    stored = torch.load(tmp_path / "model.ckpt", weights_only=True)
    assert stored["datamodule_hyper_parameters"]["class_names"] == ["a", "b", "c", "d"]
