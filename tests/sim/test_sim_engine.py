"""The engine against the plain reference, on small random layers, geometry edge cases and the branches that
only unusual layers reach (each such test first asserts that its layer does reach the branch). Tests taking
`jit_mode` run twice: with the kernels' numpy forms and with their numba forms."""

import dataclasses

import numpy as np
import pytest
from tests.sim.conftest import random_layer, random_values

from bitpruner.sim.costs import tactical_blocks
from bitpruner.sim.designs import ARCHS, DESIGNS, design_of, params_for
from bitpruner.sim.engine import LayerSimulator, simulate_layer, simulate_network
from bitpruner.sim.params import SimParams
from bitpruner.sim.reference import reference_cycles
from bitpruner.sim.tiling import MAX_SLICED_KEYS, KernelMode, shifter_reach
from bitpruner.sim.traces import LayerTrace, NetworkTrace

SMALL = dict(lanes=4, columns=3, rows=2, tiles=2)
TACTICAL = [d.name for d in DESIGNS if d.scheduled]


def both(layer, arch, params):
    """(engine, reference) cycles, with the options the design does not take reset to their defaults; a design
    defined for 8-bit weights only (Bitlet, BitWave, BitVert) runs on the weights' low 8 bits."""
    params = params_for(design_of(arch), params)
    if design_of(arch).weight_bits:
        layer = dataclasses.replace(layer, weights=layer.weights.astype(np.int64).astype(np.int8))
    return simulate_layer(layer, arch, params), reference_cycles(layer, arch, params)


def assert_same(layer, arch, params):
    engine, ref = both(layer, arch, params)
    assert engine == ref, (arch, layer.weights.shape, layer.activations.shape)
    return engine


@pytest.mark.parametrize("arch", ARCHS)
def test_engine_matches_reference_random_conv(arch, jit_mode):
    rng = np.random.default_rng(7)
    for trial in range(3):
        params = SimParams(**SMALL, bits_first_stage=trial, column_registers=trial % 3,
                           booth_encoding=trial == 1)
        layer = random_layer(rng, "conv", signed_acts=trial == 2, stride=1 + trial % 2, pad=trial % 2)
        assert_same(layer, arch, params)


@pytest.mark.parametrize("arch", ARCHS)
def test_engine_matches_reference_fc_several_groups(arch, jit_mode):
    rng = np.random.default_rng(11)
    # K=13 filters over rows*tiles=4 per group: 4 groups; C=10 / 17 over 4 lanes: T=3 / 5 rows on 3 columns.
    for C in (10, 17):
        layer = random_layer(rng, "fc", signed_acts=True, K=13, C=C)
        assert_same(layer, arch, SimParams(**SMALL, bits_first_stage=1, booth_encoding=True))


@pytest.mark.parametrize("arch", [d.name for d in DESIGNS if d.takes("column_registers")])
@pytest.mark.parametrize("registers", [1, 2, 5])
def test_column_registers_match_reference(arch, registers, jit_mode):
    rng = np.random.default_rng(registers)
    # 4x4 outputs over 3 columns: the last window set holds a single window.
    layer = random_layer(rng, "conv", K=5, C=6, k=2, X=5)
    group_size = 3 if design_of(arch).column_groups else 1
    params = SimParams(**SMALL, column_registers=registers, bits_first_stage=2, group_size=group_size)
    engine = assert_same(layer, arch, params)
    # Run-ahead registers can only help the slowest column: never slower than lock-step.
    assert engine <= simulate_layer(layer, arch, params_for(design_of(arch), SimParams(**SMALL, bits_first_stage=2)))


@pytest.mark.parametrize(
    "shape",
    [
        dict(K=1, C=1, k=1, X=1),  # one window, one channel, one filter
        dict(K=5, C=7, k=3, X=3),  # one window, C and K not multiples of lanes/rows
        dict(K=9, C=5, k=2, X=7, stride=2),  # stride 2
        dict(K=3, C=4, k=3, X=4, pad=1),  # padding
        dict(K=2, C=9, k=3, X=6, stride=3, pad=2),
    ],
)
@pytest.mark.parametrize("arch", ["BitPragmatic", "Laconic", "Loom", "BitTacticalE", "PragmaticW"])
def test_geometry_edge_cases(shape, arch, jit_mode):
    rng = np.random.default_rng(3)
    layer = random_layer(rng, "conv", signed_acts=True, **shape)
    assert_same(layer, arch, SimParams(**SMALL, bits_first_stage=1))


