"""Simulator parameters and architecture names (DNNsim's defaults)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from bitpruner.errors import ConfigError

# Canonical names; DNNsim's own names where DNNsim has the design.
ARCHS = (
    "DaDianNao",
    "Stripes",
    "BitPragmatic",
    "Laconic",
    "ShapeShifter",
    "Loom",
    "BitTactical",
    "BitTacticalE",
    "BitTacticalP",
    "PragmaticW",
)
# `--tactical` turns these base designs into their BitTactical variants, as DNNsim's `tactical: true` does.
TACTICAL_OF = {"DaDianNao": "BitTactical", "BitPragmatic": "BitTacticalE", "ShapeShifter": "BitTacticalP"}
TACTICAL_ARCHS = frozenset(TACTICAL_OF.values())
# Architectures whose column-register option DNNsim (or our spec, for PragmaticW) models.
COLUMN_REGISTER_ARCHS = frozenset({"BitPragmatic", "ShapeShifter", "PragmaticW", "BitTacticalE", "BitTacticalP"})
# Booth recoding acts on these designs' serial operands.
BOOTH_ARCHS = frozenset({"BitPragmatic", "Laconic", "PragmaticW", "BitTacticalE"})


@dataclass(frozen=True)
class SimParams:
    """Geometry and per-design options; defaults are DNNsim's."""

    lanes: int = 16
    columns: int = 16
    rows: int = 16
    tiles: int = 16
    pe_width: int = 16
    bits_first_stage: int = 0
    column_registers: int = 0
    booth_encoding: bool = False
    group_size: int = 1
    pe_serial_bits: int = 1
    lookahead: int = 2
    lookaside: int = 5

    def __post_init__(self) -> None:
        for name in ("lanes", "columns", "rows", "tiles", "pe_width", "group_size", "pe_serial_bits"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"simulator {name}={value!r}: expected an integer >= 1")
        if self.pe_width > 16:
            raise ConfigError(f"simulator pe_width={self.pe_width}: expected <= 16 (16-bit traces)")
        for name in ("bits_first_stage", "column_registers", "lookahead", "lookaside"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"simulator {name}={value!r}: expected an integer >= 0")

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_arch(name: str, tactical: bool = False) -> str:
    """Canonical architecture name (case-insensitive); `tactical` maps a base design to its BitTactical form."""
    by_lower = {a.lower(): a for a in ARCHS}
    arch = by_lower.get(str(name).lower())
    if arch is None:
        raise ConfigError(f"simulator arch={name!r}: expected one of {', '.join(ARCHS)}")
    if tactical and arch not in TACTICAL_ARCHS:
        if arch not in TACTICAL_OF:
            raise ConfigError(
                f"simulator arch={arch} with tactical: expected one of {', '.join(TACTICAL_OF)}"
            )
        arch = TACTICAL_OF[arch]
    return arch
