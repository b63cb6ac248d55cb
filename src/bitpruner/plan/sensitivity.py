"""Per-layer sensitivity to a bit projection: val accuracy and loss with ONLY that layer projected at k.

The reference is the input model with every layer quantized to b bits (plain rounding, the quant
config's scale); a probe replaces one layer by `scale * Proj_k(w)`, projected from the *float* weights
exactly as the prune_bits stage does at its end (`project_int`), with no retraining. The loop itself is
`bitpruner.prune_weights.sensitivity.layer_sensitivity` with the projection as its perturbation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import pandas as pd
import torch
from torch import nn

from bitpruner.models.layers import prunable_layers
from bitpruner.prune_bits.projected_weight import project_int
from bitpruner.prune_weights.sensitivity import layer_sensitivity
from bitpruner.quant.evaluate import quantized_model
from bitpruner.quant.fixed_point import QuantConfig, broadcast_scale, qmax, weight_scale

SENSITIVITY_COLUMNS = ("layer", "mode", "k", "val_acc", "val_loss", "drop", "loss_increase")


@torch.no_grad()
def projected_int(mode: str, w: torch.Tensor, quant: QuantConfig, k: int, lanes: int,
                  encoding: str = "binary") -> tuple[torch.Tensor, torch.Tensor]:
    """(int32 weights, scale) of float `w` projected at k; k >= bits - 1 is plain b-bit rounding."""
    w = w.detach()
    scale = weight_scale(w, quant.bits, quant.per_channel, quant.power_of_two)
    if k >= quant.bits - 1:
        top = qmax(quant.bits)
        return torch.clamp(torch.round(w / broadcast_scale(scale, w)), -top, top).to(torch.int32), scale
    return project_int(mode, w, scale, k, lanes, quant.bits, encoding).to(torch.int32), scale


class _ProjectionProbe:
    """The perturbation (project one layer of the quantized copy) and an evaluation that keeps acc and loss."""

    def __init__(self, originals: dict[int, tuple[str, torch.Tensor]], mode: str, quant: QuantConfig,
                 lanes: int, encoding: str, evaluate: Callable[[nn.Module], dict]):
        self.originals = originals
        self.mode, self.quant, self.lanes, self.encoding = mode, quant, lanes, encoding
        self._evaluate = evaluate
        self.current: tuple[str, int] | None = None  # the probe in place: (layer, k); None = the reference
        self.results: dict[tuple[str, int] | None, dict] = {}

    @torch.no_grad()
    def perturb(self, module: nn.Module, level: float) -> None:
        name, w = self.originals[id(module)]
        k = int(level)
        q, scale = projected_int(self.mode, w, self.quant, k, self.lanes, self.encoding)
        module.weight.copy_((q.to(w.dtype) * broadcast_scale(scale, w)).to(module.weight.dtype))
        self.current = (name, k)

    def evaluate(self, model: nn.Module) -> float:
        result = self._evaluate(model)
        self.results[self.current] = result
        self.current = None  # layer_sensitivity restores the layer right after
        return result["acc"]


def projection_sensitivity(model: nn.Module, evaluate: Callable[[nn.Module], dict], candidates: Sequence[int],
                           modes: Iterable[str], quant: QuantConfig, lanes: int, encoding: str = "binary",
                           ) -> pd.DataFrame:
    """Rows (layer, mode, k, val_acc, val_loss, drop, loss_increase); drop = reference acc - acc (points).

    `evaluate(model) -> {"acc": %, "loss": ...}` (e.g. `training.evaluate.evaluate` on the val split).
    `table.attrs` holds the reference `val_acc` and `val_loss` (b-bit, nothing projected).
    """
    reference = quantized_model(model, quant)
    floats = prunable_layers(model)
    originals = {id(m): (n, floats[n].weight.detach().clone()) for n, m in prunable_layers(reference).items()}
    frames = []
    base = None
    for mode in modes:
        probe = _ProjectionProbe(originals, mode, quant, lanes, encoding, evaluate)
        table = layer_sensitivity(reference, probe.evaluate, candidates, perturb=probe.perturb, level_name="k")
        base = probe.results[None]
        table["k"] = table["k"].astype(int)
        table.insert(1, "mode", mode)
        table["val_loss"] = [probe.results[(n, k)]["loss"] for n, k in zip(table["layer"], table["k"], strict=True)]
        table["loss_increase"] = table["val_loss"] - base["loss"]
        frames.append(table)
    out = pd.concat(frames, ignore_index=True)[list(SENSITIVITY_COLUMNS)]
    out.attrs = {"val_acc": base["acc"], "val_loss": base["loss"]}
    return out
