"""When the simulator loads numba (bitpruner.utils.jit, vectorized.py, costs.jit_saving) and what loading it
skips. The two forms of every kernel give the same cycles: see the `jit_mode` tests in test_sim_engine.py,
test_sim_costs.py and test_tactical.py."""

import os
import subprocess
import sys

import numpy as np
import pytest
from tests.sim.conftest import random_layer

from bitpruner.errors import ConfigError
from bitpruner.sim.costs import jit_saving
from bitpruner.sim.designs import ARCHS, Serial, design_of, params_for
from bitpruner.sim.engine import LayerSimulator
from bitpruner.sim.params import SimParams
from bitpruner.sim.traces import LayerTrace
from bitpruner.utils import jit


def run_python(code: str, **env) -> list[str]:
    """Lines printed by `code` in a fresh interpreter (NUMBA_* and BITPRUNER_JIT settings of the tests removed)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_") and k != jit.JIT_ENV}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**base, **env})
    return done.stdout.split()


def test_mode_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(jit.JIT_ENV, raising=False)
    assert jit.jit_mode() == "auto"
    monkeypatch.setenv(jit.JIT_ENV, " Never ")
    assert jit.jit_mode() == "never" and not jit.use_jit(1e9)
    monkeypatch.setenv(jit.JIT_ENV, "always")
    assert jit.use_jit(0.0)
    monkeypatch.setenv(jit.JIT_ENV, "sometimes")
    with pytest.raises(ConfigError, match=r"^BITPRUNER_JIT='sometimes': expected one of auto, always, never$"):
        jit.use_jit(1.0)


def test_auto_compares_the_estimated_saving_with_numba_start_up(monkeypatch):
    monkeypatch.setenv(jit.JIT_ENV, "auto")
    monkeypatch.setattr(jit, "numba_loaded", lambda: False)
    start = jit.NUMBA_STARTUP_S
    assert not jit.use_jit(0.9 * start) and jit.use_jit(start)
    with jit.prefer_jit():  # a run that pays for numba as a whole takes it for every kernel
        assert jit.use_jit(0.0)
        with jit.prefer_jit(False):
            assert not jit.use_jit(0.0)
    assert not jit.use_jit(0.0)
    monkeypatch.setattr(jit, "numba_loaded", lambda: True)  # start-up already paid: a cache file is cheap
    assert jit.use_jit(start / jit.WARM_DISCOUNT) and not jit.use_jit(0.9 * start / jit.WARM_DISCOUNT)


def test_threads_come_from_numba_num_threads(monkeypatch):
    monkeypatch.setenv(jit.NUM_THREADS_ENV, "3")
    assert jit.threads() == 3
    monkeypatch.delenv(jit.NUM_THREADS_ENV)
    assert jit.threads() == len(os.sched_getaffinity(0))
    monkeypatch.setenv(jit.NUM_THREADS_ENV, "0")
    with pytest.raises(ConfigError, match=r"^NUMBA_NUM_THREADS='0': expected an integer >= 1$"):
        jit.threads()


def test_skipped_imports_are_restored_even_after_an_error():
    name = "bitpruner_test_module_that_does_not_exist"
    with pytest.raises(RuntimeError), jit._skipped((name, "os")):
        assert sys.modules[name] is None and sys.modules["os"] is os  # a loaded module is left alone
        with pytest.raises(ImportError):
            __import__(name)
        raise RuntimeError
    assert name not in sys.modules


def test_small_runs_never_load_numba():
    # Every design on a small layer pair: numpy only, so the process stays small and starts fast.
    code = ("import sys, numpy as np; from bitpruner.sim.engine import simulate_layer; "
            "from bitpruner.sim.designs import ARCHS; from bitpruner.sim.traces import LayerTrace; "
            "from bitpruner.sim.params import SimParams; rng = np.random.default_rng(0); "
            "c = LayerTrace('c', 'conv', rng.integers(-9, 9, (20, 18, 3, 3)), rng.integers(0, 99, (1, 18, 9, 9)), pad=1); "
            "f = LayerTrace('f', 'fc', rng.integers(-9, 9, (30, 40)), rng.integers(0, 99, (1, 40))); "
            "p = SimParams(bits_first_stage=2, column_registers=2, booth_encoding=True); "
            "from bitpruner.sim.designs import design_of, params_for; "
            "[simulate_layer(l, a, params_for(design_of(a), p)) for a in ARCHS for l in (c, f)]; "
            "print('numba' in sys.modules)")
    assert run_python(code) == ["False"]


def test_numba_start_up_skips_scipy_linalg_cffi_and_coverage():
    code = ("import sys, numpy as np; from bitpruner.sim.kernels import ring_cycles; "
            "ring_cycles(np.ones((1, 1, 2, 3), np.int64), np.array([2]), 1, np.zeros(3, np.int64), np.zeros(2, np.int64)); "
            "print([m in sys.modules for m in ('scipy.linalg', 'cffi', 'coverage')]); "
            "import scipy.linalg.cython_blas, cffi; print('imports-still-work')")
    assert run_python(code) == ["[False,", "False,", "False]", "imports-still-work"]


def big_layer():
    rng = np.random.default_rng(0)
    return LayerTrace("big", "conv", rng.integers(-9, 9, (256, 128, 3, 3)), rng.integers(0, 9, (1, 128, 56, 56)), pad=1)


@pytest.mark.parametrize("arch", ARCHS)
def test_estimated_savings_grow_with_the_work(arch):
    params = params_for(design_of(arch), SimParams(bits_first_stage=2, column_registers=2))
    small = LayerSimulator(random_layer(np.random.default_rng(1), "conv", K=4, C=5, k=2, X=4), design_of(arch), params)
    big = LayerSimulator(big_layer(), design_of(arch), params)
    design = design_of(arch)
    # Designs with neither a shifter nor column registers nor a schedule have no kernel to choose a form for.
    if not design.scheduled and not design.options & {"bits_first_stage", "column_registers"}:
        assert jit_saving(small) == jit_saving(big) == 0.0
        return
    assert 0.0 < jit_saving(small) < jit_saving(big) <= jit_saving(big, samples=3)
    # the schedule is computed once per layer, every other kernel once per sample
    only_schedule = design.scheduled and design.serial is Serial.NONE
    assert (jit_saving(big, samples=3) == jit_saving(big)) == only_schedule
    assert jit_saving(small) < jit.NUMBA_STARTUP_S / jit.WARM_DISCOUNT  # small layers stay in numpy
