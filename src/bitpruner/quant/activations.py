"""Activation fixed point: per-layer scales calibrated from max|x| of each prunable layer's input."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from bitpruner.errors import ConfigError, DataError
from bitpruner.models.layers import prunable_layers
from bitpruner.quant.fixed_point import (
    INPUT_HINT,
    MIN_SCALE,
    QuantizationError,
    check_bits,
    check_finite,
    check_int_range,
)
from bitpruner.quant.ste import round_ste


@dataclass(frozen=True)
class ActivationQuant:
    """Scale and signedness of one layer's input: unsigned after ReLU, signed when any input was negative."""

    scale: float
    signed: bool
    bits: int

    def __post_init__(self) -> None:
        check_bits(self.bits, "activation bits")
        try:
            scale = float(self.scale)
        except (TypeError, ValueError):
            scale = math.nan
        if not (math.isfinite(scale) and scale > 0):
            raise QuantizationError(f"activation scale {self.scale!r}: expected a finite number > 0")

    @property
    def qmin(self) -> int:
        return -((1 << (self.bits - 1)) - 1) if self.signed else 0

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1


def quantize_activation(x: torch.Tensor, aq: ActivationQuant, name: str | None = None) -> torch.Tensor:
    """Integer activations (int32) in [qmin, qmax]; values beyond the calibrated range saturate.

    `name` (the layer whose input `x` is) goes into error messages. Raises QuantizationError when `x` holds
    NaN or inf: saturating those would hide them (NaN used to become -2147483648).
    """
    what = f"layer {name!r} input" if name is not None else "activation"
    check_finite(x, what, INPUT_HINT)
    q = torch.clamp(torch.round(x / aq.scale), aq.qmin, aq.qmax).to(torch.int32)
    check_int_range(q, aq.qmin, aq.qmax, f"{what} ({aq.bits}-bit {'signed' if aq.signed else 'unsigned'})")
    return q


def fake_quant_activation(x: torch.Tensor, aq: ActivationQuant) -> torch.Tensor:
    """`scale * clamp(round(x / scale))` with a straight-through gradient inside the range."""
    q = round_ste(x / aq.scale)
    q = q + (torch.clamp(q, aq.qmin, aq.qmax) - q).detach()
    return q * aq.scale


def _first_tensor(batch) -> torch.Tensor:
    # Calibration loaders yield (inputs, targets) pairs or bare input tensors.
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]
    raise DataError(
        f"calibration batch of type {type(batch).__name__}: expected a tensor or (inputs, targets)"
    )


@torch.no_grad()
def calibrate_activations(
    model: nn.Module,
    batches: Iterable,
    bits: int = 8,
    max_batches: int | None = None,
    power_of_two: bool = False,
) -> dict[str, ActivationQuant]:
    """Run `batches` through `model` (eval mode) and return each prunable layer's input quantizer."""
    check_bits(bits, "activation bits")
    if max_batches is not None and max_batches <= 0:
        raise ConfigError(f"max_batches={max_batches}: expected a positive number of calibration batches")
    layers = prunable_layers(model)
    amax = {name: 0.0 for name in layers}
    amin = {name: 0.0 for name in layers}

    def hook_for(name: str):
        def hook(_module, inputs):
            x = inputs[0].detach()
            # NaN would vanish in max() (every comparison with it is false) and inf would make the scale inf.
            check_finite(x, f"activation calibration (batch {seen + 1}): layer {name!r} input", INPUT_HINT)
            amax[name] = max(amax[name], float(x.abs().max()))
            amin[name] = min(amin[name], float(x.min()))

        return hook

    handles = [layer.register_forward_pre_hook(hook_for(name)) for name, layer in layers.items()]
    was_training = model.training
    model.eval()
    seen = 0
    try:
        device = next(model.parameters()).device
        for batch in batches:
            model(_first_tensor(batch).to(device))
            seen += 1
            if max_batches is not None and seen >= max_batches:
                break
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if seen == 0:
        raise DataError("activation calibration: the loader yielded no batches")

    result = {}
    for name in layers:
        signed = amin[name] < 0
        top = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
        # All-zero inputs: any scale gives zeros, 1.0 keeps the division finite; a tiny max is clamped like
        # the weights' (a scale below float32's smallest normal number would overflow x / scale).
        scale = max(amax[name] / top, MIN_SCALE) if amax[name] > 0 else 1.0
        if power_of_two:
            scale = float(2.0 ** torch.ceil(torch.log2(torch.tensor(scale, dtype=torch.float64))))
        result[name] = ActivationQuant(scale=scale, signed=signed, bits=bits)
    return result
