"""Numba kernels of the cycle model (few signatures, all int64, cached on disk: see jit.py)."""

from __future__ import annotations

import numpy as np

from bitpruner.sim.tiling import FULL_REACH, MAX_SLICED_KEYS, VALUE_BITS, KernelMode
from bitpruner.utils.jit import njit, prange

# numba freezes module-level ints as compile-time constants.
_PRAGMATIC = int(KernelMode.PRAGMATIC)
_SHAPESHIFTER = int(KernelMode.SHAPESHIFTER)


@njit()
def _popcount(v):
    c = 0
    while v:
        v &= v - 1
        c += 1
    return c


@njit()
def pragmatic_cost(vals, n, reach):
    """Two-stage shifter cycles over vals[:n] (non-negative; destroyed): at least 1.

    `reach` = 2**bits_first_stage - 1, capped at FULL_REACH. Each cycle the offset is the lowest set
    bit over all lanes; every lane clears its lowest set bit if it lies within `reach` bits of it.
    """
    if reach == 0:  # one shared shifter: one cycle per bit column with a one
        acc = 0
        for i in range(n):
            acc |= vals[i]
        c = _popcount(acc)
        return c if c > 0 else 1
    if reach >= FULL_REACH:  # one shifter per lane: the lane with the most ones decides
        best = 1
        for i in range(n):
            c = _popcount(vals[i])
            if c > best:
                best = c
        return best
    low = 0  # lowest set bit (as a power of two) over all lanes
    for i in range(n):
        b = vals[i] & -vals[i]
        if b != 0 and (low == 0 or b < low):
            low = b
    cycles = 0
    while low != 0:
        limit = low << reach
        low = 0
        for i in range(n):
            v = vals[i]
            if v == 0:
                continue
            b = v & -v
            if b <= limit:
                v ^= b
                vals[i] = v
                b = v & -v
            if b != 0 and (low == 0 or b < low):
                low = b
        cycles += 1
    return cycles if cycles > 0 else 1


@njit()
def pragmatic_rows(vals, reach):
    """Shifter cycles of every row of vals[N, L] (magnitudes, Booth-recoded if wanted)."""
    n_rows, lanes = vals.shape
    out = np.empty(n_rows, np.int64)
    scratch = np.empty(lanes, np.int64)
    for r in range(n_rows):
        scratch[:] = vals[r]
        out[r] = pragmatic_cost(scratch, lanes, reach)
    return out


@njit()
def ring_cycles(cost, n_steps, reps, registers):
    """Columns with run-ahead registers: cost[WS, filter_groups, S, Cc]; steps run
    ws -> (reps x group) -> s < n_steps[group].

    Each step every column c starts at max(rc, cc[c]) and adds its cost; rc is the ring's oldest max(cc).
    """
    n_ws, n_groups, _, n_cols = cost.shape
    cc = np.zeros(n_cols, np.int64)
    ring = np.zeros(registers, np.int64)
    idx = 0
    rc = 0
    for ws in range(n_ws):
        for _ in range(reps):
            for grp in range(n_groups):
                for s in range(n_steps[grp]):
                    top = 0
                    for c in range(n_cols):
                        start = cc[c] if cc[c] > rc else rc
                        cc[c] = start + cost[ws, grp, s, c]
                        if cc[c] > top:
                            top = cc[c]
                    rc = ring[idx]
                    ring[idx] = top
                    idx = (idx + 1) % registers
    return cc.max()


@njit()
def _sliced_shifter(planes, reach):
    """The two-stage shifter on bit planes (planes[b]: the lanes holding bit b; destroyed): at least 1."""
    cycles = 0
    off = 0
    n_bits = planes.shape[0]
    while True:
        while off < n_bits and planes[off] == 0:
            off += 1  # the offset never moves down: every remaining bit is at or above it
        if off == n_bits:
            break
        free = -1  # lanes that have not cleared a bit this cycle
        top = min(off + reach, n_bits - 1)
        for b in range(off, top + 1):
            take = planes[b] & free
            planes[b] &= ~take
            free &= ~take
        cycles += 1
    return cycles if cycles > 0 else 1


