"""Lane-group tiling and layer/model bit statistics against hand-computed values."""

import numpy as np
import pytest
import torch

from bitpruner.errors import ConfigError
from bitpruner.prune_bits.bits import (
    LAYER_BITS_COLUMNS,
    lane_group_costs,
    layer_bit_stats,
    model_bit_stats,
    write_layer_bits_csv,
)
from bitpruner.prune_bits.lanes import from_lane_groups, to_lane_groups, weight_group_ids
from bitpruner.quant import QuantizedWeight
from helpers.naive import lane_groups_loop


def test_conv_groups_follow_simulator_rows():
    k, c, kh, kw, lanes = 2, 5, 2, 3, 4
    w = np.arange(k * c * kh * kw).reshape(k, c, kh, kw) + 1
    groups = to_lane_groups(w, lanes)
    assert groups.shape == (k * kh * kw * 2, lanes)  # 2 = ceil(5 channels / 4 lanes)
    assert np.array_equal(groups, lane_groups_loop(w, lanes))
    assert np.array_equal(from_lane_groups(groups, w.shape), w)


def test_fc_groups_and_group_ids():
    w = np.arange(3 * 5).reshape(3, 5) + 1
    groups = to_lane_groups(w, 2)
    assert groups.tolist()[:3] == [[1, 2], [3, 4], [5, 0]]
    ids = weight_group_ids(w.shape, 2)
    assert ids.tolist() == [[0, 0, 1, 1, 2], [3, 3, 4, 4, 5], [6, 6, 7, 7, 8]]


def test_bad_lanes_and_shapes_raise():
    with pytest.raises(ConfigError, match="lanes"):
        to_lane_groups(np.zeros((2, 2)), 0)
    with pytest.raises(ConfigError, match="shape"):
        to_lane_groups(np.zeros(3), 2)


def test_lane_group_costs_and_imbalance():
    q = np.array([[3, 4, 0, 7], [0, 0, 0, 0]])  # fc, two filters, one group each at lanes=4
    costs = lane_group_costs(q, 8, "binary", 4)
    assert costs["columns"].tolist() == [3, 0]  # OR = 7
    assert costs["max"].tolist() == [3, 0]
    stats = layer_bit_stats(q, 8, "binary", 4)
    # group 0: counts 2,1,0,3 -> max 3, mean 1.5; group 1: 0
    assert stats["lockstep_imbalance"] == pytest.approx((3 - 1.5) / 2)
    assert stats["weight_sparsity"] == pytest.approx(5 / 8)
    assert stats["bit_sparsity"] == pytest.approx(1 - 6 / (8 * 7))
    assert stats["mean_bits_per_nonzero"] == pytest.approx(2.0)
    assert stats["max_bits"] == 3
    assert stats["histogram"] == [5, 1, 1, 1, 0, 0, 0, 0]
    # padding lanes count as zeros inside a group: lanes=3 pads each row to 6
    assert layer_bit_stats(q, 8, "binary", 3)["lockstep_imbalance"] == pytest.approx(
        ((2 - 1) + (3 - 1) + 0 + 0) / 4
    )


def test_model_totals_are_weighted_and_csv_has_spec_columns(tmp_path):
    a = torch.tensor([[1, 3], [0, 0]], dtype=torch.int32)  # 3 bits over 4 weights
    b = torch.tensor([[7, 7, 7, 7, 7, 7]], dtype=torch.int32)  # 18 bits over 6 weights
    qa = QuantizedWeight(q=a, scale=torch.tensor(0.1), bits=8)
    rows, totals = model_bit_stats({"a": qa, "b": b}, bits=8, lanes=2, k={"a": 2})
    assert [r["k"] for r in rows] == [2, ""]
    assert totals["weights"] == 10
    assert totals["bit_sparsity"] == pytest.approx(1 - 21 / 70)
    assert totals["mean_bits_per_weight"] == pytest.approx(2.1)
    assert totals["lockstep_imbalance"] == pytest.approx(
        (rows[0]["lockstep_imbalance"] * 4 + rows[1]["lockstep_imbalance"] * 6) / 10
    )
    path = write_layer_bits_csv(tmp_path / "layer_bits.csv", rows, totals)
    lines = path.read_text().splitlines()
    assert lines[0].split(",") == list(LAYER_BITS_COLUMNS)
    assert lines[1].startswith("a,2x2,4,")
    assert lines[-1].startswith("total,")
