"""Cycles of every layer at every candidate k on the target accelerator, from the simulator.

The trace is captured once on the input model at b-bit weights (`sim.capture.quantize_model`): its
activations are the *unprojected* model's (a projection of one layer would shift later layers' inputs
slightly; the weight-serial designs the plan targets do not look at activation values anyway). Each
(layer, mode, k) swaps in the projected integer weights and simulates that layer alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from torch import nn

from bitpruner.models.layers import prunable_layers
from bitpruner.plan.sensitivity import projected_int
from bitpruner.quant.fixed_point import QuantConfig
from bitpruner.sim.accelerators import Accelerator
from bitpruner.sim.traces import NetworkTrace, from_torch_layout

CYCLES_COLUMNS = ("layer", "mode", "k", "cycles")


def projection_cycles(model: nn.Module, trace: NetworkTrace, candidates: Sequence[int], modes: Iterable[str],
                      quant: QuantConfig, accel: Accelerator, samples: int, encoding: str = "binary",
                      ) -> pd.DataFrame:
    """Rows (layer, mode, k, cycles): compute cycles of the layer's trace over `samples` samples."""
    from bitpruner.sim.engine import simulate_layer

    rows = []
    floats = prunable_layers(model)
    for mode in modes:
        for layer in trace.layers:
            for k in candidates:
                q, _ = projected_int(mode, floats[layer.name].weight, quant, k, accel.params.lanes, encoding)
                weights = from_torch_layout(q.cpu().numpy(), np.empty(0))[0]  # PyTorch y-x -> DNNsim x-y
                probe = dataclasses.replace(layer, weights=weights, wgt_prec=quant.bits, wgt_bits=quant.bits)
                cycles = simulate_layer(probe, accel.arch, accel.params, samples)
                rows.append({"layer": layer.name, "mode": mode, "k": int(k), "cycles": int(cycles)})
    return pd.DataFrame(rows, columns=list(CYCLES_COLUMNS))
