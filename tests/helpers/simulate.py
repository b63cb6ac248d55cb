"""Stand-in weight- and bit-pruned LeNet-5 checkpoints for the simulate-stage tests."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from bitpruner.models.layers import prunable_layers
from bitpruner.quant.fixed_point import quantize_weight
from helpers.models import DIGITS_GEOMETRY, LENET_SMALL_CFG, digits_lenet, save_digits_lenet

__all__ = ["DIGITS_GEOMETRY", "LENET_SMALL_CFG", "WEIGHT_PRUNED_FRACTION", "bit_prune", "top_bit_only",
           "write_three_checkpoints", "zero_smallest"]
WEIGHT_PRUNED_FRACTION = 0.6  # zeros per layer in the stand-in prune_weights checkpoint


def zero_smallest(model: nn.Module, fraction: float) -> nn.Module:
    """Magnitude-prune every layer to `fraction` zeros (in place)."""
    with torch.no_grad():
        for layer in prunable_layers(model).values():
            w = layer.weight
            k = int(fraction * w.numel())
            if k:
                threshold = w.abs().flatten().kthvalue(k).values
                w[w.abs() <= threshold] = 0.0
    return model


def top_bit_only(q: torch.Tensor) -> torch.Tensor:
    """Each integer reduced to its highest set bit (one essential bit), sign kept, zeros stay zero."""
    mag = q.abs()
    top = torch.where(mag > 0, torch.exp2(torch.floor(torch.log2(mag.clamp(min=1).double()))), 0).to(q.dtype)
    return torch.sign(q) * top


def bit_prune(model: nn.Module, bits: int = 8) -> dict:
    """Replace weights by one-essential-bit integers times the scale (in place); returns meta.int_weights:
    {layer: {"q": int16 tensor, "scale": float32 tensor, "bits": bits}}."""
    int_weights = {}
    with torch.no_grad():
        for name, layer in prunable_layers(model).items():
            qw = quantize_weight(layer.weight, {"bits": bits})
            q = top_bit_only(qw.q)
            layer.weight.copy_(q.float() * qw.scale)
            int_weights[name] = {"q": q.to(torch.int16), "scale": qw.scale, "bits": bits}
    return int_weights


def write_three_checkpoints(root: Path, seed: int = 0) -> dict[str, Path]:
    """outputs/{train,prune_weights,prune_bits}/model.ckpt of a small untrained LeNet-5 for digits.

    prune_weights zeroes the 60% smallest weights of every layer; prune_bits keeps one essential bit per
    weight and stores the integers in meta.int_weights. Returns the three paths by stage.
    """
    model = digits_lenet(LENET_SMALL_CFG, seed)
    paths = {}

    def save(stage: str, **meta) -> None:
        paths[stage] = save_digits_lenet(root / "outputs" / stage / "model.ckpt", model, LENET_SMALL_CFG,
                                         meta={"dataset": "digits", "stage": stage, **meta})

    save("train")
    zero_smallest(model, WEIGHT_PRUNED_FRACTION)
    save("prune_weights")
    save("prune_bits", int_weights=bit_prune(model))
    return paths
