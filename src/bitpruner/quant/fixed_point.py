"""Symmetric sign-magnitude fixed point for weights: scales, integer export and dequantization."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, model_validator

from bitpruner.config import CheckedNode, plain
from bitpruner.errors import ConfigError, TraceError
from bitpruner.schema import parse_node

MIN_BITS = 2
MAX_BITS = 16  # the simulator's pe_width: weights must fit 16-bit two's complement
SCALE_MODES = ("layer", "channel")
# Smallest scale handed out: below float32's smallest normal number `w / scale` overflows or loses all precision.
MIN_SCALE = float(torch.finfo(torch.float32).tiny)


class QuantizationError(ConfigError, TraceError):
    """A tensor that cannot be quantized (a non-finite value) or integers outside their declared range.

    Both a ConfigError and a TraceError, so that the stages (which catch the first) and trace capture (which
    raises the second) report it as one line either way.
    """


def _index_text(index: tuple[int, ...]) -> str:
    return "[" + ", ".join(map(str, index)) + "]"


WEIGHT_HINT = "the checkpoint is damaged or training diverged; use an earlier checkpoint"
INPUT_HINT = "check the input data and the layers before it"


def check_finite(x: torch.Tensor, what: str, hint: str = WEIGHT_HINT) -> None:
    """Raise QuantizationError naming `what`, the first non-finite value and its index when `x` holds NaN/inf."""
    bad = ~torch.isfinite(x.detach())
    if bool(bad.any()):
        index = tuple(int(i) for i in torch.nonzero(bad)[0])
        value = float(x.detach()[index])
        raise QuantizationError(
            f"{what} holds {value} at {_index_text(index)} ({int(bad.sum())} of {x.numel()} values are not "
            f"finite); cannot quantize: {hint}"
        )


def check_int_range(q: torch.Tensor, low: int, high: int, what: str) -> None:
    """Raise QuantizationError unless `q` is an integer tensor with every value in [low, high].

    The guard where integers are produced: nothing outside the declared range may leave the quantizer.
    """
    if q.is_floating_point() or q.is_complex() or q.dtype == torch.bool:
        raise QuantizationError(f"{what}: dtype {q.dtype}, expected an integer tensor")
    if q.numel() == 0:
        return
    lo, hi = int(q.min()), int(q.max())
    if lo < low or hi > high:
        bad = lo if lo < low else hi
        raise QuantizationError(f"{what}: integer {bad} outside the declared range [{low}, {high}]")


def check_bits(bits: Any, field: str = "bits") -> int:
    """Return `bits` as int, or raise ConfigError when it is not in [MIN_BITS, MAX_BITS]."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
        raise ConfigError(f"{field}={bits!r}: expected an integer in [{MIN_BITS}, {MAX_BITS}]")
    return bits


def qmax(bits: int) -> int:
    """Largest magnitude of a narrow-range signed `bits`-bit integer (sign + bits-1 magnitude bits)."""
    return (1 << (check_bits(bits) - 1)) - 1


class QuantConfig(CheckedNode):
    """How weights are quantized: width, scale granularity ('layer' or 'channel'), power-of-two scale.

    Config node `quant`; bad values raise ConfigError (one line naming the key), also when built in code.
    """

    WHERE: ClassVar[str] = "quant"

    bits: int = Field(default=8, ge=MIN_BITS, le=MAX_BITS)
    scale: Literal[SCALE_MODES] = "layer"  # type: ignore[valid-type]
    power_of_two: bool = False

    @model_validator(mode="before")
    @classmethod
    def _per_channel(cls, data: Any) -> Any:
        # Older callers say `per_channel: true|false` instead of `scale`; `scale` wins when both are given.
        if isinstance(data, Mapping) and "per_channel" in data:
            data = dict(data)
            per_channel = data.pop("per_channel")
            if not isinstance(per_channel, bool):
                raise ConfigError(f"quant.per_channel: got {per_channel!r}, expected true or false")
            data.setdefault("scale", "channel" if per_channel else "layer")
        return data

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
        return parse_node(cls, plain(cfg), cls.WHERE)


@dataclass
class QuantizedWeight:
    """Integer weights `q` (int32, |q| <= qmax(bits)) and their scale: 0-d (per layer) or [K] (per channel).

    Checked on construction: QuantizationError for integers outside [-qmax, qmax] or a scale that is not a
    finite positive number; ConfigError for bits outside [MIN_BITS, MAX_BITS].
    """

    q: torch.Tensor
    scale: torch.Tensor
    bits: int

    def __post_init__(self) -> None:
        top = qmax(self.bits)
        check_int_range(self.q, -top, top, f"quantized weights ({self.bits} bits)")
        scale = torch.as_tensor(self.scale)
        if scale.numel() and not bool(torch.all(torch.isfinite(scale) & (scale > 0))):
            raise QuantizationError(f"quantized weights: scale {scale.tolist()} must be finite and > 0")


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
    # A max|w| so small that amax / top underflows (scale 0 would turn w / scale into inf or NaN): the smallest
    # normal float32 scale instead, under which those weights round to 0. No sync: this runs in training loops.
    scale = torch.clamp(scale, min=MIN_SCALE)
    return _round_to_power_of_two(scale) if power_of_two else scale


def quantize_weight(
    w: torch.Tensor, cfg: QuantConfig | Mapping[str, Any] | None = None, name: str | None = None
) -> QuantizedWeight:
    """Round `w / scale` to the narrow signed range; returns int32 `q` and the scale used.

    `name` (the layer's) goes into error messages. Raises QuantizationError, before anything is computed,
    when `w` holds NaN or inf (one line naming the layer, the value and its index).
    """
    cfg = QuantConfig.from_any(cfg)
    what = f"layer {name!r} weight" if name is not None else "weight"
    check_finite(w, what)
    scale = weight_scale(w, cfg.bits, cfg.per_channel, cfg.power_of_two)
    top = qmax(cfg.bits)
    q = torch.clamp(torch.round(w.detach() / broadcast_scale(scale, w)), -top, top).to(torch.int32)
    qw = QuantizedWeight(q=q, scale=scale, bits=cfg.bits)  # checks |q| <= top once more
    # Weights within an ulp or two of float32's maximum: q * scale rounds past it and dequantizes to inf.
    check_finite(dequantize(qw), f"{what} dequantized (max|w| = {float(w.detach().abs().max()):.4g})",
                 "weights this close to float32's maximum overflow q * scale; rescale the layer")
    return qw


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
    "MIN_SCALE",
    "SCALE_MODES",
    "QuantConfig",
    "QuantizationError",
    "QuantizedWeight",
    "broadcast_scale",
    "check_bits",
    "INPUT_HINT",
    "WEIGHT_HINT",
    "check_finite",
    "check_int_range",
    "dequantize",
    "is_power_of_two",
    "qmax",
    "quantize_weight",
    "weight_scale",
]
