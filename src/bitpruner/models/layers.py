"""Stable names for the layers that later stages prune, quantize and simulate."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

PRUNABLE_TYPES = (nn.Conv2d, nn.Linear)


def prunable_layers(model: nn.Module) -> OrderedDict[str, nn.Module]:
    """Conv2d/Linear layers by their `named_modules` name, in registration (= forward) order."""
    return OrderedDict((name, m) for name, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES))
