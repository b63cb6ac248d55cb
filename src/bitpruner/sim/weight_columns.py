"""Bit-column costs of the 8-bit weight-serial designs Bitlet, BitWave and BitVert (spec: new_designs.md).

These designs serialise *weights* by bit columns: a PE holds the ``L`` lane weights of one (filter, buffer row)
as 8 bit-planes ("columns") and its cost depends on those ``L`` weights only; activations are bit-parallel and
never read. So a layer's cost is, per filter-set group and buffer row, the max over the group's filters of a
per-(filter, row) cost, floored at 1 cycle per step (our engine's rule, spec Decisions 1), times the window
sets (fc: DNNsim's column pipeline, as for PragmaticW). Everything here is numpy, vectorised over
(filter, row); the cost does not depend on the sample.

Per-(filter, row) costs, ``w`` the ``L`` lane weights (padded lanes hold 0):

- **Bitlet** (Bitlet, MICRO 2021; BitSim ``sim/sim/bitlet.py``): two's complement, 8 columns with the sign
  column; cost = max over the columns of their ones (one significance lane per column picks one essential
  bit per cycle).
- **BitWave** (BitWave, HPCA 2024; BitSim ``sim/sim/bitwave.py``): sign-magnitude (-128 read as -127, as
  BitSim encodes it); cost = number of magnitude columns b6..b0 with at least one 1 (all-zero columns are
  skipped; the sign is applied per weight in the same cycle). BitSim's ``-1`` and sign-column quirks are
  not copied (spec 2.2).
- **BitVert** (BBS, MICRO 2024; BitSim ``sim/sim/bitvert.py``, RTL ``mac_unit_bitvert_16.v``): two's
  complement; cost = sum over processed columns of ``ceil(work_b / m)``, ``work_b`` = the column's ones
  (``bidirectional`` off: BitSim's "no BBS" mode) or ``min(ones, L - ones)`` (on: the minority of ones or
  zeros); ``m`` = ``multipliers`` (default ``L // 2``); the up to ``drop_sign_extension`` columns b6, b5, ..
  that equal the sign column in every lane are not processed. ``fixed_precision = p > 0``: the constant ``p``
  (BitSim's BBS mode).

The seven BitWave dataflows ``(G, h, w)`` are BitSim's ``Bitwave`` list (``en_config_dataflow``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from bitpruner.errors import ConfigError, TraceError
from bitpruner.sim.tiling import Geometry, fc_cycles

if TYPE_CHECKING:
    from bitpruner.sim.params import SimParams
    from bitpruner.sim.traces import LayerTrace

WEIGHT_BITS = 8  # the designs are defined for 8-bit two's complement weights (BitSim: w_bitwidth = 8)
SIGN_BIT = WEIGHT_BITS - 1
WEIGHT_MIN, WEIGHT_MAX = -(1 << SIGN_BIT), (1 << SIGN_BIT) - 1
LANES_PER_WORD = 8  # 8-bit lane patterns packed into uint64 words
BYTE_LSBS = np.uint64(0x0101010101010101)  # bit 0 of every byte of a word
MAGNITUDE_MAX = WEIGHT_MAX  # sign-magnitude holds |w| <= 127: -128 is read as -127 (BitSim's bin_int_convert)
# BitWave's configurable dataflows (lanes G, rows h, columns w), in BitSim's order (Bitwave.__init__).
BITWAVE_DATAFLOWS: tuple[tuple[int, int, int], ...] = (
    (8, 32, 16), (16, 32, 8), (32, 32, 4), (128, 8, 1), (16, 64, 1), (32, 32, 1), (16, 1, 16),
)

RowCost = Callable[[np.ndarray, "SimParams"], np.ndarray]


# ---------------------------------------------------------------- checks


def outside_int8(values: np.ndarray) -> int | None:
    """The lowest or highest value of `values` when it lies outside 8-bit two's complement, else None."""
    if not values.size:
        return None
    low, high = int(values.min()), int(values.max())
    if low < WEIGHT_MIN:
        return low
    return high if high > WEIGHT_MAX else None


