"""The engine's per-layer cost of every design: ``cost(sim, sample) -> compute_cycles`` (spec: simulator.md).

Each function receives the engine's :class:`~bitpruner.sim.engine.LayerSimulator` (the layer's geometry,
precisions, signedness, shifter reach, column registers, Booth flag and BitTactical schedule) and one sample
index; the registry (`designs.py`) names one of them per design. Algebra used to skip work (all costs are
non-negative and every step is a max):

- activation-side costs (BitPragmatic, ShapeShifter, Loom) depend on one (position, channel chunk) of the
  padded input only, so they are computed once per position and chunk and gathered per window/row; they do
  not depend on the filters, so a window set's steps repeat for every filter-set group;
- PragmaticW's cost depends on (filter, row) only, so per row it is a max over the group's filters;
- Laconic's max over windows and filters of a per-lane product is the product of per-lane maxima;
- BitTacticalP's max over filters of "max bits + 1" is taken over the union of their selected lanes
  (one key per pattern), and BitTacticalE's lane patterns and keys are built once per layer, for all samples.

The kernels come from `vectorized.py` (numpy, or numba when the work pays for loading it: `jit_saving` below
estimates what numba would save on a layer before anything runs); numba itself loads only when a kernel asks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bitpruner.sim import vectorized
from bitpruner.sim.tiling import (
    FULL_REACH,
    MAX_SLICED_KEYS,
    KernelMode,
    conv_total,
    fc_cycles,
    group_columns,
    magnitudes,
    popcounts,
    ring_cycles_per_ws,
    shapeshifter_bits,
)

if TYPE_CHECKING:
    from bitpruner.sim.engine import LayerSimulator

# Block-qualified keys are deduplicated with a presence table when it has at most this many slots per key read
# (booleans and their int32 running count: about as large as the int64 pattern arrays it serves).
DENSE_KEYS_PER_ENTRY = 2


# ---------------------------------------------------------------- bit-parallel designs


def dadiannao(sim: LayerSimulator, sample: int) -> int:
    """One cycle per step: filter-set groups x buffer rows x window sets (fc: one window set)."""
    g = sim.g
    return g.filter_groups * g.T * (1 if g.fc else g.WS)


def bittactical(sim: LayerSimulator, sample: int) -> int:
    """One cycle per step of DNNsim's BitTactical step plans (zero-weight rows skipped)."""
    plans, n_plan_ws = sim.plans()
    steps = sum(plan.shape[0] for plan in plans)
    return steps * (1 if sim.g.fc or n_plan_ws > 1 else sim.g.WS)


# ---------------------------------------------------------------- activation-serial designs


def stripes(sim: LayerSimulator, sample: int) -> int:
    """min(act_prec, pe_width) per step, independent of the data."""
    g = sim.g
    cost = min(sim.act_prec, sim.p.pe_width)
    if g.fc:
        return fc_cycles([np.full(g.T, cost)] * g.filter_groups, g.cols)
    return g.WS * g.filter_groups * g.T * cost


def _activation_side_total(sim: LayerSimulator, per_pos: np.ndarray) -> int:
    """Cycles of a cost per (padded position, channel chunk), the same for every filter-set group."""
    g = sim.g
    if g.fc:
        return fc_cycles([per_pos[0, 0]] * g.filter_groups, g.cols)
    cost = g.gather_rows(per_pos)[:, None]  # [WS, 1, T, Cc]; same for every filter-set group
    if sim.design.column_groups and sim.registers:
        cost = group_columns(cost, g.win_in_ws, sim.p.group_size)
    return conv_total(cost, np.array([g.T]), g.filter_groups, sim.registers)


def bitpragmatic(sim: LayerSimulator, sample: int) -> int:
    """The two-stage shifter over each row's lane magnitudes (Booth-recoded if asked), max over windows."""
    from bitpruner.sim.vectorized import shifter_rows

    g = sim.g
    vals = g.act_values(sim.layer, sample)
    mag = magnitudes(vals, sim.p.pe_width, sim.booth).reshape(-1, g.lanes)
    per_pos = shifter_rows(mag, sim.reach).reshape(g.Xp, g.Yp, g.nch)
    return _activation_side_total(sim, per_pos)


