"""The tiling every design shares (spec: simulator.md), per-value transforms and step accumulation.

Numpy only (no numba): the engine, the per-design costs and the numba kernels all build on this module.
Shapes: ``WS`` window sets, ``filter_groups`` filter-set groups, ``S`` steps, ``Cc`` columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from enum import IntEnum
from typing import TYPE_CHECKING

import numpy as np

from bitpruner.sim.booth import booth_table

if TYPE_CHECKING:
    from bitpruner.sim.params import SimParams
    from bitpruner.sim.traces import LayerTrace

# Any first-stage reach of 15 or more bits covers a whole 16-bit value: each lane has its own shifter.
FULL_REACH = 15
VALUE_BITS = 16  # serial operands are at most 16-bit magnitudes
MAX_SLICED_KEYS = 63  # keys of a block that fit one int64 bit mask (bit 63 is the sign)


class KernelMode(IntEnum):
    """What `vectorized.pattern_costs` computes per PE from the activations a lane pattern selects."""

    PRAGMATIC = 0  # BitPragmatic's two-stage shifter over the magnitudes
    SHAPESHIFTER = 1  # ShapeShifter's precision: max bit count + 1


def ceil_div(a: int, b: int) -> int:
    """ceil(a / b) for positive integers."""
    return -(-a // b)


def shifter_reach(bits_first_stage: int) -> int:
    """First-stage reach ``2**bits_first_stage - 1``, capped at FULL_REACH (a whole value)."""
    return min((1 << bits_first_stage) - 1, FULL_REACH)


class Geometry:
    """Tiling of one layer: buffer rows, windows, window sets, filter sets and filter-set groups.

    Attributes: ``K`` filters, ``C`` channels, ``Kx``/``Ky`` kernel size, ``Xp``/``Yp`` padded input,
    ``Ox``/``Oy`` outputs, ``nch`` channel chunks, ``T`` buffer rows, ``n_win`` windows, ``WS`` window sets,
    ``FS`` filter sets, ``filter_groups`` filter-set groups (up to ``tiles`` filter sets each).
    """

    def __init__(self, layer: LayerTrace, params: SimParams):
        self.lanes, self.cols, self.rows, self.tiles = params.lanes, params.columns, params.rows, params.tiles
        self.fc = layer.type == "fc"
        w = layer.weights
        if self.fc:
            self.K, self.C = w.shape
            self.Kx = self.Ky = 1
            self.Xp = self.Yp = 1
            self.stride, self.pad = 1, 0
        else:
            self.K, self.C, self.Kx, self.Ky = w.shape
            self.stride, self.pad = layer.stride, layer.pad
            self.Xp = layer.activations.shape[2] + 2 * self.pad
            self.Yp = layer.activations.shape[3] + 2 * self.pad
        self.Ox = (self.Xp - self.Kx) // self.stride + 1
        self.Oy = (self.Yp - self.Ky) // self.stride + 1
        self.nch = ceil_div(self.C, self.lanes)
        self.T = self.nch * self.Kx * self.Ky
        self.n_win = self.Ox * self.Oy
        self.WS = ceil_div(self.n_win, self.cols)
        self.FS = ceil_div(self.K, self.rows)
        self.filter_groups = ceil_div(self.FS, self.tiles)
        t = np.arange(self.T, dtype=np.int64)
        # Row t = (ky*Kx + kx)*nch + chunk (kernel y outermost), lane i = channel chunk*L + i.
        self.row_k = t % self.nch
        self.row_x = (t // self.nch) % self.Kx
        self.row_y = t // (self.nch * self.Kx)
        self.row_ch = self.row_k * self.lanes
        w_idx = np.arange(self.n_win, dtype=np.int64)
        # Window w starts at x = (w % Ox)*stride, y = (w // Ox)*stride (DNNsim uses Oy: wrong unless Ox == Oy).
        self.x0 = (w_idx % self.Ox) * self.stride
        self.y0 = (w_idx // self.Ox) * self.stride
        # Columns holding a window, per window set.
        self.win_in_ws = np.minimum(self.cols, self.n_win - np.arange(self.WS) * self.cols)

    def weight_rows(self, w: np.ndarray) -> np.ndarray:
        """int32 [k, T, L]: the weight-buffer rows of the k filters in w (16-bit values)."""
        cpad, k = self.nch * self.lanes, w.shape[0]
        if self.fc:
            wp = np.zeros((k, cpad), np.int32)
            wp[:, : self.C] = w
            return wp.reshape(k, self.T, self.lanes)
        wp = np.zeros((k, cpad, self.Kx, self.Ky), np.int32)
        wp[:, : self.C] = w
        wp = wp.reshape(k, self.nch, self.lanes, self.Kx, self.Ky).transpose(0, 4, 3, 1, 2)
        return np.ascontiguousarray(wp).reshape(k, self.T, self.lanes)

    def act_values(self, layer: LayerTrace, sample: int) -> np.ndarray:
        """int32 [Xp, Yp, nch*L]: sample's padded activations, channels last (zero past C; 16-bit values)."""
        cpad = self.nch * self.lanes
        out = np.zeros((self.Xp, self.Yp, cpad), np.int32)
        if self.fc:
            out[0, 0, : self.C] = layer.fc_activations[sample]
        else:
            a = layer.activations[sample]
            p = self.pad
            out[p : p + a.shape[1], p : p + a.shape[2], : self.C] = a.transpose(1, 2, 0)
        return out

    def gather_rows(self, per_pos: np.ndarray) -> np.ndarray:
        """per_pos[Xp, Yp, nch] -> [WS, T, Cc] values of each window-set column at each row (0: no window)."""
        xs = self.x0[:, None] + self.row_x[None, :]
        ys = self.y0[:, None] + self.row_y[None, :]
        out = np.zeros((self.WS * self.cols, self.T), np.int64)
        out[: self.n_win] = per_pos[xs, ys, self.row_k[None, :]]
        return np.ascontiguousarray(out.reshape(self.WS, self.cols, self.T).transpose(0, 2, 1))

    def group_filters(self, group: int) -> slice:
        """The filters of filter-set group `group` (up to rows x tiles consecutive filters)."""
        span = self.rows * self.tiles
        return slice(group * span, min(self.K, (group + 1) * span))


