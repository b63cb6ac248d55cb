"""MNIST and Fashion-MNIST from the IDX files (`.gz` or not) in a local folder."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from bitpruner.data.base import ArrayDataModule, Splits, check_class_names
from bitpruner.data.files import require_dir
from bitpruner.data.splits import split_count, stratified_split
from bitpruner.errors import DataError

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# IDX type byte -> numpy big-endian dtype (the format's spec lists exactly these).
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip-compressed when its name ends in .gz) as a numpy array of the header's shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: unreadable IDX file ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES or raw[3] == 0:
        magic = raw[:4].hex() or "empty file"
        raise DataError(f"{path}: bad IDX magic number {magic} (expected 0000 + type byte 08..0e + ndim)")
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    ndim = raw[3]
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes, expected {header_size})")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header_size + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        state = "truncated" if len(raw) < expected else "oversized"
        raise DataError(f"{path}: {state} IDX file: {len(raw)} bytes, header {shape} needs {expected}")
    return np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape).astype(dtype.newbyteorder("="))


def _idx_files_in(folder: Path) -> dict[str, Path]:
    found = {}
    for key, stem in IDX_FILES.items():
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                found[key] = folder / name
                break
    return found


def locate_idx_files(data_dir: Path) -> dict[str, Path]:
    """Each IDX file's path in `data_dir` (or its `raw/`, torchvision's layout); `.gz` wins when both exist."""
    for folder in (data_dir, data_dir / "raw"):
        found = _idx_files_in(folder)
        if len(found) == len(IDX_FILES):
            return found
    found = _idx_files_in(data_dir)
    missing = [IDX_FILES[key] + "[.gz]" for key in IDX_FILES if key not in found]
    expected = ", ".join(stem + "[.gz]" for stem in IDX_FILES.values())
    raise DataError(f"{data_dir}: missing IDX file(s) {', '.join(missing)} (expected {expected})")


def read_idx_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise DataError(f"{images_path}: expected a 3-d IDX image array [N, H, W], got shape {images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: expected a 1-d IDX label array, got shape {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path}")
    return images[:, None, :, :], labels.astype(np.int64)


class MnistIdxDataModule(ArrayDataModule):
    """MNIST / Fashion-MNIST IDX files in `data_dir`; val is a seeded stratified slice of train (`val_size`)."""

    name = "mnist_idx"

    def __init__(
        self,
        data_dir: str | Path | None = None,
        batch_size: int = 128,
        num_workers: int = 0,
        seed: int = 0,
        drop_last: bool = False,
        split_seed: int = 0,
        val_size: int | float = 5000,
        class_names: list[str] | None = None,
    ):
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed, drop_last=drop_last)
        self.data_dir = data_dir
        self.split_seed = int(split_seed)
        self.val_size = val_size
        self.names = list(class_names) if class_names is not None else None

    def _load_splits(self) -> Splits:
        data_dir = require_dir(self.data_dir, "MNIST/Fashion-MNIST IDX files")
        paths = locate_idx_files(data_dir)
        x_train, y_train = read_idx_pair(paths["train_images"], paths["train_labels"])
        x_test, y_test = read_idx_pair(paths["test_images"], paths["test_labels"])
        n_val = split_count(self.val_size, len(y_train), "val_size")
        train, val = stratified_split(y_train, n_val, self.split_seed, "val_size")
        num_classes = int(max(y_train.max(), y_test.max())) + 1
        names = check_class_names(self.names, num_classes, f"{self.name} class_names") or [
            str(label) for label in range(num_classes)
        ]
        return Splits(x_train[train], y_train[train], x_train[val], y_train[val], x_test, y_test, names)
