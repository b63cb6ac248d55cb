"""The stage-to-stage model file: a plain torch dict that rebuilds the model with no training code.

`model.ckpt` holds the model's Hydra config (its `_target_` and arguments), the data-set geometry
the model was built for, the state dict, and free-form metadata. Any stage (or a user) rebuilds it
with `load_model_checkpoint(path)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from bitpruner.errors import ConfigError
from bitpruner.utils.atomic import torch_save

FORMAT = "bitpruner.model/1"
GEOMETRY_KEYS = ("in_channels", "image_size", "num_classes")


def save_model_checkpoint(path: str | Path, model: nn.Module, model_cfg: dict, geometry: dict,
                          meta: dict[str, Any] | None = None) -> Path:
    """Write atomically; `geometry` holds in_channels, image_size and num_classes."""
    missing = [k for k in GEOMETRY_KEYS if k not in geometry]
    if missing:
        raise ValueError(f"geometry lacks {missing}")
    payload = {
        "format": FORMAT,
        "model_cfg": dict(model_cfg),
        "geometry": {k: (list(v) if isinstance(v, tuple) else v) for k, v in geometry.items()},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
    }
    return torch_save(path, payload)


def build_from_config(model_cfg: dict, geometry: dict) -> nn.Module:
    from hydra.utils import instantiate

    kwargs = {k: (tuple(v) if k == "image_size" else v) for k, v in geometry.items() if k in GEOMETRY_KEYS}
    # `name` labels the model in tags and tables; it is not a constructor argument.
    ctor = {k: v for k, v in dict(model_cfg).items() if k != "name"}
    return instantiate(ctor, **kwargs, _convert_="all")


def load_model_checkpoint(path: str | Path) -> tuple[nn.Module, dict]:
    """Rebuild the model and load its weights; returns (model in eval mode, the whole payload)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: model checkpoint not found (run the stage that writes it first)")
    payload = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ConfigError(f"{path}: not a bitpruner model checkpoint (expected format {FORMAT})")
    model = build_from_config(payload["model_cfg"], payload["geometry"])
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, payload
