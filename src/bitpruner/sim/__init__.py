"""Cycle-level simulator of bit-serial accelerators (DNNsim-compatible) and its trace formats.

Public API (imported lazily so that `bitpruner --help` does not load numpy/numba):
``simulate_network``, ``simulate_layer``, ``LayerResult``, ``SimParams``, ``ARCHS``, ``resolve_arch``,
``DESIGNS``, ``Design``, ``design_of`` (the design registry), ``Accelerator``, ``accelerator_from_config``,
``accelerators_from_config``, ``LayerTrace``, ``NetworkTrace``, ``from_torch_layout``, ``load_dnnsim``,
``save_dnnsim``. numba's settings (threading layer, on-disk cache outside the source tree) live in ``jit.py``.
"""

import importlib

_EXPORTS = {
    "simulate_network": "bitpruner.sim.engine",
    "simulate_layer": "bitpruner.sim.engine",
    "LayerResult": "bitpruner.sim.engine",
    "SimParams": "bitpruner.sim.params",
    "ARCHS": "bitpruner.sim.designs",
    "DESIGNS": "bitpruner.sim.designs",
    "Design": "bitpruner.sim.designs",
    "design_of": "bitpruner.sim.designs",
    "resolve_arch": "bitpruner.sim.designs",
    "Accelerator": "bitpruner.sim.accelerators",
    "accelerator_from_config": "bitpruner.sim.accelerators",
    "accelerators_from_config": "bitpruner.sim.accelerators",
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
