"""Every string that reaches MLflow goes through here: keys sanitized, values cut to MLflow's limits, filter
literals quoted the only way MLflow's parser reads them.

MLflow accepts param/metric/tag keys of letters, digits, `_ - . / :` and spaces, at most 250 characters, and not
path-like oddities (`a//b`, `./a`, a leading `/`). User strings such as layer globs (`prune_weights.overrides.fc*`)
become `prune_weights.overrides.fc_`; two keys that sanitize to the same string get a short hash of the original.
The full config is logged as the `config.yaml` artifact, so nothing is lost.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from bitpruner.errors import ConfigError

MAX_KEY = 250            # mlflow.utils.validation.MAX_ENTITY_KEY_LENGTH
MAX_PARAM_VALUE = 6000   # MAX_PARAM_VAL_LENGTH
MAX_TAG_VALUE = 8000     # MAX_TAG_VAL_LENGTH
MAX_NAME = 250           # run and experiment names we create (MLflow allows longer; tables do not)
DIGEST_CHARS = 8
_BAD_KEY_CHARS = re.compile(r"[^\w.\- /:]")


def digest(text: str, chars: int = DIGEST_CHARS) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:chars]


def mlflow_key(name: Any) -> str:
    """A key MLflow accepts that reads like `name` (bad characters -> `_`; too long -> cut + hash)."""
    text = str(name)
    key = _BAD_KEY_CHARS.sub("_", text)
    key = "/".join(part if part not in ("", ".", "..") else "_" for part in key.split("/"))
    if len(key) > MAX_KEY or (key != text and not key.strip()):
        key = key[: MAX_KEY - DIGEST_CHARS - 1] + "-" + digest(text)
    return key


def mlflow_keys(mapping: Mapping[Any, Any]) -> dict[str, Any]:
    """`mapping` with sanitized keys; keys that collide after sanitizing keep apart by a hash suffix."""
    out: dict[str, Any] = {}
    for name, value in mapping.items():
        key = mlflow_key(name)
        if key in out:
            key = f"{key[: MAX_KEY - DIGEST_CHARS - 1]}-{digest(str(name))}"
        out[key] = value
    return out


def cut(text: Any, limit: int) -> str:
    """`str(text)` cut to `limit` characters (an ellipsis marks the cut)."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def tag_values(tags: Mapping[Any, Any]) -> dict[str, str]:
    return {k: cut(v, MAX_TAG_VALUE) for k, v in mlflow_keys(tags).items()}


def param_values(params: Mapping[Any, Any]) -> dict[str, str]:
    return {k: cut(v, MAX_PARAM_VALUE) for k, v in mlflow_keys(params).items()}


def filter_literal(value: Any, what: str = "value") -> str:
    """`value` as a string literal of an MLflow search filter. MLflow's parser has no escapes: a value is read
    verbatim between single or double quotes, so one holding both kinds cannot be searched for (ConfigError)."""
    text = str(value)
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    raise ConfigError(f"{what} {text!r}: holds both ' and \", which an MLflow search filter cannot express")


def filter_key(key: str, what: str = "key") -> str:
    """A tag/param name for a search filter, in backquotes (a name holding a backquote cannot be searched)."""
    if "`" in key:
        raise ConfigError(f"{what} {key!r}: holds a backquote, which an MLflow search filter cannot express")
    return f"`{key}`"
