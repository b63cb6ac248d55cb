"""Property: a randomly corrupted IDX file, CIFAR pickle or plan file reads as what an independent reference
says it holds, or fails with exactly one one-line BitprunerError naming the file; never another exception
type, never a hang. Seeded and bounded: a small budget in the default suite, a larger one under -m slow."""

from __future__ import annotations

import gzip
import math
import pickle
import struct

import numpy as np
import pytest
import yaml

from bitpruner.data.cifar import read_batch
from bitpruner.data.idx import read_idx
from bitpruner.errors import BitprunerError, ConfigError, DataError
from bitpruner.prune_bits.plan_file import read_plan_file, write_plan_file
from helpers.corruptions import cases, read_or_error
from helpers.data import CIFAR_ROW, idx_bytes

FAST_CASES = 60
SLOW_CASES = 1500
CIFAR_CLASSES = 10
VERBATIM_PROTOCOL = 3  # the first pickle protocol that stores bytes objects as they are
# The IDX type bytes and their big-endian numpy types, as the format's description lists them.
REFERENCE_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


# -- IDX ------------------------------------------------------------------------------------------------


def reference_idx(raw: bytes) -> np.ndarray | None:
    """A naive IDX parse (struct, whole file in memory): the array, or None when the bytes are not one."""
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except Exception:  # noqa: BLE001 - any failure means "not a valid file" here
            return None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in REFERENCE_IDX_TYPES or raw[3] == 0:
        return None
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        return None
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dtype = np.dtype(REFERENCE_IDX_TYPES[raw[2]])
    body = raw[4 + 4 * ndim :]
    if len(body) != math.prod(dims) * dtype.itemsize:
        return None
    return np.frombuffer(body, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def idx_of_type(array: np.ndarray, type_byte: int) -> bytes:
    """`array` stored as IDX with another element type (a valid file holding the same values)."""
    dtype = np.dtype(REFERENCE_IDX_TYPES[type_byte])
    header = struct.pack(">BBBB", 0, 0, type_byte, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype).tobytes()


def run_idx_property(tmp_path, seed: int, count: int, compressed: bool) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 256, (5, 6, 7), dtype=np.uint8)
    clean = idx_bytes(array)
    if compressed:
        clean = gzip.compress(clean, mtime=0)
    extra = {
        "dtype": lambda r: idx_of_type(array, int(r.choice([0x09, 0x0B, 0x0C, 0x0D, 0x0E]))),
        "gzip": lambda r: gzip.compress(idx_bytes(array), mtime=0),
    }
    tally = {"same": 0, "other valid": 0, "error": 0}
    path = tmp_path / "train-images-idx3-ubyte"  # no .gz: compression is found from the bytes
    for case in cases(clean, seed, count, extra):
        path.write_bytes(case.data)
        expected = reference_idx(case.data)
        outcome = read_or_error(read_idx, path, case)
        if expected is None:
            assert isinstance(outcome, DataError), f"{case.kind} ({case.detail}): read {outcome!r}"
            tally["error"] += 1
            continue
        assert isinstance(outcome, np.ndarray), f"{case.kind} ({case.detail}): {outcome}"
        assert outcome.dtype == expected.dtype and np.array_equal(outcome, expected, equal_nan=True)
        same = outcome.shape == array.shape and np.array_equal(outcome.astype(np.float64), array)
        tally["same" if same else "other valid"] += 1
    return tally


@pytest.mark.parametrize("compressed", [False, True])
def test_corrupted_idx_reads_as_reference_or_fails_in_one_line(tmp_path, compressed):
    tally = run_idx_property(tmp_path, seed=11, count=FAST_CASES, compressed=compressed)
    assert tally["error"] > 0 and tally["same"] > 0  # both outcomes were exercised


@pytest.mark.slow
@pytest.mark.parametrize("compressed", [False, True])
def test_corrupted_idx_property_large_budget(tmp_path, compressed):
    run_idx_property(tmp_path, seed=12, count=SLOW_CASES, compressed=compressed)


# -- CIFAR pickles --------------------------------------------------------------------------------------


def cifar_batch(rng, count: int = 6, dtype=np.uint8) -> dict:
    return {b"data": rng.integers(0, 256, (count, CIFAR_ROW)).astype(dtype),
            b"labels": [int(v) for v in rng.integers(0, CIFAR_CLASSES, count)], b"batch_label": b"fuzz"}


def check_cifar_contract(outcome) -> None:
    """What any successful read must give, whatever the bytes: uint8 images [N, 3, 32, 32], N int64 labels
    within the class range."""
    images, labels = outcome
    assert images.dtype == np.uint8 and images.ndim == 4 and images.shape[1:] == (3, 32, 32)
    assert labels.dtype == np.int64 and labels.shape == (len(images),)
    assert len(labels) == 0 or (labels.min() >= 0 and labels.max() < CIFAR_CLASSES)


