"""prune_bits' lane groups are the simulator's weight-buffer rows: the same weights, in the same order.

One lane group = the weights a bit-serial PE row processes in lock-step; the simulator's
`Geometry.weight_rows` tiles a layer into exactly those rows. The weights go from PyTorch's [K, C, kh, kw]
to the trace's x-first [K, C, Kx, Ky] with `from_torch_layout`, as the simulate stage's capture does.
"""

import numpy as np
import pytest

from bitpruner.prune_bits.lanes import groups_per_filter, to_lane_groups, weight_group_ids
from bitpruner.sim.engine import Geometry
from bitpruner.sim.params import SimParams
from bitpruner.sim.traces import LayerTrace, from_torch_layout
from helpers.naive import buffer_rows_loop, lane_groups_loop

LANES = 4
# Shapes that catch a swapped axis or a wrong padding: a non-square kernel, channels not a multiple of LANES.
CONV = {"filters": 3, "channels": 6, "kh": 2, "kw": 3, "height": 5, "width": 7}
FC = {"outputs": 3, "inputs": 10}


def distinct_weights(shape: tuple[int, ...]) -> np.ndarray:
    """1, 2, 3, ... in `shape`: every weight is told apart, and 0 can only be padding."""
    return np.arange(1, int(np.prod(shape)) + 1, dtype=np.int64).reshape(shape)


def torch_layer(kind: str) -> tuple[np.ndarray, LayerTrace]:
    """(weights in PyTorch layout, the simulator's trace of that layer)."""
    if kind == "conv":
        w = distinct_weights((CONV["filters"], CONV["channels"], CONV["kh"], CONV["kw"]))
        a = np.ones((1, CONV["channels"], CONV["height"], CONV["width"]), np.int64)
    else:
        w = distinct_weights((FC["outputs"], FC["inputs"]))
        a = np.ones((1, FC["inputs"]), np.int64)
    w_trace, a_trace = from_torch_layout(w, a)
    return w, LayerTrace(kind, kind, w_trace, a_trace)


@pytest.mark.parametrize("kind", ["conv", "fc"])
def test_lane_groups_are_the_buffer_rows_in_order(kind):
    w, trace = torch_layer(kind)
    geometry = Geometry(trace, SimParams(lanes=LANES))
    rows = geometry.weight_rows(trace.weights)  # [K, T, lanes]
    assert groups_per_filter(w.shape, LANES) == geometry.T
    groups = to_lane_groups(w, LANES).reshape(rows.shape)
    assert np.array_equal(groups, rows)
    # Both kernels against their naive twins, so that a shared mistake cannot hide.
    assert np.array_equal(rows, buffer_rows_loop(trace.weights, LANES))
    assert np.array_equal(groups, lane_groups_loop(w, LANES).reshape(rows.shape))


@pytest.mark.parametrize("kind", ["conv", "fc"])
def test_group_ids_select_the_weights_of_one_buffer_row(kind):
    # weight_group_ids is what the retraining parametrization selects lane groups by.
    w, trace = torch_layer(kind)
    rows = Geometry(trace, SimParams(lanes=LANES)).weight_rows(trace.weights).reshape(-1, LANES)
    ids = weight_group_ids(w.shape, LANES)
    assert ids.shape == w.shape and int(ids.max()) + 1 == len(rows)
    for group, row in enumerate(rows):
        # Row-major order of a group's weights in [K, C, kh, kw] is channel order, as along the lanes.
        assert w[ids == group].tolist() == [v for v in row.tolist() if v != 0], f"group {group}"


@pytest.mark.parametrize("groups", [3, 6])  # 3: two channels per group; 6 = C: depthwise
def test_lane_groups_of_a_grouped_layer_are_its_groups_buffer_rows(groups):
    # A grouped conv runs as one dense sub-layer per group (bitpruner.sim.grouped, DNNsim's grouped tiling); the
    # lane groups of W[K, C/g, kh, kw] are the rows of those sub-layers, filter by filter, in order. Depthwise
    # sub-layers put filter m's weight on lane m of D = min(lanes, rows) lanes (DNNsim), so there a row and its
    # lane group hold the same single weight on different lanes.
    from bitpruner.sim.grouped import group_tiling, sub_layers

    k, c = 6, CONV["channels"]
    w = distinct_weights((k, c // groups, CONV["kh"], CONV["kw"]))
    a = np.ones((1, c, CONV["height"], CONV["width"]), np.int64)
    trace = LayerTrace("g", "conv", *from_torch_layout(w, a), groups=groups)
    params = SimParams(lanes=LANES, rows=LANES)
    tiling = group_tiling(trace, params)
    rows = np.concatenate([Geometry(sub, tiling.params).weight_rows(sub.weights) for sub in sub_layers(trace, tiling)])
    lane_groups = to_lane_groups(w, LANES).reshape(k, groups_per_filter(w.shape, LANES), LANES)
    assert rows.shape[:2] == lane_groups.shape[:2]  # same rows per filter, filters in the same order
    if tiling.depthwise:
        assert ((rows != 0).sum(axis=-1) <= 1).all() and ((lane_groups != 0).sum(axis=-1) <= 1).all()
        assert np.array_equal(rows.sum(axis=-1), lane_groups.sum(axis=-1))
    else:
        assert np.array_equal(rows, lane_groups)
