"""The `simulate` stage's config as typed nodes (pydantic), checked before any work.

`validate_simulate(cfg)` checks `samples`, `bits`, `calibration`, the flags, `variants` (each a
`VariantSpec`), that `baseline` names a variant, the accelerators (`accelerators_from_config`) and that the
bit widths fit every accelerator's datapath (`pe_width`). `CalibrationNode`, `BitWidth` and
`check_pe_width` are shared with the plan stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import ConfigDict, Field, field_validator, model_validator

from bitpruner.config import CheckedNode, plain
from bitpruner.errors import ConfigError
from bitpruner.prune_bits.config import BitLevelSpec
from bitpruner.quant.fixed_point import MAX_BITS, MIN_BITS
from bitpruner.schema import ConfigNode, parse_node

if TYPE_CHECKING:
    from bitpruner.sim.accelerators import Accelerator

# A traced bit width: at least sign + one magnitude bit, at most the widest PE datapath the simulator models.
BitWidth = Annotated[int, Field(ge=MIN_BITS, le=MAX_BITS)]
# Characters a variant name cannot hold: it names trace folders (/) and metric keys and CSV cells (,).
NAME_FORBIDDEN = ("/", ",")


class CalibrationNode(ConfigNode):
    """`calibration`: training batches that set each layer's activation scale (batch_size null: data.batch_size)."""

    batches: int = Field(ge=1)
    batch_size: Annotated[int, Field(ge=1)] | None = None


class SimulateBits(ConfigNode):
    """`bits`: the traced activation and weight widths."""

    activations: BitWidth
    weights: BitWidth


def _path(value: Any) -> Any:
    """A non-empty string or Path as a Path (anything else is left for the type check to refuse)."""
    if isinstance(value, str) and value:
        return Path(value)
    return value


class VariantSpec(CheckedNode):
    """One model variant: its checkpoint, and where its stage recorded its 8-bit accuracy (if anywhere).

    `project` (a `BitLevelSpec`: method, N, group, const_bits, grouping) applies a published bit-level pruning
    method (bit-flip, BBS) to the checkpoint's 8-bit integer weights before tracing; the variant's accuracy is
    then the traced model's, so such a variant names no `metrics` / `acc_key`.
    """

    WHERE: ClassVar[str] = "variant"

    name: str = Field(min_length=1)
    ckpt: Path
    metrics: Path | None = None  # the stage's metrics.json holding the 8-bit accuracy, if any
    acc_key: str | None = None
    required: bool = False
    project: BitLevelSpec | None = None

    @field_validator("ckpt", mode="before")
    @classmethod
    def _ckpt(cls, value: Any) -> Any:
        if not isinstance(_path(value), Path):
            raise ConfigError(f"got {value!r}, expected a checkpoint path")
        return _path(value)

    @field_validator("metrics", mode="before")
    @classmethod
    def _metrics(cls, value: Any) -> Any:
        return None if value == "" else _path(value)  # empty: no metrics file, as null

    @field_validator("name", mode="after")
    @classmethod
    def _name(cls, value: str) -> str:
        if any(c in value for c in NAME_FORBIDDEN):
            raise ConfigError(f"got {value!r}, expected a name without '/' or ',' (it names files and metrics)")
        return value

    @model_validator(mode="after")
    def _projected_accuracy_is_traced(self) -> VariantSpec:
        if self.project is not None and (self.metrics is not None or self.acc_key is not None):
            raise ConfigError(f"variants[{self.name!r}]: a `project` variant's accuracy is its traced model's; "
                              "expected metrics and acc_key null")
        return self


def check_pe_width(widths: Mapping[str, int], accels: list[Accelerator]) -> None:
    """Every traced width ({key: bits}) must fit every accelerator's datapath; ConfigError naming the key."""
    for accel in accels:
        for key, bits in widths.items():
            if bits > accel.params.pe_width:
                raise ConfigError(f"{key}={bits} exceeds pe_width={accel.params.pe_width} of {accel.name}")


class SimulateConfig(CheckedNode):
    """What the `simulate` stage reads; other top-level keys (paths, data, logger, ...) belong to other nodes."""

    model_config = ConfigDict(extra="ignore")

    samples: int = Field(ge=1)
    bits: SimulateBits
    calibration: CalibrationNode
    traced_accuracy: bool = False
    export_dnnsim: bool = True
    progress: bool = True
    variants: list[VariantSpec] = Field(
        min_length=1, json_schema_extra={"expected": "a non-empty list of {name, ckpt, metrics, acc_key, required, project}"})
    baseline: str
    weight_pruned: str | None = None
    headline: str | None = None
    accelerators: Any

    @field_validator("accelerators", mode="after")
    @classmethod
    def _accelerators(cls, value: Any) -> list[Accelerator]:
        from bitpruner.sim.accelerators import accelerators_from_config  # the simulator loads on use only

        return accelerators_from_config(value)

    @model_validator(mode="after")
    def _nodes_agree(self) -> SimulateConfig:
        names = [s.name for s in self.variants]
        if len(set(names)) != len(names):
            raise ConfigError(f"variants: names {names} must be unique")
        if self.baseline not in names:
            raise ConfigError(f"baseline: got {self.baseline!r}, expected one of the variant names {names}")
        check_pe_width({"bits.activations": self.bits.activations, "bits.weights": self.bits.weights},
                       self.accelerators)
        projected = [s.name for s in self.variants if s.project is not None]
        if projected and self.bits.weights != 8:
            raise ConfigError(f"bits.weights={self.bits.weights}: the `project` of variant(s) {projected} needs "
                              "8-bit weights")
        return self


def parse_simulate(cfg: Mapping[str, Any]) -> SimulateConfig:
    """The typed `simulate` config (plain dict or OmegaConf node); ConfigError (one line naming the key) if bad."""
    return parse_node(SimulateConfig, plain(cfg), "")


def validate_simulate(cfg: Mapping[str, Any]) -> tuple[list[VariantSpec], list[Accelerator]]:
    """Every config check of the `simulate` stage, before any work: (variants, accelerators) in config order."""
    typed = parse_simulate(cfg)
    return list(typed.variants), list(typed.accelerators)
