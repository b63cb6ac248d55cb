"""Accuracy of a model with fixed-point weights: the reference the bit-pruning figures are compared with."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from torch import nn

from bitpruner.quant.fixed_point import QuantConfig
from bitpruner.quant.model import fake_quant_model, remove_fake_quant


def quantized_model(model: nn.Module, quant: QuantConfig | Mapping[str, Any] | int | None = None) -> nn.Module:
    """A copy of `model` whose prunable layers hold `scale * round(w / scale)` (plain weights, no parametrization).

    `quant` is a QuantConfig, a mapping (bits/scale/power_of_two), or just the bit width.
    """
    cfg = QuantConfig(bits=quant) if isinstance(quant, int) else QuantConfig.from_any(quant)
    # Quantize a copy: the caller's model keeps its float weights.
    return remove_fake_quant(fake_quant_model(copy.deepcopy(model), cfg), bake=True).eval()


def quantized_accuracy(model: nn.Module, loader, quant: QuantConfig | Mapping[str, Any] | int | None = 8) -> dict:
    """`evaluate` (acc %, loss, acc_top5) of `model` with its weights quantized as `quant` (activations float)."""
    from bitpruner.training.evaluate import evaluate

    return evaluate(quantized_model(model, quant), loader)
