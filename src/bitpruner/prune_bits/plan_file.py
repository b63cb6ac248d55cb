"""Per-layer bit budgets on disk: `layers: {name: k}` in YAML (the plan stage writes it, this stage reads it)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from bitpruner.errors import ConfigError
from bitpruner.utils.atomic import write_text


def read_plan_file(path: Path) -> dict[str, int]:
    """{layer name: k}; a missing file, bad YAML or a missing/odd `layers` mapping is a ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"prune_bits.plan_file {path}: file not found (run the plan stage first, or set it to null)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"prune_bits.plan_file {path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    layers = data.get("layers") if isinstance(data, Mapping) else None
    if not isinstance(layers, Mapping) or not layers:
        raise ConfigError(f"prune_bits.plan_file {path}: expected a non-empty mapping `layers: {{name: k}}`")
    return {str(name): k for name, k in layers.items()}


def write_plan_file(path: Path, layers: Mapping[str, int], **extra) -> Path:
    """Write `layers: {name: k}` (plus any extra top-level keys, e.g. the predicted drop)."""
    body = {"layers": {str(n): int(k) for n, k in layers.items()}, **extra}
    return write_text(path, yaml.safe_dump(body, sort_keys=False))