# ---------------------------------------------------------------- per-value transforms


def magnitudes(values: np.ndarray, pe_width: int, booth: bool) -> np.ndarray:
    """|v| cut to pe_width bits (DNNsim's serial operand), Booth-recoded if asked."""
    mag = np.abs(values) & ((1 << pe_width) - 1)
    return booth_table()[mag] if booth else mag


def popcounts(values: np.ndarray) -> np.ndarray:
    """Set bits of each (non-negative) value, int64."""
    return np.bitwise_count(values).astype(np.int64)


def shapeshifter_bits(values: np.ndarray, pe_width: int, signed: bool) -> np.ndarray:
    """Index of the highest set bit of the pe_width-bit two's complement value (negatives flipped when
    the layer is signed), plus 1 if signed; 0 for zero."""
    mask = (1 << pe_width) - 1
    u = values & mask
    if signed:
        u = np.where(u & (1 << (pe_width - 1)), u ^ mask, u)
    top = np.zeros(u.shape, np.int64)
    nz = u > 0
    top[nz] = np.floor(np.log2(u[nz])).astype(np.int64)
    return top + int(signed)


# ---------------------------------------------------------------- step accumulation


def fc_cycles(step_costs: list[np.ndarray], cols: int) -> int:
    """fc: per group the step costs P of rows t; column t mod Cc; c = max(c, cc[col]); cc[col] = c + P; c += 1."""
    cc = [0] * cols
    c = 0
    for costs in step_costs:
        for t, p in enumerate(costs.tolist()):
            col = t % cols
            c = max(c, cc[col])
            cc[col] = c + p
            c += 1
    return max(cc)


