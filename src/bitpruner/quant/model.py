"""Model-level fixed point: export integer weights, switch fake-quant on and off for every prunable layer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from bitpruner.errors import ConfigError
from bitpruner.models.layers import prunable_layers
from bitpruner.quant.activations import ActivationQuant, fake_quant_activation
from bitpruner.quant.fixed_point import QuantConfig, QuantizedWeight, quantize_weight
from bitpruner.quant.ste import FakeQuantWeight

# Attribute under which fake_quant_model keeps its activation hook handles, so removal finds them.
_ACT_HOOKS_ATTR = "_bitpruner_act_quant_hooks"


@torch.no_grad()
def quantize_model_weights(
    model: nn.Module, bits: int = 8, per_channel: bool = False, power_of_two: bool = False
) -> dict[str, QuantizedWeight]:
    """Integer weights + scales of every prunable layer, by stable layer name.

    Reads `layer.weight`, i.e. after any parametrization (pruning masks, fake-quant) is applied. Raises
    QuantizationError naming the first layer whose weight holds NaN or inf (before any layer is returned).
    """
    cfg = QuantConfig(bits=bits, scale="channel" if per_channel else "layer", power_of_two=power_of_two)
    return {name: quantize_weight(layer.weight, cfg, name) for name, layer in prunable_layers(model).items()}


def fake_quant_model(
    model: nn.Module,
    cfg: QuantConfig | Mapping[str, Any] | None = None,
    act_quant: Mapping[str, ActivationQuant] | None = None,
) -> nn.Module:
    """Fake-quantize every prunable layer's weight (a parametrization, STE gradient), in place.

    With `act_quant` (from `calibrate_activations`), each layer's input is fake-quantized as well, which
    is what the simulator sees. Call `remove_fake_quant` to undo. Returns `model` for chaining.
    """
    cfg = QuantConfig.from_any(cfg)
    layers = prunable_layers(model)
    for name, layer in layers.items():
        if _has_fake_quant(layer):
            raise ConfigError(f"fake_quant_model: layer {name!r} is already fake-quantized")
        parametrize.register_parametrization(layer, "weight", FakeQuantWeight(cfg))
    if act_quant is not None:
        missing = set(layers) - set(act_quant)
        if missing:
            raise ConfigError(f"act_quant: no activation scale for layer(s) {sorted(missing)}")
        handles = [
            layer.register_forward_pre_hook(_input_quantizer(act_quant[name]))
            for name, layer in layers.items()
        ]
        setattr(model, _ACT_HOOKS_ATTR, handles)
    return model


def _input_quantizer(aq: ActivationQuant):
    def hook(_module, inputs):
        return (fake_quant_activation(inputs[0], aq), *inputs[1:])

    return hook


def _has_fake_quant(layer: nn.Module) -> bool:
    if not parametrize.is_parametrized(layer, "weight"):
        return False
    return any(isinstance(p, FakeQuantWeight) for p in layer.parametrizations.weight)


def remove_fake_quant(model: nn.Module, bake: bool = False) -> nn.Module:
    """Remove what `fake_quant_model` added; other parametrizations (e.g. pruning masks) stay.

    `bake=True` writes the quantized values into the weight (only when fake-quant is the sole parametrization);
    otherwise the latent float weights are kept.
    """
    for name, layer in prunable_layers(model).items():
        if not _has_fake_quant(layer):
            continue
        plist = layer.parametrizations.weight
        if len(plist) == 1:
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=bake)
            continue
        if bake:
            raise ConfigError(f"remove_fake_quant(bake=True): layer {name} has other weight parametrizations")
        for i in reversed(range(len(plist))):
            if isinstance(plist[i], FakeQuantWeight):
                del plist[i]
    for handle in getattr(model, _ACT_HOOKS_ATTR, []):
        handle.remove()
    if hasattr(model, _ACT_HOOKS_ATTR):
        delattr(model, _ACT_HOOKS_ATTR)
    return model
