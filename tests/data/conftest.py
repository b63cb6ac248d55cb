"""Fixtures that write tiny fake data sets in their real on-disk formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_fakes import IDX_NAMES, fake_cifar_batch, fake_mnist_arrays, write_idx, write_pickle


@pytest.fixture
def mnist_idx_dir(tmp_path):
    """Write fake MNIST IDX files (`gz` toggles compression); returns (folder, arrays)."""

    def make(gz: bool = True, folder: Path | None = None, seed: int = 0):
        folder = folder or tmp_path / ("mnist_gz" if gz else "mnist_raw")
        folder.mkdir(parents=True, exist_ok=True)
        arrays = fake_mnist_arrays(seed)
        for key, stem in IDX_NAMES.items():
            write_idx(folder / (stem + (".gz" if gz else "")), arrays[key])
        return folder, arrays

    return make


@pytest.fixture
def cifar10_dir(tmp_path):
    """A fake `cifar-10-batches-py/` (5 train batches of 8 images, a test batch of 6, meta); returns it."""
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(1, 6):
        write_pickle(folder / f"data_batch_{index}", fake_cifar_batch(rng, 8, 4, b"labels", offset=index))
    write_pickle(folder / "test_batch", fake_cifar_batch(rng, 6, 4, b"labels"))
    names = [
        b"airplane",
        b"automobile",
        b"bird",
        b"cat",
        b"deer",
        b"dog",
        b"frog",
        b"horse",
        b"ship",
        b"truck",
    ]
    write_pickle(folder / "batches.meta", {b"label_names": names, b"num_cases_per_batch": 8})
    return folder


@pytest.fixture
def cifar100_dir(tmp_path):
    folder = tmp_path / "cifar100" / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    train = fake_cifar_batch(rng, 30, 5, b"fine_labels")
    train[b"coarse_labels"] = [0] * 30
    test = fake_cifar_batch(rng, 10, 5, b"fine_labels")
    write_pickle(folder / "train", train)
    write_pickle(folder / "test", test)
    write_pickle(folder / "meta", {b"fine_label_names": [f"class{i}".encode() for i in range(100)]})
    return folder
