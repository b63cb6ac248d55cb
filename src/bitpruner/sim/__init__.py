"""Cycle-level simulator of bit-serial accelerators (DNNsim-compatible) and its trace formats.

Public API (imported lazily so that `bitpruner --help` does not load numpy/numba):
``simulate_network``, ``simulate_layer``, ``LayerResult``, ``SimParams``, ``ARCHS``, ``LayerTrace``,
``NetworkTrace``, ``from_torch_layout``, ``load_dnnsim``, ``save_dnnsim``.
"""

import importlib
import os

# Forked children that touch numba after a parallel call abort under GNU OpenMP; workqueue is fork-safe.
os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")

_EXPORTS = {
    "simulate_network": "bitpruner.sim.engine",
    "simulate_layer": "bitpruner.sim.engine",
    "LayerResult": "bitpruner.sim.engine",
    "SimParams": "bitpruner.sim.params",
    "ARCHS": "bitpruner.sim.params",
    "LayerTrace": "bitpruner.sim.traces",
    "NetworkTrace": "bitpruner.sim.traces",
    "from_torch_layout": "bitpruner.sim.traces",
    "load_dnnsim": "bitpruner.sim.dnnsim_io",
    "save_dnnsim": "bitpruner.sim.dnnsim_io",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bitpruner.sim' has no attribute {name!r}")
