"""Cycle counts that DNNsim itself printed for a fixed two-layer trace (regression against the reference).

Numbers from DNNsim (isakedo/DNNsim 4748a60, WindowFirstOutS, task Cycles, quantized traces, fast mode). The
trace, its checksums, the batch file and the command line are in tests/sim/golden/ (README.md there).
BitTacticalE/P on fc are left out: DNNsim reads the promoted activations from the wrong column there.
"""

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from bitpruner.sim.designs import design_of, params_for
from bitpruner.sim.dnnsim_io import load_dnnsim, save_dnnsim
from bitpruner.sim.engine import simulate_layer
from bitpruner.sim.params import SimParams
from bitpruner.sim.traces import LayerTrace, NetworkTrace

GOLDEN = Path(__file__).parent / "golden"
NETWORK = "golden"
DNNSIM_COMMIT = "4748a60"
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
    """The seeded generator of the trace DNNsim saw (stored in tests/sim/golden/)."""
    rng = np.random.default_rng(2024)
    w1 = rng.integers(-300, 300, (7, 6, 3, 3)) * (rng.random((7, 6, 3, 3)) < 0.5)
    a1 = rng.integers(0, 1000, (1, 6, 7, 7)) * (rng.random((1, 6, 7, 7)) < 0.6)
    w2 = rng.integers(-300, 300, (9, 21)) * (rng.random((9, 21)) < 0.5)
    a2 = rng.integers(-500, 500, (1, 21)) * (rng.random((1, 21)) < 0.6)
    return [LayerTrace("conv1", "conv", w1, a1, stride=1, pad=1), LayerTrace("fc2", "fc", w2, a2)]


def test_stored_trace_matches_its_checksums():
    lines = (GOLDEN / "SHA256SUMS").read_text().splitlines()
    assert len(lines) == 5  # model.csv + weights and activations of two layers
    for line in lines:
        digest, name = line.split()
        assert hashlib.sha256((GOLDEN / name).read_bytes()).hexdigest() == digest, name


def test_generator_recreates_the_stored_files_byte_for_byte(tmp_path):
    save_dnnsim(NetworkTrace(NETWORK, golden_layers()), tmp_path)
    stored = sorted(p.relative_to(GOLDEN) for p in (GOLDEN / "net_traces").rglob("*.npy"))
    assert len(stored) == 4
    for rel in [*stored, Path("models", NETWORK, "model.csv")]:
        assert (tmp_path / rel).read_bytes() == (GOLDEN / rel).read_bytes(), rel


def _batch_experiments() -> list[dict]:
    """The experiments of golden.prototxt as {key: value} (values as written)."""
    text = re.sub(r"#.*", "", (GOLDEN / "golden.prototxt").read_text())
    return [dict(re.findall(r"(\w+):\s*(\S+)", body)) for body in re.findall(r"experiment\s*\{([^}]*)\}", text)]


def test_batch_file_runs_the_configs_of_this_test():
    text = (GOLDEN / "golden.prototxt").read_text()
    assert DNNSIM_COMMIT in text and 'network: "golden"' in text and "quantised: true" in text
    seen = {}
    for exp in _batch_experiments():
        assert exp["task"] == '"Cycles"' and exp["dataflow"] == '"WindowFirstOutS"'
        design = design_of(exp["architecture"].strip('"'), tactical=exp.get("tactical") == "true")
        params = SimParams(**{k: int(exp[k]) for k in ("lanes", "columns", "rows", "tiles", "pe_width",
                                                        "bits_first_stage", "column_registers")},
                           booth_encoding=exp["booth_encoding"] == "true")
        config = next(name for name, cfg in CONFIGS.items() if cfg == params)
        seen.setdefault(config, []).append(design.name)
    assert {c: sorted(d) for c, d in seen.items()} == {c: sorted(DNNSIM[c]) for c in CONFIGS}


@pytest.fixture(scope="module")
def stored_trace():
    trace = load_dnnsim(GOLDEN, NETWORK)
    for mine, stored in zip(golden_layers(), trace.layers, strict=True):
        assert np.array_equal(mine.weights, stored.weights) and np.array_equal(mine.activations, stored.activations)
    return trace


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("arch", sorted(DNNSIM["small"]))
def test_matches_dnnsim(stored_trace, config, arch):
    conv, fc = stored_trace.layers
    want_conv, want_fc = DNNSIM[config][arch]
    design = design_of(arch)
    params = params_for(design, CONFIGS[config])  # DNNsim ignores the options a design does not take
    assert simulate_layer(conv, design, params) == want_conv
    if want_fc is not None:
        assert simulate_layer(fc, design, params) == want_fc
