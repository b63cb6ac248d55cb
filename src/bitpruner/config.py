"""Start-of-stage config checks as typed nodes (pydantic v2): a wrong value fails before any work, naming the key.

`validate_training(cfg)` types what every training stage reads (seed, resume, export, trainer, data,
optimizer, scheduler); `CheckedNode` is the base of the stage nodes that are also built directly in code
(`PruningConfig(final_sparsity=0.8)`), so that a bad keyword is the same one-line `ConfigError` as a bad
config value.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import importlib
import inspect
import json
from typing import Any, ClassVar, Literal

from omegaconf import DictConfig, OmegaConf
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from bitpruner.errors import ConfigError
from bitpruner.schema import ConfigNode, parse_node

# Which weights a training stage writes to model.ckpt: the final epoch's or the lowest-val-loss epoch's.
EXPORTS = ("last", "best")
OPTIMIZER_BASE = "torch.optim.Optimizer"
SCHEDULER_BASE = "torch.optim.lr_scheduler.LRScheduler"

# How many CheckedNode.__init__ calls enclose the current one: only the outermost turns a ValidationError into
# the ConfigError, so that a nested node's error keeps its full key (`variants[1].name`, not `variant.name`).
_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("bitpruner_checked_node_depth", default=0)


def to_container(cfg: DictConfig | dict) -> dict:
    """A resolved plain dict of an OmegaConf node (interpolations resolved); a dict is copied shallowly."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    return dict(cfg)


def plain(node: Any) -> Any:
    """An OmegaConf node as plain Python containers (resolved); anything else unchanged."""
    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True)
    return node


class CheckedNode(ConfigNode):
    """A ConfigNode that is also built directly in code: `Model(**kwargs)` raises the one-line ConfigError.

    `WHERE` is the node's key in the stage config (the prefix of every message). A stage-level model that
    nests CheckedNodes (in lists too) should itself be a CheckedNode (WHERE "") so that their errors are
    reported with the full key.
    """

    WHERE: ClassVar[str] = ""

    def __init__(self, **data: Any) -> None:
        outermost = _DEPTH.get() == 0
        token = _DEPTH.set(_DEPTH.get() + 1)
        try:
            super().__init__(**data)
        except ValidationError:
            if not outermost:
                raise  # the enclosing node reports it, with the full key
            # Re-validate through parse_node (which calls __init__ again, nested now) for the one-line message.
            parse_node(type(self), data, type(self).WHERE)
            raise
        finally:
            _DEPTH.reset(token)


def _locate(path: Any) -> type | None:
    """The class a dotted path names (`torch.optim.AdamW`), or None when it does not import to a class."""
    if not isinstance(path, str) or "." not in path:
        return None
    module_name, _, attr = path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError):
        return None
    return found if isinstance(found, type) else None


def _base(path: str) -> type:
    found = _locate(path)
    assert found is not None, path  # torch's own base classes
    return found


def _init_parameters(cls: type) -> tuple[list[str], list[str], bool]:
    """(accepted keyword names, required ones, takes **kwargs) of `cls.__init__`, minus its first argument.

    The first argument (the parameters of an optimizer, the optimizer of a scheduler) is supplied by the
    training module, not by the config.
    """
    params = list(inspect.signature(cls).parameters.values())[1:]
    names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    required = [p.name for p in params
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is inspect.Parameter.empty]
    return names, required, any(p.kind == p.VAR_KEYWORD for p in params)


