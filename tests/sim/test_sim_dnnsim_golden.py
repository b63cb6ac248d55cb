"""Cycle counts that DNNsim itself printed for a fixed two-layer trace (regression against the reference).

Numbers from DNNsim (isakedo/DNNsim 4748a60, WindowFirstOutS, task Cycles, quantized traces, fast mode).
BitTacticalE/P on fc are left out: DNNsim reads the promoted activations from the wrong column there.
"""

import numpy as np
import pytest

from bitpruner.sim.engine import simulate_layer
from bitpruner.sim.params import SimParams
from bitpruner.sim.traces import LayerTrace

CONFIGS = {
    "small": SimParams(lanes=4, columns=3, rows=2, tiles=2, bits_first_stage=2, column_registers=2, booth_encoding=True),
    "default": SimParams(),
}
DNNSIM = {
    "small": {
        "DaDianNao": (612, 18), "BitTactical": (306, 9), "Stripes": (9792, 98), "BitPragmatic": (2280, 30),
        "BitTacticalE": (1357, None), "Laconic": (9776, 109), "ShapeShifter": (4784, 61),
        "BitTacticalP": (2704, None), "Loom": (85728, 961),
    },
    "default": {
        "DaDianNao": (36, 2), "BitTactical": (20, 2), "Stripes": (576, 17), "BitPragmatic": (305, 9),
        "BitTacticalE": (181, None), "Laconic": (1358, 42), "ShapeShifter": (306, 11),
        "BitTacticalP": (182, None), "Loom": (4896, 161),
    },
}


def golden_layers():
    rng = np.random.default_rng(2024)
    w1 = rng.integers(-300, 300, (7, 6, 3, 3)) * (rng.random((7, 6, 3, 3)) < 0.5)
    a1 = rng.integers(0, 1000, (1, 6, 7, 7)) * (rng.random((1, 6, 7, 7)) < 0.6)
    w2 = rng.integers(-300, 300, (9, 21)) * (rng.random((9, 21)) < 0.5)
    a2 = rng.integers(-500, 500, (1, 21)) * (rng.random((1, 21)) < 0.6)
    layers = [LayerTrace("conv1", "conv", w1, a1, stride=1, pad=1), LayerTrace("fc2", "fc", w2, a2)]
    # The trace DNNsim saw; a different random stream would make the numbers meaningless.
    assert [(int(x.weights.sum()), int(x.activations.sum())) for x in layers] == [(-4103, 85381), (599, 2287)]
    return layers


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("arch", sorted(DNNSIM["small"]))
def test_matches_dnnsim(config, arch):
    conv, fc = golden_layers()
    want_conv, want_fc = DNNSIM[config][arch]
    assert simulate_layer(conv, arch, CONFIGS[config]) == want_conv
    if want_fc is not None:
        assert simulate_layer(fc, arch, CONFIGS[config]) == want_fc
