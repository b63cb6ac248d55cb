import gzip

import numpy as np
import pytest
import torch

from bitpruner.data import MnistIdxDataModule
from bitpruner.data.idx import read_idx
from bitpruner.errors import DataError
from helpers.data import IDX_NAMES, idx_bytes, write_idx


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    array = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    path = write_idx(tmp_path / ("x.idx" + (".gz" if gz else "")), array)
    read = read_idx(path)
    assert read.shape == (2, 3, 5) and read.dtype == np.uint8 and np.array_equal(read, array)


@pytest.mark.parametrize("gz", [True, False])
def test_module_reads_files_and_carves_stratified_val(mnist_idx_dir, gz):
    folder, arrays = mnist_idx_dir(gz=gz)
    dm = MnistIdxDataModule(data_dir=folder, val_size=8, batch_size=5)
    assert dm.split_sizes() == {"train": 32, "val": 8, "test": 20}
    splits = dm._ensure_loaded()
    assert np.array_equal(np.bincount(splits.y_val), [2, 2, 2, 2])
    assert np.array_equal(splits.x_test[:, 0], arrays["test_images"])
    train_and_val = np.concatenate([splits.x_train, splits.x_val])[:, 0]
    assert sorted(map(bytes, train_and_val)) == sorted(map(bytes, arrays["train_images"]))
    assert dm.num_classes == 4 and dm.input_shape == (1, 28, 28)
    images, labels = next(iter(dm.test_dataloader()))
    assert images.dtype == torch.float32 and labels.tolist() == [0, 1, 2, 3, 0]


def test_torchvision_raw_layout_and_class_names(mnist_idx_dir, tmp_path):
    mnist_idx_dir(folder=tmp_path / "FashionMNIST" / "raw")
    names = ["T-shirt", "Trouser", "Pullover", "Dress"]
    dm = MnistIdxDataModule(data_dir=tmp_path / "FashionMNIST", val_size=4, class_names=names)
    assert dm.class_names == names and dm.split_sizes()["val"] == 4


def test_missing_directory(tmp_path):
    with pytest.raises(DataError, match=r"nowhere: directory not found \(expected MNIST"):
        MnistIdxDataModule(data_dir=tmp_path / "nowhere").setup()


def test_missing_file_lists_expected_names(mnist_idx_dir):
    folder, _ = mnist_idx_dir(gz=True)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as info:
        MnistIdxDataModule(data_dir=folder).setup()
    message = str(info.value)
    assert "missing IDX file(s) t10k-labels-idx1-ubyte[.gz]" in message
    assert all(stem in message for stem in IDX_NAMES.values()) and "\n" not in message


def test_truncated_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((3, 4, 4), np.uint8))[:-5])
    with pytest.raises(DataError, match=r"truncated IDX file: 59 bytes, header \(3, 4, 4\) needs 64"):
        read_idx(path)
    gz_path = tmp_path / "short.gz"
    gz_path.write_bytes(gzip.compress(idx_bytes(np.zeros((3, 4, 4), np.uint8)))[:-12])
    with pytest.raises(DataError, match="short.gz: unreadable IDX file"):
        read_idx(gz_path)


def test_bad_magic_number(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(b"\x1f\x8b\x08\x00" + bytes(20))  # a gzip stream saved without the .gz suffix
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte: bad IDX magic number 1f8b0800"):
        read_idx(path)


def test_label_image_count_mismatch(mnist_idx_dir):
    folder, arrays = mnist_idx_dir(gz=False)
    write_idx(folder / "train-labels-idx1-ubyte", arrays["train_labels"][:-1])
    with pytest.raises(DataError, match="39 labels for 40 images"):
        MnistIdxDataModule(data_dir=folder, val_size=4).setup()
