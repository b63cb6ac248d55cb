import gzip
import hashlib

import numpy as np
import pandas as pd
import pytest
import torch

import bitpruner.data.mnist5k as mnist5k_module
from bitpruner.data import Mnist5kDataModule
from bitpruner.errors import DataError


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def module(cache_dir):
    return Mnist5kDataModule(cache_dir=cache_dir, batch_size=50, seed=1)


def image_digests(images: np.ndarray) -> set[str]:
    return {hashlib.sha1(image.tobytes()).hexdigest() for image in images}


def test_csv_layout_is_784_pixels_then_label():
    images, labels = mnist5k_module.read_mnist5k_csv(mnist5k_module.default_csv_path())
    assert images.shape == (5000, 1, 28, 28) and images.dtype == np.uint8
    assert np.array_equal(np.bincount(labels), [500] * 10)
    # Digits are centerd with blank top rows: a label column read as a pixel would shift every row.
    assert images[:, 0, 0, :].max() == 0
    assert images[:, 0, 8:20, 8:20].mean() > 10 * images[:, 0, :, :4].mean()


def test_split_sizes_stratified_and_disjoint(module):
    assert module.split_sizes() == {"train": 3500, "val": 500, "test": 1000}
    splits = module._ensure_loaded()
    for split, per_class in (("train", 350), ("val", 50), ("test", 100)):
        assert np.array_equal(np.bincount(splits.split(split)[1], minlength=10), [per_class] * 10)
    digests = [image_digests(splits.split(split)[0]) for split in ("train", "val", "test")]
    assert sum(len(d) for d in digests) == len(set.union(*digests))
    assert module.num_classes == 10 and module.in_channels == 1 and module.image_size == (28, 28)
    assert module.class_names == [str(d) for d in range(10)]


def test_samples_are_normalized_float_images_with_int64_labels(module):
    images, labels = next(iter(module.train_dataloader()))
    assert images.shape == (50, 1, 28, 28) and images.dtype == torch.float32
    assert labels.dtype == torch.int64
    train = torch.stack([module.dataset("train")[i][0] for i in range(len(module.dataset("train")))])
    assert abs(train.mean().item()) < 1e-3 and abs(train.std().item() - 1) < 1e-3


def test_split_is_deterministic_and_independent_of_shuffle_seed(cache_dir, module):
    again = Mnist5kDataModule(cache_dir=cache_dir, seed=99)
    for split in ("train", "val", "test"):
        assert np.array_equal(again._ensure_loaded().split(split)[0], module._ensure_loaded().split(split)[0])
    moved = Mnist5kDataModule(cache_dir=cache_dir, split_seed=5)
    assert not np.array_equal(moved._ensure_loaded().x_test, module._ensure_loaded().x_test)


def test_shuffling_follows_seed(cache_dir):
    def first_labels(seed):
        return next(iter(Mnist5kDataModule(cache_dir=cache_dir, seed=seed).train_dataloader()))[1]

    assert torch.equal(first_labels(4), first_labels(4))
    assert not torch.equal(first_labels(4), first_labels(5))
    dm = Mnist5kDataModule(cache_dir=cache_dir, seed=4)
    epoch1, epoch2 = (next(iter(dm.train_dataloader()))[1] for _ in range(2))
    assert not torch.equal(epoch1, epoch2)  # later epochs draw new orders


def test_cache_is_written_atomically_and_reused(tmp_path, monkeypatch):
    Mnist5kDataModule(cache_dir=tmp_path).prepare_data()
    assert [p.name for p in tmp_path.iterdir()] == [mnist5k_module.CACHE_NAME]

    def no_csv(*args, **kwargs):
        raise AssertionError("the CSV was read although the cache exists")

    monkeypatch.setattr(pd, "read_csv", no_csv)
    cached = Mnist5kDataModule(cache_dir=tmp_path)
    assert cached.split_sizes()["train"] == 3500


def test_corrupt_cache_is_rebuilt(tmp_path):
    (tmp_path / mnist5k_module.CACHE_NAME).write_bytes(b"not a zip file")
    assert Mnist5kDataModule(cache_dir=tmp_path).split_sizes()["test"] == 1000
    with np.load(tmp_path / mnist5k_module.CACHE_NAME) as stored:
        assert stored["images"].shape == (5000, 1, 28, 28)


def test_calibration_batches_are_the_first_train_images(module):
    batches = module.calibration_batches(2, batch_size=8)
    assert [b.shape for b in batches] == [(8, 1, 28, 28)] * 2
    expected = torch.stack([module.dataset("train")[i][0] for i in range(8, 16)])
    assert torch.equal(batches[1], expected)
    assert torch.equal(module.calibration_batches(1, batch_size=8)[0], batches[0])


def test_malformed_csv_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n4,5,6\n")
    with pytest.raises(DataError, match=r"bad\.csv: expected 785 columns") as info:
        Mnist5kDataModule(csv_path=bad).split_sizes()
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match="MNIST-5k CSV not found"):
        Mnist5kDataModule(csv_path=tmp_path / "absent.csv.gz").split_sizes()


def csv_rows(rows: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (rows, 784)), np.arange(rows) % 10


def write_csv_text(pixels: np.ndarray, labels: np.ndarray) -> str:
    return "".join(",".join(map(str, [*row, label])) + "\n" for row, label in zip(pixels, labels, strict=True))


def test_gzip_csv_without_gz_suffix_is_read_by_its_magic_bytes(tmp_path):
    pixels, labels = csv_rows()
    path = tmp_path / "mnist_5k.csv"  # gzip content, plain name
    path.write_bytes(gzip.compress(write_csv_text(pixels, labels).encode()))
    images, read_labels = mnist5k_module.read_mnist5k_csv(path)
    assert np.array_equal(images.reshape(-1, 784), pixels) and np.array_equal(read_labels, labels)


@pytest.mark.parametrize("cell, fragment", [
    ("x", "expected integer cells only"),
    ("", "expected integer cells only"),
    ("2.5", "expected integer cells only"),
    ("300", "expected pixels in 0..255 and labels in 0..9"),
])
def test_odd_cells_are_one_line(tmp_path, cell, fragment):
    pixels, labels = csv_rows()
    lines = write_csv_text(pixels, labels).splitlines()
    first = lines[3].split(",")
    first[100] = cell
    lines[3] = ",".join(first)
    path = tmp_path / "odd.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=f"odd.csv: {fragment}"):
        mnist5k_module.read_mnist5k_csv(path)


@pytest.mark.parametrize("content", [b"", b"\x1f\x8b\x08\x00garbage", b"\xff\xfe\x00\x01" * 10])
def test_empty_damaged_and_binary_csv_are_one_line(tmp_path, content):
    path = tmp_path / "bad.csv.gz"
    path.write_bytes(content)
    with pytest.raises(DataError, match=r"bad.csv.gz: (unreadable MNIST-5k CSV|expected)") as info:
        mnist5k_module.read_mnist5k_csv(path)
    assert "\n" not in str(info.value)


def test_cache_of_wrong_types_is_rebuilt(tmp_path):
    cache = tmp_path / mnist5k_module.CACHE_NAME
    np.savez(cache, images=np.zeros((3, 1, 28, 28), np.float32), labels=np.array([0, 1, 99]))
    assert Mnist5kDataModule(cache_dir=tmp_path).split_sizes()["test"] == 1000
    with np.load(cache) as stored:
        assert stored["images"].dtype == np.uint8 and len(stored["labels"]) == 5000
