import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import bitpruner.data.imagefolder as imagefolder_module
from bitpruner.data import ImageFolderDataModule
from bitpruner.data.imagefolder import ImageReadError, load_image
from bitpruner.errors import DataError
from helpers.data import torchvision_works, write_image_tree


def test_metadata_comes_from_the_folders_without_torchvision(tmp_path):
    dm = ImageFolderDataModule(data_dir=write_image_tree(tmp_path), image_size=16)
    assert dm.class_names == ["cat", "dog", "emu"]
    assert dm.num_classes == 3 and dm.input_shape == (3, 16, 16)
    assert dm.mean.shape == dm.std.shape == (3,)
    assert dm._split_dir("test") == tmp_path / "val"  # ImageNet convention: val doubles as test
    (tmp_path / "test").mkdir()
    assert dm._split_dir("test") == tmp_path / "test"


def test_missing_folders_are_one_line_errors(tmp_path):
    with pytest.raises(DataError, match=r"imagenet: directory not found \(expected an ImageFolder tree"):
        _ = ImageFolderDataModule(data_dir=tmp_path / "imagenet").num_classes
    write_image_tree(tmp_path / "partial", splits=("train",))
    with pytest.raises(DataError, match=r"partial/val: directory not found \(expected .*/train/<class>/"):
        _ = ImageFolderDataModule(data_dir=tmp_path / "partial").num_classes
    (tmp_path / "empty" / "train").mkdir(parents=True)
    (tmp_path / "empty" / "val").mkdir()
    with pytest.raises(DataError, match="empty/train: no class folders"):
        _ = ImageFolderDataModule(data_dir=tmp_path / "empty").num_classes


def test_missing_torchvision_is_a_one_line_error(tmp_path, monkeypatch):
    def broken():
        raise DataError(imagefolder_module.MISSING_TORCHVISION)

    if torchvision_works():
        monkeypatch.setattr(imagefolder_module, "_import_torchvision", broken)
    dm = ImageFolderDataModule(data_dir=write_image_tree(tmp_path))
    with pytest.raises(
        DataError, match=r"^imagefolder needs torchvision: pip install 'bitpruner\[vision\]'$"
    ):
        dm.setup()


@pytest.mark.skipif(not torchvision_works(), reason="torchvision is not importable beside this torch")
def test_loads_png_tree_with_torchvision(tmp_path):
    dm = ImageFolderDataModule(data_dir=write_image_tree(tmp_path), image_size=16, batch_size=4)
    assert dm.split_sizes() == {"train": 9, "val": 9, "test": 9}
    images, labels = next(iter(dm.val_dataloader()))
    assert images.shape == (4, 3, 16, 16) and images.dtype == torch.float32
    assert labels.tolist() == [0, 0, 0, 1]
    assert dm.calibration_batches(1)[0].shape == (4, 3, 16, 16)


def test_empty_class_folders_are_named_with_what_they_hold(tmp_path):
    root = write_image_tree(tmp_path / "tree")
    for leftover in (root / "train" / "dog").iterdir():
        leftover.unlink()
    (root / "train" / "dog" / "README.txt").write_text("images went elsewhere")
    with pytest.raises(DataError) as info:
        _ = ImageFolderDataModule(data_dir=root).num_classes
    message = str(info.value)
    assert message.startswith(f"{root / 'train'}: class folder(s) dog hold no image files (expected .jpg, .jpeg, ")
    assert message.endswith("in dog/: found README.txt)") and "\n" not in message


def test_a_test_split_with_other_classes(tmp_path):
    root = write_image_tree(tmp_path / "tree", splits=("train", "val", "test"))
    (root / "test" / "emu").rename(root / "test" / "yak")
    with pytest.raises(DataError, match=r"tree/test: class folders differ from train/ \(e.g. \['emu', 'yak'\]\)"):
        _ = ImageFolderDataModule(data_dir=root).num_classes


def test_a_file_where_the_root_folder_should_be(tmp_path):
    path = tmp_path / "imagenet.tar"
    path.write_bytes(b"x")
    with pytest.raises(DataError, match=r"imagenet.tar: a file, expected a directory holding an ImageFolder tree"):
        _ = ImageFolderDataModule(data_dir=path).num_classes


@pytest.mark.parametrize("content", [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + bytes(30)])
def test_unreadable_image_is_one_line_naming_the_file(tmp_path, content):
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=r"broken.png: unreadable image \(") as info:
        load_image(str(path))
    assert "\n" not in str(info.value)


def test_truncated_image_is_one_line_and_a_good_one_loads(tmp_path):
    root = write_image_tree(tmp_path / "tree", per_class=1, splits=("train",))
    good = root / "train" / "cat" / "0.png"
    assert load_image(str(good)).size == (24, 20)
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:60])
    with pytest.raises(ImageReadError, match=r"cut.png: unreadable image \("):
        load_image(str(cut))


class _Images(Dataset):
    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        load_image(str(self.paths[index]))
        return index


def test_unreadable_image_in_a_worker_process_stays_one_line(tmp_path):
    # A DataLoader worker re-raises as type(error)(text with the worker's traceback): only the line is kept.
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"no jpeg here")
    loader = DataLoader(_Images([broken]), batch_size=1, num_workers=1)
    with pytest.raises(ImageReadError) as info:
        next(iter(loader))
    assert str(info.value).startswith(f"{broken}: unreadable image (") and "\n" not in str(info.value)
