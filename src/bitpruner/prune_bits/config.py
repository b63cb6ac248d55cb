"""The `prune_bits` config group as a typed dataclass, and the per-layer bit budgets it resolves to.

Per-layer `k`, most specific last: `k` for every layer, then `first_layer_k` / `last_layer_k` (null =
same as `k`), then `layers` ({name or glob: k}, later patterns win), then the plan file's
`layers: {name: k}`. A layer whose k is `bits - 1` is only quantized (no bit constraint).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from bitpruner.prune_bits.encodings import ENCODINGS
from bitpruner.prune_bits.plan_file import read_plan_file
from bitpruner.errors import ConfigError

MODES = ("per_weight", "group_columns", "group_budget")
SCHEDULES = ("step", "agp")
WHERE = "prune_bits"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_int(key: str, value: Any, minimum: int) -> int:
    if not _is_int(value) or value < minimum:
        raise ConfigError(f"{WHERE}.{key}={value!r}: expected an integer >= {minimum}")
    return value


def check_k(key: str, value: Any, bits: int) -> int:
    """A bit budget per weight: an integer in [0, bits - 1]."""
    if not _is_int(value) or not 0 <= value <= bits - 1:
        raise ConfigError(f"{key}={value!r}: expected an integer k in [0, {bits - 1}] for {bits}-bit weights")
    return value


@dataclass(frozen=True)
class AdmmConfig:
    """ADMM phase: epochs [0, epochs) add rho/2 ||W - Z + U||^2; Z, U and rho (x growth) every `update_every` steps."""

    enabled: bool = False
    rho: float = 1.0
    rho_growth: float = 1.1
    update_every: int = 50
    epochs: int = 6

    def __post_init__(self) -> None:
        if not isinstance(self.rho, (int, float)) or isinstance(self.rho, bool) or self.rho <= 0:
            raise ConfigError(f"{WHERE}.admm.rho={self.rho!r}: expected a number > 0")
        growth = self.rho_growth
        if not isinstance(growth, (int, float)) or isinstance(growth, bool) or growth < 1:
            raise ConfigError(f"{WHERE}.admm.rho_growth={growth!r}: expected a number >= 1")
        if not _is_int(self.update_every) or self.update_every < 1:
            raise ConfigError(f"{WHERE}.admm.update_every={self.update_every!r}: expected an integer >= 1")
        if not _is_int(self.epochs) or self.epochs < 1:
            raise ConfigError(f"{WHERE}.admm.epochs={self.epochs!r}: expected an integer >= 1")


@dataclass(frozen=True)
class BitPruneConfig:
    """Progressive bit pruning. Epochs are 0-based, as Lightning's `current_epoch`.

    `schedule=step`: layer k at epoch e is max(target, start_k - e // epochs_per_step).
    `schedule=agp`: from start_epoch to end_epoch (every `frequency` epochs) the fraction of lane groups
    projected to the target rises cubically from `initial_fraction` to 1, lowest projection error first.
    `admm.enabled` replaces either schedule by an ADMM phase of `admm.epochs`, then the hard projection.
    """

    mode: str = "group_columns"
    k: int = 2
    first_layer_k: int | None = None
    last_layer_k: int | None = None
    layers: dict[str, int] = field(default_factory=dict)
    plan_file: str | None = None
    lanes: int = 16
    encoding: str = "binary"
    schedule: str = "step"
    start_k: int = 4
    epochs_per_step: int = 2
    initial_fraction: float = 0.0
    start_epoch: int = 0
    end_epoch: int = 6
    frequency: int = 1
    admm: AdmmConfig = field(default_factory=AdmmConfig)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"{WHERE}.mode={self.mode!r}: expected one of {', '.join(MODES)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"{WHERE}.schedule={self.schedule!r}: expected one of {', '.join(SCHEDULES)}")
        if self.encoding not in ENCODINGS:
            raise ConfigError(f"{WHERE}.encoding={self.encoding!r}: expected one of {', '.join(ENCODINGS)}")
        if not _is_int(self.lanes) or self.lanes <= 0:
            raise ConfigError(f"{WHERE}.lanes={self.lanes!r}: expected a positive integer (the lane group size G)")
        _check_int("start_k", self.start_k, 0)
        _check_int("epochs_per_step", self.epochs_per_step, 1)
        _check_int("start_epoch", self.start_epoch, 0)
        _check_int("end_epoch", self.end_epoch, 0)
        _check_int("frequency", self.frequency, 1)
        f0 = self.initial_fraction
        if not isinstance(f0, (int, float)) or isinstance(f0, bool) or not 0 <= f0 <= 1:
            raise ConfigError(f"{WHERE}.initial_fraction={f0!r}: expected a number in [0, 1]")
        if self.schedule == "agp" and self.end_epoch <= self.start_epoch:
            raise ConfigError(f"{WHERE}.end_epoch={self.end_epoch} is not after start_epoch={self.start_epoch}")

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> BitPruneConfig:
        """Build from a plain dict or an OmegaConf node; unknown keys are an error."""
        data = dict(cfg)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{WHERE}: unknown key(s) {', '.join(unknown)}; expected {', '.join(sorted(known))}")
        layers = data.get("layers") or {}
        if not isinstance(layers, Mapping):
            raise ConfigError(f"{WHERE}.layers={layers!r}: expected a mapping of layer name or glob -> k")
        data["layers"] = {str(k): v for k, v in layers.items()}
        admm = data.get("admm") or {}
        admm_known = {f.name for f in fields(AdmmConfig)}
        if not isinstance(admm, Mapping) or set(admm) - admm_known:
            raise ConfigError(f"{WHERE}.admm={admm!r}: expected a mapping with keys {', '.join(sorted(admm_known))}")
        data["admm"] = AdmmConfig(**{k: (float(v) if k in ("rho", "rho_growth") and _is_int(v) else v)
                                     for k, v in admm.items()})
        if _is_int(data.get("initial_fraction")):
            data["initial_fraction"] = float(data["initial_fraction"])
        return cls(**data)

    def layer_k(self, names: list[str], bits: int) -> dict[str, int]:
        """Target k of every layer (see the module docstring); bad values or unknown names fail here."""
        if not names:
            raise ConfigError(f"{WHERE}: the model has no Conv2d/Linear layer to bit-prune")
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
        """The schedule must reach every target and leave at least one epoch of fine-tuning there."""
        reached = self.final_epoch(targets)
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
