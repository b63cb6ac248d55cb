"""Plain-Python reference of the cycle model, literally from the spec (slow; tests compare the engine to it).

Every step is simulated with explicit loops over tiles, columns (windows), rows (filters) and lanes; only
the per-PE cost differs between designs: one function per design below, named in the registry
(`designs.py`) as the design's ``reference_cost``. Only the Booth table (checked against the spec's scan in
the tests) and the BitTactical schedule are shared with the fast engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bitpruner.sim.booth import booth_table
from bitpruner.sim.params import SimParams
from bitpruner.sim.traces import LayerTrace
from bitpruner.sim.weight_columns import MAGNITUDE_MAX, WEIGHT_BITS, check_weights, dataflows

if TYPE_CHECKING:
    from bitpruner.sim.designs import Design
    from bitpruner.sim.tactical import LayerSchedule


def _pragmatic(values: list[int], bits_first_stage: int) -> int:
    """Two-stage shifter: each cycle, off = lowest set bit over all lanes; each lane clears its lowest set
    bit inside [off, off + 2**bfs - 1]; cycles until all are zero, at least 1."""
    vals = list(values)
    reach = (1 << bits_first_stage) - 1
    cycles = 0
    while any(vals):
        off = min((v & -v).bit_length() - 1 for v in vals if v)
        for i, v in enumerate(vals):
            for b in range(off, off + reach + 1):
                if (v >> b) & 1:
                    vals[i] = v & ~(1 << b)
                    break
        cycles += 1
    return max(cycles, 1)


class _Layer:
    """Index helpers: act(window, row, lane) and wgt(filter, row, lane) in weight-buffer row order."""

    def __init__(self, layer: LayerTrace, p: SimParams, sample: int):
        self.fc = layer.type == "fc"
        L = p.lanes
        if self.fc:
            self.W = layer.weights
            self.A = layer.fc_activations[sample]
            self.K, self.C = self.W.shape
            self.Kx = self.Ky = 1
            self.windows = [(0, 0)]
        else:
            self.W = layer.weights
            pad = layer.pad
            self.A = np.pad(layer.activations[sample], ((0, 0), (pad, pad), (pad, pad)))
            self.K, self.C, self.Kx, self.Ky = self.W.shape
            ox = (self.A.shape[1] - self.Kx) // layer.stride + 1
            oy = (self.A.shape[2] - self.Ky) // layer.stride + 1
            self.windows = [((w % ox) * layer.stride, (w // ox) * layer.stride) for w in range(ox * oy)]
        self.nch = -(-self.C // L)
        self.T = self.nch * self.Kx * self.Ky
        self.L = L

    def _split(self, t: int, i: int) -> tuple[int, int, int]:
        ky, rem = divmod(t, self.nch * self.Kx)
        kx, k = divmod(rem, self.nch)
        return kx, ky, k * self.L + i

    def act(self, w: int, t: int, i: int) -> int:
        kx, ky, ch = self._split(t, i)
        if ch >= self.C:
            return 0
        if self.fc:
            return int(self.A[ch])
        x0, y0 = self.windows[w]
        return int(self.A[ch, x0 + kx, y0 + ky])

    def wgt(self, f: int, t: int, i: int) -> int:
        kx, ky, ch = self._split(t, i)
        if ch >= self.C:
            return 0
        return int(self.W[f, ch]) if self.fc else int(self.W[f, ch, kx, ky])


@dataclass
class PEContext:
    """What a per-PE reference cost may read: the layer, the parameters and per-layer facts."""

    lay: _Layer
    p: SimParams
    act_prec: int
    wgt_prec: int
    signed: bool  # any activation of the layer is negative
    booth: bool  # Booth recoding on (and taken by the design)
    filter_sets: list[list[int]]
    schedule: LayerSchedule | None  # BitTactical designs only

    def mag(self, v: int) -> int:
        """|v| cut to pe_width bits, Booth-recoded if on."""
        m = abs(v) & ((1 << self.p.pe_width) - 1)
        return int(booth_table()[m]) if self.booth else m

    def ss_prec(self, values: list[int]) -> int:
        """ShapeShifter's precision of some lane values (spec: per-PE costs)."""
        mask = (1 << self.p.pe_width) - 1
        top = 0
        for v in values:
            u = v & mask
            if self.signed and u & (1 << (self.p.pe_width - 1)):
                u ^= mask
            top = max(top, (u.bit_length() - 1 if u else 0) + int(self.signed))
        return top + 1

    def acts(self, w: int, t: int) -> list[int]:
        """The L activations of window w at buffer row t."""
        return [self.lay.act(w, t, i) for i in range(self.p.lanes)]

    def wgts(self, fset: int, f_local: int, t: int) -> list[int]:
        """The L weights of filter f_local of filter set fset at buffer row t."""
        f = self.filter_sets[fset][f_local]
        return [self.lay.wgt(f, t, i) for i in range(self.p.lanes)]

    def selected_acts(self, w: int, fset: int, f_local: int, t: int) -> list[int]:
        """The activations the scheduled slots of this filter read when row t runs (BitTactical)."""
        rows = self.schedule.act_row[fset, f_local, t]
        lanes = self.schedule.act_lane[fset, f_local, t]
        return [self.lay.act(w, int(r), int(i)) for r, i in zip(rows, lanes, strict=True) if r >= 0]


