"""The engine's Bitlet / BitWave / BitVert / PragmaticW against BitSim's per-layer numbers where the two tilings agree
(spec: new_designs.md 3.3(3)), BitSim's numbers coming from `bitpruner.sim.bitsim.bitsim_layer_cycles` (itself
tested against the reference code's fixtures).

Conditions for equality: conv with ``C >= k^2`` (BitSim groups channels, as we do), ``tiles = 1``, ``lanes = G``,
``rows = h``, ``columns = w``, and every tile's BitSim cost >= 1 so that our step floor is inert; a negative weight
in every 8 consecutive channels of every (filter, kernel position) gives that for every design and every G that
is a multiple of 8, and makes BitSim's BitWave (max over filters of non-zero columns + sign - 1) equal to our
natural cost. With ``S`` the sum of step costs, the engine gives ``ceil(Ox*Oy/Cc) * S`` and BitSim
``ceil(Ox/Cc) * Oy * S``: equal when ``Oy = 1`` or ``Cc | Ox``, else in that ratio. fc: one buffer row and one
filter set (``C <= L``, ``K <= R``), where both are the single step cost.

PragmaticW (``bits_first_stage >= 3``, no Booth: each lane clears one bit per cycle) against BitSim's Pragmatic
(spec 2.4): BitSim counts ``popcount(|w|) + [w < 0]``, so the two agree when no weight is -128 and no negative
weight reaches the tile's largest popcount; the layers below keep negative weights to one set bit and put a
positive weight of at least two set bits in every 8 channels."""

import json
import math

import numpy as np
import pytest

from bitpruner.sim import bitsim
from bitpruner.sim.designs import ARCHS
from bitpruner.sim.engine import simulate_layer
from bitpruner.sim.params import SimParams
from bitpruner.sim.traces import LayerTrace, from_torch_layout
from bitpruner.sim.weight_columns import BITWAVE_DATAFLOWS
from helpers.paths import BITSIM_FIXTURES

# (engine design, engine options, bitsim design, bitsim options)
PAIRS = [
    ("Bitlet", {}, "Bitlet", {}),
    ("BitWave", {}, "BitWave", {}),
    ("BitVert", {"bidirectional": False, "drop_sign_extension": 0}, "BitVert", {}),  # BitSim's "no BBS"
    ("BitVert", {"fixed_precision": 6}, "BitVert", {"bbs": True, "w_prec": 6}),  # BitSim's BBS: constant p
]
CHUNK = 8  # a negative weight in every CHUNK channels: every group of a multiple of CHUNK lanes has one
PRAGMATIC = ("PragmaticW", {"bits_first_stage": 3}, "Pragmatic", {})


def torch_weights(rng, K, C, kh, kw):
    """int64 [K, C, kh, kw] in [-128, 127], a negative weight among every CHUNK consecutive channels."""
    w = rng.integers(-128, 128, (K, C, kh, kw)) * (rng.random((K, C, kh, kw)) < 0.7)
    w[:, ::CHUNK] = -rng.integers(1, 129, (K, len(range(0, C, CHUNK)), kh, kw))
    return w


def conv_trace(w_torch, width, height):
    """Our trace of a conv layer (x-first axes) with an input of `width` x `height`, stride 1, no padding."""
    C = w_torch.shape[1]
    acts = np.ones((1, C, width, height), np.int64)
    return LayerTrace("c", "conv", np.swapaxes(w_torch, -1, -2), acts)


@pytest.mark.parametrize("arch, options, bs_design, bs_options", PAIRS, ids=lambda v: str(v))
@pytest.mark.parametrize("G, h, w", [(8, 2, 4), (16, 4, 3), (32, 2, 2)])
def test_one_output_row_is_equal(arch, options, bs_design, bs_options, G, h, w):
    rng = np.random.default_rng(G + h)
    for K, C, k in ((5, 16, 3), (4, 32, 1), (3, 16, 2)):
        wt = torch_weights(rng, K, C, k, k)
        ox = 7  # input height = kernel height, no padding: Oy = 1
        layer = conv_trace(wt, ox + k - 1, k)
        params = SimParams(lanes=G, rows=h, columns=w, tiles=1, **options)
        expected = bitsim.bitsim_layer_cycles(wt, bs_design, G, h, w, oh=1, ow=ox, **bs_options)
        assert simulate_layer(layer, arch, params) == expected, (K, C, k)