@pytest.mark.parametrize("arch", [d.name for d in DESIGNS if d.takes("booth_encoding")])
def test_booth_on_and_off_match_reference(arch, jit_mode):
    rng = np.random.default_rng(5)
    layer = random_layer(rng, "conv", K=4, C=6, k=2, X=4, max_mag=4000)
    for booth in (False, True):
        assert_same(layer, arch, SimParams(**SMALL, booth_encoding=booth, bits_first_stage=1))


def test_default_geometry_matches_reference(jit_mode):
    rng = np.random.default_rng(9)
    layer = random_layer(rng, "conv", K=20, C=18, k=3, X=6, pad=1)
    for arch in ("BitPragmatic", "ShapeShifter", "BitTacticalP"):
        assert_same(layer, arch, SimParams())


def test_samples_add_up(rng):
    layer = random_layer(rng, "conv", K=3, C=5, k=2, X=4)
    layer.activations = np.concatenate([layer.activations, layer.activations[:, :, ::-1]])
    params = SimParams(**SMALL)
    one = simulate_layer(layer, "BitPragmatic", params)
    two = simulate_layer(layer, "BitPragmatic", params, samples=2)
    assert two == one + reference_cycles(layer, "BitPragmatic", params, sample=1)


@pytest.mark.parametrize("arch", ["BitPragmatic", "Laconic", "ShapeShifter", "BitTacticalE", "PragmaticW"])
def test_samples_run_in_threads_and_add_up(arch, jit_mode, monkeypatch):
    # 5 samples on 2 threads: the first fills the layer's shared state, the other four run concurrently.
    monkeypatch.setenv("NUMBA_NUM_THREADS", "2")
    rng = np.random.default_rng(8)
    layer = random_layer(rng, "conv", K=6, C=7, k=2, X=5, pad=1)
    layer.activations = random_values(rng, (5, 7, 5, 5), signed=False, max_mag=300)
    params = params_for(design_of(arch), SimParams(**SMALL, bits_first_stage=2, column_registers=1))
    expected = sum(reference_cycles(layer, arch, params, sample=s) for s in range(5))
    assert simulate_layer(layer, arch, params, samples=5) == expected
    net = NetworkTrace("n", [layer, layer])
    assert [r.compute_cycles for r in simulate_network(net, arch, params, samples=5)] == [expected] * 2


def test_simulate_network_api(rng):
    import bitpruner.sim as sim

    layer = random_layer(rng, "conv", K=3, C=5, k=2, X=4)
    net = sim.NetworkTrace("n", [layer, random_layer(rng, "fc", K=4, C=9)])
    results = sim.simulate_network(net, "bitpragmatic", SimParams(**SMALL), tactical=True)
    assert [r.type for r in results] == ["conv", "fc"]
    assert results[0].compute_cycles == simulate_layer(layer, "BitTacticalE", SimParams(**SMALL))


# ---------------------------------------------------------------- branches only unusual layers reach


def non_square_layer(rng, stride, pad, kx=3, ky=2):
    """Conv with a 7x4 input and a 3x2 kernel: Ox != Oy (DNNsim maps windows wrongly there; we use Ox)."""
    w = random_values(rng, (5, 6, kx, ky), max_mag=300)
    a = random_values(rng, (1, 6, 7, 4), signed=False, max_mag=300)
    return LayerTrace("ns", "conv", w, a, stride=stride, pad=pad)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("stride, pad", [(1, 0), (2, 1)])
def test_non_square_outputs_match_reference(arch, stride, pad, jit_mode):
    rng = np.random.default_rng(21 + stride)
    layer = non_square_layer(rng, stride, pad)
    params = SimParams(**SMALL, bits_first_stage=1, column_registers=1)
    g = LayerSimulator(layer, design_of(arch), params_for(design_of(arch), params)).g
    assert g.Ox != g.Oy
    assert_same(layer, arch, params)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("pe_width", [8, 12])
def test_narrow_pe_width_matches_reference(arch, pe_width, jit_mode):
    # Values up to 4000 need 12 bits: the serial operands are cut to their low pe_width bits.
    rng = np.random.default_rng(pe_width)
    layer = random_layer(rng, "conv", signed_acts=True, K=5, C=6, k=2, X=4, max_mag=4000)
    assert np.abs(layer.activations).max() >= 1 << pe_width or pe_width == 12
    params = SimParams(**SMALL, pe_width=pe_width, bits_first_stage=2, column_registers=1, booth_encoding=True)
    assert_same(layer, arch, params)
    fc = random_layer(rng, "fc", signed_acts=True, K=7, C=9, max_mag=4000)
    assert_same(fc, arch, params)


