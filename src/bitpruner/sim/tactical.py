"""BitTactical weight scheduling, exactly as DNNsim's ``BitTactical::original_schedule`` does it.

Written from DNNsim (github isakedo/DNNsim, commit 4748a60, ``core/src/BitTactical.cpp``,
``OutputStationary.cpp``, ``WindowFirstOutS.cpp``, ``BitPragmatic.cpp``, ``ShapeShifter.cpp``).

Weight buffer of one filter set: rows ``t = (ky*Kx + kx)*nch + chunk`` (fc: ``t = chunk``), and per row
``R`` filters x ``L`` lanes; lane ``i`` of filter ``f`` holds channel ``chunk*L + i`` of that filter.
Every slot also carries a *tuple* ``(row, lane)`` naming the activation it multiplies: its own position,
except lanes past the last channel (``chunk*L + i >= C``), which DNNsim initializes to ``(0, 0)``.

Scheduling (once per layer, per filter set):

- Search map (shape ``T``): ``(h, 0)`` for ``h = 1..lookahead``, then ``lookaside`` entries
  ``(1,+1), (1,-1), (2,+2), (2,-2), (1,+3), (1,-3), ...`` (the row offset cycles ``1..lookahead``,
  the lane offset grows every second entry); shape ``L``: ``(h, 0)`` and ``(1, -d)``. The map is then
  sorted by (row offset, lane offset); for h=2, d=5 it is
  ``(1,-1) (1,0) (1,1) (1,3) (2,-2) (2,0) (2,2)``. Lane offsets wrap (once) within the filter's L lanes,
  so a slot reached twice counts twice. DNNsim's batch reader only accepts the T shape with h=2, d=5
  (and turns 0 into those defaults); other values here follow its constructor's formula.
- Rows in order; a row whose R*L weights are all zero is skipped if fewer than ``lookahead`` rows were
  skipped just before it (the counter resets on every row that is not skipped). Skipped rows are left
  as they are.
- For each non-skipped row, for each filter: repeat { for each zero lane, count its candidates (non-zero
  weights at the search-map positions, rows ``< T``); the largest count is ``overlap``; the first zero lane
  (lowest index) whose count equals ``overlap`` swaps with its first candidate in map order } until no
  zero lane has a candidate. A swap moves the whole slot, tuple included: the zero (with its tuple) goes
  to the candidate's position.

Run time (what the engine must do with the :class:`LayerSchedule` of :func:`schedule_layer`):

- Steps come from ``sched.step_plan(tiles, n_window_sets)``: a list, in DNNsim's order (window sets
  outer, filter-set groups inner; fc has one window set), of int64 arrays ``[steps, tiles]``. Entry
  ``[s, t]`` is the buffer row that tile ``t`` (filter set ``group*tiles + t``) executes at step ``s`` of
  that group, ``-1`` when the tile is idle. Idle tiles cost nothing; a step costs the max over the busy
  tiles (at least 1). Normally a set executes the rows of ``executed`` (a row is skipped when all its
  R*L scheduled weights are zero and fewer than ``lookahead`` rows were skipped just before it) and a
  group lasts ``max(n_steps)`` of its sets; the plan also reproduces DNNsim's carried skip counters
  after a group with no executed row at all (only possible when ``T <= lookahead``).
- BitTactical (DaDianNao) costs 1 per step, fc included (fc: cycles = number of steps).
- BitTacticalE / BitTacticalP: when set ``k`` executes row ``r``, filter ``f`` lane ``i`` reads the
  activation of row ``act_row[k, f, r, i]``, lane ``act_lane[k, f, r, i]`` of each window (the window's
  own T x L activation rows); ``-1`` means DNNsim skips that lane. This is DNNsim's tuple rule: *every*
  slot reads the activation its tuple names, zero weights included (so zero weights are not free),
  unless the tuple's row is before ``r``. Real filters only (``n_filters``). The BitPragmatic /
  ShapeShifter per-window cost is then taken over these L activations per filter, max over the set's
  filters, the windows and the busy tiles, exactly as without tactical.
- DNNsim hangs on a layer whose plan has no step at all (every weight zero and ``T <= lookahead``),
  and aborts ("cannot create std::vector larger than max_size()") on the plans that
  :func:`dnnsim_aborts` flags; those layers have no DNNsim reference.
  BitTacticalE/P on fc read activations from the wrong column in DNNsim (see the simulator spec; we
  use the row's own activations).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bitpruner.errors import ConfigError
from bitpruner.utils.jit import njit

SEARCH_SHAPES = ("T", "L")


def search_map(lookahead: int, lookaside: int, shape: str = "T") -> np.ndarray:
    """DNNsim's sorted search map: int64 [M, 2] of (row offset, lane offset)."""
    if lookahead < 0 or lookaside < 0:
        raise ConfigError(f"tactical lookahead={lookahead}, lookaside={lookaside}: expected >= 0")
    if shape not in SEARCH_SHAPES:
        raise ConfigError(f"tactical search_shape={shape!r}: expected one of {SEARCH_SHAPES}")
    entries = [(h, 0) for h in range(1, lookahead + 1)]
    if shape == "L":
        entries += [(1, -d) for d in range(1, lookaside + 1)]
    else:
        # DNNsim's 'T' walk: lane offset +d, -d, then d grows and the row offset cycles 1..lookahead.
        h, d, second = 1, 1, False
        for _ in range(lookaside):
            entries.append((h, d))
            d = -d
            if second:
                d += 1
                h += 1
                if h > lookahead:
                    h = 1
                second = False
            else:
                second = True
    return np.array(sorted(entries), dtype=np.int64).reshape(-1, 2)