@pytest.mark.parametrize("arch, options, bs_design, bs_options", PAIRS, ids=lambda v: str(v))
def test_columns_dividing_the_output_width_are_equal_and_otherwise_in_ratio(arch, options, bs_design, bs_options):
    rng = np.random.default_rng(1)
    wt = torch_weights(rng, 6, 16, 3, 3)
    G, h, cols = 16, 4, 4
    params = SimParams(lanes=G, rows=h, columns=cols, tiles=1, **options)
    # Ox = 8 (a multiple of the 4 columns), Oy = 3
    equal = simulate_layer(conv_trace(wt, 10, 5), arch, params)
    assert equal == bitsim.bitsim_layer_cycles(wt, bs_design, G, h, cols, oh=3, ow=8, **bs_options)
    # Ox = 5, Oy = 3: ours ceil(15 / 4) = 4 window sets, BitSim ceil(5 / 4) * 3 = 6 column tiles of the same S
    ours = simulate_layer(conv_trace(wt, 7, 5), arch, params)
    theirs = bitsim.bitsim_layer_cycles(wt, bs_design, G, h, cols, oh=3, ow=5, **bs_options)
    assert ours * 6 == theirs * 4 and ours > 0


@pytest.mark.parametrize("arch, options, bs_design, bs_options", PAIRS, ids=lambda v: str(v))
def test_fc_with_one_step_is_equal(arch, options, bs_design, bs_options):
    rng = np.random.default_rng(2)
    for K, C in ((3, 16), (8, 32), (1, 8)):
        wt = torch_weights(rng, K, C, 1, 1)[:, :, 0, 0]
        layer = LayerTrace("f", "fc", wt, np.ones((1, C), np.int64))
        params = SimParams(lanes=C, rows=K, columns=16, tiles=1, **options)
        assert simulate_layer(layer, arch, params) == bitsim.bitsim_layer_cycles(wt, bs_design, C, K, 16, **bs_options)


def test_bitwave_dataflow_choice_is_equal_on_one_output_row():
    assert tuple(BITWAVE_DATAFLOWS) == tuple(bitsim.BITWAVE_DATAFLOWS)
    rng = np.random.default_rng(3)
    for K, C, k in ((6, 32, 3), (40, 16, 1)):
        wt = torch_weights(rng, K, C, k, k)
        ox = 9
        params = SimParams(tiles=1, dataflow_choice=True)
        expected = bitsim.bitsim_layer_cycles(wt, "BitWave", 8, 32, 16, oh=1, ow=ox, dataflows=BITWAVE_DATAFLOWS)
        assert simulate_layer(conv_trace(wt, ox + k - 1, k), "BitWave", params) == expected


def pragmatic_weights(rng, K, C, kh, kw):
    """int64 [K, C, kh, kw]: positives in [0, 127], negatives -2**j (one set bit), and in every CHUNK channels a
    positive weight of 2..7 set bits, so that BitSim's sign term never raises a tile's max."""
    shape = (K, C, kh, kw)
    w = rng.integers(0, 128, shape) * (rng.random(shape) < 0.6)
    w = np.where(rng.random(shape) < 0.3, -(1 << rng.integers(0, 7, shape)), w)
    w[:, ::CHUNK] = rng.choice([3, 7, 31, 100, 127], (K, len(range(0, C, CHUNK)), kh, kw))
    return w


@pytest.mark.parametrize("G, h, w", [(8, 32, 16), (8, 2, 4), (16, 4, 3)])
def test_pragmatic_w_against_bitsim_pragmatic(G, h, w):
    arch, options, bs_design, _ = PRAGMATIC
    rng = np.random.default_rng(G * h)
    for K, C, k in ((5, 16, 3), (40, 32, 1)):
        wt = pragmatic_weights(rng, K, C, k, k)
        params = SimParams(lanes=G, rows=h, columns=w, tiles=1, **options)
        ox = 7
        expected = bitsim.bitsim_layer_cycles(wt, bs_design, G, h, w, oh=1, ow=ox)
        assert simulate_layer(conv_trace(wt, ox + k - 1, k), arch, params) == expected
        fc = wt[: min(K, h), :G, 0, 0]
        params = SimParams(lanes=G, rows=h, columns=w, tiles=1, **options)
        assert simulate_layer(LayerTrace("f", "fc", fc, np.ones((1, fc.shape[1]), np.int64)), arch, params) == (
            bitsim.bitsim_layer_cycles(fc, bs_design, G, h, w))
    # A negative weight that reaches the max: BitSim counts its sign (one more), we do not.
    one = np.array([[-7, 3, 0, 0, 0, 0, 0, 0]])
    layer = LayerTrace("f", "fc", one, np.ones((1, 8), np.int64))
    ours = simulate_layer(layer, arch, SimParams(lanes=8, rows=1, columns=1, tiles=1, **options))
    assert (ours, bitsim.bitsim_layer_cycles(one, bs_design, 8, 1, 1)) == (3, 4)


