import pytest
import torch

import bitpruner.data.imagefolder as imagefolder_module
from bitpruner.data import ImageFolderDataModule
from bitpruner.errors import DataError
from helpers.data import torchvision_works, write_image_tree


def test_metadata_comes_from_the_folders_without_torchvision(tmp_path):
    dm = ImageFolderDataModule(data_dir=write_image_tree(tmp_path), image_size=16)
    assert dm.class_names == ["cat", "dog", "emu"]
    assert dm.num_classes == 3 and dm.input_shape == (3, 16, 16)
    assert dm.mean.shape == dm.std.shape == (3,)
    assert dm._split_dir("test") == tmp_path / "val"  # ImageNet convention: val doubles as test
    (tmp_path / "test").mkdir()
    assert dm._split_dir("test") == tmp_path / "test"


def test_missing_folders_are_one_line_errors(tmp_path):
    with pytest.raises(DataError, match=r"imagenet: directory not found \(expected an ImageFolder tree"):
        _ = ImageFolderDataModule(data_dir=tmp_path / "imagenet").num_classes
    write_image_tree(tmp_path / "partial", splits=("train",))
    with pytest.raises(DataError, match=r"partial/val: directory not found \(expected .*/train/<class>/"):
        _ = ImageFolderDataModule(data_dir=tmp_path / "partial").num_classes
    (tmp_path / "empty" / "train").mkdir(parents=True)
    (tmp_path / "empty" / "val").mkdir()
    with pytest.raises(DataError, match="empty/train: no class folders"):
        _ = ImageFolderDataModule(data_dir=tmp_path / "empty").num_classes


def test_missing_torchvision_is_a_one_line_error(tmp_path, monkeypatch):
    def broken():
        raise DataError(imagefolder_module.MISSING_TORCHVISION)

    if torchvision_works():
        monkeypatch.setattr(imagefolder_module, "_import_torchvision", broken)
    dm = ImageFolderDataModule(data_dir=write_image_tree(tmp_path))
    with pytest.raises(
        DataError, match=r"^imagefolder needs torchvision: pip install 'bitpruner\[vision\]'$"
    ):
        dm.setup()


@pytest.mark.skipif(not torchvision_works(), reason="torchvision is not importable beside this torch")
def test_loads_png_tree_with_torchvision(tmp_path):
    dm = ImageFolderDataModule(data_dir=write_image_tree(tmp_path), image_size=16, batch_size=4)
    assert dm.split_sizes() == {"train": 9, "val": 9, "test": 9}
    images, labels = next(iter(dm.val_dataloader()))
    assert images.shape == (4, 3, 16, 16) and images.dtype == torch.float32
    assert labels.tolist() == [0, 0, 0, 1]
    assert dm.calibration_batches(1)[0].shape == (4, 3, 16, 16)