# ---------------------------------------------------------------- per-PE costs, one per design
# Signature: (ctx, window w, filter set fset, filter f_local of the set, buffer row t) -> cycles.


def dadiannao(ctx: PEContext, w: int, fset: int, f_local: int, t: int) -> int:
    """Bit-parallel: one cycle."""
    return 1


def bittactical(ctx: PEContext, w: int, fset: int, f_local: int, t: int) -> int:
    """DaDianNao on the schedule: one cycle."""
    return 1


def stripes(ctx: PEContext, w: int, fset: int, f_local: int, t: int) -> int:
    """The layer's activation precision (at most pe_width)."""
    return min(ctx.act_prec, ctx.p.pe_width)


def bitpragmatic(ctx: PEContext, w: int, fset: int, f_local: int, t: int) -> int:
    """The two-stage shifter over the L activation magnitudes of row t of window w."""
    return _pragmatic([ctx.mag(a) for a in ctx.acts(w, t)], ctx.p.bits_first_stage)


def laconic(ctx: PEContext, w: int, fset: int, f_local: int, t: int) -> int:
    """max over lanes of max(1, popcount(|a|) * popcount(|w|))."""
    pairs = zip(ctx.acts(w, t), ctx.wgts(fset, f_local, t), strict=True)
    return max(max(1, bin(ctx.mag(a)).count("1") * bin(ctx.mag(b)).count("1")) for a, b in pairs)


def shapeshifter(ctx: PEContext, w: int, fset: int, f_local: int, t: int) -> int:
    """ShapeShifter's precision of the L activations of row t of window w."""
    return ctx.ss_prec(ctx.acts(w, t))


