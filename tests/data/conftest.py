"""Fixtures that write tiny fake data sets in their real on-disk formats (writers: helpers.data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.data import write_fake_cifar10, write_fake_cifar100, write_fake_mnist_idx


@pytest.fixture
def mnist_idx_dir(tmp_path):
    """make(gz=True, folder=None, seed=0) writes fake MNIST IDX files (`gz`: compressed); returns (folder, arrays)."""

    def make(gz: bool = True, folder: Path | None = None, seed: int = 0):
        return write_fake_mnist_idx(folder or tmp_path / ("mnist_gz" if gz else "mnist_raw"), gz=gz, seed=seed)

    return make


@pytest.fixture
def cifar10_dir(tmp_path):
    """A fake `cifar-10-batches-py/` (5 train batches of 8 images, a test batch of 6, meta); returns it."""
    return write_fake_cifar10(tmp_path / "cifar10" / "cifar-10-batches-py")


@pytest.fixture
def cifar100_dir(tmp_path):
    """A fake `cifar-100-python/` (train 30, test 10 images of 5 fine classes); returns it."""
    return write_fake_cifar100(tmp_path / "cifar100" / "cifar-100-python")
