"""Numba kernels of the cycle model (int64/int32 arguments, cached on disk: see bitpruner.utils.jit).

Callers reach them through ``vectorized.py``, which runs the numpy form of a kernel when the work is too small
to pay for loading numba, and splits a kernel's range (rows, window sets, filter sets) over threads: every
kernel is serial and releases the GIL (``nogil``). Written for short compiles (cold cache <= ~1 s each): no
``parallel=True`` (numba's parallel passes), no numpy calls inside (scratch arrays come from the caller; numba
compiles an implementation of every numpy function or array method a kernel touches) and no ``%`` or ``//``
on signed integers (Python's rounding rules cost a helper each).
"""

from __future__ import annotations

from bitpruner.sim.tiling import MAX_SLICED_KEYS, VALUE_BITS
from bitpruner.utils.jit import njit


@njit(nogil=True, inline="always")
def _popcount(v):
    c = 0
    while v:
        v &= v - 1
        c += 1
    return c


@njit(nogil=True, inline="always")
def pragmatic_cost(vals, n, reach):
    """Two-stage shifter cycles over vals[:n] (non-negative; destroyed): at least 1.

    `reach` = 2**bits_first_stage - 1, partial (0 < reach < FULL_REACH: the callers run reach 0 and the full
    reach in numpy or in pattern_costs_popcount). Each cycle the offset is the lowest set bit over all lanes;
    every lane clears its lowest set bit if it lies within `reach` bits of it.
    """
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


@njit(nogil=True)
def pragmatic_rows(vals, reach, out, scratch, r0, r1):
    """out[r] = shifter cycles of row r of vals[N, L] (magnitudes, Booth-recoded if wanted), rows r0:r1, for a
    partial `reach` (0 < reach < FULL_REACH); scratch: int64 [L]."""
    lanes = vals.shape[1]
    for r in range(r0, r1):
        for i in range(lanes):
            scratch[i] = vals[r, i]
        out[r] = pragmatic_cost(scratch, lanes, reach)


@njit(nogil=True)
def ring_cycles(cost, n_steps, reps, cc, ring):
    """Columns with run-ahead registers: cost[WS, filter_groups, S, Cc]; steps run
    ws -> (reps x group) -> s < n_steps[group]; cc (int64 [Cc]) and ring (int64 [registers]) start at zero.

    Each step every column c starts at max(rc, cc[c]) and adds its cost; rc is the ring's oldest max(cc).
    Returns max(cc).
    """
    n_ws, n_groups, _, n_cols = cost.shape
    registers = ring.shape[0]
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
                    idx += 1
                    if idx == registers:
                        idx = 0
    top = 0
    for c in range(n_cols):
        if cc[c] > top:
            top = cc[c]
    return top


# ---------------------------------------------------------------- BitTacticalE / BitTacticalP pattern costs


@njit(nogil=True, inline="always")
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
        top = off + reach
        if top > n_bits - 1:
            top = n_bits - 1
        for b in range(off, top + 1):
            take = planes[b] & free
            planes[b] &= ~take
            free &= ~take
        cycles += 1
    return cycles if cycles > 0 else 1


@njit(nogil=True, inline="always")
def _gather_keys(local, w, k0, k1, vals, x0, y0, row_x, row_y, row_ch, key_row, key_lane):
    """local[:k1-k0] = window w's activations at the keys k0:k1 (buffer row, lane)."""
    for j in range(k1 - k0):
        r = key_row[k0 + j]
        local[j] = vals[x0[w] + row_x[r], y0[w] + row_y[r], row_ch[r] + key_lane[k0 + j]]


@njit(nogil=True)
def pattern_costs_pragmatic(out, ws0, ws1, vals, x0, y0, row_x, row_y, row_ch, key_row, key_lane, key_off, pat_idx,
                            pat_mask, pat_off, reach, scratch, local, local_pop, key_planes, planes):
    """BitTacticalE with a partial-reach shifter (0 < reach < FULL_REACH; pattern_costs_popcount takes the
    others), window sets ws0:ws1 of out[WS, blocks, Cc]: per column (window) and block, the max over the
    block's lane patterns of the shifter's cycles on vals[Xp, Yp, Cpad] (magnitudes). Arguments as
    ``vectorized.pattern_costs``; scratch arrays: scratch int64 [L], local and local_pop int64 [most keys of a
    block], key_planes and planes int64 [VALUE_BITS]. A block with at most MAX_SLICED_KEYS keys runs the
    shifter bit-sliced on pat_mask (one word per bit position, one bit per key)."""
    n_win = x0.shape[0]
    n_blocks, n_cols = out.shape[1], out.shape[2]
    lanes = pat_idx.shape[1]
    for ws in range(ws0, ws1):
        for c in range(n_cols):
            w = ws * n_cols + c
            if w >= n_win:
                break
            for b in range(n_blocks):
                k0, k1 = key_off[b], key_off[b + 1]
                _gather_keys(local, w, k0, k1, vals, x0, y0, row_x, row_y, row_ch, key_row, key_lane)
                for j in range(k1 - k0):
                    local_pop[j] = _popcount(local[j])
                sliced = k1 - k0 <= MAX_SLICED_KEYS
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
                    if high <= low or high <= best:
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


