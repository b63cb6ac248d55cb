"""The `pruning` config group as a typed dataclass, validated before any training starts."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from fnmatch import fnmatchcase
from typing import Any

from torch import nn

from bitpruner.errors import ConfigError
from bitpruner.models.layers import prunable_layers

SCHEDULES = ("agp", "oneshot")
SCOPES = ("global", "layer")


@dataclass(frozen=True)
class PruningConfig:
    """Unstructured magnitude pruning of conv/linear weights.

    `scope=global` ranks the weights of all pooled layers together (one threshold); `scope=layer`
    gives every pooled layer the same sparsity. Layers named in `overrides` (name or glob -> final
    sparsity) leave the pool and follow the same schedule to their own target; layers matching an
    `exclude` pattern are never pruned. Epochs are 0-based, as Lightning's `current_epoch`.
    """

    schedule: str = "agp"
    scope: str = "global"
    initial_sparsity: float = 0.0
    final_sparsity: float = 0.9
    start_epoch: int = 0
    end_epoch: int = 10
    frequency: int = 1
    overrides: dict[str, float] = field(default_factory=dict)
    exclude: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        where = "prune_weights"
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"{where}.schedule={self.schedule!r}: expected one of {', '.join(SCHEDULES)}")
        if self.scope not in SCOPES:
            raise ConfigError(f"{where}.scope={self.scope!r}: expected one of {', '.join(SCOPES)}")
        _check_sparsity(f"{where}.final_sparsity", self.final_sparsity)
        _check_sparsity(f"{where}.initial_sparsity", self.initial_sparsity)
        if self.initial_sparsity > self.final_sparsity:
            raise ConfigError(
                f"{where}.initial_sparsity={self.initial_sparsity} is above "
                f"final_sparsity={self.final_sparsity}: AGP only increases sparsity"
            )
        for key, value in self.overrides.items():
            _check_sparsity(f"{where}.overrides[{key!r}]", value)
        _check_int(f"{where}.start_epoch", self.start_epoch, minimum=0)
        _check_int(f"{where}.end_epoch", self.end_epoch, minimum=0)
        _check_int(f"{where}.frequency", self.frequency, minimum=1)
        if self.schedule == "agp" and self.end_epoch <= self.start_epoch:
            raise ConfigError(
                f"{where}.end_epoch={self.end_epoch} is not after start_epoch={self.start_epoch} "
                "(an AGP schedule needs end > start; use prune_weights=oneshot for a single step)"
            )

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> PruningConfig:
        """Build from a plain dict or an OmegaConf node; unknown keys are an error."""
        data = dict(cfg)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"prune_weights: unknown key(s) {', '.join(unknown)}; expected {', '.join(sorted(known))}")
        overrides = data.get("overrides") or {}
        if not isinstance(overrides, Mapping):
            raise ConfigError(f"prune_weights.overrides={overrides!r}: expected a mapping of layer name or glob -> sparsity")
        data["overrides"] = {str(k): v for k, v in overrides.items()}
        exclude = data.get("exclude") or []
        if isinstance(exclude, str) or not isinstance(exclude, (list, tuple)):
            raise ConfigError(f"prune_weights.exclude={exclude!r}: expected a list of layer names or globs")
        data["exclude"] = [str(p) for p in exclude]
        for key in ("initial_sparsity", "final_sparsity"):
            if key in data and isinstance(data[key], int) and not isinstance(data[key], bool):
                data[key] = float(data[key])
        return cls(**data)

    @property
    def last_pruning_epoch(self) -> int:
        return self.start_epoch if self.schedule == "oneshot" else self.end_epoch

    def check_fits(self, max_epochs: int) -> None:
        """The schedule's last pruning step must run, and be followed by at least one fine-tuning epoch."""
        if max_epochs is None or max_epochs < 0:
            return
        if self.last_pruning_epoch >= max_epochs:
            raise ConfigError(
                f"prune_weights: last pruning epoch {self.last_pruning_epoch} (0-based) needs trainer.max_epochs "
                f"> {self.last_pruning_epoch}, got max_epochs={max_epochs}"
            )


def _check_sparsity(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigError(f"{name}={value!r}: expected a number in [0, 1)")
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{name}={value}: expected a sparsity in [0, 1)")


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name}={value!r}: expected an integer >= {minimum}")


@dataclass(frozen=True)
class LayerPlan:
    """Which layers are pruned and how: `pooled` share the scope's target, `own_target` have overrides."""

    pooled: list[str]
    own_target: dict[str, float]
    excluded: list[str]

    @property
    def pruned(self) -> list[str]:
        return self.pooled + list(self.own_target)


def plan_layers(model: nn.Module, cfg: PruningConfig) -> LayerPlan:
    """Resolve `exclude` and `overrides` patterns against the model's prunable layer names."""
    names = list(prunable_layers(model))
    listing = ", ".join(names)
    for pattern in cfg.exclude:
        if not any(fnmatchcase(n, pattern) for n in names):
            raise ConfigError(f"prune_weights.exclude pattern {pattern!r} matches no layer; layers: {listing}")
    for pattern in cfg.overrides:
        if not any(fnmatchcase(n, pattern) for n in names):
            raise ConfigError(f"prune_weights.overrides pattern {pattern!r} matches no layer; layers: {listing}")

    excluded = [n for n in names if any(fnmatchcase(n, p) for p in cfg.exclude)]
    own_target: dict[str, float] = {}
    for name in names:
        matches = {p: s for p, s in cfg.overrides.items() if fnmatchcase(name, p)}
        if not matches:
            continue
        if name in excluded:
            raise ConfigError(f"prune_weights: layer {name!r} is both excluded and overridden ({', '.join(matches)})")
        # An exact name wins over globs; two globs that disagree are ambiguous.
        if name in matches:
            own_target[name] = matches[name]
        elif len(set(matches.values())) > 1:
            raise ConfigError(f"prune_weights.overrides: layer {name!r} matches patterns with different targets: {matches}")
        else:
            own_target[name] = next(iter(matches.values()))
    pooled = [n for n in names if n not in excluded and n not in own_target]
    if not pooled and not own_target:
        raise ConfigError(f"prune_weights: every prunable layer is excluded; layers: {listing}")
    return LayerPlan(pooled=pooled, own_target=own_target, excluded=excluded)