# ---------------------------------------------------------------- random layers in every window-set regime
# Random conv layers (stride, padding, C not a multiple of G, short filter blocks) in the three regimes: one
# output row, Cc | Ox (equal), neither (the ratio). PragmaticW with a full-reach shifter is BitSim's Pragmatic on
# non-negative weights, and on signed ones once the sign is handed to the engine as one more essential bit
# ((|w| << 1) | [w < 0]); with bits_first_stage = 0 it is BitSim's BitWave when every filter group holds a
# negative weight (its sign column then pays for BitSim's - 1). Then the same regimes for every pair of PAIRS.

FULL_REACH_BFS = 4  # bits_first_stage from which every lane has its own shifter
CASES = 36  # random layers per test
A = [5, -3, 0, 12, -20, -7, 64, -1]
A2 = [-3, 3, -8, 0, 100, -50, -1, 2]


def _conv_case(rng, case: int) -> dict:
    """A random conv layer shape (C >= k^2, stride 1-2, pad 0-1) and a geometry (G even: BitVert's m = G / 2).
    case % 3 picks the window-set regime: 0: one output row (Oy = 1), 1: Cc divides Ox, 2: anything."""
    k = int(rng.integers(1, 4))
    K, C = int(rng.integers(1, 10)), int(rng.integers(k * k, k * k + 20))
    G, h, cols = int(rng.choice([2, 4, 8, 16])), int(rng.integers(1, 5)), int(rng.integers(1, 9))
    stride, pad = int(rng.integers(1, 3)), int(rng.integers(0, 2))
    regime = case % 3
    H, W = int(rng.integers(k, k + 8)), int(rng.integers(k, k + 12))
    if regime == 0:
        H, pad = k, 0
    elif regime == 1:  # W such that Ox is a multiple of Cc
        ox = cols * int(rng.integers(1, 4))
        W = (ox - 1) * stride + k - 2 * pad
        if W < 1:
            W, pad = (ox - 1) * stride + k, 0
    return dict(K=K, C=C, k=k, H=H, W=W, stride=stride, pad=pad, G=G, h=h, cols=cols)


def _weights(rng, c: dict, sign: int, max_mag: int = 127) -> np.ndarray:
    """int64 [K, C, k, k] with ~40 % zeros; the first weight of every filter group (G channels of one filter at
    one position) is non-zero with the given sign (+1, -1; 0: random), so every BitSim tile costs >= 1."""
    shape = (c["K"], c["C"], c["k"], c["k"])
    w = rng.integers(-max_mag, max_mag + 1, shape)
    w[rng.random(shape) < 0.4] = 0
    lead = rng.integers(1, max_mag + 1, w[:, :: c["G"]].shape)
    w[:, :: c["G"]] = lead * (sign if sign else rng.choice([-1, 1], lead.shape))
    return w


