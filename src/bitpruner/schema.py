"""Typed config nodes (pydantic v2) and the one-line error every bad value becomes.

Every config node a stage reads is a `ConfigNode` subclass: strict types (no silent `"3"` -> 3, no bool
for an int), unknown keys refused, frozen. `parse_node(Model, data, "where")` validates one node and turns
the first problem into a `ConfigError` in the project's message form::

    trainer.max_epochs: got -3, expected an integer >= 0
    prune_bits: unknown key(s) bogus; expected some of admm, encoding, ...

The "expected" text is derived from the field's type and constraints (`int` + `ge=0` -> "an integer >=
0", `Literal["a", "b"]` -> "one of a, b"); a field may state it itself with
`Field(json_schema_extra={"expected": "..."})`. Cross-field checks raise `ConfigError` from a
validator; their message is kept as written (prefixed with the node's name when it does not start with it).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union

import annotated_types as at
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.fields import FieldInfo

from bitpruner.errors import ConfigError

__all__ = ["ConfigNode", "expected_text", "parse_node"]

Node = TypeVar("Node", bound="ConfigNode")


class ConfigNode(BaseModel):
    """Base of every typed config node: strict, closed, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


def _type_words(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if origin is Literal:
        return "one of " + ", ".join(str(v) for v in typing.get_args(tp))
    if origin in (list, tuple, typing.Sequence) or tp in (list, tuple):
        args = typing.get_args(tp)
        inner = _type_words(args[0]) if args else "values"
        return f"a list of {inner.removeprefix('an ').removeprefix('a ')}s" if args else "a list"
    if origin in (dict, Mapping) or tp is dict:
        return "a mapping"
    if origin is typing.Annotated:
        base, *meta = typing.get_args(tp)
        return _with_constraints(_type_words(base), meta)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        words = " or ".join(_type_words(a) for a in args)
        return f"{words} or null" if len(args) < len(typing.get_args(tp)) else words
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _with_constraints(words: str, metadata: list) -> str:
    bounds = []
    flat = []
    for m in metadata:  # Field(...) inside Annotated[...] (e.g. within Optional) carries its own metadata
        flat.extend(m.metadata if isinstance(m, FieldInfo) else [m])
    for m in flat:
        for attr, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            value = getattr(m, attr, None)
            if isinstance(m, (at.Ge, at.Gt, at.Le, at.Lt, at.Interval)) and value is not None:
                bounds.append((op, value))
        if isinstance(m, at.MinLen) and m.min_length:
            bounds.append(("non-empty", None))
    lows = [b for b in bounds if b[0] in (">=", ">")]
    highs = [b for b in bounds if b[0] in ("<=", "<")]
    if len(lows) == 1 and len(highs) == 1 and lows[0][0] == ">=" and highs[0][0] == "<=":
        return f"{words} in [{lows[0][1]}, {highs[0][1]}]"
    parts = [f"{op} {v}" for op, v in bounds if v is not None]
    if any(op == "non-empty" for op, _ in bounds):
        words = "a non-empty " + words.removeprefix("a ").removeprefix("an ")
    return " ".join([words, " and ".join(parts)]).strip()


def expected_text(field: FieldInfo) -> str:
    """What a field accepts, in words ("an integer >= 0", "one of sgd, adam", "a number > 0 or null")."""
    extra = field.json_schema_extra
    if isinstance(extra, dict) and "expected" in extra:
        return str(extra["expected"])
    words = _type_words(field.annotation)
    if field.metadata:
        words = _with_constraints(words, list(field.metadata))
    return words


def _field_at(model: type[BaseModel], loc: tuple) -> FieldInfo | None:
    """The FieldInfo a pydantic error location points at (nested models followed; list indices skipped)."""
    current: Any = model
    info = None
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return info if part in ("[key]",) else None
        info = current.model_fields[part]
        current = _model_in(info.annotation)
    return info


def _model_in(tp: Any) -> Any:
    """The BaseModel class inside `tp` (Optional[M], list[M], dict[str, M]), else tp."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    for arg in typing.get_args(tp):
        found = _model_in(arg)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return tp


def _dotted(where: str, loc: tuple) -> str:
    key = where
    for part in loc:
        key = f"{key}[{part}]" if isinstance(part, int) else (f"{key}.{part}" if key else str(part))
    return key


def _value_at(data: Any, loc: tuple) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _message(model: type[BaseModel], exc: ValidationError, where: str, data: Any) -> str:
    errors = exc.errors(include_url=False)
    # A cross-field check's own message wins: it already says what is wrong.
    for err in errors:
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, ConfigError):
            text = str(cause)
            key = _dotted(where, tuple(err["loc"]))
            return text if not key or text.startswith(key.split("[")[0]) else f"{key}: {text}"
    unknown: dict[tuple, list[str]] = {}
    for err in errors:
        if err["type"] == "extra_forbidden":
            unknown.setdefault(tuple(err["loc"][:-1]), []).append(str(err["loc"][-1]))
    if unknown:
        parent, names = next(iter(unknown.items()))
        owner = model
        for part in parent:
            if isinstance(part, int):
                continue
            owner = _model_in(owner.model_fields[part].annotation)
        allowed = ", ".join(sorted(owner.model_fields)) if isinstance(owner, type) else "?"
        return f"{_dotted(where, parent) or '<root>'}: unknown key(s) {', '.join(sorted(names))}; expected some of {allowed}"
    err = errors[0]
    loc = tuple(err["loc"])
    key = _dotted(where, loc)
    if err["type"] == "missing":
        return f"{key}: missing from the config"
    field = _field_at(model, loc)
    value = _value_at(data, loc)
    if field is not None:
        return f"{key}: got {value!r}, expected {expected_text(field)}"
    return f"{key}: got {value!r}, {err['msg'][0].lower()}{err['msg'][1:]}"


def parse_node(model: type[Node], data: Any, where: str) -> Node:
    """Validate `data` (a plain mapping) as `model`; raises ConfigError with one line naming the key."""
    if isinstance(data, BaseModel):
        data = data.model_dump()
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: got {data!r}, expected a mapping")
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(_message(model, exc, where, data)) from None