def run_cifar_property(tmp_path, seed: int, count: int, protocol: int) -> dict[str, int]:
    """Protocol 2 is the published files' (Python 3 writes the pixels through _codecs.encode there);
    from protocol 3 on the pixel bytes are stored verbatim, so a flip among them has a known meaning."""
    rng = np.random.default_rng(seed)
    batch = cifar_batch(rng)
    clean = pickle.dumps(batch, protocol=protocol)
    pixels = batch[b"data"].tobytes()
    start = clean.find(pixels)
    assert (start > 0) == (protocol >= VERBATIM_PROTOCOL)
    extra = {
        "dtype": lambda r: pickle.dumps(cifar_batch(r, dtype=r.choice([np.int16, np.float32, np.int64])), protocol=2),
        "gzip": lambda r: gzip.compress(clean, mtime=0),
    }
    tally = {"same": 0, "pixels": 0, "other valid": 0, "error": 0}
    path = tmp_path / "data_batch_1"
    for case in cases(clean, seed, count, extra):
        path.write_bytes(case.data)
        outcome = read_or_error(lambda p: read_batch(p, "labels", CIFAR_CLASSES), path, case)
        if case.kind in ("truncate", "zero", "text", "dtype"):
            # A pickle ends with STOP: any prefix is incomplete. Text is no pickle; other dtypes are refused.
            assert isinstance(outcome, DataError), f"{case.kind} ({case.detail}): read a result"
            tally["error"] += 1
            continue
        if case.kind in ("append", "gzip"):  # unpickling stops at STOP; gzip is found from the magic bytes
            assert not isinstance(outcome, BitprunerError), f"{case.kind}: {outcome}"
            assert np.array_equal(outcome[0].reshape(-1, CIFAR_ROW), batch[b"data"])
            assert outcome[1].tolist() == batch[b"labels"]
            tally["same"] += 1
            continue
        changed = [i for i in range(len(clean)) if case.data[i] != clean[i]]
        if start > 0 and all(start <= i < start + len(pixels) for i in changed):
            # Only pixel bytes changed: the result is the clean batch with those pixels changed.
            expected = np.frombuffer(case.data[start : start + len(pixels)], np.uint8).reshape(-1, CIFAR_ROW)
            assert not isinstance(outcome, BitprunerError), f"{case.detail}: {outcome}"
            assert np.array_equal(outcome[0].reshape(-1, CIFAR_ROW), expected)
            tally["pixels"] += 1
        elif isinstance(outcome, DataError):
            tally["error"] += 1
        else:  # a flipped opcode or length may still make a valid pickle; then the contract must hold
            check_cifar_contract(outcome)
            tally["other valid"] += 1
    return tally


@pytest.mark.parametrize("protocol", [2, 4])
def test_corrupted_cifar_pickle_reads_as_expected_or_fails_in_one_line(tmp_path, protocol):
    tally = run_cifar_property(tmp_path, seed=21, count=FAST_CASES, protocol=protocol)
    assert tally["error"] > 0 and tally["same"] > 0
    assert tally["pixels"] > 0 or protocol < VERBATIM_PROTOCOL


@pytest.mark.slow
@pytest.mark.parametrize("protocol", [2, 4])
def test_corrupted_cifar_property_large_budget(tmp_path, protocol):
    run_cifar_property(tmp_path, seed=22, count=SLOW_CASES, protocol=protocol)


# -- plan files -----------------------------------------------------------------------------------------


def _duplicate_keys(node) -> bool:
    if isinstance(node, yaml.MappingNode):
        keys = [key.value for key, _ in node.value if isinstance(key, yaml.ScalarNode)]
        if len(keys) != len(set(keys)):
            return True
        return any(_duplicate_keys(value) for _, value in node.value)
    if isinstance(node, yaml.SequenceNode):
        return any(_duplicate_keys(item) for item in node.value)
    return False


def reference_plan(raw: bytes) -> dict | None:
    """What a plan file's bytes mean by the stated format (UTF-8 YAML, no repeated keys, a non-empty
    `layers` mapping of non-empty names to integers), or None when they break it."""
    try:
        text = raw.decode("utf-8")
        if _duplicate_keys(yaml.compose(text, Loader=yaml.SafeLoader)):
            return None
        data = yaml.safe_load(text)
    except Exception:  # noqa: BLE001 - any failure means "not a valid file" here
        return None
    layers = data.get("layers") if isinstance(data, dict) else None
    if not isinstance(layers, dict) or not layers:
        return None
    if not all(isinstance(k, str) and k and isinstance(v, int) and not isinstance(v, bool) for k, v in layers.items()):
        return None
    return layers


def run_plan_property(tmp_path, seed: int, count: int) -> dict[str, int]:
    layers = {"conv1": 3, "conv2": 2, "fc1": 1, "fc2": 2, "fc3": 7}
    clean_path = write_plan_file(tmp_path / "clean.yaml", layers, objective="min_cycles", predicted_drop=0.4)
    clean = clean_path.read_bytes()
    wrong = ['"2"', "2.5", "true", "null", "[1, 2]", "{k: 1}", "-", "0x"]
    extra = {
        "types": lambda r: clean.replace(b"fc1: 1", f"fc1: {wrong[int(r.integers(0, len(wrong)))]}".encode()),
        "list": lambda r: b"layers:\n- conv1\n- fc1\n",
        "scalar": lambda r: b"42\n",
    }
    tally = {"same": 0, "other valid": 0, "error": 0}
    path = tmp_path / "plan.yaml"
    for case in cases(clean, seed, count, extra):
        path.write_bytes(case.data)
        expected = reference_plan(case.data)
        outcome = read_or_error(read_plan_file, path, case)
        if expected is None:
            assert isinstance(outcome, ConfigError), f"{case.kind} ({case.detail}): read {outcome!r}"
            tally["error"] += 1
        else:
            assert outcome == expected, f"{case.kind} ({case.detail})"
            tally["same" if outcome == layers else "other valid"] += 1
    return tally


def test_corrupted_plan_file_reads_as_reference_or_fails_in_one_line(tmp_path):
    tally = run_plan_property(tmp_path, seed=31, count=FAST_CASES)
    assert tally["error"] > 0 and tally["same"] > 0


@pytest.mark.slow
def test_corrupted_plan_property_large_budget(tmp_path):
    run_plan_property(tmp_path, seed=32, count=SLOW_CASES)
