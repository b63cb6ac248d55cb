"""BitTactical scheduler: kernel vs plain reference, hand-made schedules, invariants, DNNsim cycles."""

import numpy as np
import pytest

from bitpruner.errors import ConfigError
from bitpruner.sim.tactical import (
    dnnsim_aborts,
    schedule_filter_set,
    schedule_layer,
    schedule_reference,
    search_map,
)

L16 = 16


def sparse_weights(rng, shape, density):
    return rng.integers(-9, 10, size=shape) * (rng.random(shape) < density)


# ---------------------------------------------------------------- search map


def test_search_map_t_shape_matches_dnnsim_order():
    # DNNsim BitTactical.h builds (1,0),(2,0),(1,1),(1,-1),(2,2),(2,-2),(1,3) and sorts the tuples.
    expected = [(1, -1), (1, 0), (1, 1), (1, 3), (2, -2), (2, 0), (2, 2)]
    assert [tuple(e) for e in search_map(2, 5, "T")] == expected


def test_search_map_l_shape_and_errors():
    assert [tuple(e) for e in search_map(2, 3, "L")] == [(1, -3), (1, -2), (1, -1), (1, 0), (2, 0)]
    with pytest.raises(ConfigError):
        search_map(2, 5, "X")
    with pytest.raises(ConfigError):
        schedule_layer(np.ones((1, 2, 2), np.int64), 1, 2, 5)  # lane offset 3 > 2 lanes


# ---------------------------------------------------------------- kernel == reference


def assert_matches_reference(sch, k, w, h, d, n_channels, shape):
    """Set k of `sch` equals the plain scheduler run on that set's weights w[R, T, L]."""
    buf, executed = schedule_reference(w, h, d, n_channels, shape)
    assert list(np.nonzero(sch.executed[k])[0]) == executed
    n_filt, n_rows, lanes = w.shape
    got = np.stack([sch.sched_w[k, :n_filt], sch.src_row[k, :n_filt], sch.src_lane[k, :n_filt],
                    sch.act_row[k, :n_filt], sch.act_lane[k, :n_filt]], axis=-1)  # [R, T, L, 5]
    want = np.array([[[(v, *((r, c) if v != 0 else (-1, -1)), *((r, c) if r >= t else (-1, -1)))
                       for v, r, c in buf[t][f]] for t in range(n_rows)] for f in range(n_filt)])
    assert np.array_equal(got, want.reshape(got.shape))


@pytest.mark.parametrize("seed", range(6))
def test_kernel_matches_plain_reference(seed, jit_mode):
    rng = np.random.default_rng(seed)
    for _ in range(25):
        n_filt, n_rows, lanes = int(rng.integers(1, 5)), int(rng.integers(1, 9)), int(rng.integers(6, 9))
        w = sparse_weights(rng, (n_filt, n_rows, lanes), rng.random())
        shape = str(rng.choice(["T", "L"]))
        h, d = (2, 5) if rng.random() < 0.5 else (int(rng.integers(0, 4)), int(rng.integers(0, 4)))
        nch = n_rows if rng.random() < 0.5 else 1
        n_channels = int(rng.integers((nch - 1) * lanes + 1, nch * lanes + 1)) if rng.random() < 0.5 else None
        sch = schedule_layer(w, n_filt, h, d, n_channels, shape)
        buf, executed = schedule_reference(w, h, d, n_channels, shape)
        assert list(np.nonzero(sch.executed[0])[0]) == executed
        for t in range(n_rows):
            for f in range(n_filt):
                for i in range(lanes):
                    value, trow, tlane = buf[t][f][i]
                    assert sch.sched_w[0, f, t, i] == value
                    src = (trow, tlane) if value != 0 else (-1, -1)
                    assert (sch.src_row[0, f, t, i], sch.src_lane[0, f, t, i]) == src
                    act = (trow, tlane) if trow >= t else (-1, -1)
                    assert (sch.act_row[0, f, t, i], sch.act_lane[0, f, t, i]) == act


@pytest.mark.parametrize("lanes", [16, 70])  # 70 lanes: beyond one bit mask (the numpy form goes lane by lane)
def test_every_filter_set_matches_plain_reference(jit_mode, lanes):
    # Several sets per call (the forms work on all sets at once), each with its own skip counter: set 1 has
    # all-zero rows to skip, the last set is partial.
    rng = np.random.default_rng(lanes)
    w = sparse_weights(rng, (11, 9, lanes), 0.35)
    w[4:8, 2:5] = 0
    sch = schedule_layer(w, 4, 2, 5, n_channels=9 * lanes - 3)
    # rows 2, 3 skipped; row 4 runs (at most lookahead = 2 skips in a row) and is filled from rows 5, 6
    assert sch.zero_row[1, 2:4].all() and not sch.executed[1, 2:4].any() and sch.executed[1, 4]
    for k, start in enumerate(range(0, 11, 4)):
        assert_matches_reference(sch, k, w[start : start + 4], 2, 5, 9 * lanes - 3, "T")


