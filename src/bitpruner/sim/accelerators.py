"""Accelerators as configured in ``conf/accelerator/*.yaml``: a display name, an architecture, its parameters.

One file per accelerator, e.g.::

    name: PragmaticW-bfs0        # the label in tables and metrics (unique within a run)
    arch: PragmaticW             # a design of bitpruner.sim.designs (name or alias, any case)
    lanes: 16                    # geometry: lanes, columns, rows, tiles, pe_width
    bits_first_stage: 0          # the design's options: bits_first_stage, column_registers, booth, ...

`booth` is SimParams' `booth_encoding`; `tactical: true` maps a base design to its BitTactical form. The node
is a typed config node (`AcceleratorNode`, strict); an option the design does not take is refused unless it
is at its default (the registry says which design takes which option).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bitpruner.errors import ConfigError
from bitpruner.schema import parse_node
from bitpruner.sim.designs import Design, check_options, design_of
from bitpruner.sim.params import SimParams

BOOTH_KEY = "booth"  # the config's short name for booth_encoding


class AcceleratorNode(SimParams):
    """One accelerator config node: a label, a design and the SimParams fields."""

    name: str | None = None
    arch: str
    tactical: bool = False


@dataclass(frozen=True)
class Accelerator:
    name: str
    arch: str
    params: SimParams

    @property
    def design(self) -> Design:
        """The registry record of `arch`."""
        return design_of(self.arch)

    def describe(self) -> dict:
        """Flat description for tables and run parameters."""
        return {"accelerator": self.name, "arch": self.arch, **self.params.to_dict()}


def _allowed_keys() -> list[str]:
    return sorted(set(AcceleratorNode.model_fields) | {BOOTH_KEY})


def accelerator_from_config(cfg: Mapping, where: str = "accelerator") -> Accelerator:
    """Build an Accelerator from one config node.

    Raises ConfigError (one line naming `where` and the key) for unknown keys, bad values, an unknown
    design, or an option the design does not take.
    """
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"{where}: expected a mapping with name, arch and parameters, got {cfg!r}")
    data = dict(cfg)
    unknown = sorted(set(data) - set(_allowed_keys()))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; expected some of {_allowed_keys()}")
    short = BOOTH_KEY in data
    if short:
        if "booth_encoding" in data:
            raise ConfigError(f"{where}: give one of booth and booth_encoding (the same option), not both")
        data["booth_encoding"] = data.pop(BOOTH_KEY)
    try:
        node = parse_node(AcceleratorNode, data, where)
    except ConfigError as exc:
        if not short:
            raise
        raise ConfigError(str(exc).replace(f"{where}.booth_encoding:", f"{where}.{BOOTH_KEY}:", 1)) from None
    try:
        design = design_of(node.arch, tactical=node.tactical)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    params = SimParams.parse(node.model_dump(include=set(SimParams.model_fields)), where)
    check_options(design, params, where)
    return Accelerator(name=node.name or design.name, arch=design.name, params=params)


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