@njit(parallel=True)
def pattern_costs(vals, x0, y0, row_x, row_y, row_ch, key_row, key_lane, key_off, pat_idx, pat_mask, pat_off,
                  n_cols, mode, reach):
    """Per window and block, the max over the block's lane patterns of a per-PE cost.

    vals[Xp, Yp, Cpad]: per activation, its magnitude (mode KernelMode.PRAGMATIC: BitPragmatic shifter cost)
    or its ShapeShifter bit count (KernelMode.SHAPESHIFTER: cost = max + 1). Window w's origin is (x0[w], y0[w]); buffer row r
    reads position (+row_x[r], +row_y[r]) and channels row_ch[r] + lane. Block b reads the activations
    (key_row[j], key_lane[j]) for j in key_off[b]:key_off[b+1], gathered once per window; its patterns
    pat_off[b]:pat_off[b+1] list, per lane, an index into those keys (-1: lane idle); when a block has at
    most MAX_SLICED_KEYS keys, pat_mask[p] is the set of keys pattern p reads as a bit mask (the shifter
    then runs bit-sliced: one word per bit position, one bit per key; duplicate lanes do not matter).
    Returns int64 [ceil(W / n_cols), n_blocks, n_cols] (0 where a column has no window).
    """
    n_win = x0.shape[0]
    n_ws = (n_win + n_cols - 1) // n_cols
    n_blocks = pat_off.shape[0] - 1
    lanes = pat_idx.shape[1]
    max_keys = 1
    for b in range(n_blocks):
        max_keys = max(max_keys, key_off[b + 1] - key_off[b])
    out = np.zeros((n_ws, n_blocks, n_cols), np.int64)
    for ws in prange(n_ws):
        scratch = np.empty(lanes, np.int64)
        local = np.empty(max_keys, np.int64)
        local_pop = np.empty(max_keys, np.int64)
        key_planes = np.zeros(VALUE_BITS, np.int64)
        planes = np.zeros(VALUE_BITS, np.int64)
        for c in range(n_cols):
            w = ws * n_cols + c
            if w >= n_win:
                break
            for b in range(n_blocks):
                k0 = key_off[b]
                for j in range(key_off[b + 1] - k0):
                    r = key_row[k0 + j]
                    local[j] = vals[x0[w] + row_x[r], y0[w] + row_y[r], row_ch[r] + key_lane[k0 + j]]
                    if mode == _PRAGMATIC:
                        local_pop[j] = _popcount(local[j])
                sliced = mode == _PRAGMATIC and 0 < reach < FULL_REACH and key_off[b + 1] - k0 <= MAX_SLICED_KEYS
                if sliced:
                    for bit in range(VALUE_BITS):
                        key_planes[bit] = 0
                    for j in range(key_off[b + 1] - k0):
                        v = local[j]
                        bit = 0
                        while v:
                            if v & 1:
                                key_planes[bit] |= 1 << j
                            v >>= 1
                            bit += 1
                best = 0
                for p in range(pat_off[b], pat_off[b + 1]):
                    if mode == _SHAPESHIFTER:
                        top = -1
                        for i in range(lanes):
                            j = pat_idx[p, i]
                            if j >= 0 and local[j] > top:
                                top = local[j]
                        cost = top + 1 if top >= 0 else 1
                    else:
                        # max popcount <= shifter cycles <= popcount(OR): run the shifter only if needed
                        acc = 0
                        low = 1
                        for i in range(lanes):
                            j = pat_idx[p, i]
                            if j >= 0:
                                acc |= local[j]
                                if local_pop[j] > low:
                                    low = local_pop[j]
                        high = _popcount(acc)
                        if reach == 0:
                            cost = high if high > 0 else 1
                        elif reach >= FULL_REACH or high <= low or high <= best:
                            cost = low
                        elif sliced:
                            for bit in range(VALUE_BITS):
                                planes[bit] = key_planes[bit] & pat_mask[p]
                            cost = _sliced_shifter(planes, reach)
                        else:
                            n = 0
                            for i in range(lanes):
                                j = pat_idx[p, i]
                                if j >= 0 and local[j] != 0:  # zeros do no work in the shifter
                                    scratch[n] = local[j]
                                    n += 1
                            cost = pragmatic_cost(scratch, n, reach)
                    if cost > best:
                        best = cost
                out[ws, b, c] = best
    return out
