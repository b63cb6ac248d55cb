"""DataModule bases: shared loader plumbing, and the in-memory variant that most data sets use.

`BaseDataModule` owns batch size, workers, the seeded shuffle and the metadata a model needs
(`num_classes`, `in_channels`, `image_size`). `ArrayDataModule` subclasses only read their files:
`_load_splits()` returns a `Splits` of raw arrays (any numeric dtype, [N, C, H, W]); the base
computes the train split's per-channel statistics and wraps the arrays in datasets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset

from bitpruner.errors import DataError

SPLIT_NAMES = ("train", "val", "test")


def _plain(value):
    """Config values as builtins: OmegaConf containers to dicts/lists, paths to strings."""
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


class BaseDataModule(L.LightningDataModule):
    """Seeded dataloaders over three splits; subclasses provide `dataset(split)` and the metadata."""

    name = "base"

    def __init__(self, batch_size: int = 64, num_workers: int = 0, seed: int = 0, drop_last: bool = False):
        super().__init__()
        # Stored in checkpoints (not logged: the stage logs the whole config itself), as plain
        # types so that `torch.load(weights_only=True)` accepts the checkpoint.
        self.save_hyperparameters(logger=False)
        for key, value in list(self.hparams.items()):
            self.hparams[key] = _plain(value)
        if int(batch_size) < 1:
            raise DataError(f"batch_size={batch_size}: expected a positive integer")
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        # One generator for the module's lifetime: epochs get different orders, runs get the same ones.
        self._shuffle_generator = torch.Generator().manual_seed(self.seed)

    # -- resume state (Lightning saves it in checkpoints and restores it before any loader is iterated) --
    def state_dict(self) -> dict:
        """The shuffle generator's state: a resumed run continues the data order where it stopped."""
        return {"shuffle_generator": self._shuffle_generator.get_state()}

    def load_state_dict(self, state_dict: dict) -> None:
        if "shuffle_generator" in state_dict:
            self._shuffle_generator.set_state(state_dict["shuffle_generator"])

    # -- subclasses implement -------------------------------------------------------------------
    def dataset(self, split: str) -> Dataset:
        """The (set up) dataset of `split`, one of SPLIT_NAMES; train carries any augmentation."""
        raise NotImplementedError

    def calibration_dataset(self) -> Dataset:
        """The train split without augmentation."""
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        raise NotImplementedError

    @property
    def in_channels(self) -> int:
        raise NotImplementedError

    @property
    def image_size(self) -> tuple[int, int]:
        raise NotImplementedError

    @property
    def class_names(self) -> list[str] | None:
        return None

    @property
    def mean(self) -> torch.Tensor:
        """Per-channel mean subtracted from the raw pixels (in their own units) before dividing by `std`."""
        raise NotImplementedError

    @property
    def std(self) -> torch.Tensor:
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, *self.image_size)

    def split_sizes(self) -> dict[str, int]:
        return {split: len(self.dataset(split)) for split in SPLIT_NAMES}

    def info(self) -> dict:
        """Flat description for run parameters and tags."""
        height, width = self.image_size
        sizes = {f"num_{split}": count for split, count in self.split_sizes().items()}
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "image_height": height,
            "image_width": width,
            **sizes,
        }

    def _check_split(self, split: str) -> None:
        if split not in SPLIT_NAMES:
            raise DataError(f"split={split!r}: expected one of {', '.join(SPLIT_NAMES)}")

    def _loader(
        self,
        dataset: Dataset,
        shuffle: bool,
        drop_last: bool = False,
        batch_size: int | None = None,
        num_workers: int | None = None,
    ) -> DataLoader:
        workers = self.num_workers if num_workers is None else num_workers
        return DataLoader(
            dataset,
            batch_size=batch_size or self.batch_size,
            shuffle=shuffle,
            generator=self._shuffle_generator if shuffle else None,
            num_workers=workers,
            persistent_workers=workers > 0,
            drop_last=drop_last,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("train"), shuffle=True, drop_last=self.drop_last)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("val"), shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("test"), shuffle=False)

    def calibration_batches(self, num_batches: int, batch_size: int | None = None) -> list[torch.Tensor]:
        """The first `num_batches` input batches of the train split in file order, without augmentation:
        the same images on every call, for quantization calibration and trace capture."""
        loader = self._loader(self.calibration_dataset(), shuffle=False, batch_size=batch_size, num_workers=0)
        batches: list[torch.Tensor] = []
        for images, _ in loader:
            if len(batches) >= num_batches:
                break
            batches.append(images)
        return batches


