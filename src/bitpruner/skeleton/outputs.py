"""The tail every stage shares: `config.yaml`, `metrics.json`, final metrics in MLflow, artifacts."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from bitpruner.utils.atomic import write_json, write_text

FINAL_PREFIX = "final/"


def write_config(path: str | Path, cfg: dict) -> Path:
    """The resolved config as YAML (keys in config order)."""
    return write_text(path, yaml.safe_dump(cfg, sort_keys=False))


def numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Numbers only, for MLflow: nested mappings become `key/sub`; bools, strings and NaN are left out."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            flat.update({f"{key}/{k}": v for k, v in numeric_metrics(value).items()})
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value):
            flat[key] = float(value)
    return flat


def json_safe(metrics: Mapping[str, Any]) -> dict:
    """NaN becomes null (JSON has no NaN), recursively."""
    return {k: (json_safe(v) if isinstance(v, Mapping) else
                None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}


def finish_outputs(run, out_dir: str | Path, cfg: dict, metrics: Mapping[str, Any],
                   artifacts: Iterable[str] = ()) -> None:
    """Write `metrics.json` and `config.yaml` into `out_dir`, log the metrics as `final/<key>` and every
    artifact (file names in `out_dir`, plus the two above) to the stage's MLflow run (`run`, a StageRun)."""
    out_dir = Path(out_dir)
    write_json(out_dir / "metrics.json", json_safe(metrics))
    write_config(out_dir / "config.yaml", cfg)
    run.log_metrics({f"{FINAL_PREFIX}{k}": v for k, v in numeric_metrics(metrics).items()})
    for name in dict.fromkeys(["metrics.json", "config.yaml", *artifacts]):
        run.log_artifact(out_dir / name)