def check_weights(layer: LayerTrace, design: str) -> None:
    """Raise TraceError (one line) unless the layer's weights are 8-bit: a declared ``wgt_prec`` above 8, or a
    value outside [-128, 127], is refused (these designs are defined for 8-bit weights only)."""
    if layer.wgt_prec is not None and int(layer.wgt_prec) > WEIGHT_BITS:
        raise TraceError(f"layer {layer.name!r}: {design} takes {WEIGHT_BITS}-bit weights, but wgt_prec="
                         f"{int(layer.wgt_prec)}; re-quantize the layer to {WEIGHT_BITS} bits")
    bad = outside_int8(layer.weights)
    if bad is not None:
        raise TraceError(f"layer {layer.name!r}: weights hold {bad}, but {design} takes {WEIGHT_BITS}-bit weights "
                         f"(two's complement range [{WEIGHT_MIN}, {WEIGHT_MAX}]); re-quantize the layer")


def bitvert_multipliers(params: SimParams) -> int:
    """BitVert's column bits per cycle ``m``: the option, or ``lanes // 2`` (at least 1; BitSim: G / 2)."""
    return params.multipliers if params.multipliers is not None else max(1, params.lanes // 2)


def check_bitvert(params: SimParams, where: str) -> None:
    """BitVert's option combinations (ConfigError, one line): ``multipliers`` at most ``lanes``; with
    ``fixed_precision`` (weights ignored) the data-aware options must stay at their defaults."""
    fields = type(params).model_fields
    if params.multipliers is not None and params.multipliers > params.lanes:
        raise ConfigError(f"{where}.multipliers: got {params.multipliers}, expected at most lanes={params.lanes} "
                          f"(a column holds {params.lanes} bits)")
    if params.fixed_precision:
        for name in ("bidirectional", "multipliers", "drop_sign_extension"):
            if getattr(params, name) != fields[name].default:
                raise ConfigError(
                    f"{where}.{name}: got {getattr(params, name)!r}, but fixed_precision={params.fixed_precision} "
                    f"ignores the weights; leave {name} at {fields[name].default!r} or fixed_precision at 0")


# ---------------------------------------------------------------- bit-plane helpers


def lane_words(w: np.ndarray) -> np.ndarray:
    """uint64 [..., ceil(L/8)]: the 8-bit two's complement patterns of w[..., L], eight lanes per word (byte i of a
    word = lane i of its eight; lanes padded with zeros to a multiple of 8)."""
    u = np.asarray(w).astype(np.uint8)  # integer -> uint8 keeps the low 8 bits: the two's complement pattern
    pad = -u.shape[-1] % LANES_PER_WORD
    if pad:  # zero lanes add no ones and equal the sign column: no cost changes
        u = np.concatenate([u, np.zeros(u.shape[:-1] + (pad,), np.uint8)], axis=-1)
    return np.ascontiguousarray(u).view(np.uint64)


def _plane(words: np.ndarray, b: int) -> np.ndarray:
    """Bit b of every lane, in place: uint64 words whose bytes are 0 or 1."""
    return (words >> np.uint64(b)) & BYTE_LSBS


def twos_columns(w: np.ndarray) -> np.ndarray:
    """int64 [..., 8]: ones of each two's complement column (index = bit, 7 = sign) of the lane groups w[..., L]."""
    words = lane_words(w)
    return np.stack([np.bitwise_count(_plane(words, b)).sum(axis=-1, dtype=np.int64) for b in range(WEIGHT_BITS)],
                    axis=-1)


def sign_magnitude(w: np.ndarray) -> np.ndarray:
    """int64 |w| of sign-magnitude 8-bit weights (-128 read as -127, as BitSim encodes it)."""
    return np.minimum(np.abs(np.asarray(w, dtype=np.int64)), MAGNITUDE_MAX)


def magnitude_columns(w: np.ndarray) -> np.ndarray:
    """int64 [...]: magnitude columns b6..b0 with at least one 1 among the lane weights w[..., L] (sign-magnitude)."""
    return np.bitwise_count(np.bitwise_or.reduce(sign_magnitude(w), axis=-1)).astype(np.int64)


def sign_extension(w: np.ndarray, limit: int) -> np.ndarray:
    """int64 [...]: how many of the columns b6, b5, .. (at most `limit`) equal the sign column in every lane of
    w[..., L], counted from b6 down to the first that does not."""
    words = lane_words(w)
    sign = _plane(words, SIGN_BIT)
    count = np.zeros(words.shape[:-1], np.int64)
    leading = np.ones(words.shape[:-1], bool)  # every column so far equals the sign column
    for b in range(SIGN_BIT - 1, SIGN_BIT - 1 - min(limit, SIGN_BIT), -1):
        leading &= (_plane(words, b) == sign).all(axis=-1)
        count += leading
    return count


# ---------------------------------------------------------------- per-(filter, row) costs


def bitlet_rows(w: np.ndarray, params: SimParams) -> np.ndarray:
    """Bitlet: int64 [...] = max over the 8 two's complement columns of their ones, of lane groups w[..., L]."""
    return twos_columns(w).max(axis=-1)


def bitwave_rows(w: np.ndarray, params: SimParams) -> np.ndarray:
    """BitWave: int64 [...] = non-zero sign-magnitude columns b6..b0 of lane groups w[..., L]."""
    return magnitude_columns(w)


def bitvert_rows(w: np.ndarray, params: SimParams) -> np.ndarray:
    """BitVert: int64 [...] = sum over processed columns of ceil(work / m) of lane groups w[..., L] (see the
    module doc; padded lanes are zeros: a column of real ones and padded zeros is not constant), or the
    constant ``fixed_precision``."""
    if params.fixed_precision:
        return np.full(w.shape[:-1], params.fixed_precision, np.int64)
    lanes, m = w.shape[-1], bitvert_multipliers(params)
    ones = twos_columns(w)  # [..., 8]
    work = np.minimum(ones, lanes - ones) if params.bidirectional else ones
    per_column = -(-work // m)
    dropped = sign_extension(w, params.drop_sign_extension)  # columns b6 .. b(7 - dropped) skipped
    bit = np.arange(WEIGHT_BITS)
    processed = (bit >= SIGN_BIT) | (bit < (SIGN_BIT - dropped)[..., None])
    return (per_column * processed).sum(axis=-1)


# ---------------------------------------------------------------- layer cycles


def group_row_costs(layer: LayerTrace, g: Geometry, row_cost: RowCost, params: SimParams) -> np.ndarray:
    """int64 [filter_groups, T]: per filter-set group and buffer row, the max over the group's filters of
    `row_cost`, at least 1 (a step costs at least one cycle). One group at a time bounds the memory."""
    out = np.zeros((g.filter_groups, g.T), np.int64)
    for grp in range(g.filter_groups):
        rows = g.weight_rows(layer.weights[g.group_filters(grp)])  # int32 [k, T, L], padded lanes 0
        out[grp] = row_cost(rows, params).max(axis=0)
    return np.maximum(out, 1)


def tiled_cycles(layer: LayerTrace, row_cost: RowCost, params: SimParams, g: Geometry | None = None) -> int:
    """compute_cycles of a weight-only per-(filter, row) cost on one geometry (`g`: the layer's Geometry under
    `params`, built when None): conv = window sets x the sum of the group-row costs (every window set repeats
    them); fc = DNNsim's column pipeline over the rows."""
    g = g or Geometry(layer, params)
    per_group = group_row_costs(layer, g, row_cost, params)
    if g.fc:
        return fc_cycles(list(per_group), g.cols)
    return int(g.WS * per_group.sum())


def dataflows(params: SimParams) -> list[SimParams]:
    """The geometries a layer is evaluated on: `params` itself, or with ``dataflow_choice`` BitSim's seven
    (lanes, rows, columns) of BITWAVE_DATAFLOWS (tiles and the other fields kept, the option switched off)."""
    if not params.dataflow_choice:
        return [params]
    return [params.model_copy(update={"lanes": lanes, "rows": rows, "columns": cols, "dataflow_choice": False})
            for lanes, rows, cols in BITWAVE_DATAFLOWS]


def layer_cycles(layer: LayerTrace, row_cost: RowCost, params: SimParams, design: str,
                 g: Geometry | None = None) -> int:
    """compute_cycles of one layer (any sample: weights only) for a per-(filter, row) cost, after the 8-bit
    check (TraceError naming `design`); with ``dataflow_choice`` the minimum over BitSim's seven dataflows
    (first minimum, as BitSim). `g`: the layer's Geometry under `params` if already built."""
    check_weights(layer, design)
    if params.dataflow_choice:
        return min(tiled_cycles(layer, row_cost, q) for q in dataflows(params))
    return tiled_cycles(layer, row_cost, params, g)
