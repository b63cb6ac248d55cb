"""The `plan` config node as a typed model (pydantic), and the plan stage's whole config, checked before any work."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from bitpruner.config import CheckedNode, OptimizerNode, plain
from bitpruner.errors import ConfigError
from bitpruner.prune_bits.encodings import ENCODINGS
from bitpruner.quant.fixed_point import QuantConfig
from bitpruner.schema import ConfigNode, parse_node
from bitpruner.simulate.config import BitWidth, CalibrationNode, check_pe_width

if TYPE_CHECKING:
    from bitpruner.sim.accelerators import Accelerator

PLAN_MODES = ("per_weight", "group_columns")
OBJECTIVES = ("min_cycles", "min_drop")
DROP_METRICS = ("acc", "loss")
RERANK_METRICS = ("val_loss", "val_acc")
RERANK_SCHEDULES = ("step", "oneshot")
WHERE = "plan"


def _as_tuple(key: str, value: Any) -> Any:
    """A YAML list as a tuple (the model's lists are immutable); a string is not a list."""
    value = plain(value)
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"{WHERE}.{key}: got {value!r}, expected a list")
    return tuple(value)


class RerankConfig(CheckedNode):
    """Re-ranking of the best frontier plans and the in-budget uniform plans by a short fine-tune each.

    `enabled: false` or `top: 0` keeps the frontier's choice (the no-retraining prediction). The probe trains
    `epochs` passes over the training data with the projections of prune_bits at the plan's per-layer k:
    `schedule: step` is prune_bits' step schedule (k from `start_k` down to each target, then the target)
    compressed into the probe; `oneshot` projects at the target from the first batch. A non-uniform plan is chosen
    over the best in-budget uniform plan only when its probe is better by more than `margin` and, with
    `both_metrics`, no worse on the other probe metric (`rerank.choose`).
    """

    WHERE: ClassVar[str] = f"{WHERE}.rerank"

    enabled: bool = False  # off in code (callers without an optimizer config); conf/plan.yaml turns it on
    top: int = Field(default=3, ge=0)
    epochs: int = Field(default=2, ge=1)
    schedule: Literal[RERANK_SCHEDULES] = "step"  # type: ignore[valid-type]
    start_k: int = Field(default=4, ge=0)
    metric: Literal[RERANK_METRICS] = "val_loss"  # type: ignore[valid-type]
    # How much better (relative val loss, or val accuracy points) a non-uniform plan's probe must be than the best
    # in-budget uniform plan's to be chosen over it.
    margin: float = Field(default=0.0, ge=0)
    # A non-uniform plan must also be no worse than that uniform plan on the other probe metric (val accuracy for
    # metric val_loss): the two disagreeing means the probe cannot tell them apart.
    both_metrics: bool = False

    @property
    def active(self) -> bool:
        return self.enabled and self.top > 0


