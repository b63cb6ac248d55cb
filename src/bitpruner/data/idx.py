"""MNIST and Fashion-MNIST from the IDX files in a local folder, under the spellings seen in the wild.

Each file is found by its canonical name in any case, with `-` or `.` (or `_`) between the parts
(`train-images-idx3-ubyte`, `train-images.idx3-ubyte`, `TRAIN-IMAGES-IDX3-UBYTE.GZ`), `.gz` or not, and also
as a folder of that name holding the file (how some archives unpack). Compression (gzip, bzip2, xz) is
detected from the magic bytes, whatever the name says. Every malformed file is one DataError line naming
the file, what was found and what was expected.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from bitpruner.data.base import ArrayDataModule, Splits, check_class_names
from bitpruner.data.files import (
    DECOMPRESS_ERRORS,
    damaged_stream,
    folder_contents,
    open_data_file,
    read_up_to,
    require_dir,
)
from bitpruner.data.splits import split_count, stratified_split
from bitpruner.errors import DataError
from bitpruner.utils.messages import shown

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# IDX type byte -> numpy big-endian dtype (the format's spec lists exactly these).
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IMAGE_TYPE = 0x08  # MNIST and Fashion-MNIST images are unsigned bytes
INTEGER_TYPES = (0x08, 0x09, 0x0B, 0x0C)  # what labels may be stored as
MAGIC_SIZE = 4  # 0x00 0x00, the type byte, the number of dimensions
DIM_SIZE = 4  # each dimension: a big-endian uint32
GZ_SUFFIX = ".gz"
SUBFOLDERS = ("", "raw")  # data_dir itself, then torchvision's layout


def _normalized(name: str) -> tuple[str, bool]:
    """(a file name in canonical spelling: lower case, `-` between parts, no `.gz`; whether it ended in .gz)."""
    lower = name.lower()
    gz = lower.endswith(GZ_SUFFIX)
    stem = lower[: -len(GZ_SUFFIX)] if gz else lower
    return re.sub(r"[._]", "-", stem), gz


def _type_name(type_byte: int) -> str:
    return f"0x{type_byte:02x} ({np.dtype(IDX_DTYPES[type_byte]).name})"


def read_idx(path: Path) -> np.ndarray:
    """An IDX file as a numpy array of the header's shape (native byte order).

    Compression is detected from the magic bytes (gzip, bzip2, xz), whatever the name says. Raises DataError,
    one line naming the file: unreadable, empty, a bad magic number, a truncated header, more or fewer data
    bytes than the header's shape needs (a wrong item count), a damaged or truncated compressed stream.
    Reads no more than the data really there, whatever size the header claims.
    """
    path = Path(path)
    handle, kind = open_data_file(path, "an IDX file")
    content = f"{kind}-decompressed " if kind else ""
    try:
        with handle:
            magic = read_up_to(handle, MAGIC_SIZE)
            if not magic:
                raise DataError(f"{shown(path)}: empty {content}file, expected an IDX file")
            if len(magic) < MAGIC_SIZE or magic[0] != 0 or magic[1] != 0 or magic[2] not in IDX_DTYPES \
                    or magic[3] == 0:
                raise DataError(f"{shown(path)}: bad IDX magic number {magic.hex()} in its {content}content "
                                "(expected 0000 + type byte 08..0e + ndim)")
            dtype = np.dtype(IDX_DTYPES[magic[2]])
            ndim = magic[3]
            header_size = MAGIC_SIZE + DIM_SIZE * ndim
            dims = read_up_to(handle, DIM_SIZE * ndim)
            if len(dims) < DIM_SIZE * ndim:
                raise DataError(f"{shown(path)}: truncated IDX header ({MAGIC_SIZE + len(dims)} bytes, "
                                f"expected {header_size} for {ndim} dimensions)")
            shape = tuple(int(d) for d in np.frombuffer(dims, dtype=">u4"))
            expected = header_size + math.prod(shape) * dtype.itemsize
            if kind is None:
                size = path.stat().st_size  # known without reading: no need to read a file of the wrong size
                if size != expected:
                    state = "truncated" if size < expected else "oversized"
                    raise DataError(f"{shown(path)}: {state} IDX file: {size} bytes, header {shape} needs {expected}")
            data = read_up_to(handle, expected - header_size)
            if len(data) < expected - header_size:
                raise DataError(f"{shown(path)}: truncated IDX file: {header_size + len(data)} {content}bytes, "
                                f"header {shape} needs {expected}")
            if read_up_to(handle, 1):
                raise DataError(f"{shown(path)}: oversized IDX file: more than {expected} {content}bytes, "
                                f"header {shape} needs {expected}")
    except DataError:
        raise
    except DECOMPRESS_ERRORS as exc:
        raise damaged_stream(path, kind, exc) from None
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir(), key=lambda entry: entry.name)
    except OSError:
        return []


def _idx_files_in(folder: Path) -> dict[str, Path]:
    """Each IDX file found in `folder` under any accepted spelling; per file: `.gz` first, then the canonical
    spelling, then by name (a folder of that name holding the file counts too)."""
    by_stem = {stem: key for key, stem in IDX_FILES.items()}
    candidates: dict[str, list[tuple[bool, bool, str, Path]]] = {}
    for entry in _entries(folder):
        stem, gz = _normalized(entry.name)
        key = by_stem.get(stem)
        if key is None:
            continue
        if entry.is_dir():  # e.g. train-images-idx3-ubyte/train-images-idx3-ubyte
            inner = [e for e in _entries(entry) if e.is_file() and _normalized(e.name)[0] == stem]
            if not inner:
                continue
            entry, gz = inner[0], _normalized(inner[0].name)[1]
        elif not entry.is_file():
            continue
        canonical = entry.name in (IDX_FILES[key], IDX_FILES[key] + GZ_SUFFIX)
        candidates.setdefault(key, []).append((not gz, not canonical, entry.name, entry))
    return {key: sorted(found, key=lambda item: item[:3])[0][3] for key, found in candidates.items()}


def locate_idx_files(data_dir: Path) -> dict[str, Path]:
    """Each IDX file's path in `data_dir` (or its `raw/`, torchvision's layout), under any accepted spelling.

    Raises DataError naming the missing files, the spellings looked for, and what the folder holds.
    """
    folders = [data_dir / sub if sub else data_dir for sub in SUBFOLDERS]
    found_in = [(folder, _idx_files_in(folder)) for folder in folders]
    for _folder, found in found_in:
        if len(found) == len(IDX_FILES):
            return found
    best, found = max(found_in, key=lambda item: len(item[1]))
    missing = [IDX_FILES[key] + "[.gz]" for key in IDX_FILES if key not in found]
    expected = ", ".join(stem + "[.gz]" for stem in IDX_FILES.values())
    looked = " and ".join(shown(folder) for folder in folders)
    raise DataError(f"{shown(best)}: missing IDX file(s) {', '.join(missing)} (expected {expected}, in any case, "
                    f"with '.' or '-' before idx; looked in {looked}; {folder_contents(best)})")


def read_idx_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 [N, 1, H, W] and labels int64 [N] of one split; DataError (one line) when the files do
    not form an image/label pair (shapes, types, counts, negative labels)."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise DataError(f"{shown(images_path)}: expected a 3-d IDX image array [N, H, W], got shape {images.shape}")
    if images.dtype != np.dtype(IDX_DTYPES[IMAGE_TYPE]).newbyteorder("="):
        raise DataError(f"{shown(images_path)}: images of type {images.dtype}, expected type byte "
                        f"{_type_name(IMAGE_TYPE)}")
    if labels.ndim != 1:
        raise DataError(f"{shown(labels_path)}: expected a 1-d IDX label array, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{shown(labels_path)}: labels of type {labels.dtype}, expected an integer type byte "
                        f"({', '.join(f'0x{t:02x}' for t in INTEGER_TYPES)})")
    if len(images) != len(labels):
        raise DataError(f"{shown(labels_path)}: {len(labels)} labels for {len(images)} images in {shown(images_path)}")
    if len(images) == 0:
        raise DataError(f"{shown(images_path)}: holds no images (header shape {images.shape})")
    if labels.min() < 0:
        raise DataError(f"{shown(labels_path)}: label {int(labels.min())} is negative, expected class indices >= 0")
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
        if x_test.shape[1:] != x_train.shape[1:]:
            raise DataError(f"{shown(paths['test_images'])}: images of {x_test.shape[2]}x{x_test.shape[3]} pixels, "
                            f"but {shown(paths['train_images'])} holds {x_train.shape[2]}x{x_train.shape[3]}")
        n_val = split_count(self.val_size, len(y_train), "val_size")
        train, val = stratified_split(y_train, n_val, self.split_seed, "val_size")
        num_classes = int(max(y_train.max(), y_test.max())) + 1
        names = check_class_names(self.names, num_classes, f"{self.name} class_names") or [
            str(label) for label in range(num_classes)
        ]
        return Splits(x_train[train], y_train[train], x_train[val], y_train[val], x_test, y_test, names)