@dataclass
class Splits:
    """Raw images [N, C, H, W] and integer labels [N] of each split, plus optional class names."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str] | None = None

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")


class ArrayDataset(Dataset):
    """Samples `(float32 [C, H, W] normalized, int64 label)`; normalized per item to keep raw arrays small."""

    def __init__(
        self, images: np.ndarray, labels: np.ndarray, mean: torch.Tensor, std: torch.Tensor, augment=None
    ):
        self.images = images
        self.labels = torch.as_tensor(labels, dtype=torch.int64)
        self.mean = mean.view(-1, 1, 1)
        self.std = std.view(-1, 1, 1)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = (torch.from_numpy(np.asarray(self.images[index], dtype=np.float32)) - self.mean) / self.std
        if self.augment is not None:
            image = self.augment(image)
        return image, self.labels[index]


def channel_stats(images: np.ndarray, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of [N, C, H, W] images, in float64 chunks (CIFAR as float32 is 600 MB)."""
    channels = images.shape[1]
    total = np.zeros(channels)
    total_sq = np.zeros(channels)
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].astype(np.float64)
        total += block.sum(axis=(0, 2, 3))
        total_sq += (block**2).sum(axis=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    # A constant channel would divide by zero; leave it unscaled instead.
    std = np.where(std > 0, std, 1.0)
    return torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)


class ArrayDataModule(BaseDataModule):
    """Splits held in memory; images normalized with the train split's per-channel mean and std.

    Metadata (`num_classes`, `in_channels`, `image_size`, `class_names`, `mean`, `std`) loads the data on
    first access, so a model can be sized before `trainer.fit` calls `setup`.
    """

    name = "array"

    def __init__(self, batch_size: int = 64, num_workers: int = 0, seed: int = 0, drop_last: bool = False):
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed, drop_last=drop_last)
        self._splits: Splits | None = None
        self._datasets: dict[str, ArrayDataset] = {}
        self._mean: torch.Tensor | None = None
        self._std: torch.Tensor | None = None

    def _load_splits(self) -> Splits:
        raise NotImplementedError

    def _train_augmentation(self):
        """A callable applied to each normalized train image, or None (the default: no augmentation)."""
        return None

    def _ensure_loaded(self) -> Splits:
        if self._splits is None:
            splits = self._load_splits()
            for split in SPLIT_NAMES:
                images, labels = splits.split(split)
                if images.ndim != 4 or len(images) != len(labels):
                    raise DataError(
                        f"{self.name} {split} split: expected images [N, C, H, W] and N labels, "
                        f"got {images.shape} and {len(labels)} labels"
                    )
            self._mean, self._std = channel_stats(splits.x_train)
            self._splits = splits
        return self._splits

    def setup(self, stage: str | None = None) -> None:
        if self._datasets:
            return
        splits = self._ensure_loaded()
        for split in SPLIT_NAMES:
            images, labels = splits.split(split)
            augment = self._train_augmentation() if split == "train" else None
            self._datasets[split] = ArrayDataset(images, labels, self._mean, self._std, augment)

    def dataset(self, split: str) -> ArrayDataset:
        self._check_split(split)
        self.setup()
        return self._datasets[split]

    def calibration_dataset(self) -> ArrayDataset:
        images, labels = self._ensure_loaded().split("train")
        return ArrayDataset(images, labels, self._mean, self._std)

    @property
    def num_classes(self) -> int:
        splits = self._ensure_loaded()
        if splits.class_names is not None:
            return len(splits.class_names)
        return int(max(labels.max(initial=0) for labels in (splits.y_train, splits.y_val, splits.y_test))) + 1

    @property
    def in_channels(self) -> int:
        return int(self._ensure_loaded().x_train.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        shape = self._ensure_loaded().x_train.shape
        return int(shape[2]), int(shape[3])

    @property
    def class_names(self) -> list[str] | None:
        return self._ensure_loaded().class_names

    @property
    def mean(self) -> torch.Tensor:
        """Per-channel mean of the raw train pixels (0..255 for uint8 files, 0..16 for digits)."""
        self._ensure_loaded()
        return self._mean

    @property
    def std(self) -> torch.Tensor:
        self._ensure_loaded()
        return self._std

    def split_sizes(self) -> dict[str, int]:
        splits = self._ensure_loaded()
        return {split: len(splits.split(split)[1]) for split in SPLIT_NAMES}


def check_class_names(names: Sequence[str] | None, num_classes: int, where: str) -> list[str] | None:
    """Validate optional class names against the label range of a data set."""
    if names is None:
        return None
    names = [str(name) for name in names]
    if len(names) < num_classes:
        raise DataError(f"{where}: {len(names)} class names for labels up to {num_classes - 1}")
    return names
