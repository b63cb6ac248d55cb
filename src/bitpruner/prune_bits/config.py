"""The `prune_bits` config node as a typed model (pydantic), and the per-layer bit budgets it resolves to.

Per-layer `k`, most specific last: `k` for every layer, then `first_layer_k` / `last_layer_k` (null =
same as `k`), then `layers` ({name or glob: k}, later patterns win), then the plan file's
`layers: {name: k}`. A layer whose k is `bits - 1` is only quantized (no bit constraint).

The bit-level modes (`bitflip`, `bbs_average`, `bbs_zero_point`: the published BitWave / BBS methods of
`bitlevel.py`) read the same per-layer k as the number of columns they keep: N = bits - 1 - k columns are pruned
(BitWave's `w_prec` = k + 1), in groups of `lanes` consecutive channels; they need 8-bit weights.
`BitLevelSpec` is the node that names one such projection outside the stage (`bitpruner project`, the
`simulate` stage's `project:` variants).

`published` (BitPruner as published: LLSQ's code book + revert rule, `published.py`) reads its own node
`prune_bits.published`, not k: every layer's recorded k is the code book's cap (`published.max_bits`, or bits - 1
without the code book). It takes no per-layer budgets, no agp schedule or ADMM, and one scale per layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from bitpruner.config import CheckedNode, plain
from bitpruner.errors import ConfigError
from bitpruner.prune_bits.bitlevel import DEFAULT_CONST_BITS, GROUPINGS, WBITS
from bitpruner.prune_bits.bitlevel import METHODS as BITLEVEL_METHODS
from bitpruner.prune_bits.encodings import ENCODINGS
from bitpruner.prune_bits.plan_file import read_plan_file
from bitpruner.quant.fixed_point import QuantConfig
from bitpruner.schema import parse_node

PUBLISHED = "published"  # BitPruner as published (LLSQ): published.py
MODES = ("per_weight", "group_columns", "group_budget", *BITLEVEL_METHODS, PUBLISHED)
SCHEDULES = ("step", "agp")
WHERE = "prune_bits"


def check_k(key: str, value: Any, bits: int) -> int:
    """A bit budget per weight: an integer in [0, bits - 1]."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= bits - 1:
        raise ConfigError(f"{key}={value!r}: expected an integer k in [0, {bits - 1}] for {bits}-bit weights")
    return value


class AdmmConfig(CheckedNode):
    """ADMM phase: epochs [0, epochs) add rho/2 ||W - Z + U||^2; Z, U and rho (x growth) every `update_every` steps."""

    WHERE: ClassVar[str] = f"{WHERE}.admm"

    enabled: bool = False
    rho: float = Field(default=1.0, gt=0)
    rho_growth: float = Field(default=1.1, ge=1)
    update_every: int = Field(default=50, ge=1)
    epochs: int = Field(default=6, ge=1)


class PublishedConfig(CheckedNode):
    """Options of mode `published` (LLSQ models/modules/bit_pruning.py; see published.py).

    Target bit sparsity of a layer: s0 + (1 - s0) * f with f = increase_factor, times edge_factor for the first
    and last layers; s0 = its bit sparsity when the fit starts.
    """

    WHERE: ClassVar[str] = f"{WHERE}.published"

    increase_factor: float = Field(default=1 / 3, ge=0, lt=1,
                                   json_schema_extra={"expected": "a number in [0, 1) (LLSQ's increase_factor)"})
    edge_factor: float = Field(default=0.5, ge=0, le=1,
                               json_schema_extra={"expected": "a number in [0, 1] (first/last layer factor)"})
    codebook: bool = True     # forward pass and export through the code book (<= max_bits set bits per weight)
    max_bits: int = Field(default=2, ge=1, le=WBITS - 1,
                          json_schema_extra={"expected": f"an integer in [1, {WBITS - 1}] (LLSQ: 2 = bit_code2)"})
    progressive: bool = True  # the revert rule after every optimizer step

    def layer_factor(self, index: int, n_layers: int) -> float:
        """f of the layer at position `index` (0-based) of `n_layers` prunable layers."""
        edge = index == 0 or index == n_layers - 1
        return self.increase_factor * (self.edge_factor if edge else 1.0)

    def bit_cap(self, bits: int) -> int:
        """Set magnitude bits a weight may keep: max_bits with the code book, bits - 1 without."""
        return self.max_bits if self.codebook else bits - 1


