"""CIFAR-10 and CIFAR-100 from the python pickle batches in a local folder."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from bitpruner.data.augment import CropFlip
from bitpruner.data.base import ArrayDataModule, Splits, check_class_names
from bitpruner.data.files import find_dir_with, open_data_file, require_dir
from bitpruner.data.splits import split_count, stratified_split
from bitpruner.errors import DataError
from bitpruner.utils.messages import one_line, quoted, shown

IMAGE_SHAPE = (3, 32, 32)
LISTED_KEYS = 8  # keys of a pickle named in a message
# Globals a CIFAR pickle may name (numpy arrays, old and new module paths); anything else is refused,
# since unpickling an arbitrary file can run arbitrary code.
SAFE_GLOBALS = {
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    # Python 3 writes bytes at pickle protocol 2 as _codecs.encode(str, "latin1").
    ("_codecs", "encode"),
}


# Python 3 writes an empty bytes object at protocol 2 as a call of bytes() with no arguments.
BYTES_GLOBALS = {("__builtin__", "bytes"), ("builtins", "bytes")}


def _empty_bytes(*args) -> bytes:
    """`bytes()` for a pickle, refusing arguments (bytes(10**12) would allocate that much)."""
    if args:
        raise pickle.UnpicklingError("refusing to call bytes() with arguments")
    return b""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in BYTES_GLOBALS:
            return _empty_bytes
        if (module, name) not in SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return super().find_class(module, name)


def load_pickle(path: Path) -> dict[str, object]:
    """A CIFAR pickle (Python 2 byte-string keys) as a dict with str keys.

    Compression (gzip, bzip2, xz) is detected from the magic bytes. Only numpy arrays and plain types are
    unpickled: a pickle naming any other global is refused before anything runs. Raises DataError, one
    line naming the file, for anything unreadable (truncated, damaged, another pickle, not a dict).
    """
    handle, kind = open_data_file(path, "a CIFAR pickle batch")
    try:
        with handle:
            content = _NumpyOnlyUnpickler(handle, encoding="bytes").load()
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - unpickling foreign bytes fails with any type; no code ran
        packed = f" {kind}-compressed" if kind else ""
        raise DataError(f"{shown(path)}: unreadable{packed} CIFAR pickle ({type(exc).__name__}: "
                        f"{one_line(exc)})") from None
    if not isinstance(content, dict):
        raise DataError(f"{shown(path)}: expected a pickled dict, got {type(content).__name__}")
    return {key.decode("latin-1") if isinstance(key, bytes) else str(key): value for key, value in content.items()}


def read_batch(path: Path, label_key: str, num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 [N, 3, 32, 32] and labels int64 [N] of one pickle batch (labels below `num_classes`
    when given); DataError, one line naming the file, for missing keys, other types or shapes."""
    batch = load_pickle(path)
    missing = [key for key in ("data", label_key) if key not in batch]
    if missing:
        raise DataError(
            f"{shown(path)}: pickle lacks key(s) {', '.join(missing)} (expected 'data' and '{label_key}'; "
            f"found {', '.join(quoted(key) for key in list(batch)[:LISTED_KEYS])})"
        )
    pixels = int(np.prod(IMAGE_SHAPE))
    data = batch["data"]
    if not isinstance(data, np.ndarray):
        raise DataError(f"{shown(path)}: 'data' is a {type(data).__name__}, expected a uint8 array (N, {pixels})")
    if data.ndim != 2 or data.shape[1] != pixels or data.dtype != np.uint8:
        raise DataError(f"{shown(path)}: 'data' is {data.dtype} {data.shape}, expected uint8 (N, {pixels})")
    raw_labels = batch[label_key]
    odd = DataError(f"{shown(path)}: '{label_key}' is {quoted(raw_labels)}, expected a list of integer labels")
    try:
        labels = np.asarray(raw_labels)
    except Exception:  # noqa: BLE001 - ragged or odd objects
        raise odd from None
    if labels.ndim != 1 or not (np.issubdtype(labels.dtype, np.integer) or labels.size == 0):
        raise odd
    labels = labels.astype(np.int64)
    if len(labels) != len(data):
        raise DataError(f"{shown(path)}: {labels.size} labels for {len(data)} images")
    if len(labels) and (labels.min() < 0 or (num_classes is not None and labels.max() >= num_classes)):
        bad = int(labels.min()) if labels.min() < 0 else int(labels.max())
        upper = f"0..{num_classes - 1}" if num_classes is not None else ">= 0"
        raise DataError(f"{shown(path)}: label {bad} in '{label_key}', expected class indices {upper}")
    return data.reshape(-1, *IMAGE_SHAPE), labels


