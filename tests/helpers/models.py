"""Model configs and data geometries that several test folders build, defined once."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

# conf/model/lenet5.yaml's sizes: what the stages train by default.
LENET_CFG = {"_target_": "bitpruner.models.LeNet5", "name": "lenet5", "channels": [6, 16], "hidden": [120, 84]}
# A smaller LeNet-5 where only the mechanics matter (trace capture, simulation).
LENET_SMALL_CFG = {"_target_": "bitpruner.models.LeNet5", "name": "lenet5", "channels": [4, 8], "hidden": [16, 12]}
# sklearn's 8x8 digits, as `bitpruner.data.DigitsDataModule` describes them.
DIGITS_GEOMETRY = {"in_channels": 1, "image_size": [8, 8], "num_classes": 10}


def digits_lenet(cfg: Mapping = LENET_CFG, seed: int = 0) -> nn.Module:
    """An untrained LeNet-5 for digits, initialized from `torch.manual_seed(seed)`."""
    from bitpruner.models.checkpoint import build_from_config

    torch.manual_seed(seed)
    return build_from_config(dict(cfg), DIGITS_GEOMETRY)


def save_digits_lenet(path: Path, model: nn.Module | None = None, cfg: Mapping = LENET_CFG,
                      meta: Mapping | None = None) -> Path:
    """Save `model` (default: `digits_lenet(cfg)`) as a stage checkpoint at `path`; returns the path."""
    from bitpruner.models.checkpoint import save_model_checkpoint

    model = digits_lenet(cfg) if model is None else model
    return save_model_checkpoint(path, model, dict(cfg), DIGITS_GEOMETRY, meta=dict(meta or {}))

