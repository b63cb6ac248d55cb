"""The `plan` config node as a typed dataclass, checked before any work."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from bitpruner.prune_bits.encodings import ENCODINGS
from bitpruner.errors import ConfigError

PLAN_MODES = ("per_weight", "group_columns")
OBJECTIVES = ("min_cycles", "min_drop")
DROP_METRICS = ("acc", "loss")
WHERE = "plan"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_pos(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0


@dataclass(frozen=True)
class PlanConfig:
    """What to measure (candidates x modes) and how to choose (objective + its bound)."""

    candidates: tuple[int, ...] = (1, 2, 3, 4, 7)
    modes: tuple[str, ...] = PLAN_MODES
    mode: str = "group_columns"
    objective: str = "min_cycles"
    max_drop: float | None = 0.5
    min_speedup: float | None = None
    max_cycles: int | None = None
    drop_metric: str = "acc"
    resolution: float = 0.01
    encoding: str = "binary"

    def __post_init__(self) -> None:
        if not self.candidates or not all(_is_int(k) and k >= 0 for k in self.candidates):
            raise ConfigError(f"{WHERE}.candidates={list(self.candidates)!r}: expected a non-empty list of integers >= 0")
        if len(set(self.candidates)) != len(self.candidates):
            raise ConfigError(f"{WHERE}.candidates={list(self.candidates)!r}: duplicates")
        bad = [m for m in self.modes if m not in PLAN_MODES]
        if not self.modes or bad:
            raise ConfigError(f"{WHERE}.modes={list(self.modes)!r}: expected a non-empty subset of {', '.join(PLAN_MODES)}")
        if self.mode not in self.modes:
            raise ConfigError(f"{WHERE}.mode={self.mode!r}: expected one of plan.modes {list(self.modes)}")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"{WHERE}.objective={self.objective!r}: expected one of {', '.join(OBJECTIVES)}")
        if self.drop_metric not in DROP_METRICS:
            raise ConfigError(f"{WHERE}.drop_metric={self.drop_metric!r}: expected one of {', '.join(DROP_METRICS)}")
        if self.encoding not in ENCODINGS:
            raise ConfigError(f"{WHERE}.encoding={self.encoding!r}: expected one of {', '.join(ENCODINGS)}")
        if not _is_pos(self.resolution):
            raise ConfigError(f"{WHERE}.resolution={self.resolution!r}: expected a number > 0")
        if self.objective == "min_cycles":
            if not (isinstance(self.max_drop, (int, float)) and not isinstance(self.max_drop, bool)
                    and self.max_drop >= 0):
                raise ConfigError(f"{WHERE}.max_drop={self.max_drop!r}: expected a number >= 0 for objective min_cycles")
        else:
            if (self.min_speedup is None) == (self.max_cycles is None):
                raise ConfigError(f"{WHERE}: objective min_drop needs exactly one of min_speedup and max_cycles "
                                  f"(got min_speedup={self.min_speedup!r}, max_cycles={self.max_cycles!r})")
            if self.min_speedup is not None and not _is_pos(self.min_speedup):
                raise ConfigError(f"{WHERE}.min_speedup={self.min_speedup!r}: expected a number > 0")
            if self.max_cycles is not None and not (_is_int(self.max_cycles) and self.max_cycles > 0):
                raise ConfigError(f"{WHERE}.max_cycles={self.max_cycles!r}: expected an integer > 0")

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> PlanConfig:
        data = dict(cfg or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{WHERE}: unknown key(s) {', '.join(unknown)}; expected {', '.join(sorted(known))}")
        for key in ("candidates", "modes"):
            if key in data:
                value = data[key]
                if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                    raise ConfigError(f"{WHERE}.{key}={value!r}: expected a list")
                data[key] = tuple(value)
        return cls(**data)

    def check_bits(self, bits: int) -> None:
        """Candidates must be valid budgets for b-bit weights."""
        bad = [k for k in self.candidates if k > bits - 1]
        if bad:
            raise ConfigError(f"{WHERE}.candidates: k={bad} exceed {bits - 1}, the most a {bits}-bit weight has "
                              f"({bits - 1} = no projection)")
