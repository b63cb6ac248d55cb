"""Writers of tiny data set files in their real on-disk formats, for the data-layer tests."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array: 0x0000, type 0x08, ndim, big-endian dims, then the data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    data = idx_bytes(array)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)
    return path


def fake_mnist_arrays(seed: int, n_train: int = 40, n_test: int = 20, classes: int = 4, size: int = 28):
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, size, size), dtype=np.uint8),
        "train_labels": np.arange(n_train, dtype=np.uint8) % classes,
        "test_images": rng.integers(0, 256, (n_test, size, size), dtype=np.uint8),
        "test_labels": np.arange(n_test, dtype=np.uint8) % classes,
    }
    return arrays


def write_pickle(path: Path, content) -> Path:
    # Protocol 2 and byte-string keys, like the original Python 2 CIFAR files.
    with open(path, "wb") as handle:
        pickle.dump(content, handle, protocol=2)
    return path


def fake_cifar_batch(rng, count: int, classes: int, label_key: bytes, offset: int = 0) -> dict:
    return {
        b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
        label_key: [int(label) for label in (np.arange(count) + offset) % classes],
        b"batch_label": b"fake batch",
    }
