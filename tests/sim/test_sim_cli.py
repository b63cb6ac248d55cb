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


# ---------------------------------------------------------------- the command's light path (issue 14: start-up)

# Values of every kind a flag or a config may hold: in and out of every field's bounds, wrong types.
PROBES = (None, False, True, -1, 0, 1, 2, 3, 7, 8, 9, 16, 17, 2**40, "4", 4.0, np.int64(4))


def both_paths(data):
    """(values or one-line error) of parse_flags and of SimParams.parse on the same mapping."""
    from bitpruner.errors import ConfigError
    from bitpruner.sim.params import parse_flags

    out = []
    for parse in (parse_flags, SimParams.parse):
        try:
            out.append(parse(data).model_dump())
        except ConfigError as exc:
            out.append(str(exc))
    return out


@pytest.mark.parametrize("name", sorted(__import__("bitpruner.sim.params", fromlist=["FIELDS"]).FIELDS))
def test_flag_checks_agree_with_simparams_field_by_field(name):
    from bitpruner.sim.params import FIELDS, SimValues, parse_flags

    for value in PROBES:
        light, node = both_paths({name: value})
        assert light == node, (name, value)
        # The light check alone accepts exactly what the node accepts (no silent fallback on good input).
        accepted = isinstance(node, dict)
        assert FIELDS[name].accepts(value) == accepted, (name, value)
        if accepted:
            assert isinstance(parse_flags({name: value}), SimValues)


def test_flag_checks_agree_with_simparams_on_mixed_mappings():
    from bitpruner.sim.params import FIELDS

    rng = np.random.default_rng(7)
    names = sorted(FIELDS) + ["bogus"]
    for _ in range(300):
        keys = rng.choice(names, size=int(rng.integers(0, 5)), replace=False)
        data = {str(k): PROBES[int(rng.integers(len(PROBES)))] for k in keys}
        light, node = both_paths(data)
        assert light == node, data
    light, node = both_paths(["lanes", 4])
    assert light == node == "simulator: got ['lanes', 4], expected a mapping"


def test_sim_values_behave_as_the_node_for_the_simulator():
    from bitpruner.sim.designs import check_options, design_of, params_for
    from bitpruner.sim.params import SimValues, parse_flags

    given = {"lanes": 4, "bits_first_stage": 2, "column_registers": 1, "booth_encoding": True}
    light, node = parse_flags(given), SimParams.parse(given)
    assert light.to_dict() == node.to_dict() and light.changed_options() == node.changed_options()
    assert light == SimValues(node.model_dump()) and hash(light) == hash(SimValues(node.model_dump()))
    for arch in ("Stripes", "BitPragmatic", "BitTacticalE"):
        assert params_for(design_of(arch), light).to_dict() == params_for(design_of(arch), node).to_dict()
    with pytest.raises(Exception) as light_err:
        check_options(design_of("Stripes"), light)
    with pytest.raises(Exception) as node_err:
        check_options(design_of("Stripes"), node)
    assert str(light_err.value) == str(node_err.value)
    with pytest.raises(AttributeError, match="frozen"):
        light.lanes = 8
    assert light.model_copy(update={"lanes": 8}).lanes == 8 and light.lanes == 4


def run_fresh(code: str, **env) -> list[str]:
    """Lines printed by `code` in a fresh interpreter, numba's use left to the default (BITPRUNER_JIT=auto) and
    OPENBLAS_NUM_THREADS unset unless `env` sets them."""
    base = {k: v for k, v in os.environ.items() if k not in ("BITPRUNER_JIT", "OPENBLAS_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**base, **env})
    return done.stdout.split()


def test_sim_command_loads_neither_pydantic_nor_the_other_areas(traces):
    root, _ = traces
    code = ("import io, sys, contextlib, bitpruner.cli; out = io.StringIO(); "
            "with_ = contextlib.redirect_stdout(out); with_.__enter__(); "
            f"code = bitpruner.cli.main(['sim', '--traces', {str(root)!r}, '--network', 'tiny', '--arch', "
            "'BitTacticalE', '--lanes', '4', '--json']); with_.__exit__(None, None, None); "
            "print(code, '\"total_compute_cycles\"' in out.getvalue(), sorted(m for m in ('pydantic', 'numba', "
            "'torch', 'numpy.ma', 'bitpruner.plan.cli', 'bitpruner.prune_weights.cli', 'bitpruner.reports.cli') "
            "if m in sys.modules)); import os; print(os.environ['OPENBLAS_NUM_THREADS'])")
    # One BLAS thread (the simulator calls no BLAS; OpenBLAS's thread pool start is a third of numpy's import) ...
    assert run_fresh(code) == ["0", "True", "[]", "1"]
    # ... unless the user asked for more.
    assert run_fresh(code, OPENBLAS_NUM_THREADS="2")[-1] == "2"


def test_simparams_is_built_on_first_use_and_pickles_across_processes(tmp_path):
    code = ("import pickle, sys; from bitpruner.sim import engine, params; "
            "print('pydantic' in sys.modules); p = engine.SimParams(lanes=3); "
            "print(type(p) is params.SimParams, isinstance(p, engine.SimParams), "
            "engine.SimParams.model_fields['lanes'].default); "
            "from bitpruner.sim.accelerators import AcceleratorNode; "
            "print(issubclass(AcceleratorNode, engine.SimParams)); "
            f"open({str(tmp_path / 'p.pkl')!r}, 'wb').write(pickle.dumps([p, params.parse_flags({{'lanes': 5}})]))")
    assert run_fresh(code) == ["False", "True", "True", "16", "True"]
    # A fresh process unpickles both before anything built the node.
    code = (f"import pickle; p, v = pickle.load(open({str(tmp_path / 'p.pkl')!r}, 'rb')); "
            "from bitpruner.sim.params import SimParams; print(type(p) is SimParams, p.lanes, v.lanes)")
    assert run_fresh(code) == ["True", "3", "5"]


def test_the_sim_command_alone_is_registered_for_sim(capsys):
    import argparse

    def commands(parser):
        (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        return list(action.choices)

    assert commands(bitpruner.cli.build_parser("sim")) == ["sim"]
    assert "sim" in commands(bitpruner.cli.build_parser()) and len(commands(bitpruner.cli.build_parser())) > 1
    with pytest.raises(SystemExit) as info:
        bitpruner.cli.main(["sim", "--help"])
    assert info.value.code == 0 and "--traces" in capsys.readouterr().out
