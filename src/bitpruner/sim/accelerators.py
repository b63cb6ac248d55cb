"""Accelerators as configured in ``conf/accelerator/*.yaml``: a display name, an architecture, its parameters.

One file per accelerator, e.g.::

    name: PragmaticW-bfs0        # the label in tables and metrics (unique within a run)
    arch: PragmaticW             # one of bitpruner.sim.params.ARCHS (any case)
    lanes: 16                    # geometry: lanes, columns, rows, tiles, pe_width
    bits_first_stage: 0          # options: bits_first_stage, column_registers, booth, tactical, ...

`booth` is SimParams' `booth_encoding`; `tactical: true` maps a base design to its BitTactical form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from bitpruner.errors import ConfigError
from bitpruner.sim.params import SimParams, resolve_arch

_RENAMED = {"booth": "booth_encoding"}
_LABEL_KEYS = ("name", "arch", "tactical")
_PARAM_KEYS = tuple(f.name for f in fields(SimParams))


@dataclass(frozen=True)
class Accelerator:
    name: str
    arch: str
    params: SimParams

    def describe(self) -> dict:
        """Flat description for tables and run parameters."""
        return {"accelerator": self.name, "arch": self.arch, **self.params.to_dict()}


def accelerator_from_config(cfg: Mapping, where: str = "accelerator") -> Accelerator:
    """Build an Accelerator from one config node; unknown keys and bad values are ConfigErrors naming `where`."""
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"{where}: expected a mapping with name, arch and parameters, got {cfg!r}")
    allowed = set(_LABEL_KEYS) | set(_PARAM_KEYS) | set(_RENAMED)
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(allowed)}")
    if "arch" not in cfg:
        raise ConfigError(f"{where}: missing 'arch'")
    try:
        arch = resolve_arch(cfg["arch"], tactical=bool(cfg.get("tactical", False)))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    kwargs = {_RENAMED.get(k, k): v for k, v in cfg.items() if k not in _LABEL_KEYS}
    if "booth_encoding" in kwargs and not isinstance(kwargs["booth_encoding"], bool):
        raise ConfigError(f"{where}.booth: got {kwargs['booth_encoding']!r}, expected true or false")
    try:
        params = SimParams(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    name = str(cfg.get("name") or arch)
    return Accelerator(name=name, arch=arch, params=params)


def accelerators_from_config(cfg: Mapping, where: str = "accelerators") -> list[Accelerator]:
    """A mapping of config nodes (as the `accelerator@accelerators.<key>` defaults produce), in order."""
    if not isinstance(cfg, Mapping) or not cfg:
        raise ConfigError(f"{where}: expected at least one accelerator (a mapping key -> accelerator config)")
    accels = [accelerator_from_config(node, f"{where}.{key}") for key, node in cfg.items()]
    names = [a.name for a in accels]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{where}: accelerator name(s) {dupes} used more than once; names label the tables")
    return accels
