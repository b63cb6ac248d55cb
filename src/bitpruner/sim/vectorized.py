"""The simulator's kernels in numpy, and the choice between them and their numba forms (``kernels.py``).

Loading numba and its first cached kernel costs a few tenths of a second and ~100 MiB of resident memory, more
than a small layer takes in numpy. Each public function here estimates the seconds its numba form would save
(``*_saving``: a linear model of both forms' times, calibrated by ``benchmarks/sim_jit_calibration.py``) and
runs the numba kernel only when :func:`bitpruner.utils.jit.use_jit` says that pays for the start-up
(``BITPRUNER_JIT=always|never`` forces one form); the engine sums the estimates of a whole run first and
prefers numba for all of it when the sum does. Both forms return identical results (tests run both against
the plain reference).

- :func:`shifter_rows`: BitPragmatic's two-stage shifter over rows of lane values;
- :func:`ring_cycles`: column-register timing (a sequential recurrence: plain Python when short);
- :func:`pattern_costs`: BitTacticalE/P's max over lane patterns per window and plan step;
- :func:`schedule_sets`: BitTactical's greedy weight promotion, all filter sets at once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from bitpruner.sim.tiling import FULL_REACH, VALUE_BITS, KernelMode
from bitpruner.utils.jit import threads, use_jit

# CPU seconds per unit of work of each kernel's (numpy form, numba form once loaded), measured by
# benchmarks/sim_jit_calibration.py on the 2-core development machine. A kernel, or a whole run, takes its numba
# form when the seconds that saves reach numba's start-up (jit.NUMBA_STARTUP_S); the numba forms but the ring
# run on every thread, so their time is divided by the thread count.
SHIFTER_S_PER_VALUE = (4.5e-8, 2.8e-8)  # partial-reach shifter, per lane value (reach 0 or full: numpy only)
RING_S_PER_VALUE = (1.25e-7, 1e-9)  # column-register recurrence, per step x column (serial in numba too)
PATTERN_S_PER_VALUE = (1.15e-9, 1.27e-9)  # BitTacticalE (shifter reach 0 or full) / P, per gathered lane value
PATTERN_SHIFTER_S_PER_VALUE = (6.1e-8, 6.9e-9)  # BitTacticalE with a partial-reach shifter, per lane value
SCHEDULE_S_PER_ROW = (1.08e-3, 7e-5)  # BitTactical's scheduler: one numpy pass per filled lane of a buffer row ...
SCHEDULE_S_PER_SLOT = (3.1e-7, 6.3e-8)  # ... and the work over every weight slot
MAX_MASK_LANES = 63  # lanes of a filter row that fit one uint64 bit mask with room to rotate
NIBBLE_BITS, NIBBLE_LANES = 4, 16  # up to 16 lanes' candidate counts (each <= NIBBLE) packed in one uint64
NIBBLE = (1 << NIBBLE_BITS) - 1
# Values per numpy pass (bounds the temporaries to a few MiB): narrow gathered values in the pattern costs,
# int32 lane values in the shifter (about five temporaries of each).
PATTERN_CHUNK = 1 << 18
SHIFTER_CHUNK = 1 << 16
_NO_BIT = 1 << 30  # above any lowest set bit of a 16-bit value shifted by the reach
CHUNKS_PER_THREAD = 4  # a kernel's range is cut into this many chunks per thread (uneven chunks balance out)
SMALL_INT = 200  # column-register times are rebased beyond this: CPython caches the ints up to 256


# ---------------------------------------------------------------- what numba would save


def _saving(rates: tuple[float, float], units: float, parallel: bool = True) -> float:
    """Seconds the numba form saves on `units` of work at (numpy, numba) CPU seconds per unit; a `parallel`
    numba form spreads its CPU time over `threads()` threads."""
    return (rates[0] - rates[1] / (threads() if parallel else 1)) * units


def shifter_saving(n_values: int, reach: int) -> float:
    """Seconds numba saves on shifter_rows over `n_values` lane values (only the partial reach has a numba form)."""
    return _saving(SHIFTER_S_PER_VALUE, n_values) if 0 < reach < FULL_REACH else 0.0


def ring_saving(n_values: int) -> float:
    """Seconds numba saves on ring_cycles over `n_values` steps x columns."""
    return _saving(RING_S_PER_VALUE, n_values, parallel=False)


def pattern_saving(n_values: int, mode: KernelMode, reach: int) -> float:
    """Seconds numba saves on pattern_costs gathering `n_values` lane values (windows x patterns x lanes)."""
    partial = mode == KernelMode.PRAGMATIC and 0 < reach < FULL_REACH
    return _saving(PATTERN_SHIFTER_S_PER_VALUE if partial else PATTERN_S_PER_VALUE, n_values)


def schedule_saving(n_rows: int, n_slots: int) -> float:
    """Seconds numba saves on schedule_sets over `n_rows` buffer rows of `n_slots` weight slots in all."""
    return _saving(SCHEDULE_S_PER_ROW, n_rows) + _saving(SCHEDULE_S_PER_SLOT, n_slots)


def _in_threads(run: Callable[[int, int], object], n: int) -> None:
    """run(start, stop) over range(n), cut into chunks spread over `jit.threads()` threads (numba kernels
    release the GIL, so the chunks run in parallel)."""
    n_threads = min(threads(), n)
    if n_threads <= 1:
        run(0, n)
        return
    from concurrent.futures import ThreadPoolExecutor  # here: it imports logging (~20 ms of every start-up)

    n_chunks = min(n, n_threads * CHUNKS_PER_THREAD)
    bounds = [n * i // n_chunks for i in range(n_chunks + 1)]
    with ThreadPoolExecutor(n_threads) as pool:
        for done in [pool.submit(run, bounds[i], bounds[i + 1]) for i in range(n_chunks)]:
            done.result()


# ---------------------------------------------------------------- the two-stage shifter


def shifter_rows(vals: np.ndarray, reach: int) -> np.ndarray:
    """Shifter cycles (at least 1) of each row of vals[N, L] (non-negative magnitudes < 2**16): int64 [N].

    `reach` = 2**bits_first_stage - 1 capped at FULL_REACH. Each cycle the offset is the lowest set bit over
    the row's lanes, and every lane clears its lowest set bit if it lies within `reach` bits of it.
    """
    vals = np.asarray(vals)
    if 0 < reach < FULL_REACH and use_jit(shifter_saving(vals.size, reach)):
        from bitpruner.sim.kernels import pragmatic_rows

        vals = np.ascontiguousarray(vals, dtype=np.int64)
        out = np.empty(vals.shape[0], np.int64)
        _in_threads(lambda r0, r1: pragmatic_rows(vals, reach, out, np.empty(vals.shape[1], np.int64), r0, r1),
                    vals.shape[0])
        return out
    return _shifter_cycles(vals, reach).astype(np.int64)


def _shifter_cycles(vals: np.ndarray, reach: int) -> np.ndarray:
    """shifter_rows in numpy, as uint8 (at most VALUE_BITS cycles); the partial reach in row chunks."""
    if reach == 0:  # one shared shifter: one cycle per bit column holding a one
        return np.maximum(np.bitwise_count(np.bitwise_or.reduce(vals, axis=1)), 1)
    if reach >= FULL_REACH:  # one shifter per lane: the lane with the most ones decides
        return np.maximum(np.bitwise_count(vals).max(axis=1, initial=0), 1)
    step = max(1, SHIFTER_CHUNK // max(1, vals.shape[1]))
    return np.concatenate([_partial_reach(vals[r : r + step], reach) for r in range(0, vals.shape[0], step)]
                          or [np.zeros(0, np.uint8)])


def _partial_reach(vals: np.ndarray, reach: int) -> np.ndarray:
    """The partial-reach shifter, one cycle of every unfinished row per numpy pass (at most 16 passes)."""
    cycles = np.ones(vals.shape[0], np.uint8)
    rows = np.flatnonzero(vals.any(axis=1))
    v = vals[rows].astype(np.int32)
    cycles[rows] = 0
    while rows.size:
        low = v & -v  # each lane's lowest set bit (0: lane done)
        off = np.where(low > 0, low, _NO_BIT).min(axis=1)
        v ^= np.where(low <= (off << reach)[:, None], low, 0)
        cycles[rows] += 1
        busy = v.any(axis=1)
        if not busy.all():
            rows, v = rows[busy], v[busy]
    return cycles


# ---------------------------------------------------------------- column registers


def ring_cycles(cost: np.ndarray, n_steps: np.ndarray, reps: int, registers: int) -> int:
    """Column-register timing of cost[WS, groups, S, Cc]; steps run ws -> (reps x group) -> s < n_steps[group].

    Each step column c starts at max(rc, cc[c]) and adds its cost; rc is the ring's oldest max(cc) (the ring
    holds the last `registers` values of max(cc), initially 0). Returns max(cc).
    """
    n_ws, n_groups, _, n_cols = cost.shape
    n_steps = np.asarray(n_steps, np.int64)
    if use_jit(ring_saving(n_ws * reps * int(n_steps.sum()) * n_cols)):
        from bitpruner.sim.kernels import ring_cycles as ring_jit

        return int(ring_jit(np.ascontiguousarray(cost, dtype=np.int64), n_steps, reps, np.zeros(n_cols, np.int64),
                            np.zeros(registers, np.int64)))
    return _ring_cycles_python(cost, n_steps, reps, registers)


def _ring_cycles_python(cost: np.ndarray, n_steps: np.ndarray, reps: int, registers: int) -> int:
    """The recurrence on Python ints (a per-step numpy call would cost more than the step); one window set's
    costs are turned into lists at a time, which bounds the memory.

    Times are kept relative to `base`, rebased when they outgrow SMALL_INT: columns never drift more than the
    last `registers` + 1 steps apart, so the relative times stay small ints, which CPython does not allocate.
    """
    n_cols = cost.shape[3]
    steps = n_steps.tolist()
    cols, slots = range(n_cols), range(registers)
    cc, ring, idx, rc, base = [0] * n_cols, [0] * registers, 0, 0, 0
    for ws_cost in cost:
        groups = [grp[:n] for grp, n in zip(ws_cost.tolist(), steps, strict=True)]
        for _ in range(reps):
            for grp in groups:
                for step in grp:
                    top = 0
                    for c in cols:  # in place: cheaper than building a list per step
                        v = cc[c]
                        v = (v if v > rc else rc) + step[c]
                        cc[c] = v
                        if v > top:
                            top = v
                    rc = ring[idx]
                    ring[idx] = top
                    idx = idx + 1 if idx + 1 < registers else 0
                    if top > SMALL_INT:
                        low = min(min(cc), min(ring), rc)
                        for c in cols:
                            cc[c] -= low
                        for r in slots:
                            ring[r] -= low
                        rc -= low
                        base += low
    return base + max(cc)


# ---------------------------------------------------------------- BitTacticalE / BitTacticalP pattern costs


def pattern_costs(vals, x0, y0, row_x, row_y, row_ch, key_row, key_lane, key_off, pat_idx, pat_mask, pat_off,
                  n_cols: int, mode: KernelMode, reach: int) -> np.ndarray:
    """Per window and block (plan step), the max over the block's lane patterns of a per-PE cost.

    vals[Xp, Yp, Cpad]: per activation its magnitude (KernelMode.PRAGMATIC: the shifter's cycles) or its
    ShapeShifter bit count (KernelMode.SHAPESHIFTER: max + 1). Window w starts at (x0[w], y0[w]); buffer row
    r reads (+row_x[r], +row_y[r]) and channels row_ch[r] + lane. Block b reads the keys (key_row[j],
    key_lane[j]), j in key_off[b]:key_off[b+1]; its patterns pat_off[b]:pat_off[b+1] list per lane an index
    into those keys (-1: idle); pat_mask[p] is the set of keys pattern p reads (numba's bit-sliced shifter).
    Returns int64 [ceil(W / n_cols), n_blocks, n_cols] (0 where a column has no window).
    """
    n_win, n_blocks, lanes = x0.shape[0], pat_off.shape[0] - 1, pat_idx.shape[1]
    n_ws = -(-n_win // n_cols)
    if use_jit(pattern_saving(n_win * pat_idx.size, mode, reach)):
        return _pattern_costs_jit(vals, x0, y0, row_x, row_y, row_ch, key_row, key_lane, key_off, pat_idx, pat_mask,
                                  pat_off, n_ws, n_cols, mode, reach)
    out = np.zeros((n_ws * n_cols, n_blocks), np.int64)
    if n_blocks == 0 or n_win == 0:
        return out.reshape(n_ws, n_cols, n_blocks).transpose(0, 2, 1)
    _, yp, cpad = vals.shape
    # Flat offsets: window origin + key position, so one gather reads every key of every window of a chunk.
    key_at = (row_x[key_row] * yp + row_y[key_row]) * cpad + row_ch[key_row] + key_lane
    win_at = (x0 * yp + y0) * cpad
    n_keys = key_row.shape[0]
    blk = np.repeat(np.arange(n_blocks), np.diff(pat_off))
    # Pattern lanes as columns of the gathered keys; an idle lane reads an extra column (0, or -1 for bit counts).
    lanes_at = np.where(pat_idx >= 0, pat_idx + key_off[blk][:, None], n_keys)
    lane_cols = np.ascontiguousarray(lanes_at.T)  # [lanes, patterns]: one gather per lane
    # Magnitudes fit 16 bits and bit counts 8: narrow values make the gathers below cheap.
    if mode == KernelMode.SHAPESHIFTER:
        idle, flat = -1, vals.reshape(-1).astype(np.int8)
    else:
        idle, flat = 0, vals.reshape(-1).astype(np.uint16)
    partial = mode == KernelMode.PRAGMATIC and 0 < reach < FULL_REACH
    # The partial-reach shifter needs every lane value at once; the other costs reduce lane by lane.
    step = max(1, PATTERN_CHUNK // max(1, lanes_at.size if partial else lanes_at.shape[0]))
    for w0 in range(0, n_win, step):
        w1 = min(n_win, w0 + step)
        keys = np.empty((w1 - w0, n_keys + 1), flat.dtype)
        keys[:, :n_keys] = flat[win_at[w0:w1, None] + key_at[None, :]]
        keys[:, n_keys] = idle
        if partial:
            cost = _shifter_cycles(keys[:, lanes_at].reshape(-1, lanes), reach).reshape(w1 - w0, -1)
        elif mode == KernelMode.SHAPESHIFTER:  # max bit count + 1 (1 for an all-idle pattern)
            top = keys[:, lane_cols[0]]
            for cols in lane_cols[1:]:
                np.maximum(top, keys[:, cols], out=top)
            cost = np.where(top >= 0, top + 1, 1).astype(np.int8)
        elif reach == 0:  # one shared shifter: popcount of the lanes' OR
            acc = keys[:, lane_cols[0]]
            for cols in lane_cols[1:]:
                acc |= keys[:, cols]
            cost = np.maximum(np.bitwise_count(acc), 1)
        else:  # a shifter per lane: the most ones of a lane
            cost = np.bitwise_count(keys[:, lane_cols[0]])
            for cols in lane_cols[1:]:
                np.maximum(cost, np.bitwise_count(keys[:, cols]), out=cost)
            cost = np.maximum(cost, 1)
        out[w0:w1] = np.maximum.reduceat(cost, pat_off[:-1], axis=1)
    return np.ascontiguousarray(out.reshape(n_ws, n_cols, n_blocks).transpose(0, 2, 1))


def _pattern_costs_jit(vals, x0, y0, row_x, row_y, row_ch, key_row, key_lane, key_off, pat_idx, pat_mask, pat_off,
                       n_ws, n_cols, mode, reach) -> np.ndarray:
    """pattern_costs' numba form, window sets spread over threads."""
    from bitpruner.sim import kernels

    vals = np.ascontiguousarray(vals, dtype=np.int64)
    out = np.zeros((n_ws, pat_off.shape[0] - 1, n_cols), np.int64)
    most = max(1, int(np.diff(key_off).max(initial=0)))
    lanes = pat_idx.shape[1]
    common = (vals, x0, y0, row_x, row_y, row_ch, key_row, key_lane, key_off, pat_idx)
    if mode == KernelMode.PRAGMATIC and not 0 < reach < FULL_REACH:  # no shifter to run: the small kernel
        def run(ws0, ws1):
            kernels.pattern_costs_popcount(out, ws0, ws1, *common, pat_off, int(reach >= FULL_REACH),
                                           np.empty(most, np.int64))
    elif mode == KernelMode.PRAGMATIC:
        def run(ws0, ws1):
            kernels.pattern_costs_pragmatic(out, ws0, ws1, *common, pat_mask, pat_off, reach,
                                            np.empty(lanes, np.int64), np.empty(most, np.int64),
                                            np.empty(most, np.int64), np.empty(VALUE_BITS, np.int64),
                                            np.empty(VALUE_BITS, np.int64))
    else:
        def run(ws0, ws1):
            kernels.pattern_costs_shapeshifter(out, ws0, ws1, *common, pat_off, np.empty(most, np.int64))
    _in_threads(run, n_ws)
    return out


# ---------------------------------------------------------------- BitTactical's weight schedule


def schedule_sets(val: np.ndarray, trow: np.ndarray, tlane: np.ndarray, smap: np.ndarray, lookahead: int) -> None:
    """Greedy promotion (DNNsim's ``BitTactical::original_schedule``) of every filter set, in place.

    val[S, R, T, L] (int32 weights of S filter sets of R filters, T buffer rows, L lanes) and the slots'
    activation tuples trow/tlane (same shape) are rescheduled together; smap[M, 2] is the sorted search map
    of (row offset, lane offset). Rows in order; a row whose R*L weights are all zero is skipped if fewer than
    `lookahead` rows were skipped just before it; otherwise each filter repeatedly fills its zero lane with
    the most candidates (the lowest such lane) with that lane's first candidate in map order, until no zero
    lane has one.
    """
    if use_jit(schedule_saving(val.shape[2], val.size)):
        from bitpruner.sim.kernels import schedule_sets as schedule_jit

        smap = smap.astype(np.int64)
        lanes = val.shape[3]
        _in_threads(lambda k0, k1: schedule_jit(val, trow, tlane, smap, lookahead, k0, k1, np.zeros(lanes, np.int64)),
                    val.shape[0])
    elif val.shape[3] <= MAX_MASK_LANES:
        _schedule_sets_masks(val, trow, tlane, smap, lookahead)
    else:
        _schedule_sets_lanes(val, trow, tlane, smap, lookahead)


@functools.cache
def _nibble_table() -> np.ndarray:
    """uint64 [2**NIBBLE_LANES]: each mask with bit i moved to bit NIBBLE_BITS * i (summing these counts per lane);
    built from a one-byte table (a 16-iteration pass over the full table cost ~10 ms of a small run)."""
    half = NIBBLE_LANES // 2
    byte = np.arange(1 << half, dtype=np.uint64)
    low = np.zeros_like(byte)
    for i in range(half):
        low |= ((byte >> np.uint64(i)) & np.uint64(1)) << np.uint64(NIBBLE_BITS * i)
    out = ((low[:, None] << np.uint64(NIBBLE_BITS * half)) | low[None, :]).reshape(-1)
    out.setflags(write=False)
    return out


def _schedule_sets_masks(val, trow, tlane, smap, lookahead) -> None:
    """The promotion vectorized over every filter of every set: per row, one numpy pass per filled lane over
    the filters still filling. Each (filter, row)'s non-zero lanes are a uint64 bit mask, so a map entry's
    candidates for every lane are one rotation of the mask of the row it looks at; slots move as indices into
    the original buffer (a weight and its tuple always move together). Map entries look ahead only (row offset
    >= 1), so a row's own mask is kept aside while it fills and never written back."""
    n_sets, n_filt, n_rows, lanes = val.shape
    n = n_sets * n_filt
    one, full = np.uint64(1), np.uint64((1 << lanes) - 1)
    lane_bits = np.arange(lanes, dtype=np.uint64)
    nz = ((val.reshape(n, n_rows, lanes) != 0).astype(np.uint64) << lane_bits).sum(axis=2, dtype=np.uint64)
    slot = np.broadcast_to(np.arange(n_rows * lanes, dtype=np.int32), (n, n_rows * lanes)).copy()
    set_of = np.repeat(np.arange(n_sets), n_filt)
    dh, dd = smap[:, 0].astype(np.int64), smap[:, 1].astype(np.int64)
    # Rotation of a row's mask that puts lane (i + dd) mod L at bit i: right by s | left by L - s (lanes <= 63;
    # bits beyond the lanes fall outside the zero-lane mask it is and-ed with).
    right = (dd % lanes).astype(np.uint64)
    left = np.uint64(lanes) - right
    lane_of = (np.arange(lanes)[:, None] + dd[None, :]) % lanes  # [L, M]: lane that entry m reads for lane i
    nibbles = _nibble_table() if lanes <= NIBBLE_LANES and smap.shape[0] <= NIBBLE else None
    nibble_shift = NIBBLE_BITS * lane_bits
    skip = np.zeros(n_sets, np.int64)
    for t in range(n_rows):
        zero_row = ~nz[:, t].reshape(n_sets, n_filt).any(axis=1)
        skipping = (skip < lookahead) & zero_row
        skip = np.where(skipping, skip + 1, 0)
        ok = t + dh < n_rows
        if t + 1 >= n_rows or not ok.any():
            continue  # nothing ahead to promote
        ahead, m_right, m_left = t + dh[ok], right[ok], left[ok]
        there_of = ahead[None, :] * lanes + lane_of[:, ok]  # [L, M]: flat slot entry m reads for zero lane i
        clear_of = one << lane_of[:, ok].astype(np.uint64)  # [L, M]: that slot's bit in its row's mask
        filters = np.flatnonzero(~skipping[set_of] & (nz[:, t] != full))
        zero, rows = ~nz[filters, t] & full, filters[:, None]  # row t's zero lanes, per filter still filling
        while filters.size:
            x = nz[rows, ahead]  # [F, M]
            cand = ((x >> m_right) | (x << m_left)) & zero[:, None]
            if nibbles is not None:  # per lane a 4-bit count: sum the map entries' spread masks
                spread = nibbles[cand].sum(axis=1)
                go = spread != 0
                if not go.all():
                    filters, rows, zero, cand, spread = filters[go], rows[go], zero[go], cand[go], spread[go]
                count = (spread[:, None] >> nibble_shift) & NIBBLE
            else:
                count = ((cand[:, :, None] >> lane_bits) & one).sum(axis=1)  # [F, L]
                go = count.any(axis=1)
                if not go.all():
                    filters, rows, zero, cand, count = filters[go], rows[go], zero[go], cand[go], count[go]
            if not filters.size:
                break
            i = count.argmax(axis=1)  # the lowest zero lane with the most candidates
            bit_i = i.astype(np.uint64)
            m = ((cand >> bit_i[:, None]) & one).argmax(axis=1)  # its first candidate in map order
            here, there = t * lanes + i, there_of[i, m]
            slot[filters, here], slot[filters, there] = slot[filters, there], slot[filters, here]
            zero ^= one << bit_i
            nz[filters, ahead[m]] ^= clear_of[i, m]  # the promoted weight's slot is now zero
    # Every slot takes the weight and the tuple of the slot it now holds.
    for arr in (val, trow, tlane):
        flat = arr.reshape(n, n_rows * lanes)
        flat[:] = np.take_along_axis(flat, slot, axis=1)


def _schedule_sets_lanes(val, trow, tlane, smap, lookahead) -> None:
    """The promotion vectorized over every filter of every set, lane by lane (any number of lanes)."""
    n_sets, n_filt, n_rows, lanes = val.shape
    flat_v, flat_r, flat_l = (a.reshape(n_sets * n_filt, n_rows, lanes) for a in (val, trow, tlane))
    set_of = np.repeat(np.arange(n_sets), n_filt)
    lane = np.arange(lanes)
    # Map entry m read from zero lane i: row t + smap[m, 0], lane (i + smap[m, 1]) wrapped once into [0, L).
    map_lane = (lane[:, None] + smap[None, :, 1]) % lanes  # [L, M]
    skip = np.zeros(n_sets, np.int64)
    for t in range(n_rows):
        zero_row = ~val[:, :, t, :].reshape(n_sets, -1).any(axis=1)
        skipping = (skip < lookahead) & zero_row
        skip = np.where(skipping, skip + 1, 0)
        if t + 1 >= n_rows:
            continue  # nothing ahead to promote
        rows = t + smap[:, 0]  # [M]
        valid = rows < n_rows
        if not valid.any():
            continue
        filters = np.flatnonzero(~skipping[set_of])
        m_rows = np.where(valid, rows, t)
        while filters.size:
            here = flat_v[filters, t]  # [F, L]
            ahead = flat_v[filters[:, None, None], m_rows[None, None, :], map_lane[None, :, :]]  # [F, L, M]
            cand = (ahead != 0) & valid[None, None, :] & (here == 0)[:, :, None]
            count = cand.sum(axis=2)
            overlap = count.max(axis=1)
            go = overlap > 0
            if not go.any():
                break
            filters, count, cand, overlap = filters[go], count[go], cand[go], overlap[go]
            i = np.argmax(count == overlap[:, None], axis=1)  # the lowest zero lane with the most candidates
            m = np.argmax(cand[np.arange(filters.size), i], axis=1)  # its first candidate in map order
            th, ld = rows[m], map_lane[i, m]
            for arr in (flat_v, flat_r, flat_l):
                arr[filters, t, i], arr[filters, th, ld] = arr[filters, th, ld], arr[filters, t, i]
