"""Optimizers and LR schedulers chosen by name from config."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "cosine", "step")


def build_optimizer(params: Iterable, cfg: Mapping) -> torch.optim.Optimizer:
    name = cfg["name"]
    lr, wd = float(cfg["lr"]), float(cfg.get("weight_decay", 0.0))
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=float(cfg.get("momentum", 0.0)), weight_decay=wd,
                               nesterov=bool(cfg.get("nesterov", False)))
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    raise ValueError(f"optimizer.name: unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: Mapping | None, max_epochs: int):
    """An epoch-stepped scheduler, or None."""
    name = (cfg or {}).get("name", "none")
    if name == "none":
        return None
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, max_epochs),
                                                          eta_min=float(cfg.get("eta_min", 0.0)))
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=int(cfg["step_size"]),
                                               gamma=float(cfg.get("gamma", 0.1)))
    raise ValueError(f"scheduler.name: unknown scheduler {name!r}; expected one of {', '.join(SCHEDULERS)}")
