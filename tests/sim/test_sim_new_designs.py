"""Bitlet, BitWave and BitVert in the engine (spec: shared specs/new_designs.md, sections 2, 3 and Decisions).

The spec's worked examples (2.5, 4.x) through the per-(filter, row) costs and whole layers; BitSim's own tile
costs (fixtures/bitsim/group_costs.json, produced by the reference code) where our natural costs equal BitSim's
or differ by a known quirk; engine == plain reference on random layers for every option; one-line refusals;
the CLI and the accelerator configs end to end."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from tests.sim.conftest import random_layer, random_values

import bitpruner.cli
from bitpruner.errors import ConfigError, TraceError
from bitpruner.sim.accelerators import accelerator_from_config
from bitpruner.sim.designs import design_of, params_for
from bitpruner.sim.dnnsim_io import save_dnnsim
from bitpruner.sim.engine import simulate_layer, simulate_network
from bitpruner.sim.params import SimParams
from bitpruner.sim.reference import reference_cycles
from bitpruner.sim.traces import LayerTrace, NetworkTrace
from bitpruner.sim.weight_columns import (
    BITWAVE_DATAFLOWS,
    bitlet_rows,
    bitvert_rows,
    bitwave_rows,
    magnitude_columns,
    twos_columns,
)
from helpers.paths import BITSIM_FIXTURES

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = BITSIM_FIXTURES
NEW = ("Bitlet", "BitWave", "BitVert")
SMALL = dict(lanes=4, columns=3, rows=2, tiles=2)

# Spec 2.5: two groups of 8 int8 weights, and B = A ++ A2 (G = 16).
A = [5, -3, 0, 12, -20, -7, 64, -1]
A2 = [-3, 3, -8, 0, 100, -50, -1, 2]
B = A + A2
NO_BBS = dict(bidirectional=False, drop_sign_extension=0)  # BitSim's "no BBS" mode: ones only, all 8 columns
EIGHT_COLUMNS = dict(drop_sign_extension=0)  # the spec table's "BBS data-aware (8 cols)"


def row_cost(fn, groups, **options):
    """A per-(filter, row) cost of lane groups (lists of equal length), with SimParams options."""
    w = np.array(groups, dtype=np.int64)
    return fn(w, SimParams(lanes=w.shape[-1], **options)).tolist()


def tile_cost(fn, groups, **options):
    """Max over the filters of a tile (BitSim's "max over rows")."""
    return max(row_cost(fn, groups, **options))


def random8(rng, kind, **shape):
    """A random layer (conftest's) with 8-bit weights, -128 and 127 included."""
    layer = random_layer(rng, kind, max_mag=128, **shape)
    layer.weights = np.clip(layer.weights, -128, 127)
    return layer


def eight_bit(layer):
    """The layer with its weights cut to 8-bit two's complement (what these designs take)."""
    return dataclasses.replace(layer, weights=layer.weights.astype(np.int64).astype(np.int8).astype(np.int64))


# ---------------------------------------------------------------- spec 2.5: worked examples


def test_column_counts_of_the_worked_examples():
    # b7..b0 in the spec; index = bit here
    assert twos_columns(np.array(A)).tolist()[::-1] == [4, 5, 4, 3, 5, 5, 1, 4]
    assert twos_columns(np.array(A2)).tolist()[::-1] == [4, 5, 4, 3, 4, 4, 4, 3]
    assert twos_columns(np.array(B)).tolist()[::-1] == [8, 10, 8, 6, 9, 9, 5, 7]
    # sign-magnitude: A has b6 b4 b3 b2 b1 b0 (b5 all zero), A2 and B all seven
    assert [int(magnitude_columns(np.array(g))) for g in (A, A2, B)] == [6, 7, 7]


@pytest.mark.parametrize("groups, bitlet, bitwave, no_bbs, bbs8", [
    ([A], 5, 6, 11, 8),
    ([A2], 5, 7, 9, 8),
    ([A, A2], 5, 7, 11, 8),  # two filters, h = 2: max over rows
    ([B], 10, 7, 11, 8),  # G = 16: columns with 10, 9, 9 ones cost 2 without BBS
])
def test_worked_example_tiles(groups, bitlet, bitwave, no_bbs, bbs8):
    assert tile_cost(bitlet_rows, groups) == bitlet
    assert tile_cost(bitwave_rows, groups) == bitwave  # natural form: no -1, no sign column
    assert tile_cost(bitvert_rows, groups, **NO_BBS) == no_bbs
    assert tile_cost(bitvert_rows, groups, **EIGHT_COLUMNS) == bbs8
    assert tile_cost(bitvert_rows, groups, fixed_precision=8) == 8  # BitSim's BBS mode: the constant p
    # No sign-extension column in A or A2 (64 and 100 have b6 = 1, b7 = 0): the default drops nothing.
    assert tile_cost(bitvert_rows, groups) == bbs8


def test_worked_example_no_bbs_column_sums():
    # A: 1+2+1+1+2+2+1+1 (m = 4: columns with 5 ones cost 2); A2: 1+2+1+1+1+1+1+1
    assert row_cost(bitvert_rows, [A, A2], **NO_BBS) == [11, 9]


@pytest.mark.parametrize("group, bitlet, bitwave, no_bbs, bbs8", [
    ([0] * 8, 0, 0, 0, 0),  # our engine floors every step at 1 (BitSim: 0, -1, 1, 0)
    ([1, 2, 4, 0, 0, 0, 0, 0], 1, 3, 3, 3),  # BitSim BitWave: 2 (no negative weight: its -1 quirk)
    ([-128, 0, 0, 0, 0, 0, 0, 0], 1, 7, 1, 1),  # BitWave reads -128 as -127 (7 columns), as BitSim
    ([-1] * 8, 8, 1, 16, 0),  # every column constant: BBS costs 0 (1 after the floor)
])
def test_worked_example_edge_cases(group, bitlet, bitwave, no_bbs, bbs8):
    assert row_cost(bitlet_rows, [group]) == [bitlet]
    assert row_cost(bitwave_rows, [group]) == [bitwave]
    assert row_cost(bitvert_rows, [group], **NO_BBS) == [no_bbs]
    assert row_cost(bitvert_rows, [group], **EIGHT_COLUMNS) == [bbs8]


@pytest.mark.parametrize("group, with_drop, without", [
    ([-10, -18, -16, -4, -36, -22, 48, -16], 6, 7),  # 4.3, N = 2: u' has one sign-extension column (b6)
    ([6, -2, 0, 12, -20, -6, 64, 0], 7, 7),  # its w' (b0 constant)
    ([6, -2, -2, 14, -18, -10, 62, -2], 4, 5),  # 4.3, N = 4: w' (low three columns constant, b6 = b7)
    ([-8, -16, -16, 0, -32, -24, 48, -16], 4, 5),  # and its u'
    ([5, -3, 1, 13, -19, -7, 65, -3], 6, 6),  # 4.2, N = 2: b1 (all 0) and b0 (all 1) constant
])
def test_sign_extension_dropping_on_the_pruning_examples(group, with_drop, without):
    assert row_cost(bitvert_rows, [group]) == [with_drop]  # default drop_sign_extension = 3
    assert row_cost(bitvert_rows, [group], drop_sign_extension=0) == [without]


def test_sign_extension_stops_at_the_first_column_that_differs_and_at_the_limit():
    small = [1, 2, 3, 0, -1, -2, -3, 3]  # b6 .. b2 equal the sign column in every lane; b1 does not (-3 = 11111101)
    ones = [row_cost(bitvert_rows, [small], drop_sign_extension=s)[0] for s in range(8)]
    # 8 non-constant columns; each dropped column saves one, up to the 5 that equal the sign column
    assert ones == [8, 7, 6, 5, 4, 3, 3, 3]
    # padded (zero) lanes count as zeros: three real -1 lanes plus a padded one are not constant
    assert row_cost(bitvert_rows, [[-1, -1, -1, 0]], drop_sign_extension=0) == [8]
    assert row_cost(bitvert_rows, [[-1, -1, -1, -1]], drop_sign_extension=0) == [0]


def test_multipliers_bound_the_column_work():
    # m = 1: one bit per cycle; BBS: the minority of ones/zeros of each column
    ones = twos_columns(np.array(B))
    assert row_cost(bitvert_rows, [B], multipliers=1, **NO_BBS) == [int(ones.sum())]
    assert row_cost(bitvert_rows, [B], multipliers=1, drop_sign_extension=0) == [int(np.minimum(ones, 16 - ones).sum())]
    assert row_cost(bitvert_rows, [B], multipliers=16, **NO_BBS) == [8]  # every column has a one


def conv_example():
    """Spec 2.5's layer: K = 2 filters (A, A2), C = 8, 1x1 kernel, outputs 3 (x) by 2 (y)."""
    w = np.array([A, A2]).reshape(2, 8, 1, 1)
    return LayerTrace("ex", "conv", w, np.ones((1, 8, 3, 2), np.int64))


@pytest.mark.parametrize("arch, options, cycles", [
    ("Bitlet", {}, 15), ("BitWave", {}, 21), ("BitVert", NO_BBS, 33), ("BitVert", {"fixed_precision": 8}, 24),
    ("BitVert", {}, 24), ("PragmaticW", {}, 21),  # PragmaticW bfs 0 = BitWave's natural cost here
])
def test_worked_example_layers(arch, options, cycles):
    # lanes 8, rows 2, columns 2, tiles 1: ceil(6 / 2) = 3 window sets of the single step (BitSim: 4 x the step)
    params = SimParams(lanes=8, rows=2, columns=2, tiles=1, **options)
    layer = conv_example()
    assert simulate_layer(layer, arch, params) == reference_cycles(layer, arch, params) == cycles
    fc = LayerTrace("fc", "fc", np.array([A, A2]), np.ones((1, 8), np.int64))
    assert simulate_layer(fc, arch, params) == cycles // 3  # one row, one step


# ---------------------------------------------------------------- BitSim's tile costs (fixtures)


def fixture_cases():
    return json.loads((FIXTURES / "group_costs.json").read_text())["cases"]


def test_bitsim_tile_costs_from_the_natural_costs():
    cases = fixture_cases()
    assert len(cases) >= 300
    for case in cases:
        groups, G = case["groups"], case["G"]
        # Bitlet: BitSim's cost is the natural one (0 for an all-zero tile, where our step floor takes over).
        assert tile_cost(bitlet_rows, groups) == case["Bitlet"], case
        # BitVert no BBS: the natural cost with m = G / 2, then BitSim's floor of 1 after the max.
        assert max(1, tile_cost(bitvert_rows, groups, **NO_BBS)) == case["BitVert_noBBS"], case
        # BitWave: BitSim counts the sign plane as a column and subtracts 1 (spec 2.2); -128 is -127 in both.
        negative = [any(v < 0 for v in g) for g in groups]
        natural = row_cost(bitwave_rows, groups)
        assert max(n + neg for n, neg in zip(natural, negative, strict=True)) - 1 == case["BitWave"], case
        assert len(groups[0]) == G


# ---------------------------------------------------------------- engine == reference


def assert_same(layer, arch, params):
    params = params_for(design_of(arch), params)
    engine, ref = simulate_layer(layer, arch, params), reference_cycles(layer, arch, params)
    assert engine == ref, (arch, params.changed_options(), layer.weights.shape)
    return engine


BITVERT_OPTIONS = [
    {}, {"bidirectional": False}, {"multipliers": 1}, {"multipliers": 3, "bidirectional": False},
    {"drop_sign_extension": 0}, {"drop_sign_extension": 7}, {"fixed_precision": 5},
]


@pytest.mark.parametrize("options", BITVERT_OPTIONS, ids=str)
@pytest.mark.parametrize("kind", ["conv", "fc"])
def test_bitvert_engine_matches_reference(options, kind):
    rng = np.random.default_rng(len(str(options)))
    for trial in range(3):
        layer = random8(rng, kind, sparsity=0.3 * trial, stride=1 + trial % 2, pad=trial % 2)
        assert_same(layer, "BitVert", SimParams(**SMALL, **options))


@pytest.mark.parametrize("arch", ["Bitlet", "BitWave"])
@pytest.mark.parametrize("kind", ["conv", "fc"])
def test_bitlet_and_bitwave_engine_match_reference(arch, kind):
    rng = np.random.default_rng(3)
    for trial in range(4):
        layer = random8(rng, kind, sparsity=0.25 * trial)  # -128 included: BitWave reads it as -127
        assert_same(layer, arch, SimParams(**{**SMALL, "lanes": 3 + trial}))


def test_default_geometry_and_fc_with_several_groups_match_reference():
    rng = np.random.default_rng(5)
    conv = random_layer(rng, "conv", K=20, C=18, k=3, X=5, pad=1, max_mag=127)
    fc = random_layer(rng, "fc", K=13, C=17, max_mag=127)  # 4 filter-set groups of rows x tiles = 4, T = 5 rows
    for arch in NEW:
        assert_same(conv, arch, SimParams())
        assert_same(fc, arch, SimParams(**SMALL))


def test_bitwave_dataflow_choice_is_the_min_over_bitsims_seven():
    rng = np.random.default_rng(6)
    layer = random_layer(rng, "conv", K=6, C=20, k=2, X=5, max_mag=127)
    params = SimParams(**SMALL, dataflow_choice=True)
    chosen = assert_same(layer, "BitWave", params)
    each = [simulate_layer(layer, "BitWave", SimParams(lanes=g, rows=h, columns=w, tiles=2))
            for g, h, w in BITWAVE_DATAFLOWS]
    assert chosen == min(each) and len(set(each)) > 1  # the geometries do differ on this layer
    fc = random_layer(rng, "fc", K=9, C=40, max_mag=127)
    assert assert_same(fc, "BitWave", params) == min(
        simulate_layer(fc, "BitWave", SimParams(lanes=g, rows=h, columns=w, tiles=2)) for g, h, w in BITWAVE_DATAFLOWS)


def test_bitwave_equals_pragmatic_w_bit_columns_without_minus_128():
    # Spec 2.2: for |w| <= 127 BitWave's natural cost is PragmaticW's with bits_first_stage = 0 and no Booth.
    rng = np.random.default_rng(8)
    for kind in ("conv", "fc", "conv"):
        layer = random_layer(rng, kind, max_mag=127, sparsity=0.5)
        params = SimParams(**SMALL)
        assert simulate_layer(layer, "BitWave", params) == simulate_layer(layer, "PragmaticW", params)
    minus = LayerTrace("m", "fc", np.array([[-128, 0, 0, 0]]), np.ones((1, 4), np.int64))
    assert simulate_layer(minus, "BitWave", params) == 7 and simulate_layer(minus, "PragmaticW", params) == 1


def test_bbs_never_costs_more_than_ones_and_at_most_a_column_per_cycle():
    rng = np.random.default_rng(9)
    w = random_values(rng, (50, 7, 16), max_mag=127, sparsity=0.3)
    params = SimParams(lanes=16)
    bbs = bitvert_rows(w, params)
    ones = bitvert_rows(w, params.model_copy(update={"bidirectional": False}))
    assert (bbs <= ones).all() and (bbs < ones).any()
    assert (bbs <= 8).all()  # m = L / 2: every processed column costs 0 or 1


def test_samples_and_networks_add_up():
    rng = np.random.default_rng(10)
    layer = random_layer(rng, "conv", K=5, C=6, k=2, X=4, max_mag=127)
    layer.activations = random_values(rng, (3, 6, 4, 4), signed=False)
    params = SimParams(**SMALL)
    for arch in NEW:  # weights only: every sample costs the same
        one = simulate_layer(layer, arch, params)
        assert simulate_layer(layer, arch, params, samples=3) == 3 * one
        net = NetworkTrace("n", [layer, eight_bit(random_layer(rng, "fc", K=7, C=9))])
        assert [r.compute_cycles for r in simulate_network(net, arch.lower(), params)][0] == one


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize("bad", [128, -129, 300])
@pytest.mark.parametrize("arch", NEW)
def test_wide_weights_are_refused_in_one_line(arch, bad):
    w = np.zeros((2, 4, 1, 1), np.int64)
    w[1, 2] = bad
    layer = LayerTrace("wide", "conv", w, np.ones((1, 4, 2, 2), np.int64))
    for run in (simulate_layer, reference_cycles):
        with pytest.raises(TraceError) as info:
            run(layer, arch, SimParams(**SMALL))
        message = str(info.value)
        assert message == (f"layer 'wide': weights hold {bad}, but {arch} takes 8-bit weights (two's complement "
                           f"range [-128, 127]); re-quantize the layer")
    assert simulate_layer(layer, "PragmaticW", SimParams(**SMALL)) > 0  # other designs take any width


def test_a_wider_declared_precision_is_refused():
    layer = LayerTrace("p", "fc", np.array([[1, -2, 3]]), np.ones((1, 3), np.int64), wgt_prec=9)
    with pytest.raises(TraceError, match=r"^layer 'p': BitVert takes 8-bit weights, but wgt_prec=9; re-quantize"):
        simulate_layer(layer, "bitvert")
    narrow = dataclasses.replace(layer, wgt_prec=8)
    assert simulate_layer(narrow, "bitvert") == reference_cycles(narrow, "bitvert") > 0


@pytest.mark.parametrize("arch, options, message", [
    ("Bitlet", {"multipliers": 4}, "simulator.multipliers: got 4, but Bitlet does not take multipliers (it takes no "
                                   "options); leave it at None"),
    ("BitWave", {"bidirectional": False}, "simulator.bidirectional: got False, but BitWave does not take "
                                          "bidirectional (it takes dataflow_choice); leave it at True"),
    ("BitVert", {"dataflow_choice": True}, "simulator.dataflow_choice: got True, but BitVert does not take "
                                           "dataflow_choice (it takes bidirectional, multipliers, "
                                           "drop_sign_extension, fixed_precision); leave it at False"),
    ("Stripes", {"fixed_precision": 4}, "simulator.fixed_precision: got 4, but Stripes does not take"),
    ("PragmaticW", {"drop_sign_extension": 0}, "simulator.drop_sign_extension: got 0, but PragmaticW does not take"),
    ("BitVert", {"multipliers": 5}, "simulator.multipliers: got 5, expected at most lanes=4 (a column holds 4 bits)"),
    ("BitVert", {"fixed_precision": 6, "bidirectional": False},
     "simulator.bidirectional: got False, but fixed_precision=6 ignores the weights; leave bidirectional at True "
     "or fixed_precision at 0"),
    ("BitVert", {"fixed_precision": 6, "drop_sign_extension": 1},
     "simulator.drop_sign_extension: got 1, but fixed_precision=6 ignores the weights"),
])
def test_bad_or_misplaced_options_are_refused_in_one_line(arch, options, message):
    layer = LayerTrace("l", "fc", np.array([[1, 2]]), np.ones((1, 2), np.int64))
    with pytest.raises(ConfigError) as info:
        simulate_layer(layer, arch, SimParams(**SMALL, **options))
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    with pytest.raises(ConfigError):
        reference_cycles(layer, arch, SimParams(**SMALL, **options))


@pytest.mark.parametrize("data, message", [
    ({"multipliers": 0}, "simulator.multipliers: got 0, expected an integer or null >= 1"),
    ({"drop_sign_extension": 8}, "simulator.drop_sign_extension: got 8, expected an integer in [0, 7]"),
    ({"fixed_precision": 9}, "simulator.fixed_precision: got 9, expected an integer in [0, 8]"),
    ({"bidirectional": "yes"}, "simulator.bidirectional: got 'yes', expected true or false"),
    ({"dataflow_choice": 1}, "simulator.dataflow_choice: got 1, expected true or false"),
])
def test_option_values_are_checked(data, message):
    with pytest.raises(ConfigError) as info:
        SimParams.parse(data)
    assert str(info.value) == message


# ---------------------------------------------------------------- configs and the CLI


@pytest.mark.parametrize("stem, arch", [("bitlet", "Bitlet"), ("bitwave", "BitWave"), ("bitvert", "BitVert")])
def test_accelerator_configs(stem, arch):
    node = yaml.safe_load((ROOT / "conf" / "accelerator" / f"{stem}.yaml").read_text())
    accel = accelerator_from_config(node, stem)
    assert accel.name == accel.arch == arch and accel.params == SimParams(**{k: v for k, v in node.items()
                                                                             if k not in ("name", "arch")})
    assert accel.params.lanes == accel.params.rows == accel.params.columns == accel.params.tiles == 16
    with pytest.raises(ConfigError, match=rf"^{stem}.lookahead: got 1, but {arch} does not take lookahead"):
        accelerator_from_config({**node, "lookahead": 1}, stem)
    simulate = yaml.safe_load((ROOT / "conf" / "simulate.yaml").read_text())
    assert f"accelerator@accelerators.{stem}" in {k for d in simulate["defaults"] if isinstance(d, dict) for k in d}


@pytest.fixture
def traces(tmp_path):
    rng = np.random.default_rng(0)
    conv = LayerTrace("conv1", "conv", rng.integers(-128, 128, (6, 5, 3, 3)), rng.integers(0, 50, (1, 5, 7, 7)),
                      pad=1)
    fc = LayerTrace("fc2", "fc", rng.integers(-20, 20, (4, 30)), rng.integers(0, 50, (1, 30)))
    save_dnnsim(NetworkTrace("tiny", [conv, fc]), tmp_path)
    return tmp_path, [conv, fc]


def sim(capsys, root, *argv):
    try:
        code = bitpruner.cli.main(["sim", "--traces", str(root), "--network", "tiny", *argv, "--json"])
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("argv, arch, params", [
    (["--arch", "bitlet"], "Bitlet", SimParams()),
    (["--arch", "BITWAVE", "--lanes", "8", "--rows", "4"], "BitWave", SimParams(lanes=8, rows=4)),
    (["--arch", "bitwave", "--dataflow-choice"], "BitWave", SimParams(dataflow_choice=True)),
    (["--arch", "BitVert", "--no-bidirectional", "--multipliers", "3", "--drop-sign-extension", "0"], "BitVert",
     SimParams(bidirectional=False, multipliers=3, drop_sign_extension=0)),
    (["--arch", "bbs", "--fixed-precision", "6", "--columns", "4"], "BitVert", SimParams(fixed_precision=6, columns=4)),
])
def test_cli_end_to_end(traces, capsys, argv, arch, params):
    root, layers = traces
    code, out, err = sim(capsys, root, *argv)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["arch"] == arch and doc["params"] == params.to_dict()
    assert [layer["compute_cycles"] for layer in doc["layers"]] == [simulate_layer(x, arch, params) for x in layers]
    assert doc["total_compute_cycles"] == sum(layer["compute_cycles"] for layer in doc["layers"])


@pytest.mark.parametrize("argv, match", [
    (["--arch", "Bitlet", "--multipliers", "2"], "simulator.multipliers: got 2, but Bitlet does not take"),
    (["--arch", "BitVert", "--dataflow-choice"], "simulator.dataflow_choice: got True, but BitVert does not take"),
    (["--arch", "BitVert", "--multipliers", "17"], "simulator.multipliers: got 17, expected at most lanes=16"),
    (["--arch", "BitVert", "--fixed-precision", "9"], "simulator.fixed_precision: got 9, expected an integer in"),
    (["--arch", "BitVert", "--drop-sign-extension", "x"], "argument --drop-sign-extension: invalid int value"),
])
def test_cli_refuses_bad_options_in_one_line(traces, capsys, argv, match):
    code, out, err = sim(capsys, traces[0], *argv)
    lines = err.strip().splitlines()
    assert code == 1 and out == "" and len(lines) == 1 and "Traceback" not in err, err
    assert match in lines[0], lines[0]


def test_cli_refuses_wide_weights_before_simulating(tmp_path, capsys):
    w = np.zeros((2, 3, 1, 1), np.int64)
    w[0, 1] = -200
    save_dnnsim(NetworkTrace("tiny", [LayerTrace("conv1", "conv", w, np.ones((1, 3, 2, 2), np.int64))]), tmp_path)
    code, out, err = sim(capsys, tmp_path, "--arch", "bitwave")
    lines = err.strip().splitlines()
    assert code == 1 and out == "" and len(lines) == 1, err
    assert "layer 'conv1': weights hold -200, but BitWave takes 8-bit weights" in lines[0]
    code, out, err = sim(capsys, tmp_path, "--arch", "PragmaticW")
    assert code == 0, err
