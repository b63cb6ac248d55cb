"""Symmetric sign-magnitude fixed point for weights: scales, integer export and dequantization."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from bitpruner.errors import ConfigError

MIN_BITS = 2
MAX_BITS = 16  # the simulator's pe_width: weights must fit 16-bit two's complement
SCALE_MODES = ("layer", "channel")


def check_bits(bits: Any, field: str = "bits") -> int:
    """Return `bits` as int, or raise ConfigError when it is not in [MIN_BITS, MAX_BITS]."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
        raise ConfigError(f"{field}={bits!r}: expected an integer in [{MIN_BITS}, {MAX_BITS}]")
    return bits


def qmax(bits: int) -> int:
    """Largest magnitude of a narrow-range signed `bits`-bit integer (sign + bits-1 magnitude bits)."""
    return (1 << (check_bits(bits) - 1)) - 1


@dataclass(frozen=True)
class QuantConfig:
    """How weights are quantized: width, scale granularity ('layer' or 'channel'), power-of-two scale."""

    bits: int = 8
    scale: str = "layer"
    power_of_two: bool = False

    def __post_init__(self) -> None:
        check_bits(self.bits)
        if self.scale not in SCALE_MODES:
            raise ConfigError(f"quant.scale={self.scale!r}: expected one of {', '.join(SCALE_MODES)}")

    @property
    def per_channel(self) -> bool:
        return self.scale == "channel"

    @classmethod
    def from_any(cls, cfg: QuantConfig | Mapping[str, Any] | None) -> QuantConfig:
        """Build from a QuantConfig, a mapping (OmegaConf too) with bits/scale|per_channel/power_of_two, or None."""
        if cfg is None:
            return cls()
        if isinstance(cfg, QuantConfig):
            return cfg
        keys = set(cfg.keys())
        unknown = keys - {"bits", "scale", "per_channel", "power_of_two"}
        if unknown:
            raise ConfigError(
                f"quant config: unknown key(s) {sorted(unknown)}; expected bits, scale, power_of_two"
            )
        scale = cfg.get("scale", "channel" if cfg.get("per_channel", False) else "layer")
        return cls(bits=cfg.get("bits", 8), scale=scale, power_of_two=bool(cfg.get("power_of_two", False)))


@dataclass
class QuantizedWeight:
    """Integer weights `q` (int32, |q| <= qmax(bits)) and their scale: 0-d (per layer) or [K] (per channel)."""

    q: torch.Tensor
    scale: torch.Tensor
    bits: int


def broadcast_scale(scale: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """View a 0-d or [K] scale so that it broadcasts against a weight of shape [K, ...]."""
    if scale.dim() == 0:
        return scale
    return scale.reshape((-1,) + (1,) * (like.dim() - 1))


def _round_to_power_of_two(scale: torch.Tensor) -> torch.Tensor:
    # Round the exponent up, not to nearest: the largest weight must still fit in qmax (no clipping).
    return torch.exp2(torch.ceil(torch.log2(scale)))


def weight_scale(
    w: torch.Tensor, bits: int = 8, per_channel: bool = False, power_of_two: bool = False
) -> torch.Tensor:
    """Scale mapping max|w| (per layer, or per output channel = dim 0) onto qmax(bits); detached, float32."""
    top = qmax(bits)
    w = w.detach()
    if per_channel:
        amax = w.abs().reshape(w.shape[0], -1).amax(dim=1)
    else:
        amax = w.abs().max()
    # An all-zero layer/channel quantizes to zeros under any scale; 1 keeps the division finite.
    scale = torch.where(amax > 0, amax / top, torch.ones_like(amax)).to(torch.float32)
    return _round_to_power_of_two(scale) if power_of_two else scale


def quantize_weight(w: torch.Tensor, cfg: QuantConfig | Mapping[str, Any] | None = None) -> QuantizedWeight:
    """Round `w / scale` to the narrow signed range; returns int32 `q` and the scale used."""
    cfg = QuantConfig.from_any(cfg)
    scale = weight_scale(w, cfg.bits, cfg.per_channel, cfg.power_of_two)
    top = qmax(cfg.bits)
    q = torch.clamp(torch.round(w.detach() / broadcast_scale(scale, w)), -top, top).to(torch.int32)
    return QuantizedWeight(q=q, scale=scale, bits=cfg.bits)


def dequantize(qw: QuantizedWeight) -> torch.Tensor:
    """Float weights `q * scale` (float32)."""
    return qw.q.to(torch.float32) * broadcast_scale(qw.scale, qw.q)


def is_power_of_two(x: torch.Tensor) -> bool:
    """True when every entry is an exact power of two (used by tests and checks of exported scales)."""
    mant, _ = torch.frexp(x.to(torch.float64))
    return bool(torch.all(mant == 0.5))


__all__ = [
    "MAX_BITS",
    "MIN_BITS",
    "SCALE_MODES",
    "QuantConfig",
    "QuantizedWeight",
    "broadcast_scale",
    "check_bits",
    "dequantize",
    "is_power_of_two",
    "qmax",
    "quantize_weight",
    "weight_scale",
]
