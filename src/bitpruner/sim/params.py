"""Simulator parameters (DNNsim's defaults), a typed config node.

Which design takes which option is the registry's business (`bitpruner.sim.designs`); `ARCHS` and
`resolve_arch` are re-exported here for older imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from bitpruner.schema import ConfigNode, parse_node

MAX_PE_WIDTH = 16  # traces hold 16-bit two's complement values
GEOMETRY_FIELDS = ("lanes", "columns", "rows", "tiles", "pe_width")
# Per-design options; a design lists the ones it takes in its registry record.
OPTION_FIELDS = (
    "bits_first_stage",
    "column_registers",
    "booth_encoding",
    "group_size",
    "pe_serial_bits",
    "lookahead",
    "lookaside",
)
WHERE = "simulator"  # default prefix of SimParams errors


class SimParams(ConfigNode):
    """Geometry and per-design options; defaults are DNNsim's.

    Strict (no ``"4"`` or ``True`` for an integer), closed (unknown keys refused) and frozen. Values from a
    user (CLI flags, config files) go through :meth:`parse`, which raises ConfigError with one line naming the
    key, e.g. ``simulator.lanes: got 0, expected an integer >= 1``; ``SimParams(...)`` in code raises
    pydantic's ValidationError.
    """

    lanes: int = Field(16, ge=1, description="multipliers per PE (weights/activations per step)")
    columns: int = Field(16, ge=1, description="PE columns = windows in lock-step")
    rows: int = Field(16, ge=1, description="PE rows = filters per tile")
    tiles: int = Field(16, ge=1, description="tiles = filter sets in lock-step")
    pe_width: int = Field(16, ge=1, le=MAX_PE_WIDTH, description="PE bit width; precisions may not exceed it")
    bits_first_stage: int = Field(0, ge=0, description="first-stage shifter bits of the two-stage shifter")
    column_registers: int = Field(0, ge=0, description="run-ahead registers per column (conv only)")
    booth_encoding: bool = Field(False, description="DNNsim's booth-like recoding of the serial operand")
    group_size: int = Field(1, ge=1, description="ShapeShifter columns per precision group")
    pe_serial_bits: int = Field(1, ge=1, description="Loom activation bits per PE cycle")
    lookahead: int = Field(2, ge=0, description="BitTactical lookahead h (rows ahead)")
    lookaside: int = Field(5, ge=0, description="BitTactical lookaside d (lanes aside)")

    @classmethod
    def parse(cls, data: Mapping[str, Any], where: str = WHERE) -> SimParams:
        """Validate user-given values (ConfigError, one line naming `where`.key, for the first bad one)."""
        return parse_node(cls, data, where)

    def to_dict(self) -> dict:
        """Every field by name (plain Python values)."""
        return self.model_dump()

    def changed_options(self) -> dict[str, Any]:
        """The per-design options that differ from their defaults, in OPTION_FIELDS order."""
        fields = type(self).model_fields
        return {n: getattr(self, n) for n in OPTION_FIELDS if getattr(self, n) != fields[n].default}


_FROM_REGISTRY = ("ARCHS", "TACTICAL_OF", "resolve_arch")


def __getattr__(name: str):
    # Lazy: the registry imports the cost modules, which must not depend on this module at import time.
    if name in _FROM_REGISTRY:
        from bitpruner.sim import designs

        return getattr(designs, name)
    raise AttributeError(f"module 'bitpruner.sim.params' has no attribute {name!r}")