# ---------------------------------------------------------------- hand-made schedules


def one_filter(rows):
    return np.array(rows, dtype=np.int64)[None]  # [1, T, L]


def test_single_zero_filled_from_lookahead_and_emptied_row_skipped():
    w = one_filter([[1, 0, 1, 1], [0, 2, 0, 0]])
    sched, src_row, src_lane, n_steps = schedule_filter_set(w, 2, 5)
    assert n_steps == 1  # row 1 became all zero and is skipped
    assert sched[0, 0].tolist() == [1, 2, 1, 1]
    assert (src_row[0, 0, 1], src_lane[0, 0, 1]) == (1, 1)
    assert (src_row[0, 0, 0], src_lane[0, 0, 0]) == (0, 0)


def test_lookaside_wraps_within_the_filter_lanes():
    # lane 0's first candidate in map order is (1, -1): lane -1 wraps to lane 3 of the same filter.
    w = one_filter([[0, 1, 1, 1], [0, 0, 0, 5]])
    sched, src_row, src_lane, n_steps = schedule_filter_set(w, 2, 5)
    assert n_steps == 1
    assert sched[0, 0].tolist() == [5, 1, 1, 1]
    assert (src_row[0, 0, 0], src_lane[0, 0, 0]) == (1, 3)


def test_wrap_does_not_cross_into_the_next_filter():
    w = np.zeros((2, 2, 4), np.int64)
    w[0, 0] = [0, 1, 1, 1]
    w[1, 0] = [1, 1, 1, 1]
    w[1, 1] = [0, 0, 0, 5]  # reachable from filter 0 lane 0 only if lanes leaked across filters
    sched, _, _, n_steps = schedule_filter_set(w, 2, 5)
    assert n_steps == 2
    assert sched[0, 0].tolist() == [0, 1, 1, 1]


def test_zero_lane_with_most_candidates_is_filled_first():
    # Lane 1 sees 3 candidates (5 twice through the +3 wrap, and 7), lane 0 sees one (5): lane 1 goes
    # first and takes 5, which leaves lane 0 without a candidate. Greedy, not optimal: 2 steps, not 1.
    w = one_filter([[0, 0, 1, 1], [5, 0, 7, 0]])
    sched, src_row, src_lane, n_steps = schedule_filter_set(w, 2, 5)
    assert n_steps == 2
    assert sched[0, 0].tolist() == [0, 5, 1, 1]
    assert sched[0, 1].tolist() == [0, 0, 7, 0]
    assert (src_row[0, 0, 1], src_lane[0, 0, 1]) == (1, 0)


def test_all_zero_rows_skipped_at_most_lookahead_in_a_row():
    rows = [[1, 1]] + [[0, 0]] * 5 + [[1, 1]]
    sch = schedule_layer(one_filter(rows), 1, 2, 0, search_shape="L")
    # rows 1,2 skipped, row 3 executed although zero, rows 4,5 skipped, row 6 executed
    assert np.nonzero(sch.executed[0])[0].tolist() == [0, 3, 6]
    assert int(sch.n_steps[0]) == 3 and int(sch.end_row[0]) == 6
    sch1 = schedule_layer(one_filter(rows), 1, 1, 0, search_shape="L")
    assert np.nonzero(sch1.executed[0])[0].tolist() == [0, 2, 4, 6]


def test_dense_rows_unchanged():
    rng = np.random.default_rng(3)
    w = rng.integers(1, 9, size=(5, 6, L16))
    sched, src_row, src_lane, n_steps = schedule_filter_set(w, 2, 5)
    assert n_steps == 6
    assert np.array_equal(sched, w)
    assert np.array_equal(src_row, np.broadcast_to(np.arange(6)[None, :, None], w.shape))
    assert np.array_equal(src_lane, np.broadcast_to(np.arange(L16)[None, None, :], w.shape))


def test_padded_lanes_read_activation_zero_zero_only_at_row_zero():
    # C=3 in 16 lanes: DNNsim initializes lanes 3..15 to the tuple (0, 0).
    w = np.zeros((1, 2, L16), np.int64)
    w[:, 0, :3] = 1  # row 1 all zero: nothing to promote, so the tuples stay as initialized
    sch = schedule_layer(w, 1, 2, 5, n_channels=3)
    assert sch.act_row[0, 0, 0, 3:].tolist() == [0] * 13 and sch.act_lane[0, 0, 0, 3:].tolist() == [0] * 13
    assert sch.act_row[0, 0, 1, 3:].tolist() == [-1] * 13  # tuple row 0 is before row 1: skipped
    assert sch.act_lane[0, 0, 1, :3].tolist() == [0, 1, 2]


