"""dvc.yaml's stages as DVC expands them: a `foreach: ${seeds}` stage becomes `<name>@<seed>`, `${item}` filled."""

from __future__ import annotations

import re
from typing import Any


def template(stage: dict) -> dict:
    """A stage's definition: the `do:` part of a foreach stage, the stage itself otherwise."""
    return stage.get("do", stage)


def fill(node: Any, item: Any) -> Any:
    """`node` with `${item}` replaced by `item` in every string."""
    if isinstance(node, str):
        return node.replace("${item}", str(item))
    if isinstance(node, list):
        return [fill(v, item) for v in node]
    if isinstance(node, dict):
        return {fill(k, item): fill(v, item) for k, v in node.items()}
    return node


def items_of(stage: dict, params: dict) -> list:
    """The items a foreach stage runs for (a `${key}` of params.yaml, or a literal list)."""
    spec = stage["foreach"]
    if isinstance(spec, str):
        key = re.fullmatch(r"\$\{([\w.]+)\}", spec).group(1)
        node = params
        for part in key.split("."):
            node = node[part]
        return list(node)
    return list(spec)


def expanded(stages: dict, params: dict) -> dict[str, dict]:
    """{stage name as DVC lists it: definition}."""
    out = {}
    for name, stage in stages.items():
        if "foreach" in stage:
            for item in items_of(stage, params):
                out[f"{name}@{item}"] = fill(stage["do"], item)
        else:
            out[name] = stage
    return out
