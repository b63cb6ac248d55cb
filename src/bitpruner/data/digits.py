"""scikit-learn's 8x8 digits (1,797 images, pixel values 0..16): the fastest data set, for tests."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from bitpruner.data.base import ArrayDataModule, Splits
from bitpruner.data.splits import stratified_three_way


class DigitsDataModule(ArrayDataModule):
    """1x8x8 digits, stratified split; with the default fractions: train 1,258 / val 180 / test 359."""

    name = "digits"

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        drop_last: bool = False,
        split_seed: int = 0,
        val_size: int | float = 0.1,
        test_size: int | float = 0.2,
    ):
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed, drop_last=drop_last)
        self.split_seed = int(split_seed)
        self.val_size = val_size
        self.test_size = test_size

    def _load_splits(self) -> Splits:
        bunch = load_digits()
        images = bunch.images.astype(np.uint8)[:, None, :, :]
        labels = bunch.target.astype(np.int64)
        train, val, test = stratified_three_way(labels, self.val_size, self.test_size, self.split_seed)
        return Splits(
            images[train],
            labels[train],
            images[val],
            labels[val],
            images[test],
            labels[test],
            class_names=[str(name) for name in bunch.target_names],
        )
