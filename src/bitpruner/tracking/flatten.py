"""Flatten a resolved config into MLflow params (dotted keys, string values)."""

from __future__ import annotations

from typing import Any

# MLflow rejects longer param values; the full config is logged as an artifact anyway.
MAX_PARAM_CHARS = 500


def flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(tree, dict):
        if not tree and prefix:
            out[prefix] = "{}"
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    else:
        text = str(tree)
        out[prefix] = text if len(text) <= MAX_PARAM_CHARS else text[: MAX_PARAM_CHARS - 3] + "..."
    return out