class BitPruneConfig(CheckedNode):
    """Progressive bit pruning. Epochs are 0-based, as Lightning's `current_epoch`.

    `schedule=step`: layer k at epoch e is max(target, start_k - e // epochs_per_step).
    `schedule=agp`: from start_epoch to end_epoch (every `frequency` epochs) the fraction of lane groups
    projected to the target rises cubically from `initial_fraction` to 1, lowest projection error first.
    `admm.enabled` replaces either schedule by an ADMM phase of `admm.epochs`, then the hard projection.
    The budgets (`k`, `first_layer_k`, `last_layer_k`, `layers`) are integers here; their range [0, bits - 1]
    depends on the weight width and is checked by `check_bits` / `layer_k`.
    """

    WHERE: ClassVar[str] = WHERE

    mode: Literal[MODES] = "group_columns"  # type: ignore[valid-type]
    k: int = 2
    first_layer_k: int | None = None
    last_layer_k: int | None = None
    layers: dict[str, int] = Field(default_factory=dict)
    plan_file: str | None = None
    lanes: int = Field(default=16, gt=0, json_schema_extra={"expected": "a positive integer (the lane group size G)"})
    encoding: Literal[ENCODINGS] = "binary"  # type: ignore[valid-type]
    schedule: Literal[SCHEDULES] = "step"  # type: ignore[valid-type]
    start_k: int = Field(default=4, ge=0)
    epochs_per_step: int = Field(default=2, ge=1)
    initial_fraction: float = Field(default=0.0, ge=0, le=1)
    start_epoch: int = Field(default=0, ge=0)
    end_epoch: int = Field(default=6, ge=0)
    frequency: int = Field(default=1, ge=1)
    admm: AdmmConfig = Field(default_factory=AdmmConfig)
    published: PublishedConfig = Field(default_factory=PublishedConfig)

    @field_validator("layers", mode="before")
    @classmethod
    def _layers(cls, value: Any) -> Any:
        value = plain(value)
        if value is None:  # the group's default is null, so that `prune_bits.layers={fc1: 1}` composes
            return {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"got {value!r}, expected a mapping of layer name or glob -> k")
        return {str(k): v for k, v in value.items()}

    @field_validator("admm", "published", mode="before")
    @classmethod
    def _admm(cls, value: Any) -> Any:
        value = plain(value)
        return {} if value is None else value

    @model_validator(mode="after")
    def _published_takes_no_budgets(self) -> BitPruneConfig:
        if self.mode != PUBLISHED:
            return self
        # These would be ignored silently: the published method treats every layer alike (its code book).
        for key, unset in (("first_layer_k", None), ("last_layer_k", None), ("layers", {}), ("plan_file", None)):
            if getattr(self, key) not in (unset, ""):
                raise ConfigError(f"{WHERE}.{key}={getattr(self, key)!r}: mode={PUBLISHED} takes no per-layer k "
                                  f"(expected null; use prune_bits={PUBLISHED})")
        if self.schedule != "step" or self.admm.enabled:
            what = "admm.enabled=true" if self.admm.enabled else f"schedule={self.schedule}"
            raise ConfigError(f"{WHERE}.{what}: mode={PUBLISHED} has its own progressive rule "
                              f"(expected schedule=step, admm.enabled=false)")
        return self

    @model_validator(mode="after")
    def _schedule_is_consistent(self) -> BitPruneConfig:
        if self.schedule == "agp" and self.end_epoch <= self.start_epoch:
            raise ConfigError(f"{WHERE}.end_epoch={self.end_epoch} is not after start_epoch={self.start_epoch}")
        return self

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any] | None) -> BitPruneConfig:
        """Build from a plain dict or an OmegaConf node; bad values and unknown keys raise ConfigError."""
        return parse_node(cls, plain(cfg) if cfg is not None else {}, WHERE)

    def check_bits(self, bits: int) -> None:
        """Every budget the config states (not the plan file's: see `layer_k`) must be in [0, bits - 1]."""
        check_k(f"{WHERE}.k", self.k, bits)
        for key in ("first_layer_k", "last_layer_k"):
            if getattr(self, key) is not None:
                check_k(f"{WHERE}.{key}", getattr(self, key), bits)
        for pattern, value in self.layers.items():
            check_k(f"{WHERE}.layers[{pattern!r}]", value, bits)

    def check_width(self, bits: int) -> None:
        """The bit-level modes (BitWave / BBS) are defined for 8-bit weights only."""
        if (self.mode in BITLEVEL_METHODS or self.mode == PUBLISHED) and bits != WBITS:
            raise ConfigError(f"quant.bits={bits}: {WHERE}.mode={self.mode} is defined for {WBITS}-bit weights only")

    def check_quant(self, quant: QuantConfig) -> None:
        """The published mode has one power-of-two scale per layer (LLSQ's layer_wise mode) whatever quant says."""
        self.check_width(quant.bits)
        if self.mode == PUBLISHED and quant.per_channel:
            raise ConfigError(f"quant.scale=channel: {WHERE}.mode={PUBLISHED} has one power-of-two scale per layer "
                              f"(expected quant.scale=layer)")

    def layer_k(self, names: list[str], bits: int) -> dict[str, int]:
        """Target k of every layer (see the module docstring); bad values or unknown names fail here."""
        if not names:
            raise ConfigError(f"{WHERE}: the model has no Conv2d/Linear layer to bit-prune")
        self.check_width(bits)
        if self.mode == PUBLISHED:  # k is unused: record the code book's cap
            return {n: self.published.bit_cap(bits) for n in names}
        out = {n: check_k(f"{WHERE}.k", self.k, bits) for n in names}
        if self.first_layer_k is not None:
            out[names[0]] = check_k(f"{WHERE}.first_layer_k", self.first_layer_k, bits)
        if self.last_layer_k is not None:
            out[names[-1]] = check_k(f"{WHERE}.last_layer_k", self.last_layer_k, bits)
        for pattern, value in self.layers.items():
            matched = [n for n in names if fnmatchcase(n, pattern)]
            if not matched:
                raise ConfigError(f"{WHERE}.layers: {pattern!r} matches no layer; layers: {', '.join(names)}")
            for n in matched:
                out[n] = check_k(f"{WHERE}.layers[{pattern!r}]", value, bits)
        if self.plan_file:
            plan = read_plan_file(Path(self.plan_file))
            unknown = [n for n in plan if n not in out]
            if unknown:
                raise ConfigError(f"{WHERE}.plan_file {self.plan_file}: unknown layer(s) {', '.join(unknown)}; "
                                  f"layers: {', '.join(names)}")
            for n, value in plan.items():
                out[n] = check_k(f"{WHERE}.plan_file {self.plan_file}: layers.{n}", value, bits)
        return out

    def check_fits(self, max_epochs: int, targets: Mapping[str, int]) -> None:
        """The schedule must reach every target and leave at least one epoch of fine-tuning there.

        `max_epochs = 0` is post-training projection: the input projected at every layer's target, no fine-tuning
        (how BitWave and BBS publish their methods)."""
        reached = self.final_epoch(targets)
        if max_epochs == 0:
            return
        if max_epochs is None or max_epochs <= reached:
            raise ConfigError(f"trainer.max_epochs={max_epochs}: the {self.describe()} reaches the target k "
                              f"at epoch {reached} (0-based); expected max_epochs > {reached}")

    def final_epoch(self, targets: Mapping[str, int]) -> int:
        """First epoch at which every layer runs at its target (0-based)."""
        if self.admm.enabled:
            return self.admm.epochs
        if self.schedule == "agp":
            return self.end_epoch
        return max(0, self.start_k - min(targets.values())) * self.epochs_per_step

    def describe(self) -> str:
        return "ADMM phase" if self.admm.enabled else f"{self.schedule} schedule"