def _output(c: dict) -> tuple[int, int]:
    """(oh, ow): PyTorch's output height and width of the conv."""
    return ((c["H"] + 2 * c["pad"] - c["k"]) // c["stride"] + 1, (c["W"] + 2 * c["pad"] - c["k"]) // c["stride"] + 1)


def _engine(w: np.ndarray, c: dict, arch: str, **options) -> int:
    """Engine compute cycles of the conv (PyTorch-layout weights `w`) under BitSim's geometry, tiles = 1."""
    wt, a = from_torch_layout(w, np.ones((1, c["C"], c["H"], c["W"]), np.int64))
    layer = LayerTrace("conv", "conv", wt, a, stride=c["stride"], pad=c["pad"])
    return simulate_layer(layer, arch, SimParams(lanes=c["G"], rows=c["h"], columns=c["cols"], tiles=1, **options))


def _compare(engine: int, bitsim_cycles: int, c: dict) -> str:
    """Assert the relation of 3.3(3); returns which one held ('equal' or 'ratio')."""
    oh, ow = _output(c)
    if oh == 1 or ow % c["cols"] == 0:
        assert engine == bitsim_cycles, (c, engine, bitsim_cycles)
        return "equal"
    # engine / BitSim = ceil(Ox*Oy/Cc) / (ceil(Ox/Cc) * Oy): each tiling's window sets over the same S
    assert engine * math.ceil(ow / c["cols"]) * oh == bitsim_cycles * math.ceil(ow * oh / c["cols"]), (
        c, engine, bitsim_cycles)
    return "ratio"


def _run_cases(engine_of, bitsim_of, sign: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    seen = {"equal": 0, "ratio": 0}
    for case in range(CASES):
        c = _conv_case(rng, case)
        w = _weights(rng, c, sign)
        oh, ow = _output(c)
        seen[_compare(engine_of(w, c), bitsim_of(w, c, oh, ow), c)] += 1
    assert seen["equal"] >= CASES // 2 and seen["ratio"] >= 1, seen  # both relations were exercised


def _bitsim(design: str, **options):
    return lambda w, c, oh, ow: bitsim.bitsim_layer_cycles(w, design, c["G"], c["h"], c["cols"], oh=oh, ow=ow,
                                                           **options)


def _sign_as_a_bit(w: np.ndarray) -> np.ndarray:
    """A value whose popcount is BitSim's Pragmatic bits, popcount(|w|) + [w < 0] (fits 8 unsigned bits)."""
    return (np.abs(w) << 1) | (w < 0)


def test_pragmatic_w_is_bitsims_pragmatic_on_non_negative_weights():
    pragmatic = _bitsim("Pragmatic")
    _run_cases(lambda w, c: _engine(np.abs(w), c, "PragmaticW", bits_first_stage=FULL_REACH_BFS),
               lambda w, c, oh, ow: pragmatic(np.abs(w), c, oh, ow), sign=1, seed=1)


def test_pragmatic_w_is_bitsims_pragmatic_with_the_sign_as_one_more_bit():
    _run_cases(lambda w, c: _engine(_sign_as_a_bit(w), c, "PragmaticW", bits_first_stage=FULL_REACH_BFS),
               _bitsim("Pragmatic"), sign=0, seed=2)


def test_pragmatic_w_bfs0_is_bitsims_bitwave_when_every_group_has_a_negative_weight():
    _run_cases(lambda w, c: _engine(w, c, "PragmaticW", bits_first_stage=0), _bitsim("BitWave"), sign=-1, seed=3)


def test_pragmatic_w_differs_from_bitsim_where_the_spec_says():
    """The spec's layer example (2.5): one tile, 2 x 3 outputs, G = 8, h = 2, w = 2; BitSim's quirks show."""
    w = np.array([A, A2]).reshape(2, 8, 1, 1)
    c = dict(K=2, C=8, k=1, H=2, W=3, stride=1, pad=0, G=8, h=2, cols=2)
    assert _engine(w, c, "PragmaticW", bits_first_stage=FULL_REACH_BFS) == 9  # 3 window sets x step 3
    assert _engine(w, c, "PragmaticW", bits_first_stage=0) == 21  # 3 x 7
    # BitSim: 4 column tiles (never across output rows); Pragmatic's sign term makes the tile 4, not 3
    assert bitsim.bitsim_layer_cycles(w, "Pragmatic", 8, 2, 2, oh=2, ow=3) == 16
    assert bitsim.bitsim_layer_cycles(w, "BitWave", 8, 2, 2, oh=2, ow=3) == 28  # max(7, 8) - 1 = 7 per tile
    # without a negative weight BitWave's BitSim cost is one less than the natural count
    pos = np.abs(w)
    assert _engine(pos, dict(c, H=1, W=2), "PragmaticW", bits_first_stage=0) == 7  # |A2| has all 7 columns
    assert bitsim.bitsim_layer_cycles(pos, "BitWave", 8, 2, 2, oh=1, ow=2) == 7 - 1


def _fc_engine(w: np.ndarray, arch: str, lanes: int, rows: int, cols: int, **options) -> int:
    layer = LayerTrace("fc", "fc", w, np.ones((1, w.shape[1]), np.int64))
    return simulate_layer(layer, arch, SimParams(lanes=lanes, rows=rows, columns=cols, tiles=1, **options))


def test_pragmatic_w_fc_with_one_step_agrees_and_larger_fc_layers_do_not():
    rng = np.random.default_rng(4)
    for _ in range(20):
        K, C = int(rng.integers(1, 5)), int(rng.integers(1, 17))
        L, R, cols = int(rng.integers(C, 17)), int(rng.integers(K, 5)), int(rng.integers(1, 9))
        w = rng.integers(-127, 128, (K, C))
        w[:, 0] = -rng.integers(1, 128, K)  # a negative weight in every filter group
        assert _fc_engine(np.abs(w), "PragmaticW", L, R, cols, bits_first_stage=FULL_REACH_BFS) == \
            bitsim.bitsim_layer_cycles(np.abs(w), "Pragmatic", L, R, cols)
        assert _fc_engine(w, "PragmaticW", L, R, cols, bits_first_stage=0) == \
            bitsim.bitsim_layer_cycles(w, "BitWave", L, R, cols)
    # spec 2.5: fc [2, 32], rows A x 4 and A2 x 4: BitSim adds the 4 row costs, our fc pipeline overlaps them
    w = np.array([A * 4, A2 * 4])
    assert _fc_engine(w, "PragmaticW", 8, 2, 2, bits_first_stage=FULL_REACH_BFS) == 7
    assert bitsim.bitsim_layer_cycles(np.abs(w), "Pragmatic", 8, 2, 2) == 4 * 3
    assert bitsim.bitsim_layer_cycles(w, "Pragmatic", 8, 2, 2) == 4 * 4  # with its sign term


RANDOM_PAIRS = [  # PAIRS with the sign of each filter group's lead weight (BitWave needs a negative one)
    (arch, options, bs_design, bs_options, -1 if arch == "BitWave" else 0)
    for arch, options, bs_design, bs_options in PAIRS
]


@pytest.mark.parametrize("arch, options, bs_design, bs_options, sign", RANDOM_PAIRS, ids=lambda v: str(v))
def test_new_designs_on_random_layers_in_every_regime(arch, options, bs_design, bs_options, sign):
    assert arch in ARCHS
    _run_cases(lambda w, c: _engine(w, c, arch, **options), _bitsim(bs_design, **bs_options), sign=sign,
               seed=10 + RANDOM_PAIRS.index((arch, options, bs_design, bs_options, sign)))


FIXTURE_LAYERS = BITSIM_FIXTURES / "layers.json"
# fixture entry -> (engine design, engine options): where the natural cost is BitSim's own (spec 3.3(3))
FIXTURE_DESIGNS = {("Bitlet", ""): ("Bitlet", {}),
                   ("BitVert", "noBBS"): ("BitVert", {"bidirectional": False, "drop_sign_extension": 0})}


def test_channel_grouped_fixture_layers_in_the_tiling_ratio():
    """BitSim's own numbers (fixtures/bitsim/layers.json, from the reference code) for the conv layers it groups by
    channels (C >= k^2): ours = S * ceil(Ox*Oy/Cc), BitSim's = S * ceil(ow/w) * oh with the same S."""
    checked = 0
    for entry in json.loads(FIXTURE_LAYERS.read_text())["layers"]:
        wt = np.array(entry["weights"])
        if entry["kind"] != "conv" or wt.shape[1] < wt.shape[2] * wt.shape[3]:
            continue
        oh, ow = entry["oh"], entry["ow"]
        layer = conv_trace(wt, ow + wt.shape[3] - 1, oh + wt.shape[2] - 1)
        for result in entry["results"]:
            key = (result["arch"], result.get("mode"))
            if key not in FIXTURE_DESIGNS:
                continue
            arch, options = FIXTURE_DESIGNS[key]
            cols = result["cols"]
            params = SimParams(lanes=result["G"], rows=result["rows"], columns=cols, tiles=1, **options)
            ours = simulate_layer(layer, arch, params)
            assert ours * -(-ow // cols) * oh == result["cycles"] * -(-(ow * oh) // cols), (wt.shape, result)
            checked += 1
    assert checked == 12  # 3 channel-grouped conv layers x 2 geometries x 2 designs
