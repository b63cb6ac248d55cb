"""`bitpruner sim`, in-process through the top-level CLI, and once through the installed console script."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bitpruner.cli
from bitpruner.sim.dnnsim_io import load_dnnsim, save_dnnsim
from bitpruner.sim.engine import simulate_layer, simulate_network
from bitpruner.sim.params import SimParams
from bitpruner.sim.traces import LayerTrace, NetworkTrace


@pytest.fixture
def traces(tmp_path):
    rng = np.random.default_rng(0)
    conv = LayerTrace("conv1", "conv", rng.integers(-20, 20, (6, 5, 3, 3)), rng.integers(0, 50, (1, 5, 7, 7)), pad=1)
    fc = LayerTrace("fc2", "fc", rng.integers(-20, 20, (4, 30)), rng.integers(0, 50, (1, 30)))
    save_dnnsim(NetworkTrace("tiny", [conv, fc]), tmp_path)
    return tmp_path, [conv, fc]


def run_json(capsys, *argv):
    assert bitpruner.cli.main(["sim", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_output_and_total(traces, capsys):
    root, layers = traces
    doc = run_json(capsys, "--traces", str(root), "--network", "tiny", "--arch", "bitpragmatic",
                   "--lanes", "4", "--columns", "3", "--bits-first-stage", "2", "--column-registers", "1", "--booth")
    assert doc["network"] == "tiny" and doc["arch"] == "BitPragmatic"
    assert doc["params"]["lanes"] == 4 and doc["params"]["booth_encoding"] is True
    assert [layer["name"] for layer in doc["layers"]] == ["conv1", "fc2"]
    assert [layer["type"] for layer in doc["layers"]] == ["conv", "fc"]
    assert doc["total_compute_cycles"] == sum(layer["compute_cycles"] for layer in doc["layers"])
    params = SimParams(lanes=4, columns=3, bits_first_stage=2, column_registers=1, booth_encoding=True)
    assert doc["layers"][0]["compute_cycles"] == simulate_layer(layers[0], "BitPragmatic", params)


@pytest.mark.parametrize("base, tactical", [("DaDianNao", "BitTactical"), ("BitPragmatic", "BitTacticalE"),
                                            ("ShapeShifter", "BitTacticalP")])
def test_tactical_flag_selects_the_variant(traces, capsys, base, tactical):
    root, _ = traces
    doc = run_json(capsys, "--traces", str(root), "--network", "tiny", "--arch", base, "--tactical")
    assert doc["arch"] == tactical


def test_table_output(traces, capsys):
    root, _ = traces
    assert bitpruner.cli.main(["sim", "--traces", str(root), "--network", "tiny", "--arch", "Stripes"]) == 0
    assert "conv1" in capsys.readouterr().out


def corrupt(root, how):
    wgt = root / "net_traces/tiny/wgt-conv1.npy"
    if how == "missing":
        wgt.unlink()
    elif how == "channels":
        np.save(wgt, np.ones((6, 4, 3, 3), np.float32))
    elif how == "fraction":
        np.save(wgt, np.full((6, 5, 3, 3), 0.5, np.float32))
    elif how == "range":
        np.save(wgt, np.full((6, 5, 3, 3), 70000, np.float32))
    elif how == "precision":
        (root / "models/tiny/precision.txt").write_text("h\n17;8\n0;0\n8;8\n0;0\n")


@pytest.mark.parametrize("how, message", [("missing", "wgt-conv1.npy"), ("channels", "channels"),
                                          ("fraction", "non-integer"), ("range", "16-bit"),
                                          ("precision", "pe_width")])
def test_bad_traces_exit_nonzero_with_one_line(traces, capsys, how, message):
    root, _ = traces
    corrupt(root, how)
    code = bitpruner.cli.main(["sim", "--traces", str(root), "--network", "tiny", "--arch", "Stripes", "--json"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and message in err and len(err.splitlines()) == 1


def test_booth_overflow_and_bad_arch(traces, capsys):
    root, _ = traces
    np.save(root / "net_traces/tiny/act-conv1-0.npy", np.full((1, 5, 7, 7), 29000, np.float32))
    code = bitpruner.cli.main(["sim", "--traces", str(root), "--network", "tiny", "--arch", "Laconic", "--booth"])
    assert code == 1 and "28672" in capsys.readouterr().err
    code = bitpruner.cli.main(["sim", "--traces", str(root), "--network", "tiny", "--arch", "Eyeriss"])
    assert code == 1 and "Eyeriss" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--arch", "Stripes", "--column-registers", "2"], "simulator.column_registers: got 2, but Stripes does not take"),
    (["--arch", "Laconic", "--lookahead", "3"], "simulator.lookahead: got 3, but Laconic does not take"),
    (["--arch", "Stripes", "--booth"], "simulator.booth_encoding: got True, but Stripes does not take"),
    (["--arch", "BitPragmatic", "--lanes", "0"], "simulator.lanes: got 0, expected an integer >= 1"),
    (["--arch", "BitPragmatic", "--pe-width", "17"], "simulator.pe_width: got 17, expected an integer in [1, 16]"),
    (["--arch", "Stripes", "--tactical"], "simulator arch=Stripes with tactical: expected one of"),
])
def test_bad_options_exit_nonzero_with_one_line(traces, capsys, argv, message):
    root, _ = traces
    code = bitpruner.cli.main(["sim", "--traces", str(root), "--network", "tiny", *argv, "--json"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and message in err and len(err.splitlines()) == 1


def test_options_at_their_default_are_accepted_and_aliases_resolve(traces, capsys):
    root, _ = traces
    doc = run_json(capsys, "--traces", str(root), "--network", "tiny", "--arch", "pra", "--column-registers", "0")
    assert doc["arch"] == "BitPragmatic"
    doc = run_json(capsys, "--traces", str(root), "--network", "tiny", "--arch", "Stripes", "--lookahead", "2")
    assert doc["arch"] == "Stripes"


def test_installed_console_script_prints_the_simulated_cycles(traces):
    root, _ = traces
    script = Path(sys.executable).with_name("bitpruner")
    assert script.is_file(), f"{script}: the console script is not installed (pip install -e .)"
    argv = ["sim", "--traces", str(root), "--network", "tiny", "--arch", "PragmaticW", "--lanes", "4",
            "--bits-first-stage", "2"]
    env = {**os.environ, "COLUMNS": "120"}  # rich's table width when stdout is not a terminal
    out = subprocess.run([str(script), *argv], capture_output=True, text=True, check=True, env=env).stdout
    printed = {m[0]: int(m[2].replace(",", "")) for m in re.findall(r"(\w+)\s*│\s*(conv|fc|)\s*│\s*([\d,]+)", out)}
    want = simulate_network(load_dnnsim(root, "tiny"), "PragmaticW", SimParams(lanes=4, bits_first_stage=2))
    assert printed == {**{r.name: r.compute_cycles for r in want}, "total": sum(r.compute_cycles for r in want)}
