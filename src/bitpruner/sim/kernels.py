"""Numba kernels of the cycle model (int64/int32 arguments, cached on disk: see bitpruner.utils.jit).

Callers reach them through ``vectorized.py``, which runs the numpy form of a kernel when the work is too small
to pay for loading numba. Kernels are small and separate so that a run compiles (cold cache) or loads (warm
cache) only the ones it needs; the parallel ones (``prange``) are thin drivers over serial bodies, which keeps
numba's parallel passes, the slow part of compiling, short.
"""

from __future__ import annotations

import numpy as np

from bitpruner.sim.tiling import FULL_REACH, MAX_SLICED_KEYS, VALUE_BITS
from bitpruner.utils.jit import njit, prange

# Rows per parallel chunk of pragmatic_rows (each chunk reuses one scratch row). numba freezes module-level
# ints as compile-time constants.
_ROW_CHUNKS = 64


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


@njit(parallel=True)
def pragmatic_rows(vals, reach):
    """Shifter cycles of every row of vals[N, L] (magnitudes, Booth-recoded if wanted), rows in parallel."""
    n_rows, lanes = vals.shape
    out = np.empty(n_rows, np.int64)
    n_chunks = min(n_rows, _ROW_CHUNKS)
    for chunk in prange(n_chunks):
        scratch = np.empty(lanes, np.int64)
        for r in range(chunk * n_rows // n_chunks, (chunk + 1) * n_rows // n_chunks):
            for i in range(lanes):
                scratch[i] = vals[r, i]
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


# ---------------------------------------------------------------- BitTacticalE / BitTacticalP pattern costs


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


@njit()
def _gather_keys(local, w, k0, k1, vals, x0, y0, row_x, row_y, row_ch, key_row, key_lane):
    """local[:k1-k0] = window w's activations at the keys k0:k1 (buffer row, lane)."""
    for j in range(k1 - k0):
        r = key_row[k0 + j]
        local[j] = vals[x0[w] + row_x[r], y0[w] + row_y[r], row_ch[r] + key_lane[k0 + j]]


@njit()
def _pragmatic_window_set(out, ws, vals, x0, y0, row_x, row_y, row_ch, key_row, key_lane, key_off, pat_idx,
                          pat_mask, pat_off, n_cols, reach, max_keys):
    """out[blocks, Cc] of one window set: per column and block, the max shifter cycles over the patterns."""
    n_win = x0.shape[0]
    n_blocks = pat_off.shape[0] - 1
    lanes = pat_idx.shape[1]
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
            k0, k1 = key_off[b], key_off[b + 1]
            _gather_keys(local, w, k0, k1, vals, x0, y0, row_x, row_y, row_ch, key_row, key_lane)
            for j in range(k1 - k0):
                local_pop[j] = _popcount(local[j])
            sliced = 0 < reach < FULL_REACH and k1 - k0 <= MAX_SLICED_KEYS
            if sliced:  # bit planes of the block's keys: plane b holds the keys with bit b set
                for bit in range(VALUE_BITS):
                    key_planes[bit] = 0
                for j in range(k1 - k0):
                    v = local[j]
                    bit = 0
                    while v:
                        if v & 1:
                            key_planes[bit] |= 1 << j
                        v >>= 1
                        bit += 1
            best = 0
            for p in range(pat_off[b], pat_off[b + 1]):
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
            out[b, c] = best


@njit()
def _max_keys(key_off):
    most = 1
    for b in range(key_off.shape[0] - 1):
        most = max(most, key_off[b + 1] - key_off[b])
    return most


@njit(parallel=True)
def pattern_costs_pragmatic(vals, x0, y0, row_x, row_y, row_ch, key_row, key_lane, key_off, pat_idx, pat_mask,
                            pat_off, n_cols, reach):
    """BitTacticalE: per window set (in parallel), block and column, the max over the block's lane patterns of
    the shifter's cycles on vals[Xp, Yp, Cpad] (magnitudes). Arguments and result as ``vectorized.pattern_costs``;
    when a block has at most MAX_SLICED_KEYS keys the shifter runs bit-sliced on pat_mask (one word per bit
    position, one bit per key)."""
    n_ws = (x0.shape[0] + n_cols - 1) // n_cols
    out = np.zeros((n_ws, pat_off.shape[0] - 1, n_cols), np.int64)
    max_keys = _max_keys(key_off)
    for ws in prange(n_ws):
        _pragmatic_window_set(out[ws], ws, vals, x0, y0, row_x, row_y, row_ch, key_row, key_lane, key_off, pat_idx,
                              pat_mask, pat_off, n_cols, reach, max_keys)
    return out


@njit()
def _shapeshifter_window_set(out, ws, vals, x0, y0, row_x, row_y, row_ch, key_row, key_lane, key_off, pat_idx,
                             pat_off, n_cols, max_keys):
    """out[blocks, Cc] of one window set: per column and block, max over the patterns of (max bit count + 1)."""
    n_win = x0.shape[0]
    lanes = pat_idx.shape[1]
    local = np.empty(max_keys, np.int64)
    for c in range(n_cols):
        w = ws * n_cols + c
        if w >= n_win:
            break
        for b in range(pat_off.shape[0] - 1):
            _gather_keys(local, w, key_off[b], key_off[b + 1], vals, x0, y0, row_x, row_y, row_ch, key_row, key_lane)
            best = 0
            for p in range(pat_off[b], pat_off[b + 1]):
                top = -1
                for i in range(lanes):
                    j = pat_idx[p, i]
                    if j >= 0 and local[j] > top:
                        top = local[j]
                cost = top + 1 if top >= 0 else 1
                if cost > best:
                    best = cost
            out[b, c] = best


@njit(parallel=True)
def pattern_costs_shapeshifter(vals, x0, y0, row_x, row_y, row_ch, key_row, key_lane, key_off, pat_idx, pat_mask,
                               pat_off, n_cols, reach):
    """BitTacticalP: as pattern_costs_pragmatic with ShapeShifter's cost on vals (bit counts); pat_mask and
    reach are unused (same signature)."""
    n_ws = (x0.shape[0] + n_cols - 1) // n_cols
    out = np.zeros((n_ws, pat_off.shape[0] - 1, n_cols), np.int64)
    max_keys = _max_keys(key_off)
    for ws in prange(n_ws):
        _shapeshifter_window_set(out[ws], ws, vals, x0, y0, row_x, row_y, row_ch, key_row, key_lane, key_off,
                                 pat_idx, pat_off, n_cols, max_keys)
    return out


# ---------------------------------------------------------------- BitTactical's weight schedule


@njit()
def _zero_row(val, t):
    """Whether row t of a filter set val[R, T, L] holds only zeros."""
    for f in range(val.shape[0]):
        for i in range(val.shape[2]):
            if val[f, t, i] != 0:
                return False
    return True


@njit()
def _wrap(lane, lanes):
    """A lane offset wrapped once into [0, lanes) (offsets never exceed the lanes)."""
    if lane < 0:
        return lane + lanes
    if lane >= lanes:
        return lane - lanes
    return lane


@njit()
def _schedule_set(val, trow, tlane, smap, lookahead):
    """Greedy promotion on one filter set val[R, T, L] (+ its tuples), in place (see vectorized.schedule_sets).

    Candidate counts are kept per zero lane and updated after each swap: the candidate slot that gave its
    weight away becomes zero, and exactly the zero lanes whose search map reaches that slot lose one.
    """
    n_filt, n_rows, lanes = val.shape
    n_map = smap.shape[0]
    count = np.zeros(lanes, np.int64)
    skip = 0
    for t in range(n_rows):
        if skip < lookahead and _zero_row(val, t):
            skip += 1
            continue
        skip = 0
        if t + 1 >= n_rows:
            continue  # nothing ahead to promote
        for f in range(n_filt):
            for i in range(lanes):
                count[i] = 0
                if val[f, t, i] != 0:
                    continue
                for m in range(n_map):
                    th = t + smap[m, 0]
                    if th < n_rows and val[f, th, _wrap(i + smap[m, 1], lanes)] != 0:
                        count[i] += 1
            while True:
                overlap = 0
                best = -1  # the lowest zero lane with the most candidates
                for i in range(lanes):
                    if count[i] > overlap:
                        overlap = count[i]
                        best = i
                if best < 0:
                    break
                th, ld = 0, 0
                for m in range(n_map):  # its first candidate in map order
                    th = t + smap[m, 0]
                    ld = _wrap(best + smap[m, 1], lanes)
                    if th < n_rows and val[f, th, ld] != 0:
                        break
                val[f, t, best], val[f, th, ld] = val[f, th, ld], val[f, t, best]
                trow[f, t, best], trow[f, th, ld] = trow[f, th, ld], trow[f, t, best]
                tlane[f, t, best], tlane[f, th, ld] = tlane[f, th, ld], tlane[f, t, best]
                count[best] = 0
                for m in range(n_map):  # (th, ld) now holds a zero: the lanes reaching it lose a candidate
                    if t + smap[m, 0] == th:
                        i = _wrap(ld - smap[m, 1], lanes)
                        if val[f, t, i] == 0 and count[i] > 0:
                            count[i] -= 1


@njit(parallel=True)
def schedule_sets(val, trow, tlane, smap, lookahead):
    """Schedule every filter set of val[S, R, T, L] (+ tuples), in place; the sets in parallel."""
    for k in prange(val.shape[0]):
        _schedule_set(val[k], trow[k], tlane[k], smap, lookahead)