# ---------------------------------------------------------------- invariants


@pytest.mark.parametrize("density", [0.05, 0.3, 0.8])
def test_every_weight_scheduled_once_at_a_reachable_slot(density):
    rng = np.random.default_rng(int(density * 100))
    w = sparse_weights(rng, (37, 18, L16), density)
    sch = schedule_layer(w, 16, 2, 5)
    reach = {(0, 0)} | {(int(h), int(d) % L16) for h, d in search_map(2, 5)}
    for k in range(len(sch.n_steps)):
        for f in range(int(sch.n_filters[k])):
            moved = sch.sched_w[k, f]
            nz = np.nonzero(moved)
            assert np.count_nonzero(w[k * 16 + f]) == len(nz[0])
            for t, i in zip(*nz, strict=True):
                r, c = sch.src_row[k, f, t, i], sch.src_lane[k, f, t, i]
                assert w[k * 16 + f, r, c] == moved[t, i]
                assert (int(r - t), int(c - i) % L16) in reach
            pairs = {
                (int(sch.src_row[k, f, t, i]), int(sch.src_lane[k, f, t, i]))
                for t, i in zip(*nz, strict=True)
            }
            assert len(pairs) == len(nz[0])  # no weight twice
    assert (sch.n_steps <= w.shape[1]).all()
    # executed rows hold every non-zero weight: skipping never drops work
    for k in range(len(sch.n_steps)):
        assert not sch.sched_w[k][:, ~sch.executed[k]].any()


def test_step_plan_groups_last_as_long_as_their_longest_set():
    rng = np.random.default_rng(11)
    w = sparse_weights(rng, (70, 12, L16), 0.15)
    sch = schedule_layer(w, 16, 2, 5)
    plan = sch.step_plan(tiles=2, n_window_sets=3)
    assert len(plan) == 3 * 3
    for p, steps in enumerate(plan):
        g = (p % 3) * 2
        sets = range(g, min(5, g + 2))
        assert len(steps) == max(int(sch.n_steps[k]) for k in sets)
        for t, k in enumerate(sets):
            rows = steps[:, t][steps[:, t] >= 0]
            assert rows.tolist() == np.nonzero(sch.executed[k])[0].tolist()


def test_step_plan_carries_skip_counters_after_an_idle_group():
    # T=2 <= lookahead: sets 1 and 2 are all zero and execute nothing; DNNsim does not reset the tile's
    # skip counter after set 1's idle group, so set 2 executes its (zero) row 0. DNNsim gives 2 cycles
    # on this layer (BitTactical, tiles=1; run on DNNsim at commit 4748a60, see test below for setup).
    w = np.zeros((48, 2, L16), np.int64)
    w[:16, 1, 1] = 3
    sch = schedule_layer(w, 16, 2, 5)
    plan = sch.step_plan(tiles=1)
    assert [p[:, 0].tolist() for p in plan] == [[1], [], [0]]


# ---------------------------------------------------------------- cycles against DNNsim