def loom(ctx: PEContext, w: int, fset: int, f_local: int, t: int) -> int:
    """ShapeShifter's precision (pe_serial_bits per cycle) times the weight precision."""
    return -(-ctx.ss_prec(ctx.acts(w, t)) // ctx.p.pe_serial_bits) * ctx.wgt_prec


def pragmatic_w(ctx: PEContext, w: int, fset: int, f_local: int, t: int) -> int:
    """The two-stage shifter over the L weight magnitudes of this filter at row t."""
    return _pragmatic([ctx.mag(v) for v in ctx.wgts(fset, f_local, t)], ctx.p.bits_first_stage)


def bittactical_e(ctx: PEContext, w: int, fset: int, f_local: int, t: int) -> int:
    """The two-stage shifter over the activations this filter's scheduled slots select."""
    return _pragmatic([ctx.mag(a) for a in ctx.selected_acts(w, fset, f_local, t)], ctx.p.bits_first_stage)


def bittactical_p(ctx: PEContext, w: int, fset: int, f_local: int, t: int) -> int:
    """ShapeShifter's precision of the activations this filter's scheduled slots select."""
    return ctx.ss_prec(ctx.selected_acts(w, fset, f_local, t))


# 8-bit bit-column designs (spec: new_designs.md 2.1-2.3; 8-bit weights, checked in reference_cycles).


def _bit(v: int, b: int) -> int:
    """Bit b of v's 8-bit two's complement pattern (b = 7: the sign)."""
    return ((v & ((1 << WEIGHT_BITS) - 1)) >> b) & 1


def bitlet(ctx: PEContext, w: int, fset: int, f_local: int, t: int) -> int:
    """Max over the 8 two's complement columns (sign column included) of the ones among the L lane weights."""
    vals = ctx.wgts(fset, f_local, t)
    return max(sum(_bit(v, b) for v in vals) for b in range(WEIGHT_BITS))


def bitwave(ctx: PEContext, w: int, fset: int, f_local: int, t: int) -> int:
    """Sign-magnitude columns b6..b0 (-128 read as -127) holding a one in some lane weight."""
    mags = [min(abs(v), MAGNITUDE_MAX) for v in ctx.wgts(fset, f_local, t)]
    return sum(1 for b in range(WEIGHT_BITS - 1) if any((m >> b) & 1 for m in mags))


def bitvert(ctx: PEContext, w: int, fset: int, f_local: int, t: int) -> int:
    """fixed_precision if set; else, over the columns b7..b0 minus the leading (b6, b5, ..) ones that equal the
    sign column in every lane (at most drop_sign_extension), the sum of ceil(work / m), work = the column's
    ones, or min(ones, zeros) when bidirectional; m = multipliers or lanes // 2."""
    p = ctx.p
    if p.fixed_precision:
        return p.fixed_precision
    vals = ctx.wgts(fset, f_local, t)
    lanes, sign = len(vals), WEIGHT_BITS - 1
    m = p.multipliers if p.multipliers is not None else max(1, lanes // 2)
    skipped = []
    for b in range(sign - 1, -1, -1):
        if len(skipped) == p.drop_sign_extension or any(_bit(v, b) != _bit(v, sign) for v in vals):
            break
        skipped.append(b)
    total = 0
    for b in range(WEIGHT_BITS):
        if b in skipped:
            continue
        ones = sum(_bit(v, b) for v in vals)
        work = min(ones, lanes - ones) if p.bidirectional else ones
        total += -(-work // m)
    return total

# ---------------------------------------------------------------- the loops


def _chunks(n: int, size: int) -> list[list[int]]:
    return [list(range(s, min(n, s + size))) for s in range(0, n, size)]


def reference_cycles(layer: LayerTrace, arch: str | Design, params: SimParams | None = None, sample: int = 0) -> int:
    """compute_cycles of one sample of one layer, by brute force (arch: a name or a registry Design).

    Raises ConfigError for an unknown design or an option the design does not take.
    """
    from bitpruner.sim.designs import check_options, design_of  # the registry imports this module's costs

    p = params or SimParams()
    design = design_of(arch)
    check_options(design, p, "reference")
    if design.weight_bits:  # Bitlet, BitWave, BitVert: wider weights are refused, as in the engine
        check_weights(layer, design.name)
    if p.dataflow_choice:  # BitWave's dataflow choice: the min over BitSim's seven geometries
        return min(reference_cycles(layer, design, q, sample) for q in dataflows(p))
    if layer.groups > 1:  # grouped / depthwise conv: DNNsim's grouped-layer loop (section at the end)
        return grouped_reference_cycles(layer, design, p, sample)
    lay = _Layer(layer, p, sample)
    act_prec, wgt_prec = layer.precisions(p.pe_width)
    window_sets = _chunks(len(lay.windows), p.columns)
    filter_sets = _chunks(lay.K, p.rows)
    groups = _chunks(len(filter_sets), p.tiles)

    schedule = plans = None
    if design.scheduled:
        from bitpruner.sim.tactical import schedule_layer  # numba: loaded only for the BitTactical designs

        wrows = np.array([[[lay.wgt(f, t, i) for i in range(p.lanes)] for t in range(lay.T)] for f in range(lay.K)],
                         dtype=np.int64)
        schedule = schedule_layer(wrows, p.rows, p.lookahead, p.lookaside, n_channels=lay.C)
        # DNNsim's tile loop: per (window set, group) the buffer row of every tile
        plans = schedule.step_plan(p.tiles, len(window_sets))
    ctx = PEContext(lay=lay, p=p, act_prec=act_prec, wgt_prec=wgt_prec, signed=bool(layer.activations.min() < 0),
                    booth=p.booth_encoding and design.takes("booth_encoding"), filter_sets=filter_sets,
                    schedule=schedule)

    def steps_of(ws_index: int, group_index: int) -> list[list[int]]:
        """Per step, the buffer row each tile of the group runs (-1: idle)."""
        group = groups[group_index]
        if plans is None:
            return [[t] * len(group) for t in range(lay.T)]
        return [[int(r) for r in row[: len(group)]] for row in plans[ws_index * len(groups) + group_index]]

    def column_costs(ws: list[int], group: list[int], rows: list[int]) -> list[int]:
        """Per column, the max PE cost over the busy tiles (tile i runs buffer row rows[i]) and their rows."""
        costs = []
        for c in range(p.columns):
            if c >= len(ws):
                costs.append(0)
                continue
            best = 0
            for fset, t in zip(group, rows, strict=True):  # one tile per filter set
                if t < 0:
                    continue  # this tile is idle
                for f_local in range(len(filter_sets[fset])):
                    best = max(best, design.reference_cost(ctx, ws[c], fset, f_local, t))
            costs.append(best)
        return costs

    if lay.fc:
        if design.fc_counts_steps:
            return sum(len(steps_of(0, gi)) for gi in range(len(groups)))
        cc, c = [0] * p.columns, 0
        for gi, group in enumerate(groups):
            for t, rows in enumerate(steps_of(0, gi)):
                cost = max(1, max(column_costs([0], group, rows)))
                col = t % p.columns
                c = max(c, cc[col])
                cc[col] = c + cost
                c += 1
        return max(cc)

    timer = _StepTimer(design, p)
    for wi, ws in enumerate(window_sets):
        for gi, group in enumerate(groups):
            for rows in steps_of(wi, gi):
                timer.step(column_costs(ws, group, rows), len(ws))
    return timer.cycles()


class _StepTimer:
    """DNNsim's timing of a layer's steps, in plain Python: without column registers a step costs its busiest
    column (at least 1 cycle); with them every column runs ahead by up to `column_registers` steps (a ring of the
    columns' finishing times; ShapeShifter first merges columns into its groups)."""

    def __init__(self, design, p: SimParams) -> None:
        self.design, self.group_size = design, p.group_size
        self.registers = p.column_registers if design.takes("column_registers") else 0
        self.total, self.cc = 0, [0] * p.columns
        self.ring, self.ring_idx, self.rc = [0] * max(self.registers, 1), 0, 0

    def step(self, costs: list[int], n_windows: int) -> None:
        """Time one step: `costs` per column, `n_windows` of the window set busy."""
        if not self.registers:
            self.total += max(1, max(costs))
            return
        if self.design.column_groups:
            costs = _shapeshifter_groups(costs, n_windows, self.group_size)
        for col, cost in enumerate(costs):
            self.cc[col] = max(self.rc, self.cc[col]) + cost
        self.rc = self.ring[self.ring_idx]
        self.ring[self.ring_idx] = max(self.cc)
        self.ring_idx = (self.ring_idx + 1) % self.registers

    def cycles(self) -> int:
        return max(self.cc) if self.registers else self.total


def _shapeshifter_groups(costs: list[int], n_windows: int, group_size: int) -> list[int]:
    """DNNsim's ShapeShifter column groups (max over group_size columns), including its write of cost 1 into
    group n_windows / group_size after a window set whose size is a multiple of the group size."""
    groups = [max(costs[g : g + group_size]) for g in range(0, len(costs), group_size)]
    if n_windows % group_size == 0 and n_windows // group_size < len(groups):
        groups[n_windows // group_size] = max(groups[n_windows // group_size], 1)
    return groups + [0] * (len(costs) - len(groups))


# ---------------------------------------------------------------- grouped and depthwise convolutions


class _GroupView(_Layer):
    """One group of a grouped conv as DNNsim tiles it (DNNsim's ``fill_weight_buffer`` / ``fill_window_buffer``),
    by index arithmetic on the whole layer: grouped, filters ``j*K/g ..`` over channels ``j*C/g ..``; depthwise
    (``p.lanes == p.rows == D``), filters ``j*D + m`` with filter m's weight on lane m only and lane i carrying
    the channel of filter ``j*D + i`` (``f // (K/C)``, zero past the last filter)."""

    def __init__(self, layer: LayerTrace, p: SimParams, sample: int, j: int, depthwise: bool):
        from dataclasses import replace  # (kept local: this section is separate from the per-PE costs above)

        super().__init__(replace(layer, groups=1, weights=layer.weights[:1],
                                             activations=layer.activations[:, : layer.weights.shape[1]]), p, sample)
        self.full_W, self.full_A = layer.weights, np.pad(layer.activations[sample], ((0, 0),) + ((layer.pad,) * 2,) * 2)
        k_all, c_all = layer.weights.shape[0], layer.activations.shape[1]
        self.depthwise = depthwise
        if depthwise:
            d = p.lanes
            self.f0, self.K, self.C, self.mult = j * d, min(d, k_all - j * d), d, k_all // c_all
            self.nch, self.T = 1, self.Kx * self.Ky
        else:
            self.f0, self.K, self.c0 = j * (k_all // layer.groups), k_all // layer.groups, j * (c_all // layer.groups)

    def act(self, w: int, t: int, i: int) -> int:
        kx, ky, ch = self._split(t, i)
        if self.depthwise:
            if ch >= self.K:  # no filter on this lane: DNNsim leaves it zero
                return 0
            channel = (self.f0 + ch) // self.mult
        else:
            if ch >= self.C:
                return 0
            channel = self.c0 + ch
        x0, y0 = self.windows[w]
        return int(self.full_A[channel, x0 + kx, y0 + ky])

    def wgt(self, f: int, t: int, i: int) -> int:
        kx, ky, ch = self._split(t, i)
        if self.depthwise:
            return int(self.full_W[self.f0 + f, 0, kx, ky]) if ch == f else 0
        if ch >= self.C:
            return 0
        return int(self.full_W[self.f0 + f, ch, kx, ky])


def grouped_reference_cycles(layer: LayerTrace, design: Design, p: SimParams, sample: int = 0) -> int:
    """compute_cycles of a grouped conv (``layer.groups > 1``) by brute force, DNNsim's grouped-layer loop:
    groups outermost, each group's window sets, filter-set groups and steps as for a dense layer; one
    column-register ring and BitTactical's skip counters across the groups; the layer's signedness."""
    from bitpruner.sim.grouped import chained_plans, diagonal_schedule, is_depthwise

    depthwise = is_depthwise(layer)
    k_all = layer.weights.shape[0]
    if depthwise:
        d = min(p.lanes, p.rows)
        p = p.model_copy(update={"lanes": d, "rows": d})
        n_groups = -(-k_all // d)
    else:
        n_groups = layer.groups
    views = [_GroupView(layer, p, sample, j, depthwise) for j in range(n_groups)]
    act_prec, wgt_prec = layer.precisions(p.pe_width)
    signed = bool(layer.activations.min() < 0)
    n_ws = -(-len(views[0].windows) // p.columns)
    plans = [None] * n_groups
    schedules = [None] * n_groups
    if design.scheduled:
        from bitpruner.sim.tactical import schedule_layer

        for j, lay in enumerate(views):
            wrows = np.array([[[lay.wgt(f, t, i) for i in range(p.lanes)] for t in range(lay.T)]
                              for f in range(lay.K)], dtype=np.int64)
            sch = schedule_layer(wrows, p.rows, p.lookahead, p.lookaside, n_channels=None if depthwise else lay.C)
            schedules[j] = diagonal_schedule(sch) if depthwise else sch
        plans = chained_plans(schedules, p.tiles, n_ws, p.lookahead)
    timer = _StepTimer(design, p)  # one timing across the groups: DNNsim's column registers carry over
    for j, lay in enumerate(views):
        window_sets = _chunks(len(lay.windows), p.columns)
        filter_sets = _chunks(lay.K, p.rows)
        fgroups = _chunks(len(filter_sets), p.tiles)
        ctx = PEContext(lay=lay, p=p, act_prec=act_prec, wgt_prec=wgt_prec, signed=signed,
                        booth=p.booth_encoding and design.takes("booth_encoding"), filter_sets=filter_sets,
                        schedule=schedules[j])
        for wi, ws in enumerate(window_sets):
            for gi, fgroup in enumerate(fgroups):
                if plans[j] is None:
                    steps = [[t] * len(fgroup) for t in range(lay.T)]
                else:
                    group_plans, n_plan_ws = plans[j]
                    plan = group_plans[(wi if n_plan_ws > 1 else 0) * len(fgroups) + gi]
                    steps = [[int(r) for r in row[: len(fgroup)]] for row in plan]
                for rows in steps:
                    costs = []
                    for c in range(p.columns):
                        best = 0
                        if c < len(ws):
                            for fset, t in zip(fgroup, rows, strict=True):
                                if t >= 0:
                                    for f_local in range(len(filter_sets[fset])):
                                        best = max(best, design.reference_cost(ctx, ws[c], fset, f_local, t))
                        costs.append(best)
                    timer.step(costs, len(ws))
    return timer.cycles()
