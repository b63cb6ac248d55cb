"""BitSim's flavour (`bitpruner.sim.bitsim`): per-tile costs with BitSim's quirks, its tiling, its layer cycles.

External figures: the spec's worked examples (new_designs.md 2.5, 4.1) and the fixtures produced by the
unmodified reference code (`tests/fixtures/bitsim/{group_costs,layers,pruning}.json`). Brute-force twins
below (bit strings, BitSim's loops written out) check the vectorised code on random small cases.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bitpruner.errors import ConfigError, TraceError
from bitpruner.sim import bitsim
from bitpruner.sim.bitsim import (
    BITWAVE_DATAFLOWS,
    bitlet_tile_cost,
    bitsim_layer_cycles,
    bitsim_tiles,
    bitvert_tile_cost,
    bitwave_tile_cost,
    bitwave_weights,
    pragmatic_tile_cost,
    tile_cost,
)
from helpers.paths import BITSIM_FIXTURES

FIXTURES = BITSIM_FIXTURES
A = [5, -3, 0, 12, -20, -7, 64, -1]
A2 = [-3, 3, -8, 0, 100, -50, -1, 2]
B = A + A2
DESIGNS = ("Bitlet", "BitWave", "BitVert", "Pragmatic")


def _fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


# ---------------------------------------------------------------- brute-force twins (bit strings, no numpy algebra)


def _tc_bits(v: int) -> str:
    """8-bit two's complement, b7 first."""
    return format(v & 0xFF, "08b")


def _sm_bits(v: int) -> str:
    """BitSim's sign-magnitude, sign first: -128 is read as -127."""
    v = max(v, -127)
    return ("1" if v < 0 else "0") + format(abs(v), "07b")


def naive_tile_cost(design: str, tile: list[list[int]], G: int, **opt) -> int:
    """The spec's per-tile formulas (2.1-2.4), literally, over bit strings."""
    if design == "Bitlet":
        return max(sum(_tc_bits(v)[b] == "1" for v in g) for g in tile for b in range(8))
    if design == "BitWave":
        if not opt.get("bitflip", True):
            return opt.get("w_prec", 8) - 1
        # all 8 sign-magnitude planes, sign plane included, non-zero ones counted; max over filters; minus 1
        return max(sum(any(_sm_bits(v)[b] == "1" for v in g) for b in range(8)) for g in tile) - 1
    if design == "BitVert":
        if opt.get("bbs") or opt.get("lsb_pruning"):
            return opt.get("w_prec", 8) - (2 if opt.get("lsb_pruning") else 0)
        m = G / 2
        per_filter = [sum(math.ceil(sum(_tc_bits(v)[b] == "1" for v in g) / m) for b in range(8)) for g in tile]
        return max(1, max(per_filter))
    if design == "Pragmatic":
        return max(_sm_bits(v).count("1") for g in tile for v in g)
    raise AssertionError(design)