def dnnsim_rows(wgt, act, stride, pad, lanes=L16):
    """DNNsim layout W[K,C,x,y], A[C,x,y] -> weight rows [K,T,L] and per-window activation rows."""
    n_filt, n_chan, kx_n, ky_n = wgt.shape
    nch = -(-n_chan // lanes)
    a = np.pad(act, ((0, 0), (pad, pad), (pad, pad)))
    out_x = (a.shape[1] - kx_n) // stride + 1
    out_y = (a.shape[2] - ky_n) // stride + 1
    rows = np.zeros((n_filt, nch * kx_n * ky_n, lanes), np.int64)
    arows = np.zeros((out_x * out_y, nch * kx_n * ky_n, lanes), np.int64)
    for ky in range(ky_n):
        for kx in range(kx_n):
            for c in range(n_chan):
                t = (ky * kx_n + kx) * nch + c // lanes
                rows[:, t, c % lanes] = wgt[:, c, kx, ky]
                for win in range(out_x * out_y):
                    x0, y0 = (win % out_x) * stride, (win // out_x) * stride
                    arows[win, t, c % lanes] = a[c, x0 + kx, y0 + ky]
    return rows, arows


def tiny_layer(seed):
    """Seeded generator of the traces run through DNNsim for the expected numbers below."""
    rng = np.random.default_rng(seed)
    wgt = rng.integers(-100, 101, size=(20, 21, 3, 3)) * (rng.random((20, 21, 3, 3)) < 0.25)
    wgt[:, 5:9] = 0  # dead channels give all-zero rows to skip
    act = rng.integers(-300, 300, size=(21, 5, 5)) * (rng.random((21, 5, 5)) < 0.6)
    fc_w = rng.integers(-100, 101, size=(35, 150)) * (rng.random((35, 150)) < 0.1)
    return wgt, act, fc_w


def tactical_cycles(sch, arows, cost, tiles, columns):
    """Conv cycles without column registers: per step, max over busy tiles, filters and windows."""
    n_win = arows.shape[0]
    n_groups = -(-len(sch.n_steps) // tiles)
    plan = sch.step_plan(tiles, -(-n_win // columns))
    total = 0
    for p, steps in enumerate(plan):
        wins = arows[(p // n_groups) * columns : (p // n_groups + 1) * columns]
        for rows in steps:
            worst = 1
            for t, r in enumerate(rows):
                k = (p % n_groups) * tiles + t
                for f in range(int(sch.n_filters[k])) if r >= 0 else ():
                    ar, al = sch.act_row[k, f, r], sch.act_lane[k, f, r]
                    sel = wins[:, ar[ar >= 0], al[ar >= 0]]  # [windows, selected lanes]
                    worst = max(worst, max(cost(v) for v in sel))
            total += worst
    return total


def pragmatic_b0(vals):
    """BitPragmatic with bits_first_stage=0: popcount of the OR of the lane magnitudes, at least 1."""
    acc = 0
    for v in vals:
        acc |= abs(int(v))
    return max(1, bin(acc).count("1"))


def shapeshifter_signed(vals):
    """ShapeShifter precision of a signed layer's lanes: max(highest bit of (v or ~v)) + 1, plus 1."""
    if len(vals) == 0:
        return 1
    bits = [((int(v) & 0xFFFF) ^ (0xFFFF if v < 0 else 0)).bit_length() - 1 for v in vals]
    return max(max(b, 0) + 1 for b in bits) + 1


@pytest.mark.parametrize(
    ("tiles", "rows", "columns", "expected"),
    [
        # Expected compute_cycles from DNNsim (github isakedo/DNNsim, commit 4748a60, dataflow
        # WindowFirstOutS, task Cycles, lanes 16, pe_width 16, h=2, d=5, shape T, column_registers 0,
        # bits_first_stage 0, no booth) on the traces tiny_layer(seed=7) writes (conv stride 1, pad 1;
        # fc): (BitTactical conv, BitTactical fc, BitTacticalE conv, BitTacticalP conv).
        (16, 16, 16, (18, 4, 162, 180)),
        (2, 4, 4, (161, 20, 1259, 1433)),
    ],
)
def test_cycles_match_dnnsim(tiles, rows, columns, expected):
    wgt, act, fc_w = tiny_layer(7)
    wrows, arows = dnnsim_rows(wgt, act, stride=1, pad=1)
    sch = schedule_layer(wrows, rows, 2, 5, n_channels=wgt.shape[1])
    n_win = arows.shape[0]
    conv_steps = sum(len(p) for p in sch.step_plan(tiles, -(-n_win // columns)))
    fc_rows = np.zeros((35, 10, L16), np.int64)
    fc_rows.reshape(35, -1)[:, :150] = fc_w
    fc_sch = schedule_layer(fc_rows, rows, 2, 5, n_channels=150)
    fc_steps = sum(len(p) for p in fc_sch.step_plan(tiles, 1))
    e_cycles = tactical_cycles(sch, arows, pragmatic_b0, tiles, columns)
    p_cycles = tactical_cycles(sch, arows, shapeshifter_signed, tiles, columns)
    assert (conv_steps, fc_steps, e_cycles, p_cycles) == expected


def test_resnet_conv2_layer_schedule_saves_rows():
    # (Its speed, < 0.5 s, is measured by benchmarks/sim_speed.py, not asserted here.)
    rng = np.random.default_rng(0)
    w = sparse_weights(rng, (64, 36, L16), 0.35)
    sch = schedule_layer(w, 16)
    assert (sch.n_steps < 36).all()


def test_dnnsim_abort_predicted_when_the_leading_tile_runs_ahead():
    # Tile 0 skips its zero rows 1-2 and finishes at row 3 while tile 1 still runs rows 1..3: at the
    # step after, tile 1 leads and asks for rows [3+3, 2+3): DNNsim throws there.
    plan = [np.array([[0, 0], [3, 1], [-1, 2], [-1, 3]], np.int64)]
    assert dnnsim_aborts(plan, n_rows=8, lookahead=2)
    assert not dnnsim_aborts(plan, n_rows=5, lookahead=2)  # both ends clipped to T: empty, no throw
    in_step = [np.array([[0, 0], [1, 1], [2, 2]], np.int64)]
    assert not dnnsim_aborts(in_step, n_rows=8, lookahead=2)
