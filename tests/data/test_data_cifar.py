import gzip
import os
import pickle

import numpy as np
import pytest
import torch

from bitpruner.data import Cifar10DataModule, Cifar100DataModule
from bitpruner.data.augment import CropFlip
from bitpruner.data.cifar import read_batch
from bitpruner.errors import DataError
from helpers.data import write_pickle


@pytest.mark.parametrize("point_at_parent", [False, True])
def test_cifar10_reads_batches_from_folder_or_parent(cifar10_dir, point_at_parent):
    data_dir = cifar10_dir.parent if point_at_parent else cifar10_dir
    dm = Cifar10DataModule(data_dir=data_dir, val_size=8, batch_size=4, augment=False)
    assert dm.split_sizes() == {"train": 32, "val": 8, "test": 6}
    assert dm.num_classes == 10 and dm.input_shape == (3, 32, 32)
    assert dm.class_names[:2] == ["airplane", "automobile"]
    assert dm.mean.shape == (3,)
    images, labels = next(iter(dm.test_dataloader()))
    assert images.shape == (4, 3, 32, 32) and labels.tolist() == [0, 1, 2, 3]


def test_pickles_naming_numpy_1_module_paths_load(cifar10_dir):
    # The published files predate numpy 2 and name numpy.core.multiarray, not numpy._core.
    raw = pickle.dumps({b"data": np.ones((2, 3072), np.uint8), b"labels": [1, 2]}, protocol=2)
    assert b"numpy._core.multiarray" in raw
    (cifar10_dir / "test_batch").write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    images, labels = read_batch(cifar10_dir / "test_batch", "labels")
    assert images.shape == (2, 3, 32, 32) and images.sum() == 2 * 3072 and labels.tolist() == [1, 2]


def test_pixel_layout_is_channel_major(cifar10_dir):
    with open(cifar10_dir / "test_batch", "rb") as handle:
        rows = pickle.load(handle, encoding="bytes")[b"data"]
    images, _ = read_batch(cifar10_dir / "test_batch", "labels")
    # A row stores 1024 red, then 1024 green, then 1024 blue values, each plane row by row.
    channel, row, col = 2, 5, 7
    assert images[3, channel, row, col] == rows[3, channel * 1024 + row * 32 + col]


def test_augmentation_touches_train_only(cifar10_dir):
    plain = Cifar10DataModule(data_dir=cifar10_dir, val_size=8, augment=False)
    augmented = Cifar10DataModule(data_dir=cifar10_dir, val_size=8, augment=True)
    torch.manual_seed(0)
    changed = sum(
        not torch.equal(augmented.dataset("train")[i][0], plain.dataset("train")[i][0]) for i in range(32)
    )
    assert changed > 16
    for split in ("val", "test"):
        assert torch.equal(augmented.dataset(split)[0][0], plain.dataset(split)[0][0])
    assert torch.equal(augmented.calibration_batches(1)[0], plain.calibration_batches(1)[0])


def test_crop_flip_is_a_shifted_window_of_the_padded_image():
    image = torch.arange(2 * 6 * 6, dtype=torch.float32).view(2, 6, 6) + 1
    padded = torch.nn.functional.pad(image, (2, 2, 2, 2))
    windows = [padded[:, t : t + 6, s : s + 6] for t in range(5) for s in range(5)]
    torch.manual_seed(1)
    for _ in range(20):
        out = CropFlip(padding=2, flip=True)(image)
        assert any(torch.equal(out, w) or torch.equal(out, w.flip(-1)) for w in windows)
    assert torch.equal(CropFlip(padding=0, flip=False)(image), image)


def test_cifar100_uses_fine_labels(cifar100_dir):
    dm = Cifar100DataModule(data_dir=cifar100_dir.parent, val_size=5)
    assert dm.split_sizes() == {"train": 25, "val": 5, "test": 10}
    assert dm.num_classes == 100 and dm.class_names[4] == "class4"
    assert set(dm._ensure_loaded().y_test.tolist()) == {0, 1, 2, 3, 4}


def test_missing_directory_and_files(cifar10_dir, tmp_path):
    with pytest.raises(DataError, match=r"absent: directory not found \(expected cifar10 python batches"):
        Cifar10DataModule(data_dir=tmp_path / "absent").setup()
    (cifar10_dir / "data_batch_3").unlink()
    with pytest.raises(DataError) as info:
        Cifar10DataModule(data_dir=cifar10_dir.parent).setup()
    assert str(info.value).startswith(f"{cifar10_dir}: missing cifar10 file(s) data_batch_3 (")
    assert "expected data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5, test_batch" in str(
        info.value
    )


def test_pickle_without_labels(cifar10_dir):
    write_pickle(cifar10_dir / "test_batch", {b"data": np.zeros((2, 3072), np.uint8)})
    with pytest.raises(DataError, match=r"test_batch: pickle lacks key\(s\) labels"):
        Cifar10DataModule(data_dir=cifar10_dir, val_size=8).setup()


