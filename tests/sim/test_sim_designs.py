"""The design registry, the typed simulator/accelerator config, and numba's settings."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from tests.sim.conftest import random_layer

from bitpruner.errors import ConfigError
from bitpruner.sim import costs, reference
from bitpruner.sim.accelerators import accelerator_from_config, accelerators_from_config
from bitpruner.sim.designs import (
    ARCHS,
    DESIGNS,
    TACTICAL_OF,
    Serial,
    check_options,
    design_of,
    params_for,
    resolve_arch,
)
from bitpruner.sim.engine import simulate_layer
from bitpruner.sim.params import OPTION_FIELDS, SimParams

SIM_SRC = Path(__file__).resolve().parents[2] / "src" / "bitpruner" / "sim"
CONFIG_DIR = Path(__file__).resolve().parents[2] / "conf" / "accelerator"
SMALL = dict(lanes=4, columns=3, rows=2, tiles=2)


# ---------------------------------------------------------------- names


def test_every_design_resolves_by_name_and_alias_in_any_case():
    assert ARCHS == tuple(d.name for d in DESIGNS) and len(set(ARCHS)) == len(ARCHS) == 13
    for d in DESIGNS:
        for name in (d.name, *d.aliases):
            assert design_of(name) is d and design_of(name.upper()) is d and resolve_arch(name.lower()) == d.name
    assert resolve_arch("bit-pragmatic") == resolve_arch("BIT_PRAGMATIC") == "BitPragmatic"


def test_tactical_forms():
    assert TACTICAL_OF == {"DaDianNao": "BitTactical", "BitPragmatic": "BitTacticalE", "ShapeShifter": "BitTacticalP"}
    for base, form in TACTICAL_OF.items():
        assert resolve_arch(base, tactical=True) == form and design_of(form).scheduled
        assert resolve_arch(form, tactical=True) == form  # already tactical
    assert sorted(d.name for d in DESIGNS if d.scheduled) == sorted(TACTICAL_OF.values())
    with pytest.raises(ConfigError, match=r"^simulator arch=Stripes with tactical: expected one of DaDianNao, "):
        resolve_arch("stripes", tactical=True)


def test_unknown_design_is_one_line_listing_the_designs():
    with pytest.raises(ConfigError) as info:
        design_of("Eyeriss")
    assert str(info.value) == f"simulator arch='Eyeriss': expected one of {', '.join(ARCHS)}"


def test_records_point_at_their_cost_modules():
    for d in DESIGNS:
        assert d.cost.__module__ == costs.__name__ and d.reference_cost.__module__ == reference.__name__
        assert d.options <= set(OPTION_FIELDS)
    assert {d.name for d in DESIGNS if not d.in_dnnsim} == {"PragmaticW", "Bitlet", "BitWave", "BitVert"}
    assert design_of("PragmaticW").serial is Serial.WEIGHTS and design_of("Laconic").serial.operands == (
        "activations", "weights")


def test_no_architecture_name_is_tested_outside_the_registry():
    names = "|".join(ARCHS)
    compare = re.compile(rf"""(==|!=|\bin)\s*\(?\s*["']({names})["']""")
    for path in sorted(SIM_SRC.glob("*.py")):
        if path.name != "designs.py":
            assert not compare.search(path.read_text()), path.name


# ---------------------------------------------------------------- options


@pytest.mark.parametrize("arch, option, value", [
    ("Stripes", "column_registers", 2), ("Laconic", "lookahead", 3), ("DaDianNao", "bits_first_stage", 1),
    ("Loom", "group_size", 2), ("PragmaticW", "lookaside", 1), ("BitTacticalP", "booth_encoding", True),
])
def test_an_option_the_design_does_not_take_is_refused_in_one_line(arch, option, value):
    params = SimParams(**{option: value})
    with pytest.raises(ConfigError) as info:
        simulate_layer(random_layer(np.random.default_rng(0), "fc"), arch, params)
    message = str(info.value)
    assert message.startswith(f"simulator.{option}: got {value!r}, but {arch} does not take {option}")
    assert "\n" not in message
    check_options(design_of(arch), params_for(design_of(arch), params))  # at its default: accepted


def _changes_cycles(arch, option, value, base):
    """True when setting `option` changes the cycles of some small random layer."""
    for seed in range(6):
        rng = np.random.default_rng(seed)
        # 8-bit designs refuse wider weights: they get 8-bit ones
        max_mag = 127 if design_of(arch).weight_bits else 4000
        layer = random_layer(rng, "conv", K=6, C=9, k=2, X=5, max_mag=max_mag, sparsity=0.6)
        params = SimParams(**SMALL, **base)
        if simulate_layer(layer, arch, params) != simulate_layer(layer, arch, params.model_copy(update={option: value})):
            return True
    return False


# A value that matters for each option (group_size only matters under column registers).
OPTION_PROBES = {"bits_first_stage": (2, {}), "column_registers": (2, {}), "booth_encoding": (True, {}),
                 "group_size": (3, {"column_registers": 2}), "pe_serial_bits": (2, {}), "lookahead": (1, {}),
                 "lookaside": (0, {}), "dataflow_choice": (True, {}), "bidirectional": (False, {}),
                 "multipliers": (1, {}), "drop_sign_extension": (0, {}), "fixed_precision": (8, {})}


# Options the spec gives a design although they cannot change its cycles, and why.
NO_EFFECT = {
    ("PragmaticW", "column_registers"): "activations are bit-parallel: every busy column has the same cost per "
                                        "step, so no column can run ahead of the slowest",
}


@pytest.mark.parametrize("design", DESIGNS, ids=lambda d: d.name)
def test_every_option_a_design_takes_changes_its_cycles(design):
    # A record must not list an option its cost ignores (the refusal above would then be wrong the other way).
    for option in sorted(design.options):
        value, base = OPTION_PROBES[option]
        assert _changes_cycles(design.name, option, value, base) != ((design.name, option) in NO_EFFECT), option


# ---------------------------------------------------------------- typed config


@pytest.mark.parametrize("data, message", [
    ({"lanes": 0}, "simulator.lanes: got 0, expected an integer >= 1"),
    ({"lanes": "4"}, "simulator.lanes: got '4', expected an integer >= 1"),
    ({"tiles": True}, "simulator.tiles: got True, expected an integer >= 1"),
    ({"pe_width": 17}, "simulator.pe_width: got 17, expected an integer in [1, 16]"),
    ({"bits_first_stage": -1}, "simulator.bits_first_stage: got -1, expected an integer >= 0"),
    ({"booth_encoding": "yes"}, "simulator.booth_encoding: got 'yes', expected true or false"),
    ({"lanez": 4}, "simulator: unknown key(s) lanez; expected some of"),
])
def test_sim_params_parse_names_the_bad_key(data, message):
    with pytest.raises(ConfigError) as info:
        SimParams.parse(data)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_accelerator_configs_in_conf_parse_and_cover_every_design():
    archs = []
    for path in sorted(CONFIG_DIR.glob("*.yaml")):
        node = yaml.safe_load(path.read_text())
        accel = accelerator_from_config(node, path.stem)
        archs.append(accel.arch)
        # The file sets only geometry and the options its design takes.
        options = set(node) & set(OPTION_FIELDS + ("booth",))
        assert {"booth_encoding" if o == "booth" else o for o in options} <= accel.design.options, path.name
    assert sorted(set(archs)) == sorted(ARCHS)


@pytest.mark.parametrize("node, message", [
    ({"arch": "Stripes", "lanez": 4}, "acc.x: unknown key(s) ['lanez']; expected some of ["),
    ({"arch": "Stripes", "column_registers": 1}, "acc.x.column_registers: got 1, but Stripes does not take"),
    ({"arch": "BitPragmatic", "booth": "yes"}, "acc.x.booth: got 'yes', expected true or false"),
    ({"arch": "BitPragmatic", "booth": True, "booth_encoding": True}, "acc.x: give one of booth and booth_encoding"),
    ({"arch": "Nope"}, "acc.x: simulator arch='Nope': expected one of"),
    ({"name": "n"}, "acc.x.arch: missing from the config"),
    ({"arch": "Laconic", "rows": 0}, "acc.x.rows: got 0, expected an integer >= 1"),
    ({"arch": "Stripes", "tactical": True}, "acc.x: simulator arch=Stripes with tactical"),
])
def test_bad_accelerator_nodes_fail_in_one_line(node, message):
    with pytest.raises(ConfigError) as info:
        accelerator_from_config(node, "acc.x")
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_accelerator_node_builds_the_design_and_its_params():
    accel = accelerator_from_config({"arch": "pra", "tactical": True, "booth": True, "bits_first_stage": 2,
                                     "lookahead": 2, "lanes": 8})
    assert (accel.name, accel.arch) == ("BitTacticalE", "BitTacticalE")
    assert accel.params == SimParams(lanes=8, booth_encoding=True, bits_first_stage=2)
    assert accel.describe()["booth_encoding"] is True
    accels = accelerators_from_config({"a": {"arch": "Stripes"}, "b": {"arch": "Stripes", "name": "S2"}})
    assert [a.name for a in accels] == ["Stripes", "S2"]
    with pytest.raises(ConfigError, match=r"name\(s\) \['Stripes'\] used more than once"):
        accelerators_from_config({"a": {"arch": "Stripes"}, "b": {"arch": "stripes"}})


# ---------------------------------------------------------------- numba settings


def _numba_settings(env_extra, first=""):
    imports = f"{first}from bitpruner.sim import kernels; import numba; "
    code = (f"{imports}print(numba.config.CACHE_DIR); print(numba.config.THREADING_LAYER); "
            "print(kernels.ring_cycles._cache._cache_path)")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("NUMBA_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**env, **env_extra}).stdout
    return out.split()


@pytest.mark.parametrize("numba_first", [False, True])
def test_numba_cache_lives_outside_the_source_tree(tmp_path, numba_first):
    # Cache files under src/ would make `dvc status` report the pipeline stale after every simulation.
    first = "import numba; " if numba_first else ""  # numba imported before the simulator
    cache_dir, layer, kernel_cache = _numba_settings({"XDG_CACHE_HOME": str(tmp_path)}, first)
    assert cache_dir == str(tmp_path / "bitpruner" / "numba")
    assert layer == "workqueue"
    assert Path(kernel_cache).is_relative_to(tmp_path) and not Path(kernel_cache).is_relative_to(SIM_SRC)


def test_numba_environment_wins(tmp_path):
    cache_dir, layer, _ = _numba_settings({"NUMBA_CACHE_DIR": str(tmp_path / "mine"), "NUMBA_THREADING_LAYER": "omp"})
    assert (cache_dir, layer) == (str(tmp_path / "mine"), "omp")


@pytest.mark.slow
def test_kernels_compile_into_the_user_cache(tmp_path):
    code = ("import numpy as np; from bitpruner.sim.kernels import ring_cycles; "
            "ring_cycles(np.ones((1, 1, 2, 3), np.int64), np.array([2]), 1, np.zeros(3, np.int64), np.zeros(2, np.int64))")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("NUMBA_")}
    subprocess.run([sys.executable, "-c", code], check=True, env={**env, "XDG_CACHE_HOME": str(tmp_path)})
    assert list((tmp_path / "bitpruner" / "numba").rglob("kernels.ring_cycles-*.nbi"))