def wide_block_layer():
    """BitTacticalE layer whose plan steps read more than MAX_SLICED_KEYS distinct activations: 4 tiles on 8
    buffer rows of 16 lanes, one dense filter set and three sparse ones that skip rows and drift apart."""
    rng = np.random.default_rng(0)
    w = random_values(rng, (8, 128, 1, 1), max_mag=200, sparsity=0.0)
    for k, density in zip(range(2, 8, 2), (0.3, 0.15, 0.5), strict=True):
        w[k : k + 2] *= rng.random((2, 128, 1, 1)) < density
    w[2:4, 16:64] = 0  # set 1: three all-zero buffer rows to skip
    a = random_values(rng, (1, 128, 2, 2), signed=False, max_mag=255, sparsity=0.1)
    return LayerTrace("wide", "conv", w, a)


@pytest.mark.parametrize("bits_first_stage", [1, 2])
@pytest.mark.parametrize("registers", [0, 2])
def test_tactical_e_blocks_beyond_sliced_keys_match_reference(bits_first_stage, registers, jit_mode):
    layer = wide_block_layer()
    params = SimParams(lanes=16, columns=2, rows=2, tiles=4, bits_first_stage=bits_first_stage,
                       column_registers=registers)
    sim = LayerSimulator(layer, design_of("BitTacticalE"), params)
    plans, _ = sim.plans()
    key_off = tactical_blocks(sim, plans, KernelMode.PRAGMATIC)[2]
    assert np.diff(key_off).max() > MAX_SLICED_KEYS  # the un-sliced shifter runs on these blocks
    assert 0 < shifter_reach(bits_first_stage) < shifter_reach(4)  # and the shifter has a partial reach
    assert_same(layer, "BitTacticalE", params)


@pytest.mark.parametrize("bits_first_stage", [4, 6])
@pytest.mark.parametrize("booth", [False, True])
def test_tactical_e_full_reach_shifter_matches_reference(bits_first_stage, booth, jit_mode):
    rng = np.random.default_rng(bits_first_stage)
    layer = random_layer(rng, "conv", K=6, C=9, k=2, X=4, max_mag=4000)
    params = SimParams(**SMALL, bits_first_stage=bits_first_stage, column_registers=1, booth_encoding=booth)
    engine = assert_same(layer, "BitTacticalE", params)
    # From 4 first-stage bits on, every lane has its own shifter: more bits change nothing.
    assert engine == simulate_layer(layer, "BitTacticalE", params.model_copy(update={"bits_first_stage": 15}))
    assert_same(random_layer(rng, "fc", K=9, C=13, max_mag=4000), "BitTacticalE", params)


def per_window_set_plan_layer():
    """T = 2 buffer rows <= lookahead, and the last filter set all zero: its group executes no row, so DNNsim's
    skip counters carry into the next window set, whose first group then runs its zero row 0."""
    rng = np.random.default_rng(4)
    w = random_values(rng, (6, 8, 1, 1), max_mag=100, sparsity=0.3)
    w[:2, :4] = 0  # set 0: buffer row 0 all zero, skipped from a fresh skip counter, run after a carried one
    w[4:] = 0
    a = random_values(rng, (1, 8, 4, 4), signed=True, max_mag=100, sparsity=0.2)
    return LayerTrace("pws", "conv", w, a)


@pytest.mark.parametrize("arch", TACTICAL)
@pytest.mark.parametrize("registers", [0, 1, 3])
def test_window_sets_with_their_own_plans_match_reference(arch, registers, jit_mode):
    layer = per_window_set_plan_layer()
    params = params_for(design_of(arch), SimParams(lanes=4, columns=3, rows=2, tiles=1,
                                                   column_registers=registers, bits_first_stage=1))
    plans, n_plan_ws = LayerSimulator(layer, design_of(arch), params).plans()
    assert n_plan_ws == 6  # 16 windows over 3 columns
    n_groups = len(plans) // n_plan_ws
    assert [p.tolist() for p in plans[:n_groups]] != [p.tolist() for p in plans[n_groups : 2 * n_groups]]
    assert_same(layer, arch, params)


@pytest.mark.parametrize("arch", TACTICAL)
@pytest.mark.parametrize("kind", ["conv", "fc"])
def test_all_zero_weights_with_no_step_match_reference(arch, kind, jit_mode):
    # Every row zero, T <= lookahead, one window and one group: no step at all (DNNsim hangs here).
    shape = (2, 8, 1, 1) if kind == "conv" else (2, 8)
    acts = np.ones((1, 8, 1, 1), int) if kind == "conv" else np.ones((1, 8), int)
    layer = LayerTrace("zero", kind, np.zeros(shape, int), acts)
    params = SimParams(lanes=4, columns=3, rows=2, tiles=1, column_registers=2)
    plans, _ = LayerSimulator(layer, design_of(arch), params_for(design_of(arch), params)).plans()
    assert sum(p.shape[0] for p in plans) == 0
    assert_same(layer, arch, params)
