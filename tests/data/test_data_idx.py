import bz2
import gzip
import lzma

import numpy as np
import pytest
import torch

from bitpruner.data import MnistIdxDataModule
from bitpruner.data.idx import read_idx
from bitpruner.errors import DataError
from helpers.data import IDX_NAMES, fake_mnist_arrays, idx_bytes, write_idx


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
    with pytest.raises(DataError, match="short.gz: truncated gzip stream"):
        read_idx(gz_path)


def test_bad_magic_number(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x07\x03" + bytes(20))  # type byte 07 is not in the format
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: bad IDX magic number 00000703 in its content "
                                        r"\(expected 0000 \+ type byte 08..0e \+ ndim\)"):
        read_idx(path)


def test_gzip_without_gz_suffix_is_read_by_its_magic_bytes(tmp_path):
    # The example: gzip content under the plain name gave "bad IDX magic number 1f8b0800".
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(gzip.compress(idx_bytes(array)))
    assert np.array_equal(read_idx(path), array)
    # ... and a `.gz` a browser already unpacked reads as the plain file it is.
    unpacked = tmp_path / "train-images-idx3-ubyte.gz"
    unpacked.write_bytes(idx_bytes(array))
    assert np.array_equal(read_idx(unpacked), array)
    for kind, pack in (("bzip2", bz2.compress), ("xz", lzma.compress)):
        other = tmp_path / f"images-{kind}"
        other.write_bytes(pack(idx_bytes(array)))
        assert np.array_equal(read_idx(other), array)


def test_damaged_gzip_stream_is_one_line(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(b"\x1f\x8b\x08\x00" + bytes(20))  # a gzip header and no valid stream
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: (damaged|truncated) gzip stream \(") as info:
        read_idx(path)
    assert "\n" not in str(info.value)


def test_empty_file_and_folder_in_place_of_a_file(tmp_path):
    empty = tmp_path / "train-labels-idx1-ubyte"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: empty file, expected an IDX file"):
        read_idx(empty)
    with pytest.raises(DataError, match=r"a directory, expected an IDX file"):
        read_idx(tmp_path)


def test_wrong_item_count_names_what_was_found_and_expected(tmp_path):
    array = np.zeros((4, 5, 5), np.uint8)
    raw = bytearray(idx_bytes(array))
    raw[4:8] = (5).to_bytes(4, "big")  # the header claims 5 images, the data holds 4
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"truncated IDX file: 116 bytes, header \(5, 5, 5\) needs 141"):
        read_idx(path)
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match=r"truncated IDX file: 116 gzip-decompressed bytes, header \(5, 5, 5\) "
                                        r"needs 141"):
        read_idx(path)
    raw[4:8] = (3).to_bytes(4, "big")  # ... or 3: more bytes than the header accounts for
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match=r"oversized IDX file: more than 91 gzip-decompressed bytes"):
        read_idx(path)


def test_header_claiming_a_huge_array_reads_only_what_is_there(tmp_path):
    raw = bytearray(idx_bytes(np.zeros((2, 2, 2), np.uint8)))
    raw[4:8] = (0xFFFFFFFF).to_bytes(4, "big")
    path = tmp_path / "huge.gz"
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match=r"truncated IDX file: 24 gzip-decompressed bytes, header \(4294967295, 2, 2\)"):
        read_idx(path)


def test_image_and_label_types(mnist_idx_dir):
    folder, arrays = mnist_idx_dir(gz=False)
    floats = arrays["train_images"].astype(">f4")
    header = bytes([0, 0, 0x0D, 3]) + b"".join(int(d).to_bytes(4, "big") for d in floats.shape)
    (folder / "train-images-idx3-ubyte").write_bytes(header + floats.tobytes())
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: images of type float32, expected type byte "
                                        r"0x08 \(uint8\)"):
        MnistIdxDataModule(data_dir=folder, val_size=4).setup()


def test_train_and_test_images_of_other_sizes(mnist_idx_dir):
    folder, arrays = mnist_idx_dir(gz=False)
    write_idx(folder / "t10k-images-idx3-ubyte", np.zeros((20, 32, 32), np.uint8))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: images of 32x32 pixels, but .*train-images-idx3-"
                                        r"ubyte holds 28x28"):
        MnistIdxDataModule(data_dir=folder, val_size=4).setup()


SPELLINGS = {
    "dotted": "{stem_dotted}",  # train-images.idx3-ubyte: the widely seen spelling
    "dotted_gz": "{stem_dotted}.gz",
    "upper": "{upper}",
    "upper_gz": "{upper}.GZ",
    "underscores": "{underscored}",
}


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_common_spellings_are_found(tmp_path, spelling):
    arrays = fake_mnist_arrays(seed=3)
    folder = tmp_path / spelling
    folder.mkdir()
    for key, stem in IDX_NAMES.items():
        dotted = stem.replace("-idx", ".idx")
        name = SPELLINGS[spelling].format(stem_dotted=dotted, upper=stem.upper(), underscored=stem.replace("-", "_"))
        write_idx(folder / name, arrays[key])
    dm = MnistIdxDataModule(data_dir=folder, val_size=4)
    splits = dm._ensure_loaded()
    assert np.array_equal(splits.x_test[:, 0], arrays["test_images"])
    assert np.array_equal(splits.y_test, arrays["test_labels"].astype(np.int64))


def test_files_inside_folders_of_their_own_name(tmp_path):
    # How some archives unpack: train-images-idx3-ubyte/train-images-idx3-ubyte.
    arrays = fake_mnist_arrays(seed=4)
    for key, stem in IDX_NAMES.items():
        (tmp_path / stem).mkdir()
        write_idx(tmp_path / stem / stem, arrays[key])
    splits = MnistIdxDataModule(data_dir=tmp_path, val_size=4)._ensure_loaded()
    assert np.array_equal(splits.x_test[:, 0], arrays["test_images"])


def test_missing_files_list_what_was_looked_for_and_what_was_found(tmp_path):
    arrays = fake_mnist_arrays(seed=5)
    write_idx(tmp_path / "train-images.idx3-ubyte", arrays["train_images"])
    (tmp_path / "mnist.zip").write_bytes(b"PK\x03\x04")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError) as info:
        MnistIdxDataModule(data_dir=tmp_path).setup()
    message = str(info.value)
    assert message.startswith(f"{tmp_path}: missing IDX file(s) train-labels-idx1-ubyte[.gz], "
                              "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz] (expected ")
    assert f"looked in {tmp_path} and {tmp_path}/raw" in message
    assert "found mnist.zip, notes.txt, train-images.idx3-ubyte; extract mnist.zip there first)" in message
    assert "\n" not in message


def test_label_image_count_mismatch(mnist_idx_dir):
    folder, arrays = mnist_idx_dir(gz=False)
    write_idx(folder / "train-labels-idx1-ubyte", arrays["train_labels"][:-1])
    with pytest.raises(DataError, match="39 labels for 40 images"):
        MnistIdxDataModule(data_dir=folder, val_size=4).setup()
