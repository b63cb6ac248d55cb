"""Start-of-stage config checks: a wrong value fails before any work, naming the key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bitpruner.errors import ConfigError
from bitpruner.training.optim import OPTIMIZERS, SCHEDULERS

_MISSING = object()
# Which weights a training stage writes to model.ckpt: the final epoch's or the lowest-val-loss epoch's.
EXPORTS = ("last", "best")


def to_container(cfg: DictConfig | dict) -> dict:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    return dict(cfg)


def lookup(cfg: dict, key: str, default: Any = _MISSING) -> Any:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is _MISSING:
                raise ConfigError(f"{key}: missing from the config")
            return default
        node = node[part]
    return node


def require(cfg: dict, key: str, ok: Callable[[Any], bool], expected: str, optional: bool = False) -> Any:
    value = lookup(cfg, key, None if optional else _MISSING)
    if optional and value is None:
        return None
    try:
        good = ok(value)
    except (TypeError, ValueError):
        good = False
    if not good:
        raise ConfigError(f"{key}: got {value!r}, expected {expected}")
    return value


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def validate_training(cfg: dict) -> None:
    """Checks shared by every stage that trains or fine-tunes."""
    require(cfg, "seed", is_int, "an integer")
    require(cfg, "trainer.max_epochs", lambda v: is_int(v) and v >= 0, "an integer >= 0")
    require(cfg, "data.batch_size", lambda v: is_int(v) and v > 0, "an integer > 0")
    require(cfg, "optimizer.name", lambda v: v in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}")
    require(cfg, "optimizer.lr", lambda v: is_number(v) and v > 0, "a number > 0")
    require(cfg, "optimizer.weight_decay", lambda v: is_number(v) and v >= 0, "a number >= 0", optional=True)
    require(cfg, "scheduler.name", lambda v: v in SCHEDULERS, f"one of {', '.join(SCHEDULERS)}", optional=True)
    require(cfg, "export", lambda v: v in EXPORTS, f"one of {', '.join(EXPORTS)}", optional=True)


def fingerprint(cfg: dict, ignore: tuple[str, ...] = ("paths", "logger", "hydra")) -> str:
    """Hash of the config minus the keys that do not change the result (used to decide resuming)."""
    kept = {k: v for k, v in cfg.items() if k not in ignore}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]