class PruneBitsStage(CheckedNode):
    """The nodes of the `prune_bits` stage that meet: every stated budget k must fit `quant.bits` weights."""

    model_config = ConfigDict(extra="ignore")

    prune_bits: BitPruneConfig
    quant: QuantConfig = Field(default_factory=QuantConfig)

    @field_validator("quant", mode="before")
    @classmethod
    def _quant(cls, value: Any) -> Any:
        return QuantConfig.from_any(plain(value))

    @model_validator(mode="after")
    def _budgets_fit_the_weights(self) -> PruneBitsStage:
        self.prune_bits.check_bits(self.quant.bits)
        self.prune_bits.check_quant(self.quant)
        return self


class BitLevelSpec(CheckedNode):
    """One published bit-level projection of 8-bit integer weights (bitlevel.py): method, N, group, const_bits,
    grouping. Used by `bitpruner project` and by the `simulate` stage's `project:` variants."""

    WHERE: ClassVar[str] = "project"

    method: Literal[BITLEVEL_METHODS]  # type: ignore[valid-type]
    N: int = Field(ge=0, le=WBITS - 1, json_schema_extra={"expected": "an integer in [0, 7] (pruned columns)"})
    group: int = Field(gt=0, json_schema_extra={"expected": "a positive integer (weights per group)"})
    const_bits: int = Field(default=DEFAULT_CONST_BITS, ge=1, le=WBITS)
    grouping: Literal[GROUPINGS] = "lanes"  # type: ignore[valid-type]

    @field_validator("method", "grouping", mode="before")
    @classmethod
    def _lower_case(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value  # `BitFlip`, `LANES`: as the sim's --arch

    @model_validator(mode="after")
    def _const_bits_only_for_zero_point(self) -> BitLevelSpec:
        if "const_bits" in self.model_fields_set and self.method != "bbs_zero_point":
            raise ConfigError(f"{self.WHERE}.const_bits={self.const_bits}: only bbs_zero_point takes const_bits "
                              f"(method is {self.method})")
        return self

    def params(self) -> dict[str, Any]:
        """Keyword arguments of the method's function (pipeline weights are narrow range: [-127, 127])."""
        out = {"N": self.N, "group": self.group, "grouping": self.grouping, "narrow_range": True}
        if self.method == "bbs_zero_point":
            out["const_bits"] = self.const_bits
        return out

    def describe(self) -> str:
        extra = f", const_bits={self.const_bits}" if self.method == "bbs_zero_point" else ""
        return f"{self.method}(N={self.N}, group={self.group}{extra}, grouping={self.grouping})"


def validate_prune_bits_stage(cfg: Mapping[str, Any]) -> tuple[BitPruneConfig, QuantConfig]:
    """`prune_bits` and `quant` of a stage config, the budgets checked against the weight width.

    Layer names (patterns, first/last layer, the plan file) need the model: `layer_k` checks them.
    Raises ConfigError (one line naming the key) on a bad value.
    """
    stage = parse_node(PruneBitsStage, plain(cfg), "")
    return stage.prune_bits, stage.quant