def _shapeshifter_precision(sim: LayerSimulator, sample: int) -> np.ndarray:
    """[Xp, Yp, nch]: ShapeShifter's precision of each position's lane values (max bits + 1)."""
    g = sim.g
    vals = g.act_values(sim.layer, sample)
    bits = shapeshifter_bits(vals, sim.p.pe_width, sim.signed).reshape(g.Xp, g.Yp, g.nch, g.lanes)
    return bits.max(axis=-1) + 1


def shapeshifter(sim: LayerSimulator, sample: int) -> int:
    """The window's dynamic activation precision; column groups under column registers."""
    return _activation_side_total(sim, _shapeshifter_precision(sim, sample))


def loom(sim: LayerSimulator, sample: int) -> int:
    """ShapeShifter's precision (pe_serial_bits per cycle) times the layer's weight precision."""
    prec = _shapeshifter_precision(sim, sample)
    per_pos = -(-prec // sim.p.pe_serial_bits) * sim.wgt_prec
    return _activation_side_total(sim, per_pos)


# ---------------------------------------------------------------- weight-serial and both-serial designs


def pragmatic_w(sim: LayerSimulator, sample: int) -> int:
    """The two-stage shifter over each row's lane weights, max over the filters of a group's tiles."""
    from bitpruner.sim.vectorized import shifter_rows

    g, p = sim.g, sim.p
    per_group = sim.memo.get(pragmatic_w)  # weights only: the same for every sample
    if per_group is None:
        per_group = np.zeros((g.filter_groups, g.T), np.int64)
        for grp in range(g.filter_groups):  # one group at a time bounds the memory on large fc layers
            wrows = g.weight_rows(sim.layer.weights[g.group_filters(grp)])
            mag = magnitudes(wrows, p.pe_width, sim.booth).reshape(-1, g.lanes)
            per_group[grp] = shifter_rows(mag, sim.reach).reshape(-1, g.T).max(axis=0)
        sim.memo[pragmatic_w] = per_group
    if g.fc:
        return fc_cycles(list(per_group), g.cols)
    if not sim.registers:
        return int(g.WS * per_group.sum())
    active = (np.arange(g.cols)[None, :] < g.win_in_ws[:, None]).astype(np.int64)  # [WS, Cc]
    cost = per_group[None, :, :, None] * active[:, None, None, :]
    return conv_total(np.ascontiguousarray(cost), np.full(g.filter_groups, g.T), 1, sim.registers)


# 8-bit bit-column designs (spec: new_designs.md): weight-only costs in weight_columns.py, one layer total per
# LayerSimulator (the same for every sample).


def _weight_columns(sim: LayerSimulator, row_cost) -> int:
    from bitpruner.sim import weight_columns

    if row_cost not in sim.memo:
        sim.memo[row_cost] = weight_columns.layer_cycles(sim.layer, row_cost, sim.p, sim.design.name, sim.g)
    return sim.memo[row_cost]


def bitlet(sim: LayerSimulator, sample: int) -> int:
    """Bitlet: max over the 8 two's complement columns of their ones, per (filter, row); 8-bit weights only."""
    from bitpruner.sim.weight_columns import bitlet_rows

    return _weight_columns(sim, bitlet_rows)


def bitwave(sim: LayerSimulator, sample: int) -> int:
    """BitWave: non-zero sign-magnitude columns per (filter, row); `dataflow_choice`: min over BitSim's seven."""
    from bitpruner.sim.weight_columns import bitwave_rows

    return _weight_columns(sim, bitwave_rows)


def bitvert(sim: LayerSimulator, sample: int) -> int:
    """BitVert: bi-directional column cost per (filter, row), or the constant `fixed_precision`."""
    from bitpruner.sim.weight_columns import bitvert_rows

    return _weight_columns(sim, bitvert_rows)


def laconic(sim: LayerSimulator, sample: int) -> int:
    """max(1, popcount(a) * popcount(w)) per lane; max over lanes, filters, windows and tiles."""
    g, p = sim.g, sim.p
    vals = g.act_values(sim.layer, sample)
    pop_a = popcounts(magnitudes(vals, p.pe_width, sim.booth)).reshape(g.Xp, g.Yp, g.nch, g.lanes)
    max_w = np.zeros((g.filter_groups, g.T, g.lanes), np.int64)  # per group: max popcount over its filters
    for grp in range(g.filter_groups):
        wrows = g.weight_rows(sim.layer.weights[g.group_filters(grp)])
        max_w[grp] = popcounts(magnitudes(wrows, p.pe_width, sim.booth)).max(axis=0)
    # Per window set, row and lane: max over the set's windows (padding windows are 0).
    max_a = np.zeros((g.WS, g.Ky, g.Kx, g.nch, g.lanes), np.int64)
    for ky in range(g.Ky):
        for kx in range(g.Kx):
            per_win = np.zeros((g.WS * g.cols, g.nch, g.lanes), np.int64)
            per_win[: g.n_win] = pop_a[g.x0 + kx, g.y0 + ky]
            max_a[:, ky, kx] = per_win.reshape(g.WS, g.cols, g.nch, g.lanes).max(axis=1)
    max_a = max_a.reshape(g.WS, g.T, g.lanes)
    if g.fc:
        return fc_cycles([np.maximum((max_a[0] * mw).max(axis=-1), 1) for mw in max_w], g.cols)
    return int(sum(np.maximum((max_a * mw[None]).max(axis=-1), 1).sum() for mw in max_w))


# ---------------------------------------------------------------- BitTacticalE / BitTacticalP


def bittactical_e(sim: LayerSimulator, sample: int) -> int:
    """BitPragmatic's cost on the activations that the scheduled weights select."""
    return _tactical(sim, sample, KernelMode.PRAGMATIC)


def bittactical_p(sim: LayerSimulator, sample: int) -> int:
    """ShapeShifter's cost on the activations that the scheduled weights select."""
    return _tactical(sim, sample, KernelMode.SHAPESHIFTER)


def tactical_blocks(sim: LayerSimulator, plans: list[np.ndarray], mode: KernelMode):
    """Lane patterns per plan step (block), vectorized over all blocks.

    A pattern is one filter's L (row, lane) reads as keys ``row*L + lane`` (-1: lane idle); each block also
    gets one all-idle pattern first (a PE with nothing to read still costs 1 cycle). PRAGMATIC mode keeps
    every filter's pattern (distinct patterns are nearly all of them: deduplicating cost more than it saved);
    SHAPESHIFTER mode only needs the union of a block's keys (one key per pattern, patterns one lane wide).
    Returns the blocks' distinct keys (row, lane: int64; offsets per block), the patterns as int32 indices
    into their block's keys, their key bit masks (int64; only for a partial-reach shifter, else zeros) and the
    pattern offsets per block (int64). Arrays of patterns x lanes are int32 and freed early: they are the
    largest of a layer.
    """
    sch, lanes, tiles = sim.schedule(), sim.g.lanes, sim.p.tiles
    steps = np.array([plan.shape[0] for plan in plans], np.int64)
    n_blocks = int(steps.sum())
    if n_blocks == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(1, np.int64), np.full((0, lanes), -1, np.int32), empty, np.zeros(1, np.int64)
    rows = np.concatenate([plan for plan in plans])  # [blocks, tiles]: buffer row per tile
    first_set = np.repeat((np.arange(len(plans)) % sim.g.filter_groups) * tiles, steps)
    blk, tile = np.nonzero(rows >= 0)  # busy (block, tile) pairs, by block
    sets, brow = first_set[blk] + tile, rows[blk, tile]
    keys = sch.act_keys(sets, brow)  # int32 [busy, R, L]
    real = (np.arange(keys.shape[1])[None, :] < sch.n_filters[sets][:, None]).reshape(-1)
    keys = keys.reshape(-1, lanes)[real]
    pat_blk = np.repeat(blk, sch.tuple_row.shape[1])[real]
    span = lanes * sim.g.T + 1  # block-qualified keys: blk*span + key (keys < span - 1)
    busy = keys >= 0
    if mode == KernelMode.SHAPESHIFTER:  # one key per pattern: a block's keys are its patterns
        ukeys, _ = _distinct(keys + (pat_blk * span)[:, None], busy, n_blocks * span, index=False)
        del keys, busy
        key_blk = ukeys // span
        key_off = np.searchsorted(key_blk, np.arange(n_blocks + 1))
        offsets = key_off + np.arange(n_blocks + 1)  # each block's all-idle pattern first
        in_block = np.arange(ukeys.size) - key_off[key_blk]
        pat_idx = np.full((int(offsets[-1]), 1), -1, np.int32)
        pat_idx[offsets[key_blk] + 1 + in_block, 0] = in_block
    else:
        # Patterns in block order, each block's all-idle pattern first.
        per_block = np.bincount(pat_blk, minlength=n_blocks) + 1
        offsets = np.concatenate([[0], np.cumsum(per_block)])
        rank = np.arange(pat_blk.size) - (np.cumsum(per_block - 1) - (per_block - 1))[pat_blk]
        ordered = np.full((int(offsets[-1]), lanes), -1, np.int32)
        ordered[offsets[pat_blk] + 1 + rank] = keys
        del keys, rank, busy
        pat_blk = np.repeat(np.arange(n_blocks), per_block)
        busy = ordered >= 0
        qualified = ordered + (pat_blk * span)[:, None]  # int64
        del ordered
        ukeys, key_index = _distinct(qualified, busy, n_blocks * span)
        del qualified
        key_off = np.searchsorted(ukeys // span, np.arange(n_blocks + 1))
        key_index -= key_off[pat_blk].astype(np.int32)[:, None]
        pat_idx = np.where(busy, key_index, np.int32(-1))
        del key_index, busy
    if mode == KernelMode.PRAGMATIC and 0 < sim.reach < FULL_REACH:
        # Keys each pattern reads, as a bit mask (used when its block has at most MAX_SLICED_KEYS keys).
        in_mask = (pat_idx >= 0) & (pat_idx < MAX_SLICED_KEYS)
        bits = np.where(in_mask, np.left_shift(np.int64(1), np.clip(pat_idx, 0, MAX_SLICED_KEYS - 1)), 0)
        pat_mask = np.bitwise_or.reduce(bits, axis=1)
    else:
        pat_mask = np.zeros(pat_idx.shape[0], np.int64)
    ukeys = ukeys % span
    return (np.ascontiguousarray(ukeys // lanes), np.ascontiguousarray(ukeys % lanes), key_off.astype(np.int64),
            np.ascontiguousarray(pat_idx), np.ascontiguousarray(pat_mask, dtype=np.int64),
            offsets.astype(np.int64))


def _distinct(qualified: np.ndarray, busy: np.ndarray, bound: int, index: bool = True):
    """The sorted distinct values of qualified[busy] (all in [0, `bound`)) and, if `index`, each entry's index
    among them (int32; entries outside `busy` get any index, their values must be in range too). A presence
    table when `bound` is small next to the entries (no sort), a sort otherwise (np.unique would load numpy.ma,
    ~15 ms of a small run)."""
    if bound <= DENSE_KEYS_PER_ENTRY * qualified.size:
        table = np.zeros(bound, bool)
        table[qualified[busy]] = True
        if not index:
            return np.flatnonzero(table), None
        position = np.cumsum(table, dtype=np.int32)
        position -= 1
        return np.flatnonzero(table), position[np.where(busy, qualified, 0)]
    ukeys = np.sort(qualified[busy])
    ukeys = ukeys[np.concatenate(([True], ukeys[1:] != ukeys[:-1]))] if ukeys.size else ukeys
    return ukeys, (np.searchsorted(ukeys, qualified).astype(np.int32) if index else None)


def _tactical(sim: LayerSimulator, sample: int, mode: KernelMode) -> int:
    from bitpruner.sim.vectorized import pattern_costs

    g, p = sim.g, sim.p
    plans, n_plan_ws = sim.plans()
    if _tactical not in sim.memo:  # weights only: the same for every sample
        sim.memo[_tactical] = tactical_blocks(sim, plans, mode)
    key_row, key_lane, key_off, pat_idx, pat_mask, offsets = sim.memo[_tactical]
    vals = g.act_values(sim.layer, sample)
    if mode == KernelMode.PRAGMATIC:
        vals = magnitudes(vals, p.pe_width, sim.booth)
    else:
        vals = shapeshifter_bits(vals, p.pe_width, sim.signed)
    cost = pattern_costs(
        np.ascontiguousarray(vals), g.x0, g.y0, g.row_x, g.row_y, g.row_ch,
        key_row, key_lane, key_off, pat_idx, pat_mask, offsets, g.cols, mode, sim.reach,
    )  # [WS, blocks, Cc]
    steps = np.array([plan.shape[0] for plan in plans], np.int64)
    first = np.concatenate([[0], np.cumsum(steps)])
    if g.fc:
        return fc_cycles([np.maximum(cost[0, first[i] : first[i + 1], 0], 1) for i in range(g.filter_groups)],
                         g.cols)
    s_max = int(steps.max()) if steps.size else 0
    cost4 = np.zeros((g.WS, g.filter_groups, s_max, g.cols), np.int64)
    if n_plan_ws == 1:
        for grp in range(g.filter_groups):
            cost4[:, grp, : steps[grp]] = cost[:, first[grp] : first[grp + 1]]
    else:
        for ws in range(g.WS):
            for grp in range(g.filter_groups):
                i = ws * g.filter_groups + grp
                cost4[ws, grp, : steps[i]] = cost[ws, first[i] : first[i + 1]]
    group_steps = steps.reshape(n_plan_ws, g.filter_groups)
    if sim.design.column_groups and sim.registers:
        cost4 = group_columns(cost4, g.win_in_ws, p.group_size)
    if n_plan_ws == 1:
        return conv_total(cost4, group_steps[0], 1, sim.registers)
    # Window sets with their own plans (rare): blocks of (window set, group) in order.
    if sim.registers:
        return ring_cycles_per_ws(cost4, group_steps, sim.registers)
    return int(sum(conv_total(cost4[ws : ws + 1], group_steps[ws], 1, 0) for ws in range(g.WS)))


# ---------------------------------------------------------------- when numba pays (see vectorized.py)


def _shifter_saving(sim: LayerSimulator) -> float:
    """BitPragmatic: the shifter over every padded position's lane values."""
    g = sim.g
    return vectorized.shifter_saving(g.Xp * g.Yp * g.nch * g.lanes, sim.reach)


def _weight_shifter_saving(sim: LayerSimulator) -> float:
    """PragmaticW: the shifter over every filter's weight rows."""
    g = sim.g
    return vectorized.shifter_saving(g.K * g.T * g.lanes, sim.reach)


def _schedule_saving(sim: LayerSimulator) -> float:
    """Scheduled designs: BitTactical's promotion over every filter set's buffer rows."""
    g = sim.g
    return vectorized.schedule_saving(g.T, g.FS * g.rows * g.T * g.lanes)


def _pattern_saving(sim: LayerSimulator) -> float:
    """BitTacticalE/P: every window meets at most one lane pattern per filter and buffer row (BitTacticalE),
    or one key per lane of a filter set's row (BitTacticalP: a set's filters share their row's keys)."""
    g = sim.g
    if sim.design.cost is bittactical_e:
        return vectorized.pattern_saving(g.n_win * g.K * g.T * g.lanes, KernelMode.PRAGMATIC, sim.reach)
    return vectorized.pattern_saving(g.n_win * g.FS * g.T * g.lanes, KernelMode.SHAPESHIFTER, sim.reach)


def _ring_saving(sim: LayerSimulator) -> float:
    """Column registers: the recurrence over every step of every window set and filter-set group."""
    g = sim.g
    return vectorized.ring_saving(g.WS * g.filter_groups * g.T * g.cols) if sim.registers else 0.0


_PER_LAYER = {  # by engine cost: kernels run once per layer
    pragmatic_w: (_weight_shifter_saving,),
    bittactical: (_schedule_saving,),
    bittactical_e: (_schedule_saving,),
    bittactical_p: (_schedule_saving,),
}
_PER_SAMPLE = {  # by engine cost: kernels run for every sample; designs without a kernel have none
    bitpragmatic: (_shifter_saving, _ring_saving),
    shapeshifter: (_ring_saving,),
    pragmatic_w: (_ring_saving,),
    bittactical_e: (_pattern_saving, _ring_saving),
    bittactical_p: (_pattern_saving, _ring_saving),
}


def jit_saving(sim: LayerSimulator, samples: int = 1) -> float:
    """Estimated CPU seconds the numba forms of this layer's kernels save over their numpy forms (shapes only):
    a run whose savings add up to numba's start-up takes numba (`bitpruner.utils.jit.use_jit`, `prefer_jit`)."""
    cost = sim.design.cost
    once = sum(f(sim) for f in _PER_LAYER.get(cost, ()))
    return once + samples * sum(f(sim) for f in _PER_SAMPLE.get(cost, ()))
