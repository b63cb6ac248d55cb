"""The one model-checkpoint loader: every damaged or foreign file is one ConfigError line naming the file and
what is wrong (issue 11, kind 3); nothing in a file is ever run; the stages and commands go through it."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from bitpruner.cli import main as cli_main
from bitpruner.errors import ConfigError
from bitpruner.models.checkpoint import (
    FORMAT,
    load_lightning_state_dict,
    load_model_checkpoint,
    load_state_dict_file,
    read_torch_file,
    save_model_checkpoint,
)
from bitpruner.skeleton.inputs import load_input_model
from helpers.models import DIGITS_GEOMETRY, LENET_CFG, digits_lenet, save_digits_lenet
from helpers.paths import REPO_ROOT

MNIST_GEOMETRY = {"in_channels": 1, "image_size": [28, 28], "num_classes": 10}
TRUNCATED_BYTES = 40000  # the issue's `head -c 40000 model.ckpt`


@pytest.fixture
def clean(tmp_path) -> Path:
    """A LeNet-5 digits checkpoint as the train stage writes it (about 89 kB)."""
    return save_digits_lenet(tmp_path / "model.ckpt", meta={"dataset": "digits"})


def torch_file(path: Path, obj) -> Path:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    path.write_bytes(buffer.getvalue())
    return path


def payload_of(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def error_of(path: Path, loader=load_model_checkpoint) -> str:
    """The message `loader(path)` fails with, checked to be one line naming the file."""
    with pytest.raises(ConfigError) as info:
        loader(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


class Exploit:
    """A pickle that would create a file if it were ever unpickled."""

    marker: Path

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# -- the examples and their siblings ------------------------------------------------------------


def test_truncated_zip(clean, tmp_path):
    trunc = tmp_path / "trunc.ckpt"
    trunc.write_bytes(clean.read_bytes()[:TRUNCATED_BYTES])
    assert "truncated or damaged zip archive (40000 bytes" in error_of(trunc)


@pytest.mark.parametrize("content, fragment", [
    (b"", "empty file (0 bytes), expected a model checkpoint"),
    (b"epoch=3 loss=0.12\n", "a text file (starts with 'epoch=3 loss=0.12')"),
    (b"<!DOCTYPE html>\n<html>Not Found</html>", "a text file (starts with '<!DOCTYPE html>')"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 9\n", "a Git LFS pointer"),
])
def test_empty_text_and_lfs_pointer(tmp_path, content, fragment):
    path = tmp_path / "model.ckpt"
    path.write_bytes(content)
    assert fragment in error_of(path)


def test_missing_file_and_directory(tmp_path):
    assert "model checkpoint not found" in error_of(tmp_path / "absent.ckpt")
    folder = tmp_path / "model.ckpt"
    folder.mkdir()
    assert "is a directory, expected a model checkpoint file" in error_of(folder)


def test_gzip_compressed_checkpoint_is_named_as_such(clean, tmp_path):
    packed = tmp_path / "model.ckpt.gz"
    packed.write_bytes(gzip.compress(clean.read_bytes()))
    assert "a gzip-compressed file; decompress it" in error_of(packed)


def test_flipped_tensor_byte_fails_the_crc_check(clean, tmp_path):
    raw = bytearray(clean.read_bytes())
    # The largest record (fc1's weights) fills the middle of the file.
    raw[len(raw) // 2] ^= 0xFF
    damaged = tmp_path / "damaged.ckpt"
    damaged.write_bytes(bytes(raw))
    assert "fails its CRC check" in error_of(damaged)


@pytest.mark.parametrize("pickled, fragment", [
    (lambda: pickle.dumps([1, 2, 3]), "refused by torch's weights-only loader"),
    (lambda: pickle.dumps(Exploit()), "refused by torch's weights-only loader"),
])
def test_foreign_pickles_are_refused_without_running(tmp_path, pickled, fragment):
    Exploit.marker = tmp_path / "pwned"
    path = tmp_path / "foreign.ckpt"
    path.write_bytes(pickled())
    assert fragment in error_of(path)
    assert not Exploit.marker.exists()


def test_torch_file_naming_a_python_callable_is_refused_without_running(tmp_path):
    Exploit.marker = tmp_path / "pwned"
    path = torch_file(tmp_path / "evil.ckpt", {"format": FORMAT, "model_cfg": Exploit()})
    message = error_of(path)
    assert "refused by torch's weights-only loader (it names posix.system)" in message
    assert not Exploit.marker.exists()


def test_model_cfg_target_that_is_no_model_is_not_called(clean, tmp_path):
    marker = tmp_path / "pwned"
    payload = payload_of(clean)
    evil = torch_file(tmp_path / "evil.ckpt", {**payload, "model_cfg": {"_target_": "os.system",
                                                                        "command": f"touch {marker}"}})
    assert "model_cfg._target_ 'os.system' is neither an nn.Module class" in error_of(evil)
    nested = torch_file(tmp_path / "nested.ckpt", {**payload, "model_cfg": {
        **LENET_CFG, "hidden": {"_target_": "os.system", "command": f"touch {marker}"}}})
    assert "model_cfg.hidden holds a nested _target_" in error_of(nested)
    assert not marker.exists()


def test_other_torch_objects(clean, tmp_path):
    state = payload_of(clean)["state_dict"]
    assert "holds a list, not a bitpruner model checkpoint" in error_of(torch_file(tmp_path / "a.ckpt", [1, 2]))
    message = error_of(torch_file(tmp_path / "b.ckpt", state))
    assert f"a plain state dict ({len(state)} tensors) without the model config and geometry" in message
    lightning = {"pytorch-lightning_version": "2.6.0", "state_dict": {f"model.{k}": v for k, v in state.items()},
                 "epoch": 3}
    assert "a Lightning training checkpoint (Lightning '2.6.0')" in error_of(torch_file(tmp_path / "c.ckpt", lightning))
    assert "no 'format' key (keys: 'weights')" in error_of(torch_file(tmp_path / "d.ckpt", {"weights": 1}))


@pytest.mark.parametrize("fmt, fragment", [
    ("bitpruner.model/2", "unknown checkpoint format 'bitpruner.model/2'; this bitpruner reads 'bitpruner.model/1'"),
    ("keras", "unknown format 'keras'"),
])
def test_unknown_format(clean, tmp_path, fmt, fragment):
    assert fragment in error_of(torch_file(tmp_path / "x.ckpt", {**payload_of(clean), "format": fmt}))


def test_state_dict_missing_a_key_or_with_an_extra_key(clean, tmp_path):
    payload = payload_of(clean)
    names = list(payload["state_dict"])
    dropped = {k: v for k, v in payload["state_dict"].items() if k != names[-1]}
    message = error_of(torch_file(tmp_path / "missing.ckpt", {**payload, "state_dict": dropped}))
    assert f"state_dict lacks {names[-1]} (1 of {len(names)} entries of the bitpruner.models.LeNet5" in message
    extra = {**payload["state_dict"], "head.weight": torch.zeros(3)}
    assert "unexpected entry 'head.weight'" in error_of(torch_file(tmp_path / "extra.ckpt", {**payload, "state_dict": extra}))


def test_state_dict_of_another_geometry_names_the_parameter_and_both_shapes(clean, tmp_path):
    # Weights trained on 28x28 MNIST in a file that says 8x8 digits: fc1 sees another flattened size.
    mnist = build_lenet(MNIST_GEOMETRY).state_dict()
    digits = digits_lenet().state_dict()
    differing = [k for k in digits if digits[k].shape != mnist[k].shape]
    assert differing == ["fc1.weight"]
    path = torch_file(tmp_path / "geometry.ckpt", {**payload_of(clean), "state_dict": mnist})
    message = error_of(path)
    assert (f"parameter fc1.weight has shape {list(mnist['fc1.weight'].shape)} in the file, but the "
            f"bitpruner.models.LeNet5 its model_cfg and geometry describe expects "
            f"{list(digits['fc1.weight'].shape)}") in message


def build_lenet(geometry: dict) -> nn.Module:
    from bitpruner.models.checkpoint import build_from_config

    return build_from_config(LENET_CFG, geometry)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights(clean, tmp_path, value):
    payload = payload_of(clean)
    state = {k: v.clone() for k, v in payload["state_dict"].items()}
    state["conv2.weight"].view(-1)[7] = value
    message = error_of(torch_file(tmp_path / "nan.ckpt", {**payload, "state_dict": state}))
    numel = state["conv2.weight"].numel()
    assert f"parameter conv2.weight holds 1 non-finite value(s) (e.g. {value}) of {numel}" in message


def test_integer_tensors_for_float_weights_are_refused(clean, tmp_path):
    payload = payload_of(clean)
    ints = {k: v.to(torch.int64) for k, v in payload["state_dict"].items()}
    assert "parameter conv1.weight is int64 in the file, but" in error_of(
        torch_file(tmp_path / "int.ckpt", {**payload, "state_dict": ints}))


@pytest.mark.parametrize("key, value, fragment", [
    ("geometry", {"in_channels": 1, "image_size": [8], "num_classes": 10}, "geometry.image_size=[8]"),
    ("geometry", {"in_channels": 0, "image_size": [8, 8], "num_classes": 10}, "geometry.in_channels=0"),
    ("model_cfg", ["LeNet5"], "model_cfg is list ['LeNet5'], expected a mapping with a string _target_"),
    ("model_cfg", {**LENET_CFG, "_target_": "bitpruner.models.Nope"}, "'bitpruner.models.Nope' names nothing"),
    ("model_cfg", {**LENET_CFG, "depth": 3}, "cannot rebuild the model bitpruner.models.LeNet5"),
    ("meta", [1], "meta is a list, expected a mapping"),
])
def test_malformed_payload_fields(clean, tmp_path, key, value, fragment):
    assert fragment in error_of(torch_file(tmp_path / "odd.ckpt", {**payload_of(clean), key: value}))


def test_payload_missing_keys(clean, tmp_path):
    payload = {k: v for k, v in payload_of(clean).items() if k not in ("geometry", "state_dict")}
    assert "checkpoint lacks key(s) geometry, state_dict" in error_of(torch_file(tmp_path / "part.ckpt", payload))


def test_huge_model_config_fails_before_allocating(clean, tmp_path):
    # hidden=[10**9] would need 4 GB for fc1 alone: the file's own weights answer first.
    payload = payload_of(clean)
    huge = torch_file(tmp_path / "huge.ckpt", {**payload, "model_cfg": {**LENET_CFG, "hidden": [10**9, 84]}})
    assert "parameter fc1.weight has shape" in error_of(huge) and "expects [1000000000, " in error_of(huge)


# -- what still loads -------------------------------------------------------------------------------------


def test_clean_round_trip_and_semantically_equal_variants(clean, tmp_path):
    reference = payload_of(clean)["state_dict"]
    model, payload = load_model_checkpoint(clean)
    assert not model.training and payload["meta"] == {"dataset": "digits"}
    assert all(torch.equal(model.state_dict()[k], reference[k]) for k in reference)
    # Trailing bytes after the zip (a copy tool's padding) and float64 weights (exact in float32) load the same.
    padded = tmp_path / "padded.ckpt"
    padded.write_bytes(clean.read_bytes() + b"\x00" * 100)
    wide = torch_file(tmp_path / "wide.ckpt", {**payload, "state_dict": {k: v.double() for k, v in reference.items()}})
    for path in (padded, wide):
        loaded = load_model_checkpoint(path)[0].state_dict()
        assert all(loaded[k].dtype == torch.float32 and torch.equal(loaded[k], reference[k]) for k in reference)


class PretrainedNet(nn.Module):
    """A model that, like `torchvision_model`, starts from a pretrained file when `weights_path` is given."""

    def __init__(self, in_channels: int, image_size: tuple, num_classes: int, weights_path: str | None = None):
        super().__init__()
        if weights_path is not None:
            raise FileNotFoundError(weights_path)
        self.fc = nn.Linear(in_channels * image_size[0] * image_size[1], num_classes)


def test_pretrained_weights_path_of_the_source_model_is_not_needed_to_reload(tmp_path):
    cfg = {"_target_": f"{__name__}.PretrainedNet", "name": "pretrained"}
    model = PretrainedNet(**DIGITS_GEOMETRY)
    path = save_model_checkpoint(tmp_path / "m.ckpt", model, {**cfg, "weights_path": "/gone/weights.pt"},
                                 DIGITS_GEOMETRY)
    loaded, payload = load_model_checkpoint(path)  # the file's weights replace the pretrained ones
    assert torch.equal(loaded.fc.weight, model.fc.weight)
    assert payload["model_cfg"]["weights_path"] == "/gone/weights.pt"  # the record is kept as written


def test_save_stores_numpy_and_paths_as_plain_types(tmp_path):
    meta = {"acc": np.float64(97.5), "mean": np.array([0.1, 0.2], dtype=np.float32), "source": Path("/a/b")}
    path = save_model_checkpoint(tmp_path / "m.ckpt", digits_lenet(), LENET_CFG, DIGITS_GEOMETRY, meta=meta)
    stored = torch.load(path, weights_only=True)["meta"]  # weights_only must accept it
    assert stored["acc"] == 97.5 and type(stored["acc"]) is float and stored["source"] == "/a/b"
    assert torch.equal(stored["mean"], torch.tensor([0.1, 0.2]))
    with pytest.raises(TypeError, match=r"meta.bad: a object cannot be stored"):
        save_model_checkpoint(tmp_path / "n.ckpt", digits_lenet(), LENET_CFG, DIGITS_GEOMETRY, meta={"bad": object()})


def test_read_torch_file_names_what_it_expected(tmp_path):
    path = tmp_path / "x.pt"
    path.write_text("hello\n")
    with pytest.raises(ConfigError, match=r"x.pt: a text file \(starts with 'hello'\), not a state dict written"):
        read_torch_file(path, "state dict")


# -- the helpers for other torch files ----------------------------------------------------------------------


def test_lightning_best_checkpoint_helper(clean, tmp_path):
    state = {"model.w": torch.ones(2)}
    best = torch_file(tmp_path / "best.ckpt", {"pytorch-lightning_version": "2.6.0", "state_dict": state})
    assert torch.equal(load_lightning_state_dict(best)["model.w"], torch.ones(2))
    with pytest.raises(ConfigError, match="expected a Lightning checkpoint"):
        load_lightning_state_dict(clean)
    best.write_bytes(best.read_bytes()[:100])
    with pytest.raises(ConfigError, match="best.ckpt: truncated or damaged zip archive"):
        load_lightning_state_dict(best)


def test_state_dict_file_helper(tmp_path):
    layer = nn.Linear(3, 2)
    good = torch_file(tmp_path / "w.pt", {"weight": torch.ones(2, 3), "bias": torch.zeros(2)})
    assert torch.equal(load_state_dict_file(layer, good).weight, torch.ones(2, 3))
    other = torch_file(tmp_path / "v.pt", {"weight": torch.ones(4, 3), "bias": torch.zeros(4)})
    with pytest.raises(ConfigError, match=r"^model.weights_path: .*v.pt: parameter weight has shape \[4, 3\] in "
                                          r"the file, but the Linear .* expects \[2, 3\]"):
        load_state_dict_file(layer, other)


# -- every stage and command goes through the loader ------------------------------------------------------


def test_input_model_errors_name_the_config_key(clean, tmp_path):
    trunc = tmp_path / "trunc.ckpt"
    trunc.write_bytes(clean.read_bytes()[:TRUNCATED_BYTES])
    with pytest.raises(ConfigError, match=r"^variants.base.ckpt: .*trunc.ckpt: truncated or damaged zip archive"):
        load_input_model(trunc, "digits", key="variants.base.ckpt")
    with pytest.raises(ConfigError, match=r"^input_ckpt .*model.ckpt: trained on 'digits', but data='mnist5k'$"):
        load_input_model(clean, "mnist5k")


def test_sensitivity_command_answers_a_text_file_in_one_line(tmp_path, capsys):
    path = tmp_path / "model.ckpt"
    path.write_text("not a checkpoint\n")
    assert cli_main(["sensitivity", "--model", str(path), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"bitpruner sensitivity: error: {path}: a text file (starts with 'not a checkpoint'), "
                   "not a model checkpoint written by torch.save")


def test_prune_weights_stage_on_a_truncated_checkpoint_prints_one_line(clean, tmp_path, mlflow_db):
    # The example: `head -c 40000 model.ckpt > trunc.ckpt; python pipelines/prune_weights.py input_ckpt=...`
    trunc = tmp_path / "trunc.ckpt"
    trunc.write_bytes(clean.read_bytes()[:TRUNCATED_BYTES])
    env = {**os.environ, "BITPRUNER_ROOT": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "pipelines/prune_weights.py"), "data=digits",
                           "logger=none", f"input_ckpt={trunc}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: input_ckpt: {trunc}: truncated or damaged zip archive (40000 bytes")
