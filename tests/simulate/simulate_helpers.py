"""Tiny models and checkpoints for the simulate-stage tests."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from bitpruner.models.checkpoint import save_model_checkpoint
from bitpruner.models.layers import prunable_layers
from bitpruner.quant.fixed_point import quantize_weight

LENET_CFG = {"_target_": "bitpruner.models.LeNet5", "name": "lenet5", "channels": [4, 8], "hidden": [16, 12]}
DIGITS_GEOMETRY = {"in_channels": 1, "image_size": [8, 8], "num_classes": 10}


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
    """Replace weights by one-essential-bit integers times the scale; returns meta.int_weights."""
    int_weights = {}
    with torch.no_grad():
        for name, layer in prunable_layers(model).items():
            qw = quantize_weight(layer.weight, {"bits": bits})
            q = top_bit_only(qw.q)
            layer.weight.copy_(q.float() * qw.scale)
            int_weights[name] = {"q": q.to(torch.int16), "scale": qw.scale, "bits": bits}
    return int_weights


def write_three_checkpoints(root: Path, seed: int = 0) -> dict[str, Path]:
    """outputs/{train,prune_weights,prune_bits}/model.ckpt of a small untrained LeNet-5 for digits."""
    from bitpruner.models.checkpoint import build_from_config

    torch.manual_seed(seed)
    model = build_from_config(LENET_CFG, DIGITS_GEOMETRY)
    paths = {}
    meta = {"dataset": "digits"}
    paths["train"] = save_model_checkpoint(root / "outputs/train/model.ckpt", model, LENET_CFG, DIGITS_GEOMETRY,
                                           meta={**meta, "stage": "train"})
    zero_smallest(model, 0.6)
    paths["prune_weights"] = save_model_checkpoint(root / "outputs/prune_weights/model.ckpt", model, LENET_CFG,
                                                   DIGITS_GEOMETRY, meta={**meta, "stage": "prune_weights"})
    int_weights = bit_prune(model)
    paths["prune_bits"] = save_model_checkpoint(root / "outputs/prune_bits/model.ckpt", model, LENET_CFG,
                                                DIGITS_GEOMETRY,
                                                meta={**meta, "stage": "prune_bits", "int_weights": int_weights})
    return paths
