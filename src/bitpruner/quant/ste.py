"""Fake quantization with a straight-through estimator: round in forward, identity in backward."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from bitpruner.quant.fixed_point import QuantConfig, broadcast_scale, qmax, weight_scale


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """`round(x)` whose gradient is the identity."""
    return _RoundSTE.apply(x)


def fake_quant(
    w: torch.Tensor, bits: int = 8, per_channel: bool = False, power_of_two: bool = False
) -> torch.Tensor:
    """`scale * round(w / scale)` with a detached scale from max|w|; d(out)/dw is the identity.

    The scale maps max|w| to qmax, so nothing clips and the clamp below only guards rounding noise.
    """
    scale = broadcast_scale(weight_scale(w, bits, per_channel, power_of_two), w)
    top = qmax(bits)
    q = round_ste(w / scale)
    # Clamp through the STE too, so the gradient stays the identity even at the range ends.
    q = q + (torch.clamp(q, -top, top) - q).detach()
    return q * scale


class FakeQuantWeight(nn.Module):
    """`torch.nn.utils.parametrize` parametrization: the layer sees fake-quantized weights."""

    def __init__(self, cfg: QuantConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.cfg = QuantConfig.from_any(cfg)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return fake_quant(w, self.cfg.bits, self.cfg.per_channel, self.cfg.power_of_two)

    def extra_repr(self) -> str:
        return f"bits={self.cfg.bits}, scale={self.cfg.scale}, power_of_two={self.cfg.power_of_two}"
