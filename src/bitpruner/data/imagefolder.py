"""ImageFolder trees (ImageNet layout): `train/<class>/*.jpg` and `val/<class>/*.jpg`; needs torchvision."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch.utils.data import Dataset

from bitpruner.data.base import SPLIT_NAMES, BaseDataModule
from bitpruner.data.files import folder_contents, require_dir
from bitpruner.errors import DataError
from bitpruner.utils.messages import one_line, shown

# ImageNet statistics (RGB, on [0, 1] pixels): the fixed normalization torchvision's weights expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Evaluation resizes the short side to image_size / 0.875 (256 for 224) before the center crop.
CENTER_CROP_FRACTION = 0.875
MISSING_TORCHVISION = "imagefolder needs torchvision: pip install 'bitpruner[vision]'"
# The extensions torchvision's ImageFolder reads (torchvision.datasets.folder.IMG_EXTENSIONS).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
LISTED_CLASSES = 5  # empty class folders named in a message
# How torch's DataLoader starts the text of an error it re-raises from a worker process.
WORKER_PREFIX = "Caught "


def _import_torchvision():
    try:
        import torchvision
    except Exception as exc:  # noqa: BLE001 - a broken install (ABI mismatch) fails with other errors too
        raise DataError(MISSING_TORCHVISION) from exc
    return torchvision


class ImageReadError(DataError):
    """An image file that cannot be decoded, named in one line.

    A DataLoader worker re-raises an error in the main process as `type(error)(text with the worker's
    traceback)`; the constructor keeps only the original line, so the message stays one line there too.
    """

    def __init__(self, message: str) -> None:
        lines = [line for line in str(message).strip().splitlines() if line.strip()]
        if len(lines) > 1 and lines[0].startswith(WORKER_PREFIX):
            last = lines[-1]
            message = last.split(": ", 1)[1] if last.startswith(_qualified_name(type(self)) + ": ") else last
        super().__init__(message)


def _qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def load_image(path: str) -> object:
    """The image at `path` as an RGB PIL image (torchvision's default loader), or ImageReadError naming the
    file and why it cannot be decoded (truncated, not an image, too large)."""
    from PIL import Image

    try:
        with open(path, "rb") as handle:
            image = Image.open(handle)
            return image.convert("RGB")
    except Exception as exc:  # noqa: BLE001 - PIL raises many types (OSError, SyntaxError, DecompressionBombError)
        raise ImageReadError(f"{shown(path)}: unreadable image ({type(exc).__name__}: {one_line(exc)})") from None


def has_image(folder: Path) -> bool:
    """Whether `folder` (searched recursively, links followed, as torchvision does) holds a file with an
    image extension torchvision's ImageFolder reads."""
    for _root, _dirs, files in os.walk(folder, followlinks=True):
        if any(name.lower().endswith(IMAGE_EXTENSIONS) for name in files):
            return True
    return False


def class_folders(folder: Path) -> list[str]:
    """Sorted class folder names, the order torchvision's ImageFolder assigns labels in; every class folder
    must hold at least one image file (DataError naming the empty ones and what they hold)."""
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise DataError(f"{shown(folder)}: cannot list the class folders ({exc.strerror or one_line(exc)})") from None
    names = sorted(entry.name for entry in entries if entry.is_dir() and not entry.name.startswith("."))
    if not names:
        raise DataError(f"{shown(folder)}: no class folders (expected {shown(folder)}/<class>/<image files>; "
                        f"{folder_contents(folder)})")
    empty = [name for name in names if not has_image(folder / name)]
    if empty:
        listed = ", ".join(shown(name) for name in empty[:LISTED_CLASSES])
        more = f" (+{len(empty) - LISTED_CLASSES} more)" if len(empty) > LISTED_CLASSES else ""
        raise DataError(f"{shown(folder)}: class folder(s) {listed}{more} hold no image files (expected "
                        f"{', '.join(IMAGE_EXTENSIONS)}; in {shown(empty[0])}/: {folder_contents(folder / empty[0])})")
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
                f"{shown(path)}: directory not found (expected {shown(root)}/train/<class>/ and "
                f"{shown(root)}/val/<class>/; {folder_contents(root)})"
            )
        return path

    @property
    def class_names(self) -> list[str]:
        if self._class_names is None:
            train_names = class_folders(self._split_dir("train"))
            for split in ("val", "test"):  # test is val unless a test/ folder exists
                names = class_folders(self._split_dir(split))
                if names != train_names:
                    extra = sorted(set(names) ^ set(train_names))[:LISTED_CLASSES]
                    raise DataError(f"{shown(self._split_dir(split))}: class folders differ from train/ "
                                    f"(e.g. {extra})")
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
        folder = self._split_dir(split)
        names = self.class_names  # checks every split's class folders first, with the messages above
        try:
            dataset = datasets.ImageFolder(str(folder), transform=self._transform(train_transform), loader=load_image)
        except OSError as exc:  # FileNotFoundError: a class folder without a readable image file
            raise DataError(f"{shown(folder)}: {one_line(exc)}") from None
        if dataset.classes != names:
            raise DataError(f"{shown(folder)}: class folders differ from {shown(self._split_dir('train'))}")
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
