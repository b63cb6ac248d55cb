"""The `prune_weights` config node as a typed model (pydantic), validated before any training starts."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator
from torch import nn

from bitpruner.config import CheckedNode, TrainerNode, plain
from bitpruner.errors import ConfigError
from bitpruner.models.layers import prunable_layers
from bitpruner.schema import parse_node

SCHEDULES = ("agp", "oneshot")
SCOPES = ("global", "layer")
WHERE = "prune_weights"
SPARSITY = "a sparsity in [0, 1)"


def _check_sparsity(name: str, value: Any) -> float:
    """A fraction of weights zeroed: a number in [0, 1) (1 would remove the layer)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or not 0 <= value < 1:
        raise ConfigError(f"{name}: got {value!r}, expected {SPARSITY}")
    return float(value)


class PruningConfig(CheckedNode):
    """Unstructured magnitude pruning of conv/linear weights.

    `scope=global` ranks the weights of all pooled layers together (one threshold); `scope=layer`
    gives every pooled layer the same sparsity. Layers named in `overrides` (name or glob -> final
    sparsity) leave the pool and follow the same schedule to their own target; layers matching an
    `exclude` pattern are never pruned. Epochs are 0-based, as Lightning's `current_epoch`.
    Bad values raise ConfigError (one line naming the key), also when built directly in code.
    """

    WHERE: ClassVar[str] = WHERE

    schedule: Literal[SCHEDULES] = "agp"  # type: ignore[valid-type]
    scope: Literal[SCOPES] = "global"  # type: ignore[valid-type]
    initial_sparsity: float = Field(default=0.0, ge=0, lt=1, allow_inf_nan=False,
                                    json_schema_extra={"expected": SPARSITY})
    final_sparsity: float = Field(default=0.9, ge=0, lt=1, allow_inf_nan=False,
                                  json_schema_extra={"expected": SPARSITY})
    start_epoch: int = Field(default=0, ge=0)
    end_epoch: int = Field(default=10, ge=0)
    frequency: int = Field(default=1, ge=1)
    overrides: dict[str, float] = Field(default_factory=dict)
    exclude: list[str] = Field(default_factory=list)

    @field_validator("overrides", mode="before")
    @classmethod
    def _overrides(cls, value: Any) -> dict[str, float]:
        value = plain(value)
        if value is None:  # the group's default is null, so that `prune_weights.overrides={a: 0.5}` composes
            return {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"got {value!r}, expected a mapping of layer name or glob -> sparsity")
        return {str(k): _check_sparsity(f"{WHERE}.overrides[{str(k)!r}]", v) for k, v in value.items()}

    @field_validator("exclude", mode="before")
    @classmethod
    def _exclude(cls, value: Any) -> list[str]:
        value = plain(value)
        if value is None:
            return []
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"got {value!r}, expected a list of layer names or globs")
        return [str(p) for p in value]

    @model_validator(mode="after")
    def _schedule_is_consistent(self) -> PruningConfig:
        if self.initial_sparsity > self.final_sparsity:
            raise ConfigError(
                f"{WHERE}.initial_sparsity={self.initial_sparsity} is above "
                f"final_sparsity={self.final_sparsity}: AGP only increases sparsity"
            )
        if self.schedule == "agp" and self.end_epoch <= self.start_epoch:
            raise ConfigError(
                f"{WHERE}.end_epoch={self.end_epoch} is not after start_epoch={self.start_epoch} "
                "(an AGP schedule needs end > start; use prune_weights=oneshot for a single step)"
            )
        return self

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any] | None) -> PruningConfig:
        """Build from a plain dict or an OmegaConf node; bad values and unknown keys raise ConfigError."""
        return parse_node(cls, plain(cfg) if cfg is not None else {}, WHERE)

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


class PruneWeightsStage(CheckedNode):
    """The nodes of the `prune_weights` stage that meet: the schedule must fit trainer.max_epochs."""

    model_config = ConfigDict(extra="ignore")

    prune_weights: PruningConfig
    trainer: TrainerNode

    @model_validator(mode="after")
    def _schedule_fits(self) -> PruneWeightsStage:
        self.prune_weights.check_fits(self.trainer.max_epochs)
        return self


def validate_prune_weights_stage(cfg: Mapping[str, Any]) -> PruningConfig:
    """`prune_weights` of a stage config, checked against `trainer.max_epochs`; ConfigError (one line) if bad."""
    return parse_node(PruneWeightsStage, plain(cfg), "").prune_weights


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