class PlanConfig(CheckedNode):
    """What to measure (candidates x modes) and how to choose (objective + its bound)."""

    WHERE: ClassVar[str] = WHERE

    candidates: tuple[int, ...] = Field(default=(1, 2, 3, 4, 7), min_length=1,
                                        json_schema_extra={"expected": "a non-empty list of integers >= 0"})
    modes: tuple[Literal[PLAN_MODES], ...] = Field(  # type: ignore[valid-type]
        default=PLAN_MODES, min_length=1,
        json_schema_extra={"expected": f"a non-empty subset of {', '.join(PLAN_MODES)}"})
    mode: str = "group_columns"
    objective: Literal[OBJECTIVES] = "min_cycles"  # type: ignore[valid-type]
    max_drop: float | None = 0.5  # its range is the min_cycles objective's (below)
    min_speedup: Annotated[float, Field(gt=0)] | None = None
    max_cycles: Annotated[int, Field(gt=0)] | None = None
    drop_metric: Literal[DROP_METRICS] = "acc"  # type: ignore[valid-type]
    resolution: float = Field(default=0.01, gt=0)
    encoding: Literal[ENCODINGS] = "binary"  # type: ignore[valid-type]
    rerank: RerankConfig = Field(default_factory=RerankConfig)

    @field_validator("rerank", mode="before")
    @classmethod
    def _rerank(cls, value: Any) -> Any:
        value = plain(value)
        return {} if value is None else value

    @field_validator("candidates", "modes", mode="before")
    @classmethod
    def _lists(cls, value: Any, info: ValidationInfo) -> Any:
        return _as_tuple(info.field_name, value)

    @field_validator("candidates", mode="after")
    @classmethod
    def _candidates(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(k < 0 for k in value):
            raise ConfigError(f"{WHERE}.candidates: got {list(value)!r}, expected a non-empty list of integers >= 0")
        if len(set(value)) != len(value):
            raise ConfigError(f"{WHERE}.candidates: got {list(value)!r}, expected distinct integers (no duplicates)")
        return value

    @model_validator(mode="after")
    def _objective_is_consistent(self) -> PlanConfig:
        if self.mode not in self.modes:
            raise ConfigError(f"{WHERE}.mode={self.mode!r}: expected one of plan.modes {list(self.modes)}")
        if self.objective == "min_cycles":
            if self.max_drop is None or self.max_drop < 0:
                raise ConfigError(f"{WHERE}.max_drop={self.max_drop!r}: expected a number >= 0 for objective min_cycles")
        elif (self.min_speedup is None) == (self.max_cycles is None):
            raise ConfigError(f"{WHERE}: objective min_drop needs exactly one of min_speedup and max_cycles "
                              f"(got min_speedup={self.min_speedup!r}, max_cycles={self.max_cycles!r})")
        if self.rerank.active and self.objective != "min_drop":
            # Under min_cycles the probe would only ever prefer the costliest plan within max_drop.
            raise ConfigError(f"{WHERE}.rerank.enabled=true: re-ranking needs objective min_drop (a cycle budget), "
                              f"got objective {self.objective}; set plan.rerank.enabled=false")
        return self

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any] | None) -> PlanConfig:
        """Build from a plain dict, an OmegaConf node or None (defaults); ConfigError (one line) if bad."""
        return parse_node(cls, plain(cfg) if cfg is not None else {}, WHERE)

    def check_bits(self, bits: int) -> None:
        """Candidates must be valid budgets for b-bit weights."""
        bad = [k for k in self.candidates if k > bits - 1]
        if bad:
            raise ConfigError(f"{WHERE}.candidates: k={bad} exceed {bits - 1}, the most a {bits}-bit weight has "
                              f"({bits - 1} = no projection)")


class PlanBits(ConfigNode):
    """`bits` of the plan stage: the traced activations (the weights' width is `quant.bits`)."""

    activations: BitWidth


class PlanStageConfig(CheckedNode):
    """What the `plan` stage reads; other top-level keys (paths, data, logger, ...) belong to other nodes."""

    model_config = ConfigDict(extra="ignore")

    plan: PlanConfig = Field(default_factory=PlanConfig)
    quant: QuantConfig = Field(default_factory=QuantConfig)
    accelerator: Any
    samples: int = Field(ge=1)
    bits: PlanBits
    calibration: CalibrationNode
    optimizer: OptimizerNode | None = None  # the rerank probe's (conf/plan.yaml: the optimizer group)

    @field_validator("plan", mode="before")
    @classmethod
    def _plan(cls, value: Any) -> Any:
        value = plain(value)
        return {} if value is None else value

    @field_validator("quant", mode="before")
    @classmethod
    def _quant(cls, value: Any) -> Any:
        return QuantConfig.from_any(plain(value))

    @field_validator("accelerator", mode="after")
    @classmethod
    def _accelerator(cls, value: Any) -> Accelerator:
        from bitpruner.sim.accelerators import accelerator_from_config  # the simulator loads on use only

        return accelerator_from_config(value, "accelerator")

    @model_validator(mode="after")
    def _nodes_agree(self) -> PlanStageConfig:
        self.plan.check_bits(self.quant.bits)
        check_pe_width({"bits.activations": self.bits.activations, "quant.bits": self.quant.bits}, [self.accelerator])
        if self.plan.rerank.active and self.optimizer is None:
            raise ConfigError("optimizer: missing; plan.rerank fine-tunes each candidate plan and needs an optimizer "
                              "node (e.g. the `optimizer: adam` group), or set plan.rerank.enabled=false")
        return self


def validate_plan_stage(cfg: Mapping[str, Any]) -> tuple[PlanConfig, QuantConfig, Accelerator]:
    """Every config check of the `plan` stage, before any work; ConfigError (one line naming the key) if bad."""
    typed = parse_node(PlanStageConfig, plain(cfg), "")
    return typed.plan, typed.quant, typed.accelerator
