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
from functools import cached_property

import numpy as np

from bitpruner.errors import ConfigError

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


@dataclass(frozen=True)
class LayerSchedule:
    """Scheduled weight buffers of a layer's filter sets, indexed [set, filter, buffer row, lane] (int32).

    Filters past a set's ``n_filters`` (padding of the last set) hold 0. Each slot keeps the activation tuple
    (row, lane) of the weight that sits in it; ``act_row``/``act_lane`` (what the slot reads when its row runs)
    and ``src_row``/``src_lane`` (where its weight came from) derive from the tuples on first use.
    """

    sched_w: np.ndarray  # scheduled weight values
    tuple_row: np.ndarray  # activation tuple of each slot: row (DNNsim's (0, 0) on padded lanes)
    tuple_lane: np.ndarray  # activation tuple of each slot: lane
    zero_row: np.ndarray  # bool [set, row]: the scheduled row is all zero
    executed: np.ndarray  # bool [set, row]: row executed when the set starts with a fresh skip counter
    n_steps: np.ndarray  # int64 [set]: executed rows (steps of the set from a fresh skip counter)
    end_row: np.ndarray  # int64 [set]: DNNsim's wgt_end_time, the last executed row (0 if none)
    n_filters: np.ndarray  # int64 [set]: real filters in each set (the last may be partial)
    lookahead: int

    @cached_property
    def tuple_key(self) -> np.ndarray:
        """int32 [set, filter, row, lane]: each slot's tuple as one key, row * L + lane."""
        return self.tuple_row * self.tuple_row.shape[3] + self.tuple_lane

    def act_keys(self, sets: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """act_slots as keys row * L + lane (int32 [n, R, L]; -1 where a lane is skipped or a filter padded)."""
        keys = self.tuple_key[sets, :, rows]
        rows = np.asarray(rows)[:, None, None]
        padded = np.arange(keys.shape[1])[None, :, None] >= self.n_filters[sets][:, None, None]
        keys[(keys < rows * self.tuple_row.shape[3]) | padded] = -1  # tuple row before the running row
        return keys

    def act_slots(self, sets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, lane) each filter's lanes read when set sets[j] runs buffer row rows[j]: int32 [n, R, L] each,
        -1 where DNNsim skips the lane (the slot's tuple row is before the running row: DNNsim's tuple rule,
        zero weights included) and on padded filters."""
        arow = self.tuple_row[sets, :, rows]
        skipped = (arow < np.asarray(rows)[:, None, None]) | (
            np.arange(arow.shape[1])[None, :, None] >= self.n_filters[sets][:, None, None])
        return np.where(skipped, -1, arow), np.where(skipped, -1, self.tuple_lane[sets, :, rows])

    @cached_property
    def act_row(self) -> np.ndarray:
        """Activation row each slot reads when its row runs, -1: lane skipped (see act_slots)."""
        return self._act_all()[0]

    @cached_property
    def act_lane(self) -> np.ndarray:
        """Activation lane each slot reads when its row runs, -1: lane skipped."""
        return self._act_all()[1]

    def _act_all(self) -> tuple[np.ndarray, np.ndarray]:
        n_sets, _, n_rows, _ = self.tuple_row.shape
        sets, rows = np.repeat(np.arange(n_sets), n_rows), np.tile(np.arange(n_rows), n_sets)
        arow, alane = self.act_slots(sets, rows)  # [set*row, R, L]
        shape = (n_sets, n_rows) + arow.shape[1:]
        return (np.ascontiguousarray(arow.reshape(shape).transpose(0, 2, 1, 3)),
                np.ascontiguousarray(alane.reshape(shape).transpose(0, 2, 1, 3)))

    @property
    def src_row(self) -> np.ndarray:
        """Original row of the weight in each slot, -1 for a zero slot."""
        return np.where(self.sched_w != 0, self.tuple_row, -1)

    @property
    def src_lane(self) -> np.ndarray:
        """Original lane of the weight in each slot, -1 for a zero slot."""
        return np.where(self.sched_w != 0, self.tuple_lane, -1)

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
    skip = [0] * tiles
    plan = []
    for _ in range(n_window_sets):
        steps, skip = window_set_steps(zero_row, end_row, tiles, lookahead, skip)
        plan.extend(steps)
    return plan


def window_set_steps(zero_row, end_row, tiles: int, lookahead: int, skip: list[int]
                     ) -> tuple[list[np.ndarray], list[int]]:
    """One window set of DNNsim's tile loop: per filter-set group an int64 [steps, tiles] array of buffer rows
    (-1: idle), and the per-tile skip counters it leaves (`skip` is not modified). The counters carry over to the
    next group and window set, and are reset only when a group ends through tiles_done."""
    n_sets, n_rows = zero_row.shape
    skip = list(skip)
    plans = []
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
        plans.append(np.array(steps, dtype=np.int64).reshape(-1, tiles))
    return plans, skip


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
    return arr


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
    # [set, filter, row, lane]; int32 halves the memory of int64 (16-bit weights, buffer rows and lanes).
    val = np.zeros((n_sets * rows_per_set, n_rows, lanes), np.int32)
    val[:n_filt_total] = w
    val = val.reshape(n_sets, rows_per_set, n_rows, lanes)
    trow0, tlane0 = initial_tuples(n_rows, lanes, n_channels)
    trow, tlane = np.empty(val.shape, np.int32), np.empty(val.shape, np.int32)
    trow[...], tlane[...] = trow0, tlane0
    from bitpruner.sim.vectorized import schedule_sets

    schedule_sets(val, trow, tlane, smap, lookahead)
    zero_row = ~val.any(axis=(1, 3))
    executed = _executed_rows(zero_row, lookahead)
    n_filters = np.minimum(rows_per_set, n_filt_total - np.arange(n_sets) * rows_per_set).astype(np.int64)
    last = np.where(executed.any(axis=1), n_rows - 1 - np.argmax(executed[:, ::-1], axis=1), 0)
    return LayerSchedule(
        sched_w=val,
        tuple_row=trow,
        tuple_lane=tlane,
        zero_row=zero_row,
        executed=executed,
        n_steps=executed.sum(axis=1).astype(np.int64),
        end_row=last.astype(np.int64),
        n_filters=n_filters,
        lookahead=int(lookahead),
    )


def _executed_rows(zero_row: np.ndarray, lookahead: int) -> np.ndarray:
    """bool [set, row]: DNNsim's run-time rule, every set from a fresh skip counter: an all-zero row is
    skipped unless `lookahead` rows were skipped just before it."""
    executed = np.zeros_like(zero_row)
    skip = np.zeros(zero_row.shape[0], np.int64)
    for t in range(zero_row.shape[1]):
        skipping = (skip < lookahead) & zero_row[:, t]
        skip = np.where(skipping, skip + 1, 0)
        executed[:, t] = ~skipping
    return executed


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