@njit(nogil=True)
def pattern_costs_popcount(out, ws0, ws1, vals, x0, y0, row_x, row_y, row_ch, key_row, key_lane, key_off, pat_idx,
                           pat_off, full, local):
    """BitTacticalE with a shifter of reach 0 (`full` = 0: popcount of the lanes' OR) or full reach (`full` = 1:
    the most ones of a lane), window sets ws0:ws1 of out[WS, blocks, Cc]; at least 1 per pattern. Arguments as
    pattern_costs_pragmatic (this is its cheap case, a kernel of its own so that it compiles in a fraction of
    the time); local: int64 [most keys of a block]."""
    n_win = x0.shape[0]
    n_blocks, n_cols = out.shape[1], out.shape[2]
    lanes = pat_idx.shape[1]
    for ws in range(ws0, ws1):
        for c in range(n_cols):
            w = ws * n_cols + c
            if w >= n_win:
                break
            for b in range(n_blocks):
                _gather_keys(local, w, key_off[b], key_off[b + 1], vals, x0, y0, row_x, row_y, row_ch, key_row,
                             key_lane)
                best = 1
                for p in range(pat_off[b], pat_off[b + 1]):
                    acc = 0
                    for i in range(lanes):
                        j = pat_idx[p, i]
                        if j >= 0:
                            if full:
                                cost = _popcount(local[j])
                                if cost > best:
                                    best = cost
                            else:
                                acc |= local[j]
                    if not full:
                        cost = _popcount(acc)
                        if cost > best:
                            best = cost
                out[ws, b, c] = best


@njit(nogil=True)
def pattern_costs_shapeshifter(out, ws0, ws1, vals, x0, y0, row_x, row_y, row_ch, key_row, key_lane, key_off,
                               pat_idx, pat_off, local):
    """BitTacticalP, window sets ws0:ws1 of out[WS, blocks, Cc]: per column and block, the max over the
    block's patterns of (max bit count + 1) on vals[Xp, Yp, Cpad] (bit counts); local: int64 [most keys]."""
    n_win = x0.shape[0]
    n_blocks, n_cols = out.shape[1], out.shape[2]
    lanes = pat_idx.shape[1]
    for ws in range(ws0, ws1):
        for c in range(n_cols):
            w = ws * n_cols + c
            if w >= n_win:
                break
            for b in range(n_blocks):
                _gather_keys(local, w, key_off[b], key_off[b + 1], vals, x0, y0, row_x, row_y, row_ch, key_row,
                             key_lane)
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
                out[ws, b, c] = best


# ---------------------------------------------------------------- BitTactical's weight schedule


@njit(nogil=True)
def schedule_sets(val, trow, tlane, smap, lookahead, k0, k1, count):
    """Greedy promotion on filter sets k0:k1 of val[S, R, T, L] (+ their tuples), in place (see
    vectorized.schedule_sets); count: int64 [L] scratch. One kernel without helpers: numba compiles each
    called function on its own, which doubled the cold compile.

    Candidate counts are kept per zero lane and updated after each swap: the candidate slot that gave its
    weight away becomes zero, and exactly the zero lanes whose search map reaches that slot lose one. Lane
    offsets never exceed the lanes, so a lane wraps at most once.
    """
    n_filt, n_rows, lanes = val.shape[1], val.shape[2], val.shape[3]
    n_map = smap.shape[0]
    for k in range(k0, k1):
        skip = 0
        for t in range(n_rows):
            if skip < lookahead:
                zero = True
                for f in range(n_filt):
                    for i in range(lanes):
                        if val[k, f, t, i] != 0:
                            zero = False
                if zero:
                    skip += 1
                    continue
            skip = 0
            if t + 1 >= n_rows:
                continue  # nothing ahead to promote
            for f in range(n_filt):
                for i in range(lanes):
                    count[i] = 0
                    if val[k, f, t, i] != 0:
                        continue
                    for m in range(n_map):
                        th, ld = t + smap[m, 0], i + smap[m, 1]
                        if ld < 0:
                            ld += lanes
                        elif ld >= lanes:
                            ld -= lanes
                        if th < n_rows and val[k, f, th, ld] != 0:
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
                        th, ld = t + smap[m, 0], best + smap[m, 1]
                        if ld < 0:
                            ld += lanes
                        elif ld >= lanes:
                            ld -= lanes
                        if th < n_rows and val[k, f, th, ld] != 0:
                            break
                    v = val[k, f, t, best]
                    val[k, f, t, best] = val[k, f, th, ld]
                    val[k, f, th, ld] = v
                    v = trow[k, f, t, best]
                    trow[k, f, t, best] = trow[k, f, th, ld]
                    trow[k, f, th, ld] = v
                    v = tlane[k, f, t, best]
                    tlane[k, f, t, best] = tlane[k, f, th, ld]
                    tlane[k, f, th, ld] = v
                    count[best] = 0
                    for m in range(n_map):  # (th, ld) now holds a zero: the lanes reaching it lose a candidate
                        if t + smap[m, 0] == th:
                            i = ld - smap[m, 1]
                            if i < 0:
                                i += lanes
                            elif i >= lanes:
                                i -= lanes
                            if val[k, f, t, i] == 0 and count[i] > 0:
                                count[i] -= 1