def test_wrong_array_size(cifar10_dir):
    write_pickle(cifar10_dir / "data_batch_2", {b"data": np.zeros((8, 3000), np.uint8), b"labels": [0] * 8})
    with pytest.raises(
        DataError, match=r"data_batch_2: 'data' is uint8 \(8, 3000\), expected uint8 \(N, 3072\)"
    ):
        Cifar10DataModule(data_dir=cifar10_dir, val_size=8).setup()


def test_label_count_mismatch(cifar10_dir):
    write_pickle(cifar10_dir / "data_batch_1", {b"data": np.zeros((8, 3072), np.uint8), b"labels": [0] * 7})
    with pytest.raises(DataError, match="data_batch_1: 7 labels for 8 images"):
        Cifar10DataModule(data_dir=cifar10_dir, val_size=8).setup()


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_pickle_naming_other_globals_is_refused(cifar10_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_pickle(cifar10_dir / "test_batch", {b"data": _Exploit(), b"labels": []})
    with pytest.raises(DataError, match="test_batch: unreadable CIFAR pickle .*refusing to load global"):
        Cifar10DataModule(data_dir=cifar10_dir, val_size=8).setup()
    assert not (tmp_path / "pwned").exists()


def test_truncated_pickle(cifar10_dir):
    path = cifar10_dir / "data_batch_4"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="data_batch_4: unreadable CIFAR pickle"):
        Cifar10DataModule(data_dir=cifar10_dir, val_size=8).setup()


def test_missing_files_list_what_the_folder_holds(tmp_path):
    # The archive downloaded but not extracted: the message says so.
    folder = tmp_path / "cifar10"
    folder.mkdir()
    (folder / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b")
    with pytest.raises(DataError) as info:
        Cifar10DataModule(data_dir=folder).setup()
    message = str(info.value)
    assert "missing cifar10 file(s) data_batch_1, data_batch_2" in message
    assert message.endswith("found cifar-10-python.tar.gz; extract cifar-10-python.tar.gz there first)")


def test_gzip_compressed_batch_is_read_by_its_magic_bytes(cifar10_dir):
    path = cifar10_dir / "test_batch"
    expected = read_batch(path, "labels")
    path.write_bytes(gzip.compress(path.read_bytes()))
    images, labels = read_batch(path, "labels")
    assert np.array_equal(images, expected[0]) and np.array_equal(labels, expected[1])


@pytest.mark.parametrize("batch, fragment", [
    ({b"data": [[0] * 3072], b"labels": [0]}, "'data' is a list, expected a uint8 array (N, 3072)"),
    ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "'data' is float32 (2, 3072), expected uint8"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": ["cat", "dog"]}, "'labels' is ['cat', 'dog'], expected a list"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [[0], [1, 2]]}, "expected a list of integer labels"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 12]}, "label 12 in 'labels', expected class indices 0..9"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [-1, 0]}, "label -1 in 'labels', expected class indices"),
    ({b"pixels": np.zeros((2, 3072), np.uint8)}, "pickle lacks key(s) data, labels (expected 'data' and 'labels'; "
                                                 "found 'pixels')"),
    ([1, 2, 3], "expected a pickled dict, got list"),
])
def test_wrong_types_and_values_are_one_line(cifar10_dir, batch, fragment):
    write_pickle(cifar10_dir / "data_batch_5", batch)
    with pytest.raises(DataError) as info:
        Cifar10DataModule(data_dir=cifar10_dir, val_size=8).setup()
    assert fragment in str(info.value) and "data_batch_5" in str(info.value) and "\n" not in str(info.value)


def test_empty_batch_and_odd_meta(cifar10_dir):
    write_pickle(cifar10_dir / "test_batch", {b"data": np.zeros((0, 3072), np.uint8), b"labels": []})
    with pytest.raises(DataError, match="test_batch: holds no images"):
        Cifar10DataModule(data_dir=cifar10_dir, val_size=8).setup()
    write_pickle(cifar10_dir / "test_batch", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]})
    write_pickle(cifar10_dir / "batches.meta", {b"label_names": 10})
    with pytest.raises(DataError, match=r"batches.meta: 'label_names' is 10, expected a list of class names"):
        Cifar10DataModule(data_dir=cifar10_dir, val_size=8).setup()


@pytest.mark.parametrize("content", [b"", b"hello\n", b"\x80\x02}q\x00(U\x04data"])
def test_text_empty_and_cut_pickles_are_unreadable(cifar10_dir, content):
    (cifar10_dir / "data_batch_2").write_bytes(content)
    with pytest.raises(DataError, match=r"data_batch_2: unreadable CIFAR pickle \(") as info:
        Cifar10DataModule(data_dir=cifar10_dir, val_size=8).setup()
    assert "\n" not in str(info.value)
