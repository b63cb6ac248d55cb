"""ImageFolder trees (ImageNet layout): `train/<class>/*.jpg` and `val/<class>/*.jpg`; needs torchvision."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from bitpruner.data.base import SPLIT_NAMES, BaseDataModule
from bitpruner.data.files import require_dir
from bitpruner.errors import DataError

# ImageNet statistics (RGB, on [0, 1] pixels): the fixed normalization torchvision's weights expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Evaluation resizes the short side to image_size / 0.875 (256 for 224) before the center crop.
CENTER_CROP_FRACTION = 0.875
MISSING_TORCHVISION = "imagefolder needs torchvision: pip install 'bitpruner[vision]'"


def _import_torchvision():
    try:
        import torchvision
    except Exception as exc:  # noqa: BLE001 - a broken install (ABI mismatch) fails with other errors too
        raise DataError(MISSING_TORCHVISION) from exc
    return torchvision


def class_folders(folder: Path) -> list[str]:
    """Sorted class folder names, the order torchvision's ImageFolder assigns labels in."""
    names = sorted(
        entry.name for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith(".")
    )
    if not names:
        raise DataError(f"{folder}: no class folders (expected {folder}/<class>/<image files>)")
    return names


class ImageFolderDataModule(BaseDataModule):
    """`data_dir/train` and `data_dir/val` of class folders; the test split is `data_dir/test` when it
    exists, else `val` (the ImageNet convention). Train: random resized crop + flip; val/test: resize
    and center crop to `image_size`; both normalized with ImageNet's fixed mean and std."""

    name = "imagefolder"

    def __init__(
        self,
        data_dir: str | Path | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        drop_last: bool = False,
        image_size: int = 224,
        augment: bool = True,
    ):
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed, drop_last=drop_last)
        self.data_dir = data_dir
        self.size = int(image_size)
        self.augment = bool(augment)
        self._datasets: dict[str, Dataset] = {}
        self._class_names: list[str] | None = None

    def _split_dir(self, split: str) -> Path:
        root = require_dir(self.data_dir, "an ImageFolder tree with train/ and val/")
        if split == "train":
            path = root / "train"
        elif split == "test" and (root / "test").is_dir():
            path = root / "test"
        else:
            path = root / "val"
        if not path.is_dir():
            raise DataError(
                f"{path}: directory not found (expected {root}/train/<class>/ and {root}/val/<class>/)"
            )
        return path

    @property
    def class_names(self) -> list[str]:
        if self._class_names is None:
            train_names = class_folders(self._split_dir("train"))
            val_names = class_folders(self._split_dir("val"))
            if val_names != train_names:
                extra = sorted(set(val_names) ^ set(train_names))[:5]
                raise DataError(f"{self._split_dir('val')}: class folders differ from train/ (e.g. {extra})")
            self._class_names = train_names
        return self._class_names

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def in_channels(self) -> int:
        return 3

    @property
    def mean(self) -> torch.Tensor:
        """ImageNet's per-channel mean on [0, 1] pixels (torchvision's ToTensor scale)."""
        return torch.tensor(IMAGENET_MEAN)

    @property
    def std(self) -> torch.Tensor:
        return torch.tensor(IMAGENET_STD)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.size, self.size

    def _transform(self, train: bool):
        transforms = _import_torchvision().transforms
        normalize = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
        if train and self.augment:
            steps = [transforms.RandomResizedCrop(self.size), transforms.RandomHorizontalFlip()]
        else:
            steps = [
                transforms.Resize(round(self.size / CENTER_CROP_FRACTION)),
                transforms.CenterCrop(self.size),
            ]
        return transforms.Compose([*steps, transforms.ToTensor(), normalize])

    def _folder_dataset(self, split: str, train_transform: bool) -> Dataset:
        datasets = _import_torchvision().datasets
        dataset = datasets.ImageFolder(
            str(self._split_dir(split)), transform=self._transform(train_transform)
        )
        if dataset.classes != self.class_names:
            raise DataError(f"{self._split_dir(split)}: class folders differ from {self._split_dir('train')}")
        return dataset

    def setup(self, stage: str | None = None) -> None:
        if self._datasets:
            return
        for split in SPLIT_NAMES:
            self._datasets[split] = self._folder_dataset(split, train_transform=split == "train")

    def dataset(self, split: str) -> Dataset:
        self._check_split(split)
        self.setup()
        return self._datasets[split]

    def calibration_dataset(self) -> Dataset:
        return self._folder_dataset("train", train_transform=False)