def group_columns(cost: np.ndarray, win_in_ws: np.ndarray, group_size: int) -> np.ndarray:
    """Merge columns [WS, .., Cc] into ShapeShifter's column groups (max), with DNNsim's trailing-group quirk:
    after a window set of n windows it writes cost 1 into group n / group_size when n is a multiple of
    the group size (an idle group then costs a cycle under column registers)."""
    cols = cost.shape[-1]
    n_groups = ceil_div(cols, group_size)
    if group_size > 1:
        pad = np.zeros(cost.shape[:-1] + (n_groups * group_size,), cost.dtype)
        pad[..., :cols] = cost
        cost = pad.reshape(cost.shape[:-1] + (n_groups, group_size)).max(axis=-1)
    cost = cost.copy()
    for ws, n in enumerate(win_in_ws.tolist()):
        if n % group_size == 0 and n // group_size < n_groups:
            cost[ws, ..., n // group_size] = np.maximum(cost[ws, ..., n // group_size], 1)
    return np.ascontiguousarray(cost)


def conv_total(cost: np.ndarray, n_steps: np.ndarray, reps: int, registers: int) -> int:
    """Sum of per-step max over columns, or the column-register timing.

    cost[WS, filter_groups, S, Cc]; group g runs its first n_steps[g] steps; the groups of a window set repeat
    `reps` times (activation-side costs, identical for every filter-set group, are passed once).
    """
    if registers > 0:
        captured = _RING_CAPTURE.get()
        if captured is not None:
            captured.append((cost, np.asarray(n_steps, np.int64), reps))
            return 0
        from bitpruner.sim.vectorized import ring_cycles

        return ring_cycles(cost, n_steps, reps, registers)
    step_max = cost.max(axis=3)  # [WS, filter_groups, S]
    valid = np.arange(cost.shape[2])[None, :] < n_steps[:, None]
    return int(reps * np.where(valid[None], np.maximum(step_max, 1), 0).sum())


def ring_cycles_per_ws(cost4: np.ndarray, group_steps: np.ndarray, registers: int) -> int:
    """Column-register timing when each window set has its own per-group step counts group_steps[WS, groups]."""
    from bitpruner.sim.vectorized import ring_cycles

    # Flatten (ws, group) into one axis of blocks so one ring_cycles call keeps the registers' state.
    n_ws, n_groups, s_max, cols = cost4.shape
    flat = cost4.reshape(1, n_ws * n_groups, s_max, cols)
    captured = _RING_CAPTURE.get()
    if captured is not None:
        captured.append((flat, np.asarray(group_steps, np.int64).reshape(-1), 1))
        return 0
    return ring_cycles(flat, group_steps.reshape(-1), 1, registers)


# ---------------------------------------------------------------- column registers across grouped sub-layers

# While set (a list), the column-register timing of conv_total / ring_cycles_per_ws records its step costs there
# and returns 0: a grouped layer's sub-layers (sim/grouped.py) then run one ring, as DNNsim's layer-wide
# column registers do.
_RING_CAPTURE: ContextVar[list | None] = ContextVar("bitpruner_ring_capture", default=None)


@contextmanager
def capture_rings() -> Iterator[list]:
    """Within the block, column-register timings are recorded instead of run (they return 0): yields the list
    of ``(cost[WS, groups, S, Cc], n_steps[groups], reps)`` in execution order, for :func:`chained_ring`."""
    captured: list = []
    token = _RING_CAPTURE.set(captured)
    try:
        yield captured
    finally:
        _RING_CAPTURE.reset(token)


def chained_ring(captured: list, registers: int) -> int:
    """One column-register timing over every recorded block, in order (ring state carried between them).

    Each record expands to its steps as `ring_cycles` runs them (ws -> reps x group -> step); returns max(cc)
    at the end (0 when nothing was recorded).
    """
    from bitpruner.sim.vectorized import ring_cycles

    if not captured:
        return 0
    s_max = max(int(cost.shape[2]) for cost, _, _ in captured)
    cols = int(captured[0][0].shape[3])
    blocks, steps = [], []
    for cost, n_steps, reps in captured:
        n_ws, n_groups, s, _ = cost.shape
        rep = np.broadcast_to(cost[:, None], (n_ws, reps, n_groups, s, cols)).reshape(n_ws * reps * n_groups, s, cols)
        padded = np.zeros((rep.shape[0], s_max, cols), np.int64)
        padded[:, :s] = rep
        blocks.append(padded)
        steps.append(np.tile(n_steps, n_ws * reps))
    flat = np.concatenate(blocks)[None]
    return ring_cycles(np.ascontiguousarray(flat), np.concatenate(steps), 1, registers)
