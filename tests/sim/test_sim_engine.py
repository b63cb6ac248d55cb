"""The numba engine against the plain reference, on small random layers and geometry edge cases."""

import numpy as np
import pytest
from tests.sim.conftest import random_layer

from bitpruner.sim.engine import simulate_layer
from bitpruner.sim.params import ARCHS, SimParams
from bitpruner.sim.reference import reference_cycles

SMALL = dict(lanes=4, columns=3, rows=2, tiles=2)


def both(layer, arch, params):
    return simulate_layer(layer, arch, params), reference_cycles(layer, arch, params)


@pytest.mark.parametrize("arch", ARCHS)
def test_engine_matches_reference_random_conv(arch):
    rng = np.random.default_rng(7)
    for trial in range(3):
        params = SimParams(**SMALL, bits_first_stage=trial, column_registers=trial % 3,
                           booth_encoding=trial == 1)
        layer = random_layer(rng, "conv", signed_acts=trial == 2, stride=1 + trial % 2, pad=trial % 2)
        engine, ref = both(layer, arch, params)
        assert engine == ref, (trial, layer.weights.shape, layer.activations.shape)


@pytest.mark.parametrize("arch", ARCHS)
def test_engine_matches_reference_fc_several_groups(arch):
    rng = np.random.default_rng(11)
    # K=13 filters over rows*tiles=4 per group: 4 groups; C=10 over 4 lanes: T=3 rows (not a multiple of 3 columns? it is 3)
    for C in (10, 17):
        layer = random_layer(rng, "fc", signed_acts=True, K=13, C=C)
        params = SimParams(**SMALL, bits_first_stage=1, booth_encoding=True)
        assert both(layer, arch, params)[0] == both(layer, arch, params)[1]


@pytest.mark.parametrize("arch", ["BitPragmatic", "ShapeShifter", "PragmaticW", "BitTacticalE", "BitTacticalP"])
@pytest.mark.parametrize("registers", [1, 2, 5])
def test_column_registers_match_reference(arch, registers):
    rng = np.random.default_rng(registers)
    # 4x4 outputs over 3 columns: the last window set holds a single window.
    layer = random_layer(rng, "conv", K=5, C=6, k=2, X=5)
    params = SimParams(**SMALL, column_registers=registers, bits_first_stage=2,
                       group_size=3 if arch == "ShapeShifter" else 1)
    engine, ref = both(layer, arch, params)
    assert engine == ref
    # Run-ahead registers can only help the slowest column: never slower than lock-step.
    assert engine <= simulate_layer(layer, arch, SimParams(**SMALL, bits_first_stage=2))


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
def test_geometry_edge_cases(shape, arch):
    rng = np.random.default_rng(3)
    layer = random_layer(rng, "conv", signed_acts=True, **shape)
    params = SimParams(**SMALL, bits_first_stage=1)
    engine, ref = both(layer, arch, params)
    assert engine == ref


@pytest.mark.parametrize("arch", ["BitPragmatic", "Laconic", "PragmaticW", "BitTacticalE"])
def test_booth_on_and_off_match_reference(arch):
    rng = np.random.default_rng(5)
    layer = random_layer(rng, "conv", K=4, C=6, k=2, X=4, max_mag=4000)
    for booth in (False, True):
        params = SimParams(**SMALL, booth_encoding=booth, bits_first_stage=1)
        assert both(layer, arch, params)[0] == both(layer, arch, params)[1]


def test_default_geometry_matches_reference():
    rng = np.random.default_rng(9)
    layer = random_layer(rng, "conv", K=20, C=18, k=3, X=6, pad=1)
    for arch in ("BitPragmatic", "ShapeShifter", "BitTacticalP"):
        assert both(layer, arch, SimParams())[0] == both(layer, arch, SimParams())[1]


def test_samples_add_up(rng):
    layer = random_layer(rng, "conv", K=3, C=5, k=2, X=4)
    layer.activations = np.concatenate([layer.activations, layer.activations[:, :, ::-1]])
    params = SimParams(**SMALL)
    one = simulate_layer(layer, "BitPragmatic", params)
    two = simulate_layer(layer, "BitPragmatic", params, samples=2)
    assert two == one + reference_cycles(layer, "BitPragmatic", params, sample=1)


def test_simulate_network_api(rng):
    import bitpruner.sim as sim

    layer = random_layer(rng, "conv", K=3, C=5, k=2, X=4)
    net = sim.NetworkTrace("n", [layer, random_layer(rng, "fc", K=4, C=9)])
    results = sim.simulate_network(net, "bitpragmatic", SimParams(**SMALL), tactical=True)
    assert [r.type for r in results] == ["conv", "fc"]
    assert results[0].compute_cycles == simulate_layer(layer, "BitTacticalE", SimParams(**SMALL))