def naive_layer_cycles(weights: np.ndarray, design: str, G: int, h: int, w: int, oh=None, ow=None, tokens=1,
                       depthwise=False, **opt) -> int:
    """BitSim's `_calc_cycle_conv2d` / `_calc_cycle_dwconv` / `_calc_cycle_fc` loops written out (spec section 1)."""
    total = 0
    if weights.ndim == 2:
        K, C = weights.shape
        for f0 in range(0, K, h):
            for c0 in range(0, C, G):
                total += naive_tile_cost(design, [list(weights[f, c0:c0 + G]) for f in range(f0, min(K, f0 + h))], G, **opt)
        return total * math.ceil(tokens / w)
    K, C, kh, kw = weights.shape
    if depthwise:
        for f in range(K):
            for c in range(C):
                pos = [int(weights[f, c, y, x]) for y in range(kh) for x in range(kw)]
                for p0 in range(0, kh * kw, G):
                    total += naive_tile_cost(design, [pos[p0:p0 + G]], G, **opt)
        return total * math.ceil(ow / w) * oh
    for f0 in range(0, K, h):
        block = range(f0, min(K, f0 + h))
        if kh * kw > C:
            for c in range(C):
                for p0 in range(0, kh * kw, G):
                    tile = [[int(weights[f, c, p // kw, p % kw]) for p in range(p0, min(kh * kw, p0 + G))] for f in block]
                    total += naive_tile_cost(design, tile, G, **opt)
        else:
            for y in range(kh):
                for x in range(kw):
                    for c0 in range(0, C, G):
                        total += naive_tile_cost(design, [list(weights[f, c0:c0 + G, y, x]) for f in block], G, **opt)
    return total * math.ceil(ow / w) * oh


def naive_bitflip(group: list[int], N: int) -> list[int]:
    """Spec 4.1 steps 1-5 on one group, over bit strings (column i: 0 = sign, 1..7 = 2^6..2^0)."""
    bits = [_sm_bits(v) for v in group]
    zero = [all(b[i] == "0" for b in bits) for i in range(8)]
    P = 8 - N
    for i in range(1, 8):
        if i < P and zero[i]:
            P += 1
    if P >= 8:
        return [max(v, -127) for v in group]
    T = 1 + max([i for i in range(1, P) if zero[i]], default=0)
    out = []
    for b in bits:
        high, val = int(b[1:T] or "0", 2) << (8 - T), int(b[T:], 2)
        cands = [n * 2 ** (8 - P) for n in range(2 ** (P - T))]
        best = min(cands, key=lambda c: ((c - val) ** 2, c))  # least error, ties to the smaller
        mag = high + best
        out.append(-mag if b[0] == "1" else mag)
    return out


def _random_int8(rng, shape, sparsity=0.3):
    v = rng.integers(-128, 128, shape)
    return np.where(rng.random(shape) < sparsity, 0, v)


# ---------------------------------------------------------------- per-tile costs: spec 2.5


def test_encodings_match_the_spec_tables():
    def ones(g):  # b7..b0
        return bitsim.twos_complement_ones(np.array([g]))[0][::-1].tolist()

    assert ones(A) == [4, 5, 4, 3, 5, 5, 1, 4]
    assert ones(A2) == [4, 5, 4, 3, 4, 4, 4, 3]
    assert ones(B) == [8, 10, 8, 6, 9, 9, 5, 7]
    mag, neg = bitsim.sign_magnitude(np.array(A))
    assert int(neg.sum()) == 4
    assert [int(((mag >> b) & 1).sum()) for b in range(6, -1, -1)] == [1, 0, 1, 1, 4, 2, 4]
    assert bitsim.sign_magnitude(np.array([-128]))[0].tolist() == [127]


@pytest.mark.parametrize(
    "tile, G, bitlet, bitwave, bitvert, pragmatic",
    [
        ([A], 8, 5, 6, 11, 4),
        ([A2], 8, 5, 7, 9, 4),
        ([A, A2], 8, 5, 7, 11, 4),  # two filters, h = 2
        ([B], 16, 10, 7, 11, 4),
    ],
)
def test_spec_table_2_5(tile, G, bitlet, bitwave, bitvert, pragmatic):
    t = np.array(tile)
    assert bitlet_tile_cost(t) == bitlet
    assert bitwave_tile_cost(t) == bitwave
    assert bitvert_tile_cost(t, G) == bitvert
    assert bitvert_tile_cost(t, G, bbs=True) == 8  # BBS: the constant p
    assert pragmatic_tile_cost(t) == pragmatic


@pytest.mark.parametrize(
    "group, bitlet, bitwave, bitvert, pragmatic",
    [
        ([0] * 8, 0, -1, 1, 0),  # no floor (BitWave even -1); BitVert no-BBS floors at 1
        ([1, 2, 4, 0, 0, 0, 0, 0], 1, 2, 3, 1),  # BitWave: no negative weight, one less than its 3 columns
        ([-128, 0, 0, 0, 0, 0, 0, 0], 1, 7, 1, 8),  # -128 read as -127 in sign-magnitude
        ([-1] * 8, 8, 1, 16, 2),
    ],
)
def test_spec_edge_cases(group, bitlet, bitwave, bitvert, pragmatic):
    t = np.array([group])
    got = [tile_cost(d, t, 8) for d in DESIGNS]
    assert [int(g) for g in got] == [bitlet, bitwave, bitvert, pragmatic]


def test_every_tile_of_the_fixture():
    cases = _fixture("group_costs")["cases"]
    assert len(cases) == 300
    keys = {"Bitlet": "Bitlet", "BitWave": "BitWave", "BitVert": "BitVert_noBBS", "Pragmatic": "Pragmatic"}
    wrong = []
    for i, case in enumerate(cases):
        tile = np.array(case["groups"])
        for design, key in keys.items():
            got = int(tile_cost(design, tile, case["G"]))
            if got != case[key]:
                wrong.append((i, design, got, case[key]))
    assert not wrong, f"{len(wrong)} of {4 * len(cases)} tile costs differ from BitSim's, first: {wrong[:5]}"


def test_tile_costs_equal_their_twins_on_random_tiles(rng):
    for _ in range(300):
        G = int(rng.choice([4, 8, 16, 32]))
        n = int(rng.integers(1, G + 1))  # a layer's last chunk may be short
        F = int(rng.integers(1, 5))
        tile = _random_int8(rng, (F, n), sparsity=float(rng.choice([0.0, 0.5, 0.95])))
        for design in DESIGNS:
            assert int(tile_cost(design, tile, G)) == naive_tile_cost(design, tile.tolist(), G), (design, tile, G)


def test_tile_costs_vectorise_over_leading_axes(rng):
    tiles = _random_int8(rng, (3, 5, 4, 8))
    for design in DESIGNS:
        batch = tile_cost(design, tiles, 8)
        assert batch.shape == (3, 5)
        assert batch.tolist() == [[int(tile_cost(design, t, 8)) for t in row] for row in tiles]


def test_constant_modes():
    t = np.array([A, A2])
    assert bitwave_tile_cost(t, bitflip=False, w_prec=5) == 4  # en_bitflip=False: w_prec - 1
    assert bitvert_tile_cost(t, 8, bbs=True, w_prec=6) == 6
    assert bitvert_tile_cost(t, 8, lsb_pruning=True) == 6  # p - 2
    # a short last chunk keeps m = G / 2: 5 ones in a column cost 1 cycle at G = 16 (m = 8), 2 at G = 8 (m = 4)
    five = np.array([[1, 1, 1, 1, 1]])
    assert bitvert_tile_cost(five, 16) == 1 and bitvert_tile_cost(five, 8) == 2


# ---------------------------------------------------------------- tiling and layer cycles


def test_layer_examples_of_the_spec():
    conv = np.array([A, A2]).reshape(2, 8, 1, 1)
    got = {d: bitsim_layer_cycles(conv, d, 8, 2, 2, oh=2, ow=3) for d in DESIGNS}
    assert got == {"Bitlet": 20, "BitWave": 28, "BitVert": 44, "Pragmatic": 16}
    assert bitsim_layer_cycles(conv, "BitVert", 8, 2, 2, oh=2, ow=3, bbs=True) == 32
    fc = np.array([A, A2])
    assert [bitsim_layer_cycles(fc, d, 8, 2, 16) for d in ("Bitlet", "Pragmatic", "BitVert")] == [5, 4, 11]
    fc32 = np.array([A * 4, A2 * 4])  # rows add up: 4 tiles of cost 4 (Pragmatic)
    assert bitsim_layer_cycles(fc32, "Pragmatic", 8, 2, 16) == 16


def _fixture_call(layer: dict, result: dict):
    w = np.array(layer["weights"])
    geo = dict(oh=layer["oh"], ow=layer["ow"]) if layer["kind"] == "conv" else dict(tokens=layer["tokens"])
    if result["arch"] != "BitWave":
        assert result.get("mode", "") in ("", "noBBS")
        return bitsim_layer_cycles(w, result["arch"], result["G"], result["rows"], result["cols"], **geo)
    assert result["bitflip_group"] == bitsim.BITWAVE_BITFLIP_GROUP and result["bitflip_N"] == 8 - result["w_prec"]
    if result["dataflows"] == "all7":
        return bitsim_layer_cycles(w, "BitWave", 8, 32, 16, w_prec=result["w_prec"], dataflows=BITWAVE_DATAFLOWS, **geo)
    G, h, cols = (int(v) for v in result["dataflows"].removeprefix("single(").removesuffix(")").split(","))
    return bitsim_layer_cycles(w, "BitWave", G, h, cols, w_prec=result["w_prec"], **geo)


def test_every_layer_of_the_fixture():
    layers = _fixture("layers")["layers"]
    kinds = set()
    wrong, n = [], 0
    for i, layer in enumerate(layers):
        w = np.array(layer["weights"])
        if w.ndim == 4:
            kinds.add("conv, kernel-grouped" if w.shape[2] * w.shape[3] > w.shape[1] else "conv, channel-grouped")
        else:
            kinds.add("fc")
        for result in layer["results"]:
            n += 1
            got = _fixture_call(layer, result)
            if got != result["cycles"]:
                wrong.append((i, result, got))
    assert kinds == {"conv, kernel-grouped", "conv, channel-grouped", "fc"}
    assert n == 78 and not wrong, f"{len(wrong)} of {n} layer results differ from BitSim's, first: {wrong[:3]}"


@pytest.mark.parametrize("kind", ["conv_channels", "conv_positions", "fc", "depthwise"])
def test_layer_cycles_equal_bitsims_loops(rng, kind):
    for _ in range(12):
        K = int(rng.integers(1, 8))
        G, h, w = int(rng.choice([2, 4, 8])), int(rng.integers(1, 5)), int(rng.integers(1, 6))
        oh, ow = int(rng.integers(1, 6)), int(rng.integers(1, 9))
        if kind == "fc":
            weights, geo = _random_int8(rng, (K, int(rng.integers(1, 20)))), dict(tokens=int(rng.integers(1, 7)))
        else:
            kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
            C = int(rng.integers(kh * kw, kh * kw + 9)) if kind == "conv_channels" else int(rng.integers(1, kh * kw + 1))
            if kind == "conv_positions" and kh * kw == 1:
                kh = kw = 2
            weights, geo = _random_int8(rng, (K, C, kh, kw)), dict(oh=oh, ow=ow)
        depthwise = kind == "depthwise"
        for design in DESIGNS:
            opts = {"BitVert": dict(bbs=bool(rng.integers(2))), "BitWave": dict(bitflip=bool(rng.integers(2)))}.get(design, {})
            got = bitsim_layer_cycles(weights, design, G, h, w, depthwise=depthwise, **geo, **opts)
            flipped = bitwave_weights(weights) if design == "BitWave" else weights  # N = 0: -128 -> -127 only
            want = naive_layer_cycles(flipped, design, G, h, w, depthwise=depthwise, **geo, **opts)
            assert got == want, (kind, design, weights.shape, G, h, w, opts)


def test_tiles_group_kernel_positions_when_the_kernel_outnumbers_the_channels():
    w = np.arange(2 * 3 * 3, dtype=np.int64).reshape(1, 2, 3, 3) - 9  # C = 2 < 9 positions
    tiles = bitsim_tiles(w, 4, 1)
    # channel 0: positions 0..3, 4..7, 8 (+ zero padding), then channel 1
    assert tiles[:, 0].tolist() == [[-9, -8, -7, -6], [-5, -4, -3, -2], [-1, 0, 0, 0], [0, 1, 2, 3], [4, 5, 6, 7],
                                    [8, 0, 0, 0]]
    c = np.arange(4 * 4, dtype=np.int64).reshape(1, 4, 2, 2)  # C = 4 >= 4 positions: channels of one position
    assert bitsim_tiles(c, 4, 1)[:, 0].tolist() == [[0, 4, 8, 12], [1, 5, 9, 13], [2, 6, 10, 14], [3, 7, 11, 15]]


def test_window_sets_never_span_output_rows():
    w = np.array([A]).reshape(1, 8, 1, 1)
    one = bitsim_layer_cycles(w, "Bitlet", 8, 1, 16, oh=1, ow=1)
    assert one == 5
    assert bitsim_layer_cycles(w, "Bitlet", 8, 1, 16, oh=14, ow=14) == 14 * one  # ceil(14/16) * 14, not ceil(196/16)
    assert bitsim_layer_cycles(w, "Bitlet", 8, 1, 16, oh=56, ow=56) == 224 * one


def test_bitwave_dataflows_take_the_minimum(rng):
    w = _random_int8(rng, (16, 64, 3, 3))
    singles = [bitsim_layer_cycles(w, "BitWave", *d, oh=5, ow=7, w_prec=6) for d in BITWAVE_DATAFLOWS]
    assert bitsim_layer_cycles(w, "BitWave", 8, 32, 16, oh=5, ow=7, w_prec=6, dataflows=BITWAVE_DATAFLOWS) == min(singles)
    assert len(set(singles)) > 1  # the choice matters on this layer
    # the layer is bit-flipped once (groups of 32, N = 8 - w_prec) before any dataflow is costed
    flipped = bitwave_weights(w, 6)
    assert singles[0] == naive_layer_cycles(flipped, "BitWave", 8, 32, 16, oh=5, ow=7)


def test_bitvert_bbs_modes_are_constant_per_tile(rng):
    w = _random_int8(rng, (40, 48, 3, 3))
    n_tiles = bitsim_tiles(w, 16, 32).shape[0] * math.ceil(9 / 16) * 9
    assert n_tiles == 2 * 27 * 9
    assert bitsim_layer_cycles(w, "BitVert", 16, 32, 16, oh=9, ow=9, bbs=True) == n_tiles * 8
    assert bitsim_layer_cycles(w, "BitVert", 16, 32, 16, oh=9, ow=9, lsb_pruning=True) == n_tiles * 6
    mixed = bitsim_layer_cycles(w, "BitVert", 16, 32, 16, oh=9, ow=9, outlier_ratio=0.25)
    assert mixed == pytest.approx(n_tiles * (0.25 * 8 + 0.75 * 4))
    lazy = bitsim_layer_cycles(w, "BitVert", 16, 32, 16, oh=9, ow=9, outlier_ratio=0.25, eager_compression=False)
    assert lazy == pytest.approx(n_tiles * (0.25 * 8 + 0.75 * 6))


# ---------------------------------------------------------------- BitWave's bit-flip preprocessing (spec 4.1)
# (`prune_bits.bitlevel.bitflip` with BitSim's grouping; checked here against an independent twin as BitWave uses it)


@pytest.mark.parametrize("N, want", [(4, [8, 0, 0, 8, -16, -8, 64, 0]), (2, [4, -2, 0, 12, -20, -6, 64, 0]),
                                     (3, [4, -4, 0, 12, -20, -8, 64, 0])])
def test_bitflip_spec_examples(N, want):
    got = bitwave_weights(np.array([A]), 8 - N)[0]
    assert got.tolist() == want
    assert bitwave_tile_cost(got[None]) == {4: 3, 2: 5, 3: 4}[N]  # BitWave's BitSim cost afterwards


def test_bitflip_matches_the_pruning_fixture():
    cases = _fixture("pruning")["cases"]
    wrong = [(c["group"], N) for c in cases for N in (1, 2, 3, 4)
             if bitwave_weights(np.array([c["group"]]), 8 - N)[0].tolist() != c[f"bitflip_N{N}"]]
    assert not wrong, f"{len(wrong)} of {4 * len(cases)} bit-flipped groups differ, first: {wrong[:3]}"


def test_bitflip_equals_its_twin_and_keeps_its_promises(rng):
    for _ in range(200):
        g, N = int(rng.choice([4, 8, 16])), int(rng.integers(0, 7))
        group = _random_int8(rng, (1, g), sparsity=float(rng.choice([0.0, 0.4]))) >> int(rng.integers(0, 4))
        got = bitwave_weights(group, 8 - N)[0]
        assert got.tolist() == naive_bitflip(group[0].tolist(), N)
        mag = np.abs(got)
        assert np.bitwise_count(np.bitwise_or.reduce(mag)) <= 7 - N  # at most 7 - N non-zero magnitude columns
        assert (got[group[0] == 0] == 0).all()  # zeros stay zero
        assert (np.sign(got[got != 0]) == np.sign(group[0][got != 0])).all()  # signs kept


def test_bitwave_weights_follow_bitsims_layout():
    # conv [K, C, kh, kw] is regrouped as [K, kh, kw, C]: with C = group size each group is one kernel position
    w = np.zeros((1, 4, 1, 2), np.int64)
    w[0, :, 0, 0] = [7, 0, 0, 0]  # position 0: one non-zero weight
    w[0, :, 0, 1] = [64, 7, 0, 0]  # position 1: b5, b4, b3 are free zero columns, so only b0 is cleared
    got = bitwave_weights(w, 4)
    assert got[0, :, 0, 0].tolist() == [7, 0, 0, 0]  # 4 zero columns above the cut: nothing to do
    assert got[0, :, 0, 1].tolist() == [64, 6, 0, 0]  # 7 saturates at 6 (no carry into b3)
    assert bitwave_weights(np.array([[-128, 3]])).tolist() == [[-127, 3]]  # N = 0: only -128 -> -127
    # N = 7 (w_prec = 1): BitSim's loop bounds reach no group, so again only -128 changes
    assert bitwave_weights(np.array([[-128, 3, 100, -5]]), 1).tolist() == [[-127, 3, 100, -5]]


# ---------------------------------------------------------------- errors: one line naming the value


@pytest.mark.parametrize(
    "call, error, text",
    [
        (lambda: bitlet_tile_cost([[128]]), TraceError, "value 128 outside 8-bit"),
        (lambda: pragmatic_tile_cost([[-129, 0]]), TraceError, "value -129 outside 8-bit"),
        (lambda: bitlet_tile_cost([1, 2]), TraceError, "expected [..., filters, group]"),
        (lambda: bitlet_tile_cost([[1.5]]), TraceError, "non-integer"),
        (lambda: tile_cost("Stripes", [[1]]), ConfigError, "design='Stripes': expected one of Bitlet"),
        (lambda: tile_cost("bitlet", [[1]], bbs=True), ConfigError, "Bitlet does not take bbs"),
        (lambda: bitvert_tile_cost(np.ones((1, 16)), 8), ConfigError, "groups of 16 weights exceed group_size=8"),
        (lambda: bitsim_layer_cycles(np.ones((2, 8, 1, 1)), "Bitlet", 8, 2, 2), ConfigError, "oh=None"),
        (lambda: bitsim_layer_cycles(np.ones((2, 8)), "Bitlet", 0, 2, 2), ConfigError, "G=0"),
        (lambda: bitsim_layer_cycles(np.ones((2, 8)), "BitWave", 8, 2, 2, w_prec=9), ConfigError, "w_prec=9"),
        (lambda: bitsim_layer_cycles(np.ones((2, 8)), "Pragmatic", 8, 2, 2, dataflows=BITWAVE_DATAFLOWS),
         ConfigError, "Pragmatic does not take dataflows"),
        (lambda: bitsim_layer_cycles(np.ones((2, 3, 4)), "Bitlet", 8, 2, 2), TraceError, "expected conv [K, C, kh, kw]"),
        (lambda: bitsim_layer_cycles(np.ones((3, 40)), "BitWave", 8, 2, 2), TraceError, "do not cut into the bit-flip's groups of 32"),
        (lambda: bitsim_layer_cycles(np.ones((2, 8)), "BitVert", 8, 2, 2, outlier_ratio=2.0), ConfigError, "outlier_ratio"),
    ],
)
def test_bad_input_is_one_line(call, error, text):
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert text in message and "\n" not in message
