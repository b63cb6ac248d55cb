"""The tail every stage shares: `metrics.json` (headline), `details.json`, `config.yaml`, `timing.json`, final
metrics in MLflow, artifacts.

Byte-stable by design: `metrics.json` and `config.yaml` hold nothing that depends on the clock or on where the
project lives (paths are written relative to the project root), so two identical runs give identical files and
DVC sees no change. Times go to `timing.json` (not a DVC output) and to MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from bitpruner.utils.atomic import write_json, write_text

FINAL_PREFIX = "final/"
TIMING_FILE = "timing.json"
DETAILS_FILE = "details.json"


def portable(value: Any, root: str | Path) -> Any:
    """`value` with every string path inside the project root `root` made relative to it ("." for the root)."""
    root = str(Path(root).resolve())
    if isinstance(value, Mapping):
        return {k: portable(v, root) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(v, root) for v in value]
    if isinstance(value, str):
        if value == root:
            return "."
        if value.startswith(root + "/"):
            return value[len(root) + 1:]
    return value


def write_config(path: str | Path, cfg: dict, root: str | Path | None = None) -> Path:
    """The resolved config as YAML (keys in config order); paths under `root` (default `paths.root_dir`)
    relative to it."""
    root = root if root is not None else (cfg.get("paths") or {}).get("root_dir")
    return write_text(path, yaml.safe_dump(portable(cfg, root) if root else cfg, sort_keys=False))


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


def headline_of(metrics: Mapping[str, Any], keys: Iterable[str]) -> dict:
    """The stage's headline figures (the keys present, in `keys` order): what `metrics.json` holds."""
    return {k: metrics[k] for k in keys if k in metrics}


def write_stage_files(out_dir: str | Path, cfg: dict, metrics: Mapping[str, Any],
                      timing: Mapping[str, float], headline: Iterable[str]) -> None:
    """In `out_dir`: `metrics.json` (the `headline` keys only: DVC's metrics, 5-10 figures that fit a screen),
    `details.json` (every metric), `config.yaml`, and `timing.json` (seconds; not a DVC output)."""
    out_dir = Path(out_dir)
    write_json(out_dir / "metrics.json", json_safe(headline_of(metrics, headline)))
    write_json(out_dir / DETAILS_FILE, json_safe(metrics))
    write_config(out_dir / "config.yaml", cfg)
    write_json(out_dir / TIMING_FILE, {k: round(float(v), 2) for k, v in timing.items()})


def log_outputs(run, out_dir: str | Path, metrics: Mapping[str, Any], timing: Mapping[str, float],
                artifacts: Iterable[str] = ()) -> None:
    """Log the metrics (and times) as `final/<key>` and every artifact (file names in `out_dir`, plus
    metrics.json, config.yaml and timing.json) to the stage's MLflow run (`run`, a StageRun)."""
    out_dir = Path(out_dir)
    run.log_metrics({f"{FINAL_PREFIX}{k}": v for k, v in numeric_metrics({**metrics, **timing}).items()})
    for name in dict.fromkeys(["metrics.json", DETAILS_FILE, "config.yaml", TIMING_FILE, *artifacts]):
        run.log_artifact(out_dir / name)
