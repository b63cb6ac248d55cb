"""Writers of tiny fake data sets in their real on-disk formats (IDX, CIFAR pickles, ImageFolder PNGs)."""

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
CIFAR10_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
CIFAR_ROW = 3 * 32 * 32  # bytes of one CIFAR image row: 1024 red, 1024 green, 1024 blue
CIFAR100_CLASSES = 100


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array: 0x0000, type 0x08, ndim, big-endian dims, then the data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write `array` as an IDX file, gzip-compressed when `path` ends in .gz; returns `path`."""
    data = idx_bytes(array)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)
    return path


def fake_mnist_arrays(seed: int, n_train: int = 40, n_test: int = 20, classes: int = 4, size: int = 28) -> dict:
    """Random uint8 images [n, size, size] and cyclic uint8 labels 0..classes-1, keyed as `IDX_NAMES`."""
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (n_train, size, size), dtype=np.uint8),
        "train_labels": np.arange(n_train, dtype=np.uint8) % classes,
        "test_images": rng.integers(0, 256, (n_test, size, size), dtype=np.uint8),
        "test_labels": np.arange(n_test, dtype=np.uint8) % classes,
    }


def write_fake_mnist_idx(folder: Path, gz: bool = True, seed: int = 0) -> tuple[Path, dict]:
    """The four MNIST IDX files of `fake_mnist_arrays(seed)` in `folder` (created); returns (folder, arrays)."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = fake_mnist_arrays(seed)
    for key, stem in IDX_NAMES.items():
        write_idx(folder / (stem + (".gz" if gz else "")), arrays[key])
    return folder, arrays


def write_pickle(path: Path, content) -> Path:
    """Pickle `content` as the original Python 2 CIFAR files do (protocol 2, byte-string keys)."""
    with open(path, "wb") as handle:
        pickle.dump(content, handle, protocol=2)
    return path


def fake_cifar_batch(rng, count: int, classes: int, label_key: bytes, offset: int = 0) -> dict:
    """A CIFAR batch dict: random uint8 `data` [count, 3072], cyclic labels (shifted by `offset`)."""
    return {
        b"data": rng.integers(0, 256, (count, CIFAR_ROW), dtype=np.uint8),
        label_key: [int(label) for label in (np.arange(count) + offset) % classes],
        b"batch_label": b"fake batch",
    }


def write_fake_cifar10(folder: Path) -> Path:
    """A fake `cifar-10-batches-py/`: 5 train batches of 8 images, a test batch of 6, 4 classes used, meta."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(1, 6):
        write_pickle(folder / f"data_batch_{index}", fake_cifar_batch(rng, 8, 4, b"labels", offset=index))
    write_pickle(folder / "test_batch", fake_cifar_batch(rng, 6, 4, b"labels"))
    write_pickle(folder / "batches.meta", {b"label_names": CIFAR10_NAMES, b"num_cases_per_batch": 8})
    return folder


def write_fake_cifar100(folder: Path) -> Path:
    """A fake `cifar-100-python/`: train 30 and test 10 images over 5 fine classes, meta with 100 names."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    train = fake_cifar_batch(rng, 30, 5, b"fine_labels")
    train[b"coarse_labels"] = [0] * 30
    write_pickle(folder / "train", train)
    write_pickle(folder / "test", fake_cifar_batch(rng, 10, 5, b"fine_labels"))
    names = [f"class{i}".encode() for i in range(CIFAR100_CLASSES)]
    write_pickle(folder / "meta", {b"fine_label_names": names})
    return folder


def write_image_tree(root: Path, classes=("cat", "dog", "emu"), per_class: int = 3,
                     splits=("train", "val")) -> Path:
    """An ImageFolder tree root/<split>/<class>/<i>.png of random 24x20 RGB PNGs; returns `root`."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in splits:
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True)
            for index in range(per_class):
                pixels = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{index}.png")
    return root


def torchvision_works() -> bool:
    """Whether torchvision imports beside this torch (an ABI mismatch raises more than ImportError)."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True
