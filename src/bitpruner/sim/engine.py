"""The cycle model: one tiling/step engine, one small per-PE cost per architecture (spec: simulator.md).

Algebra used to skip work (all costs are non-negative and every step is a max):
- activation-side costs (BitPragmatic, ShapeShifter, Loom) depend on one (position, channel chunk) of
  the padded input only, so they are computed once per position and chunk and gathered per window/row;
  they do not depend on the filters, so a window set's steps repeat for every filter-set group;
- PragmaticW's cost depends on (filter, row) only, so per row it is a max over the group's filters;
- Laconic's max over windows and filters of a per-lane product is the product of per-lane maxima;
- BitTacticalP's max over filters of "max bits + 1" is taken over the union of their selected lanes,
  and BitTacticalE's per-filter lane patterns are deduplicated per step before they meet the windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bitpruner.errors import ConfigError, TraceError
from bitpruner.sim.booth import BOOTH_LIMIT, booth_table
from bitpruner.sim.params import (
    BOOTH_ARCHS,
    COLUMN_REGISTER_ARCHS,
    TACTICAL_ARCHS,
    SimParams,
    resolve_arch,
)
from bitpruner.sim.traces import LayerTrace, NetworkTrace

MODE_PRAGMATIC, MODE_SHAPESHIFTER = 0, 1
MAX_SLICED_KEYS = 63  # as in kernels.py (kept here so importing the engine does not load numba)


@dataclass(frozen=True)
class LayerResult:
    name: str
    type: str
    compute_cycles: int


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class Geometry:
    """Tiling of one layer: buffer rows, windows, window sets, filter sets and filter-set groups."""

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
        self.nch = _ceil_div(self.C, self.lanes)
        self.T = self.nch * self.Kx * self.Ky
        self.n_win = self.Ox * self.Oy
        self.WS = _ceil_div(self.n_win, self.cols)
        self.FS = _ceil_div(self.K, self.rows)
        self.G = _ceil_div(self.FS, self.tiles)
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
        """int64 [k, T, L]: the weight-buffer rows of the k filters in w."""
        cpad, k = self.nch * self.lanes, w.shape[0]
        if self.fc:
            wp = np.zeros((k, cpad), np.int64)
            wp[:, : self.C] = w
            return wp.reshape(k, self.T, self.lanes)
        wp = np.zeros((k, cpad, self.Kx, self.Ky), np.int64)
        wp[:, : self.C] = w
        wp = wp.reshape(k, self.nch, self.lanes, self.Kx, self.Ky).transpose(0, 4, 3, 1, 2)
        return np.ascontiguousarray(wp).reshape(k, self.T, self.lanes)

    def act_values(self, layer: LayerTrace, sample: int) -> np.ndarray:
        """int64 [Xp, Yp, nch*L]: sample's padded activations, channels last (zero past C)."""
        cpad = self.nch * self.lanes
        out = np.zeros((self.Xp, self.Yp, cpad), np.int64)
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


_POPCOUNT16 = np.array([bin(v).count("1") for v in range(1 << 16)], dtype=np.int64)


def popcounts(values: np.ndarray) -> np.ndarray:
    """Set bits of each (16-bit, non-negative) value."""
    return _POPCOUNT16[values]


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


