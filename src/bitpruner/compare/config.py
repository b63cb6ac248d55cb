"""The `compare` stage's config as a typed node (pydantic), checked before any work."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from bitpruner.config import CheckedNode, plain
from bitpruner.errors import ConfigError
from bitpruner.schema import parse_node

SEED_FIELD = "{seed}"  # what `simulate_dir` holds where each seed's number goes
AXIS_SCALES = ("linear", "log")


class CompareStageConfig(CheckedNode):
    """What the `compare` stage reads; other top-level keys (paths, logger, ...) belong to other nodes."""

    model_config = ConfigDict(extra="ignore")
    WHERE: ClassVar[str] = ""

    params_file: str | None = None
    seeds: tuple[int, ...] = Field(min_length=1, json_schema_extra={"expected": "a non-empty list of integers"})
    simulate_dir: str = Field(min_length=1, json_schema_extra={"expected": "a path template holding {seed}"})
    network: str | None = None
    headline: str = Field(default="bit-pruned", min_length=1)
    speedup_axis: Literal[AXIS_SCALES] = "linear"  # type: ignore[valid-type]

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value: Any) -> Any:
        value = plain(value)
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"seeds: got {value!r}, expected a non-empty list of integers")
        return tuple(value)

    @model_validator(mode="after")
    def _consistent(self) -> CompareStageConfig:
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds: got {list(self.seeds)!r}, expected distinct integers (no duplicates)")
        if len(self.seeds) > 1 and SEED_FIELD not in self.simulate_dir:
            raise ConfigError(f"simulate_dir={self.simulate_dir!r}: expected a template holding {SEED_FIELD} "
                              f"(one folder per seed of {list(self.seeds)})")
        try:
            self.simulate_dir.format(seed=0)
        except (KeyError, IndexError, ValueError):
            raise ConfigError(f"simulate_dir={self.simulate_dir!r}: expected {SEED_FIELD} as its only "
                              "{...} field") from None
        return self

    def folders(self) -> dict[int, Path]:
        """{seed: that seed's simulate output folder}, in `seeds` order."""
        return {seed: Path(self.simulate_dir.format(seed=seed)) for seed in self.seeds}


def seeds_of_params_file(path: str | Path) -> Any:
    """`seeds` of a DVC params file (the list dvc.yaml's `foreach` runs the chain for); ConfigError if unreadable."""
    import yaml

    try:
        params = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"params_file={path}: cannot read it ({type(exc).__name__}), expected a YAML file "
                          "with `seeds` (or give seeds=[...])") from None
    if not isinstance(params, Mapping) or "seeds" not in params:
        raise ConfigError(f"params_file={path}: no `seeds` list, expected one (or give seeds=[...])")
    return params["seeds"]


def validate_compare_stage(cfg: Mapping[str, Any]) -> CompareStageConfig:
    """Every config check of the `compare` stage, before any work; ConfigError (one line naming the key) if bad.
    `seeds: null` takes the list from `params_file` (DVC cannot pass a list on a stage's command line)."""
    cfg = dict(plain(cfg))
    if cfg.get("seeds") is None:
        cfg["seeds"] = seeds_of_params_file(cfg.get("params_file") or "params.yaml")
    return parse_node(CompareStageConfig, cfg, "")