def initial_tuples(n_rows: int, lanes: int, n_channels: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-slot activation tuple (row, lane) before scheduling: own position, (0, 0) on padded lanes."""
    trow = np.repeat(np.arange(n_rows, dtype=np.int64)[:, None], lanes, axis=1)
    tlane = np.repeat(np.arange(lanes, dtype=np.int64)[None, :], n_rows, axis=0)
    if n_channels is not None:
        nch = -(-n_channels // lanes)
        if nch <= 0 or n_rows % nch != 0:
            raise ConfigError(
                f"tactical n_channels={n_channels}: {n_rows} rows are not a multiple of {nch} chunks"
            )
        chunk = np.arange(n_rows) % nch
        padded = chunk[:, None] * lanes + np.arange(lanes)[None, :] >= n_channels
        trow[padded] = 0
        tlane[padded] = 0
    return trow, tlane


def _check_map(smap: np.ndarray, lanes: int) -> None:
    # DNNsim wraps a lane offset once; larger offsets would leave the filter.
    if smap.size and np.abs(smap[:, 1]).max() > lanes:
        raise ConfigError(
            f"tactical lookaside reaches lane offset {np.abs(smap[:, 1]).max()} > lanes={lanes}"
        )


@njit()
def _is_zero_row(val, t):
    for f in range(val.shape[1]):
        for i in range(val.shape[2]):
            if val[t, f, i] != 0:
                return False
    return True


@njit()
def _schedule_inplace(val, trow, tlane, smap, lookahead):
    """Greedy promotion on one filter set's buffer val[T, R, L] (+ tuples), in place."""
    n_rows, n_filt, lanes = val.shape
    n_map = smap.shape[0]
    count = np.zeros(lanes, np.int64)
    cand_t = np.zeros(lanes, np.int64)
    cand_l = np.zeros(lanes, np.int64)
    skip = 0
    for t in range(n_rows):
        if skip < lookahead and _is_zero_row(val, t):
            skip += 1
            continue
        skip = 0
        if t + 1 >= n_rows:
            continue  # nothing ahead to promote
        for f in range(n_filt):
            while True:
                overlap = -1
                for i in range(lanes):
                    count[i] = 0
                    if val[t, f, i] != 0:
                        continue
                    for m in range(n_map):
                        th = t + smap[m, 0]
                        if th >= n_rows:
                            continue
                        ld = i + smap[m, 1]
                        if ld < 0:
                            ld += lanes
                        if ld >= lanes:
                            ld -= lanes
                        if val[th, f, ld] != 0:
                            if count[i] == 0:
                                cand_t[i] = th
                                cand_l[i] = ld
                            count[i] += 1
                    if count[i] > 0 and count[i] > overlap:
                        overlap = count[i]
                if overlap <= 0:
                    break
                for i in range(lanes):
                    if val[t, f, i] == 0 and count[i] == overlap:
                        th = cand_t[i]
                        ld = cand_l[i]
                        for arr in (val, trow, tlane):
                            arr[t, f, i], arr[th, f, ld] = arr[th, f, ld], arr[t, f, i]
                        break


@njit()
def _executed_rows(val, lookahead):
    """Rows kept by DNNsim's run-time rule: skip an all-zero row unless `lookahead` were just skipped."""
    n_rows = val.shape[0]
    keep = np.zeros(n_rows, np.bool_)
    skip = 0
    for t in range(n_rows):
        if skip < lookahead and _is_zero_row(val, t):
            skip += 1
            continue
        skip = 0
        keep[t] = True
    return np.nonzero(keep)[0]


@njit()
def _schedule_sets(wsets, trow0, tlane0, smap, lookahead):
    """Schedule every filter set of wsets[n_sets, R, T, L]; outputs indexed by buffer row."""
    n_sets, n_filt, n_rows, lanes = wsets.shape
    sched = np.zeros((n_sets, n_filt, n_rows, lanes), np.int64)
    srow = np.full((n_sets, n_filt, n_rows, lanes), -1, np.int64)
    slane = np.full((n_sets, n_filt, n_rows, lanes), -1, np.int64)
    arow = np.full((n_sets, n_filt, n_rows, lanes), -1, np.int64)
    alane = np.full((n_sets, n_filt, n_rows, lanes), -1, np.int64)
    zero_row = np.zeros((n_sets, n_rows), np.bool_)
    executed = np.zeros((n_sets, n_rows), np.bool_)
    val = np.empty((n_rows, n_filt, lanes), np.int64)
    trow = np.empty((n_rows, n_filt, lanes), np.int64)
    tlane = np.empty((n_rows, n_filt, lanes), np.int64)
    for k in range(n_sets):
        for t in range(n_rows):
            for f in range(n_filt):
                for i in range(lanes):
                    val[t, f, i] = wsets[k, f, t, i]
                    trow[t, f, i] = trow0[t, i]
                    tlane[t, f, i] = tlane0[t, i]
        _schedule_inplace(val, trow, tlane, smap, lookahead)
        executed[k, _executed_rows(val, lookahead)] = True
        for t in range(n_rows):
            zero_row[k, t] = _is_zero_row(val, t)
            for f in range(n_filt):
                for i in range(lanes):
                    v = val[t, f, i]
                    sched[k, f, t, i] = v
                    if v != 0:
                        srow[k, f, t, i] = trow[t, f, i]
                        slane[k, f, t, i] = tlane[t, f, i]
                    if trow[t, f, i] >= t:
                        arow[k, f, t, i] = trow[t, f, i]
                        alane[k, f, t, i] = tlane[t, f, i]
    return sched, srow, slane, arow, alane, zero_row, executed


@dataclass(frozen=True)
class LayerSchedule:
    """Scheduled weight buffers of a layer's filter sets, indexed [set, filter, buffer row, lane].

    Filters past a set's ``n_filters`` (padding of the last set) hold 0 / -1.
    """

    sched_w: np.ndarray  # scheduled weight values
    src_row: np.ndarray  # original row of the weight in the slot, -1 for a zero slot
    src_lane: np.ndarray  # original lane of the weight in the slot, -1 for a zero slot
    act_row: np.ndarray  # activation row the slot reads when its row executes (tuple rule), -1: lane skipped
    act_lane: np.ndarray  # activation lane the slot reads, -1 when the lane is skipped
    zero_row: np.ndarray  # bool [set, row]: the scheduled row is all zero
    executed: np.ndarray  # bool [set, row]: row executed when the set starts with a fresh skip counter
    n_steps: np.ndarray  # int64 [set]: executed rows (steps of the set from a fresh skip counter)
    end_row: np.ndarray  # int64 [set]: DNNsim's wgt_end_time, the last executed row (0 if none)
    n_filters: np.ndarray  # int64 [set]: real filters in each set (the last may be partial)
    lookahead: int

    def step_plan(self, tiles: int, n_window_sets: int = 1) -> list[np.ndarray]:
        """DNNsim's tile loop: one int64 [steps, tiles] array of buffer rows (-1: idle) per
        (window set, filter-set group), window sets outer; fc has one window set."""
        return _step_plan(self.zero_row, self.end_row, tiles, n_window_sets, self.lookahead)


def _step_plan(zero_row, end_row, tiles, n_window_sets, lookahead):
    """Transcription of WindowFirstOutS::still_on_chip_data: per tile time/skip counters, tiles_done.

    The skip counters are only reset when a group ends through tiles_done, so a group without
    any executed row leaves them set for the next group (a DNNsim quirk we reproduce).
    """
    if tiles <= 0 or n_window_sets < 0:
        raise ConfigError(f"tactical step plan: tiles={tiles}, window sets={n_window_sets}: expected > 0")
    n_sets, n_rows = zero_row.shape
    skip = [0] * tiles
    plan = []
    for _ in range(n_window_sets):
        for g in range(0, n_sets, tiles):
            sets = list(range(g, min(n_sets, g + tiles)))
            time = [0] * tiles
            steps = []
            while True:
                rows = [-1] * tiles
                for t, k in enumerate(sets):
                    while time[t] < n_rows:
                        r = time[t]
                        time[t] += 1
                        if skip[t] < lookahead and zero_row[k, r]:
                            skip[t] += 1
                            continue
                        skip[t] = 0
                        rows[t] = r
                        break
                if max(rows) < 0:
                    break
                steps.append(rows)
                if all(time[t] > end_row[k] for t, k in enumerate(sets) if rows[t] >= 0):
                    skip = [0] * tiles  # tiles_done
                    break
            plan.append(np.array(steps, dtype=np.int64).reshape(-1, tiles))
    return plan


def dnnsim_aborts(plan: list[np.ndarray], n_rows: int, lookahead: int) -> bool:
    """True where DNNsim throws on this step plan: each step, the first busy tile asks for activation rows
    ``[requested, row + lookahead + 1)`` (both clipped to ``n_rows``), ``requested`` being the previous
    step's end (0 at a group's start); when tiles drift apart the range runs backwards and DNNsim aborts."""
    for steps in plan:
        requested = 0
        for rows in steps:
            first = int(rows[rows >= 0][0])
            if min(requested, n_rows) > min(first + lookahead + 1, n_rows):
                return True
            requested = first + lookahead + 1
    return False


def _validate(wrows: np.ndarray, ndim: int, name: str) -> np.ndarray:
    arr = np.asarray(wrows)
    if arr.ndim != ndim or not np.issubdtype(arr.dtype, np.integer):
        raise ConfigError(
            f"tactical {name}: expected an integer array of {ndim} dims, got {arr.dtype} {arr.shape}"
        )
    return np.ascontiguousarray(arr, dtype=np.int64)


def schedule_layer(
    wrows_all: np.ndarray,
    rows_per_set: int,
    lookahead: int = 2,
    lookaside: int = 5,
    n_channels: int | None = None,
    search_shape: str = "T",
) -> LayerSchedule:
    """Schedule every filter set (``rows_per_set`` consecutive filters) of wrows_all[K, T, L].

    ``n_channels`` (the layer's C) marks the padded lanes whose DNNsim tuple is (0, 0); it only
    affects ``act_row``/``act_lane``. Without it every lane counts as a real channel.
    """
    w = _validate(wrows_all, 3, "wrows_all")
    if rows_per_set <= 0:
        raise ConfigError(f"tactical rows_per_set={rows_per_set}: expected > 0")
    n_filt_total, n_rows, lanes = w.shape
    smap = search_map(lookahead, lookaside, search_shape)
    _check_map(smap, lanes)
    n_sets = -(-n_filt_total // rows_per_set)
    padded = np.zeros((n_sets * rows_per_set, n_rows, lanes), np.int64)
    padded[:n_filt_total] = w
    wsets = padded.reshape(n_sets, rows_per_set, n_rows, lanes)
    trow0, tlane0 = initial_tuples(n_rows, lanes, n_channels)
    sched, srow, slane, arow, alane, zero_row, executed = _schedule_sets(
        wsets, trow0, tlane0, smap, lookahead
    )
    n_filters = np.minimum(rows_per_set, n_filt_total - np.arange(n_sets) * rows_per_set).astype(np.int64)
    for k in range(n_sets):  # padded filters are not real: DNNsim never reads them
        arow[k, n_filters[k] :] = -1
        alane[k, n_filters[k] :] = -1
    last = np.where(executed.any(axis=1), n_rows - 1 - np.argmax(executed[:, ::-1], axis=1), 0)
    return LayerSchedule(
        sched_w=sched,
        src_row=srow,
        src_lane=slane,
        act_row=arow,
        act_lane=alane,
        zero_row=zero_row,
        executed=executed,
        n_steps=executed.sum(axis=1).astype(np.int64),
        end_row=last.astype(np.int64),
        n_filters=n_filters,
        lookahead=int(lookahead),
    )


def schedule_filter_set(
    wrows: np.ndarray,
    lookahead: int = 2,
    lookaside: int = 5,
    n_channels: int | None = None,
    search_shape: str = "T",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Schedule one filter set wrows[R_active, T, L] -> (sched_w, src_row, src_lane, n_steps).

    The three arrays are [R_active, n_steps, L]: the executed rows only, in order.
    """
    w = _validate(wrows, 3, "wrows")
    if w.shape[0] == 0:
        empty = np.zeros((0, 0, w.shape[2]), np.int64)
        return empty, empty.copy(), empty.copy(), 0
    sch = schedule_layer(w, w.shape[0], lookahead, lookaside, n_channels, search_shape)
    rows = np.nonzero(sch.executed[0])[0]
    return sch.sched_w[0][:, rows], sch.src_row[0][:, rows], sch.src_lane[0][:, rows], int(rows.size)


def schedule_reference(
    wrows: np.ndarray,
    lookahead: int = 2,
    lookaside: int = 5,
    n_channels: int | None = None,
    search_shape: str = "T",
) -> tuple[list[list[list[tuple[int, int, int]]]], list[int]]:
    """Plain-Python transcription of DNNsim's scheduler for one set (tests compare the kernel to it).

    Returns the scheduled buffer ``buf[t][f][i] = (value, tuple_row, tuple_lane)`` and the executed rows.
    """
    w = np.asarray(wrows, dtype=np.int64)
    n_filt, n_rows, lanes = w.shape
    smap = [tuple(int(x) for x in e) for e in search_map(lookahead, lookaside, search_shape)]
    trow0, tlane0 = initial_tuples(n_rows, lanes, n_channels)
    buf = [
        [
            [(int(w[f, t, i]), int(trow0[t, i]), int(tlane0[t, i])) for i in range(lanes)]
            for f in range(n_filt)
        ]
        for t in range(n_rows)
    ]

    def zero_row(t):
        return all(slot[0] == 0 for filt in buf[t] for slot in filt)

    def search(t, f, i):
        found = []
        if t + 1 >= n_rows:
            return found
        for dh, dd in smap:
            th, ld = t + dh, i + dd
            if th >= n_rows:
                continue
            ld = ld + lanes if ld < 0 else ld
            ld = ld - lanes if ld >= lanes else ld
            if buf[th][f][ld][0] != 0:
                found.append((th, ld))
        return found

    skip = 0
    for t in range(n_rows):
        if skip < lookahead and zero_row(t):
            skip += 1
            continue
        skip = 0
        for f in range(n_filt):
            while True:
                zeros = [i for i in range(lanes) if buf[t][f][i][0] == 0]
                cands = {i: search(t, f, i) for i in zeros}
                overlap = max((len(c) for c in cands.values() if c), default=-1)
                if overlap <= 0:
                    break
                i = next(i for i in zeros if len(cands[i]) == overlap)
                th, ld = cands[i][0]
                buf[t][f][i], buf[th][f][ld] = buf[th][f][ld], buf[t][f][i]

    executed, skip = [], 0
    for t in range(n_rows):
        if skip < lookahead and zero_row(t):
            skip += 1
            continue
        skip = 0
        executed.append(t)
    return buf, executed