class _InstantiatedNode(ConfigNode):
    """A `{_target_: class path, _partial_: true, **init kwargs}` node (what hydra.utils.instantiate builds)."""

    model_config = ConfigDict(extra="allow", populate_by_name=False)
    KIND: ClassVar[str] = ""  # words for messages: "a torch.optim optimizer class path"
    BASE: ClassVar[str] = ""  # dotted path of the base class `_target_` must subclass
    WHERE: ClassVar[str] = ""

    target: str = Field(alias="_target_")
    partial: bool = Field(alias="_partial_")

    @model_validator(mode="before")
    @classmethod
    def _not_the_old_form(cls, data: Any) -> Any:
        if isinstance(data, dict) and "name" in data and "_target_" not in data:
            raise ConfigError(f"{cls.WHERE}: got the old form {{name: {data['name']!r}, ...}}, expected "
                              f"{{_target_: <class path>, _partial_: true, ...}} as in conf/{cls.WHERE}/*.yaml")
        return data

    @field_validator("target", mode="before")
    @classmethod
    def _target_is_a_class(cls, value: Any) -> str:
        found = _locate(value)
        if found is None or not issubclass(found, _base(cls.BASE)):
            raise ConfigError(f"got {value!r}, expected {cls.KIND}")
        return value

    @field_validator("partial", mode="before")
    @classmethod
    def _partial_is_true(cls, value: Any) -> bool:
        # The training module supplies the first argument (parameters / optimizer): only a partial fits.
        if value is not True:
            raise ConfigError(f"got {value!r}, expected true (the training module passes the first argument)")
        return value

    @model_validator(mode="after")
    def _keys_are_init_parameters(self) -> _InstantiatedNode:
        names, required, any_keyword = _init_parameters(self.target_class)
        given = set(self.kwargs())
        unknown = sorted(given - set(names))
        if unknown and not any_keyword:
            raise ConfigError(f"{self.WHERE}: unknown key(s) {', '.join(unknown)}; expected some of "
                              f"{', '.join(sorted(names))} (the parameters of {self.target})")
        missing = [n for n in required if n not in given]
        if missing:
            raise ConfigError(f"{self.WHERE}.{missing[0]}: missing from the config "
                              f"(a required parameter of {self.target})")
        return self

    @property
    def target_class(self) -> type:
        """The class `_target_` names."""
        return _locate(self.target)

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments the config gives the class (every key but `_target_` and `_partial_`)."""
        declared = {name: getattr(self, name) for name in self.model_fields_set
                    if name not in ("target", "partial")}
        return {**declared, **(self.model_extra or {})}

    def partial_class(self) -> functools.partial:
        """`_target_` with the config's keywords bound; call it with the first argument."""
        return functools.partial(self.target_class, **self.kwargs())


class OptimizerNode(_InstantiatedNode):
    """`optimizer`: a torch.optim optimizer class with `lr` > 0, `weight_decay` >= 0 and its other parameters."""

    KIND: ClassVar[str] = "a torch.optim optimizer class path"
    BASE: ClassVar[str] = OPTIMIZER_BASE
    WHERE: ClassVar[str] = "optimizer"

    lr: float = Field(gt=0)
    weight_decay: float = Field(default=0.0, ge=0)  # unset: the optimizer's own default applies (kwargs())


class SchedulerNode(_InstantiatedNode):
    """`scheduler`: an epoch-stepped torch.optim.lr_scheduler class and its parameters."""

    KIND: ClassVar[str] = "a torch.optim.lr_scheduler scheduler class path"
    BASE: ClassVar[str] = SCHEDULER_BASE
    WHERE: ClassVar[str] = "scheduler"


class TrainerNode(ConfigNode):
    """`trainer`: Lightning Trainer keyword arguments; only `max_epochs` is checked, the rest pass through."""

    model_config = ConfigDict(extra="allow")

    max_epochs: int = Field(ge=0)


class DataNode(ConfigNode):
    """`data`: the data module's arguments; only `batch_size` is checked, the rest pass through."""

    model_config = ConfigDict(extra="allow")

    batch_size: int = Field(gt=0)


class TrainingConfig(ConfigNode):
    """What every stage that trains or fine-tunes reads; other top-level keys belong to other nodes."""

    model_config = ConfigDict(extra="ignore")

    seed: int
    resume: bool = True
    export: Literal[EXPORTS] | None = "last"  # type: ignore[valid-type]
    trainer: TrainerNode
    data: DataNode
    optimizer: OptimizerNode
    scheduler: SchedulerNode | None = None

    @field_validator("scheduler", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        # `scheduler=none` composes to an empty node: a constant learning rate.
        return None if value is None or (isinstance(value, dict) and not value) else value


def validate_training(cfg: dict) -> TrainingConfig:
    """Checks shared by every stage that trains or fine-tunes; ConfigError (one line, naming the key) if bad."""
    return parse_node(TrainingConfig, plain(cfg), "")


def fingerprint(cfg: dict, ignore: tuple[str, ...] = ("paths", "logger", "hydra")) -> str:
    """Hash of the config minus the keys that do not change the result (used to decide resuming)."""
    kept = {k: v for k, v in cfg.items() if k not in ignore}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]
