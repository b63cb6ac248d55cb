"""Plan files (`prune_bits.plan_file`): every malformed file is one ConfigError line naming it (issue 11, kind 3)."""

from __future__ import annotations

import pytest

from bitpruner.errors import ConfigError
from bitpruner.prune_bits.config import BitPruneConfig
from bitpruner.prune_bits.plan_file import MAX_PLAN_BYTES, read_plan_file, write_plan_file

NAMES = ["conv1", "conv2", "fc1", "fc2", "fc3"]


def error_of(path) -> str:
    with pytest.raises(ConfigError) as info:
        read_plan_file(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"prune_bits.plan_file {path}: ")
    return message.removeprefix(f"prune_bits.plan_file {path}: ")


def test_round_trip(tmp_path):
    path = write_plan_file(tmp_path / "plan.yaml", {"conv1": 3, "fc1": 1}, objective="min_cycles")
    assert read_plan_file(path) == {"conv1": 3, "fc1": 1}


@pytest.mark.parametrize("text, expected", [
    ("layers: {conv1: 3\n", "not valid YAML (line 2, column 1: expected ',' or '}', but got '<stream end>')"),
    ("layers:\n  conv1: 3\n   fc1: 2\n", "not valid YAML (line 3, column 7: mapping values are not allowed here)"),
    ("layers: {conv1: 3, conv1: 1}\n", "not valid YAML (line 1, column 20: key 'conv1' appears twice)"),
    ("", "holds an empty file; expected a non-empty mapping `layers: {name: k}`"),
    ("- conv1\n- fc1\n", "holds a YAML list; expected a non-empty mapping `layers: {name: k}`"),
    ("42\n", "holds a YAML int; expected"),
    ("objective: min_cycles\n", "no `layers` key (keys: objective); expected"),
    ("layers: [conv1, fc1]\n", "layers is ['conv1', 'fc1']; expected a non-empty mapping"),
    ("layers: {}\n", "layers is {}; expected"),
    ("layers: {conv1: two}\n", "layers.conv1='two', expected an integer k (bits kept per weight)"),
    ("layers: {conv1: 2.5}\n", "layers.conv1=2.5, expected an integer k"),
    ("layers: {conv1: true}\n", "layers.conv1=True, expected an integer k"),
    ("layers: {conv1: null}\n", "layers.conv1=None, expected an integer k"),
    ("layers: {1: 2}\n", "layer name 1, expected a layer's name as a non-empty string"),
])
def test_malformed_plan_files(tmp_path, text, expected):
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    assert error_of(path) == expected or error_of(path).startswith(expected)


def test_missing_directory_binary_and_oversized(tmp_path):
    assert error_of(tmp_path / "absent.yaml").startswith("file not found (run the plan stage first")
    folder = tmp_path / "plan.yaml"
    folder.mkdir()
    assert error_of(folder) == "is a directory, expected a plan.yaml file"
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"layers:\n  conv1: \xff\xfe\n")
    assert error_of(binary) == "not UTF-8 text (byte 0xff at offset 17); expected YAML `layers: {name: k}`"
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_PLAN_BYTES + 1))
    assert error_of(big) == f"{MAX_PLAN_BYTES + 1} bytes, expected a plan file of at most {MAX_PLAN_BYTES} bytes"


def test_unknown_layers_and_out_of_range_k_name_the_file(tmp_path):
    unknown = write_plan_file(tmp_path / "plan.yaml", {"conv1": 1, "features.0": 2})
    with pytest.raises(ConfigError, match=r"plan.yaml: unknown layer\(s\) features.0; layers: conv1, conv2, fc1"):
        BitPruneConfig.from_mapping({"plan_file": str(unknown)}).layer_k(NAMES, 8)
    too_many = write_plan_file(tmp_path / "plan2.yaml", {"conv1": 9})
    with pytest.raises(ConfigError, match=r"plan2.yaml: layers.conv1=9: expected an integer k in \[0, 7\]"):
        BitPruneConfig.from_mapping({"plan_file": str(too_many)}).layer_k(NAMES, 8)