def _group_columns(cost: np.ndarray, win_in_ws: np.ndarray, group_size: int, quirk: bool) -> np.ndarray:
    """Merge columns [.., Cc] into ShapeShifter's column groups (max), with DNNsim's trailing-group quirk:
    after a window set of n windows it writes cost 1 into group n / group_size when n is a multiple of
    the group size (an idle group then costs a cycle under column registers)."""
    cols = cost.shape[-1]
    n_groups = _ceil_div(cols, group_size)
    if group_size > 1:
        pad = np.zeros(cost.shape[:-1] + (n_groups * group_size,), cost.dtype)
        pad[..., :cols] = cost
        cost = pad.reshape(cost.shape[:-1] + (n_groups, group_size)).max(axis=-1)
    if quirk:
        cost = cost.copy()
        for ws, n in enumerate(win_in_ws.tolist()):
            if n % group_size == 0 and n // group_size < n_groups:
                cost[ws, ..., n // group_size] = np.maximum(cost[ws, ..., n // group_size], 1)
    return np.ascontiguousarray(cost)


def _conv_total(cost: np.ndarray, n_steps: np.ndarray, reps: int, registers: int) -> int:
    """Sum of per-step max over columns, or the column-register timing. cost[WS, Gc, S, Cc]."""
    if registers > 0:
        from bitpruner.sim.kernels import ring_cycles

        return int(ring_cycles(cost, n_steps.astype(np.int64), reps, registers))
    step_max = cost.max(axis=3)  # [WS, Gc, S]
    valid = np.arange(cost.shape[2])[None, :] < n_steps[:, None]
    return int(reps * np.where(valid[None], np.maximum(step_max, 1), 0).sum())


# ---------------------------------------------------------------- the simulator


class LayerSimulator:
    """Simulates one layer for one architecture; weight-side work is done once, act-side per sample."""

    def __init__(self, layer: LayerTrace, arch: str, params: SimParams):
        self.layer, self.arch, self.p = layer, arch, params
        self.g = Geometry(layer, params)
        self.act_prec, self.wgt_prec = layer.precisions(params.pe_width)
        self.signed = bool(layer.activations.min() < 0)
        self.reach = min((1 << params.bits_first_stage) - 1, 15)
        self.registers = params.column_registers if (arch in COLUMN_REGISTER_ARCHS and not self.g.fc) else 0
        self.booth = params.booth_encoding and arch in BOOTH_ARCHS
        if self.booth:
            self._check_booth()
        self._schedule = None

    def _check_booth(self) -> None:
        sides = {"Laconic": ("activations", "weights"), "PragmaticW": ("weights",)}.get(self.arch, ("activations",))
        for side in sides:
            values = getattr(self.layer, side)
            if values.size and np.abs(values).max() >= BOOTH_LIMIT:
                raise TraceError(
                    f"layer {self.layer.name!r}: {side} hold |v| = {int(np.abs(values).max())} >= {BOOTH_LIMIT}, "
                    f"beyond DNNsim's Booth table"
                )

    # -- weight-side helpers
    def _wrows(self) -> np.ndarray:
        return self.g.weight_rows(self.layer.weights)

    def schedule(self):
        if self._schedule is None:
            from bitpruner.sim.tactical import schedule_layer

            self._schedule = schedule_layer(
                self._wrows(), self.p.rows, self.p.lookahead, self.p.lookaside, n_channels=self.g.C
            )
        return self._schedule

    def plans(self) -> tuple[list[np.ndarray], int]:
        """BitTactical step plans: one [steps, tiles] array of buffer rows (-1: idle tile) per
        (window set, group), and how many window sets they cover (1 when every window set repeats
        the same plan, the usual case; DNNsim's carried skip counters can make them differ)."""
        sch = self.schedule()
        n_ws = 1 if self.g.fc else self.g.WS
        plan = sch.step_plan(self.p.tiles, 1)
        if n_ws > 1 and any(step.shape[0] == 0 for step in plan):
            return sch.step_plan(self.p.tiles, n_ws), n_ws
        return plan, 1

    # -- per sample
    def cycles(self, sample: int) -> int:
        g, arch = self.g, self.arch
        if arch == "DaDianNao":
            return g.G * g.T * (1 if g.fc else g.WS)
        if arch == "BitTactical":
            plans, n_plan_ws = self.plans()
            steps = sum(plan.shape[0] for plan in plans)
            return steps * (1 if g.fc or n_plan_ws > 1 else g.WS)
        if arch == "Stripes":
            cost = min(self.act_prec, self.p.pe_width)
            if g.fc:
                return fc_cycles([np.full(g.T, cost)] * g.G, g.cols)
            return g.WS * g.G * g.T * cost
        if arch == "PragmaticW":
            return self._pragmatic_w()
        if arch == "Laconic":
            return self._laconic(sample)
        if arch in ("BitTacticalE", "BitTacticalP"):
            return self._tactical(sample)
        return self._act_side(sample)

    def _act_side(self, sample: int) -> int:
        from bitpruner.sim.kernels import pragmatic_rows

        g, p = self.g, self.p
        vals = g.act_values(self.layer, sample)
        if self.arch == "BitPragmatic":
            mag = magnitudes(vals, p.pe_width, self.booth).reshape(-1, g.lanes)
            per_pos = pragmatic_rows(np.ascontiguousarray(mag), self.reach).reshape(g.Xp, g.Yp, g.nch)
        else:
            bits = shapeshifter_bits(vals, p.pe_width, self.signed).reshape(g.Xp, g.Yp, g.nch, g.lanes)
            per_pos = bits.max(axis=-1) + 1
            if self.arch == "Loom":
                per_pos = -(-per_pos // p.pe_serial_bits) * self.wgt_prec
        if g.fc:
            return fc_cycles([per_pos[0, 0]] * g.G, g.cols)
        cost = g.gather_rows(per_pos)[:, None]  # [WS, 1, T, Cc]; same for every filter-set group
        if self.arch == "ShapeShifter" and self.registers:
            cost = _group_columns(cost, g.win_in_ws, p.group_size, quirk=True)
        return _conv_total(cost, np.array([g.T]), g.G, self.registers)

    def _pragmatic_w(self) -> int:
        from bitpruner.sim.kernels import pragmatic_rows

        g, p = self.g, self.p
        per_group = np.zeros((g.G, g.T), np.int64)
        for grp in range(g.G):  # one group at a time bounds the memory on large fc layers
            wrows = g.weight_rows(self.layer.weights[g.group_filters(grp)])
            mag = magnitudes(wrows, p.pe_width, self.booth).reshape(-1, g.lanes)
            per_group[grp] = pragmatic_rows(np.ascontiguousarray(mag), self.reach).reshape(-1, g.T).max(axis=0)
        if g.fc:
            return fc_cycles(list(per_group), g.cols)
        if not self.registers:
            return int(g.WS * per_group.sum())
        active = (np.arange(g.cols)[None, :] < g.win_in_ws[:, None]).astype(np.int64)  # [WS, Cc]
        cost = per_group[None, :, :, None] * active[:, None, None, :]
        return _conv_total(np.ascontiguousarray(cost), np.full(g.G, g.T), 1, self.registers)

    def _laconic(self, sample: int) -> int:
        g, p = self.g, self.p
        vals = g.act_values(self.layer, sample)
        pop_a = popcounts(magnitudes(vals, p.pe_width, self.booth)).reshape(g.Xp, g.Yp, g.nch, g.lanes)
        max_w = np.zeros((g.G, g.T, g.lanes), np.int64)  # per group: max popcount over its filters
        for grp in range(g.G):
            wrows = g.weight_rows(self.layer.weights[g.group_filters(grp)])
            max_w[grp] = popcounts(magnitudes(wrows, p.pe_width, self.booth)).max(axis=0)
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

    def _tactical_blocks(self, plans: list[np.ndarray], mode: int):
        """Lane patterns per plan step (block), vectorized over all blocks.

        A pattern is one filter's L (row, lane) reads as keys ``row*L + lane`` (-1: lane idle). Mode E keeps
        each block's distinct patterns; mode P only needs the union of a block's keys (one key per pattern).
        Returns the blocks' distinct keys (row, lane, offsets), the patterns as indices into their block's
        keys, their key bit masks, and the pattern offsets per block.
        """
        sch, lanes, tiles = self.schedule(), self.g.lanes, self.p.tiles
        steps = np.array([plan.shape[0] for plan in plans], np.int64)
        n_blocks = int(steps.sum())
        if n_blocks == 0:
            empty = np.zeros(0, np.int64)
            return empty, empty, np.zeros(1, np.int64), np.full((0, lanes), -1, np.int64), empty, np.zeros(1, np.int64)
        rows = np.concatenate([plan for plan in plans])  # [blocks, tiles]: buffer row per tile
        first_set = np.repeat((np.arange(len(plans)) % self.g.G) * tiles, steps)
        blk, tile = np.nonzero(rows >= 0)  # busy (block, tile) pairs
        sets, brow = first_set[blk] + tile, rows[blk, tile]
        arow = sch.act_row[sets, :, brow]  # [busy, R, L]
        keys = np.where(arow >= 0, arow * lanes + sch.act_lane[sets, :, brow], -1).reshape(-1, lanes)
        pat_blk = np.repeat(blk, arow.shape[1])
        real = (np.arange(arow.shape[1])[None, :] < sch.n_filters[sets][:, None]).reshape(-1)
        # Every block also gets one all-idle pattern: a PE with nothing to read still costs 1 cycle.
        keys = np.concatenate([keys[real], np.full((n_blocks, lanes), -1, np.int64)])
        pat_blk = np.concatenate([pat_blk[real], np.arange(n_blocks)])
        span = lanes * self.g.T + 1  # block-qualified keys: blk*span + key (keys < span - 1)
        if mode == MODE_SHAPESHIFTER:
            flat = np.unique((pat_blk[:, None] * span + keys)[keys >= 0])
            keys = np.full((flat.size + n_blocks, lanes), -1, np.int64)
            keys[: flat.size, 0] = flat % span
            pat_blk = np.concatenate([flat // span, np.arange(n_blocks)])
            order = np.argsort(pat_blk, kind="stable")
            keys, pat_blk = keys[order], pat_blk[order]
        elif self.g.n_win > 1:  # distinct patterns per block pay off when many windows meet them
            both = _unique_rows(np.concatenate([pat_blk[:, None], keys], axis=1))  # sorted by block
            pat_blk, keys = both[:, 0], both[:, 1:]
        else:
            order = np.argsort(pat_blk, kind="stable")
            keys, pat_blk = keys[order], pat_blk[order]
        offsets = np.searchsorted(pat_blk, np.arange(n_blocks + 1))
        qualified = np.where(keys >= 0, pat_blk[:, None] * span + keys, -1)
        ukeys = np.unique(qualified[qualified >= 0])
        key_blk = ukeys // span
        key_off = np.searchsorted(key_blk, np.arange(n_blocks + 1))
        pat_idx = np.where(qualified >= 0, np.searchsorted(ukeys, qualified) - key_off[pat_blk][:, None], -1)
        # Keys each pattern reads, as a bit mask (used when its block has at most MAX_SLICED_KEYS keys).
        bits = np.where((pat_idx >= 0) & (pat_idx < MAX_SLICED_KEYS), np.left_shift(1, np.clip(pat_idx, 0, 62)), 0)
        pat_mask = np.bitwise_or.reduce(bits.astype(np.int64), axis=1)
        ukeys = ukeys % span
        return (np.ascontiguousarray(ukeys // lanes), np.ascontiguousarray(ukeys % lanes), key_off.astype(np.int64),
                np.ascontiguousarray(pat_idx, dtype=np.int64), np.ascontiguousarray(pat_mask, dtype=np.int64),
                offsets.astype(np.int64))

    def _tactical(self, sample: int) -> int:
        from bitpruner.sim.kernels import pattern_costs

        g, p = self.g, self.p
        mode = MODE_PRAGMATIC if self.arch == "BitTacticalE" else MODE_SHAPESHIFTER
        plans, n_plan_ws = self.plans()
        key_row, key_lane, key_off, pat_idx, pat_mask, offsets = self._tactical_blocks(plans, mode)
        vals = g.act_values(self.layer, sample)
        if mode == MODE_PRAGMATIC:
            vals = magnitudes(vals, p.pe_width, self.booth)
        else:
            vals = shapeshifter_bits(vals, p.pe_width, self.signed)
        cost = pattern_costs(
            np.ascontiguousarray(vals), g.x0, g.y0, g.row_x, g.row_y, g.row_ch,
            key_row, key_lane, key_off, pat_idx, pat_mask, offsets, g.cols, mode, self.reach,
        )  # [WS, blocks, Cc]
        steps = np.array([plan.shape[0] for plan in plans], np.int64)
        first = np.concatenate([[0], np.cumsum(steps)])
        if g.fc:
            return fc_cycles([np.maximum(cost[0, first[i] : first[i + 1], 0], 1) for i in range(g.G)], g.cols)
        s_max = int(steps.max()) if steps.size else 0
        cost4 = np.zeros((g.WS, g.G, s_max, g.cols), np.int64)
        for ws in range(g.WS):
            for grp in range(g.G):
                i = (ws if n_plan_ws > 1 else 0) * g.G + grp
                cost4[ws, grp, : steps[i]] = cost[ws, first[i] : first[i + 1]]
        group_steps = steps.reshape(n_plan_ws, g.G)
        if mode == MODE_SHAPESHIFTER and self.registers:
            cost4 = _group_columns(cost4, g.win_in_ws, p.group_size, quirk=True)
        if n_plan_ws == 1:
            return _conv_total(cost4, group_steps[0], 1, self.registers)
        # Window sets with their own plans (rare): blocks of (window set, group) in order.
        if self.registers:
            return ring_cycles_per_ws(cost4, group_steps, self.registers)
        return int(sum(_conv_total(cost4[ws : ws + 1], group_steps[ws], 1, 0) for ws in range(g.WS)))


def _unique_rows(rows: np.ndarray) -> np.ndarray:
    """Distinct rows of a 2-D integer array, sorted lexicographically (first column most significant)."""
    if rows.shape[0] == 0:
        return rows
    ordered = rows[np.lexsort(rows.T[::-1])]
    keep = np.ones(ordered.shape[0], dtype=bool)
    keep[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    return ordered[keep]


def ring_cycles_per_ws(cost4: np.ndarray, group_steps: np.ndarray, registers: int) -> int:
    """Column-register timing when each window set has its own per-group step counts."""
    from bitpruner.sim.kernels import ring_cycles

    # Flatten (ws, group) into one axis of blocks so one ring_cycles call keeps the registers' state.
    n_ws, n_g, s_max, cols = cost4.shape
    flat = cost4.reshape(1, n_ws * n_g, s_max, cols)
    return int(ring_cycles(np.ascontiguousarray(flat), group_steps.reshape(-1).astype(np.int64), 1, registers))


def simulate_layer(layer: LayerTrace, arch: str, params: SimParams | None = None, samples: int = 1) -> int:
    """compute_cycles of one layer (summed over the first `samples` samples)."""
    params = params or SimParams()
    arch = resolve_arch(arch)
    n = layer.activations.shape[0]
    if not 1 <= samples <= n:
        raise TraceError(f"layer {layer.name!r}: asked for {samples} samples, the trace holds {n}")
    if arch in TACTICAL_ARCHS and params.lanes < 1:
        raise ConfigError("tactical: lanes must be >= 1")
    sim = LayerSimulator(layer, arch, params)
    return sum(sim.cycles(s) for s in range(samples))


def simulate_network(
    trace: NetworkTrace,
    arch: str,
    params: SimParams | None = None,
    samples: int = 1,
    progress: bool = False,
    tactical: bool = False,
) -> list[LayerResult]:
    """Per-layer compute cycles of a whole network; `progress` shows a bar over the layers.

    `tactical` turns DaDianNao / BitPragmatic / ShapeShifter into BitTactical / E / P, like `--tactical`.
    """
    params = params or SimParams()
    arch = resolve_arch(arch, tactical=tactical)
    layers = trace.layers
    results = []
    if progress:
        from rich.progress import track

        layers = track(layers, description=f"simulating {trace.name} on {resolve_arch(arch)}")
    for layer in layers:
        cycles = simulate_layer(layer, arch, params, samples)
        results.append(LayerResult(name=layer.name, type=layer.type, compute_cycles=int(cycles)))
    return results