def read_names(path: Path, key: str) -> list[str] | None:
    """Class names from a meta pickle, or None when the file is absent (names are optional)."""
    if not path.is_file():
        return None
    meta = load_pickle(path)
    if key not in meta:
        raise DataError(f"{shown(path)}: meta pickle lacks key '{key}' "
                        f"(found {', '.join(quoted(k) for k in list(meta)[:LISTED_KEYS])})")
    names = meta[key]
    if not isinstance(names, list | tuple) or not all(isinstance(name, bytes | str) for name in names):
        raise DataError(f"{shown(path)}: '{key}' is {quoted(names)}, expected a list of class names")
    return [name.decode("latin-1") if isinstance(name, bytes) else name for name in names]


class _CifarDataModule(ArrayDataModule):
    """Shared reader; `data_dir` may be the pickle folder itself or its parent. Val is a seeded,
    stratified slice of the train batches (`val_size`); the official test batch is the test split.
    Train-only augmentation: random crop after `crop_padding` zero pixels and a horizontal flip."""

    folder_name: str
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    label_key: str
    names_key: str
    known_classes: int

    def __init__(
        self,
        data_dir: str | Path | None = None,
        batch_size: int = 128,
        num_workers: int = 0,
        seed: int = 0,
        drop_last: bool = False,
        split_seed: int = 0,
        val_size: int | float = 5000,
        augment: bool = True,
        crop_padding: int = 4,
        horizontal_flip: bool = True,
    ):
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed, drop_last=drop_last)
        self.data_dir = data_dir
        self.split_seed = int(split_seed)
        self.val_size = val_size
        self.augment = bool(augment)
        self.crop_padding = int(crop_padding)
        self.horizontal_flip = bool(horizontal_flip)

    def _train_augmentation(self):
        if not self.augment:
            return None
        return CropFlip(padding=self.crop_padding, flip=self.horizontal_flip)

    def _load_splits(self) -> Splits:
        data_dir = require_dir(self.data_dir, f"{self.name} python batches ({self.folder_name}/)")
        expected = (*self.train_files, self.test_file)
        folder = find_dir_with([data_dir, data_dir / self.folder_name], expected, f"{self.name}")
        parts = [read_batch(folder / name, self.label_key, self.known_classes) for name in self.train_files]
        x_all = np.concatenate([images for images, _ in parts])
        y_all = np.concatenate([labels for _, labels in parts])
        x_test, y_test = read_batch(folder / self.test_file, self.label_key, self.known_classes)
        for name, (images, _) in zip((*self.train_files, self.test_file), [*parts, (x_test, y_test)], strict=True):
            if not len(images):
                raise DataError(f"{shown(folder / name)}: holds no images, expected a non-empty batch")
        n_val = split_count(self.val_size, len(y_all), "val_size")
        train, val = stratified_split(y_all, n_val, self.split_seed, "val_size")
        num_classes = int(max(y_all.max(), y_test.max())) + 1
        names = check_class_names(
            read_names(folder / self.meta_file, self.names_key), num_classes, str(folder / self.meta_file)
        )
        return Splits(x_all[train], y_all[train], x_all[val], y_all[val], x_test, y_test, names)

    @property
    def num_classes(self) -> int:
        # Small or partial files may not show every label; the data set's class count is fixed.
        return max(super().num_classes, self.known_classes)


class Cifar10DataModule(_CifarDataModule):
    """CIFAR-10: `cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}`."""

    name = "cifar10"
    folder_name = "cifar-10-batches-py"
    train_files = tuple(f"data_batch_{index}" for index in range(1, 6))
    test_file = "test_batch"
    meta_file = "batches.meta"
    label_key = "labels"
    names_key = "label_names"
    known_classes = 10


class Cifar100DataModule(_CifarDataModule):
    """CIFAR-100 with its 100 fine labels: `cifar-100-python/{train, test, meta}`."""

    name = "cifar100"
    folder_name = "cifar-100-python"
    train_files = ("train",)
    test_file = "test"
    meta_file = "meta"
    label_key = "fine_labels"
    names_key = "fine_label_names"
    known_classes = 100
