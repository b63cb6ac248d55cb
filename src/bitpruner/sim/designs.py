"""The design registry: one frozen record per architecture the simulator models.

In the spirit of DNNsim's ``core/include/core/Architecture.h`` (one class per design over a shared tiling and
dataflow), each :class:`Design` names what differs between designs and nothing else: its canonical name and
aliases, which operand is bit-serial, which options it takes, the BitTactical form ``tactical`` turns it
into, its engine cost (``costs.py``) and its plain-Python reference cost (``reference.py``). The engine
(`LayerSimulator.cycles`), the reference, `resolve_arch`, the option checks, the CLI and the accelerator
configs all read this module; nothing else tests architecture names.

Adding a design: one record in ``DESIGNS``, one engine cost in ``costs.py``, one per-PE reference cost in
``reference.py``, tests (docs/simulator.md shows an example).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from bitpruner.errors import ConfigError
from bitpruner.sim import costs, reference, weight_columns
from bitpruner.sim.params import OPTION_FIELDS, WHERE, SimParams

if TYPE_CHECKING:
    from bitpruner.sim.engine import LayerSimulator

# Option names (SimParams fields) as the records use them.
BITS_FIRST_STAGE, COLUMN_REGISTERS, BOOTH_ENCODING = "bits_first_stage", "column_registers", "booth_encoding"
GROUP_SIZE, PE_SERIAL_BITS, LOOKAHEAD, LOOKASIDE = "group_size", "pe_serial_bits", "lookahead", "lookaside"
DATAFLOW_CHOICE, BIDIRECTIONAL, MULTIPLIERS = "dataflow_choice", "bidirectional", "multipliers"
DROP_SIGN_EXTENSION, FIXED_PRECISION = "drop_sign_extension", "fixed_precision"
_TACTICAL_OPTIONS = frozenset({LOOKAHEAD, LOOKASIDE})


class Serial(StrEnum):
    """Which operand a design processes bit-serially."""

    NONE = "none"  # bit-parallel
    ACTIVATIONS = "activations"
    WEIGHTS = "weights"
    BOTH = "both"

    @property
    def operands(self) -> tuple[str, ...]:
        """LayerTrace attributes holding the serial operands (what Booth recoding acts on)."""
        return {
            Serial.NONE: (),
            Serial.ACTIVATIONS: ("activations",),
            Serial.WEIGHTS: ("weights",),
            Serial.BOTH: ("activations", "weights"),
        }[self]


EngineCost = Callable[["LayerSimulator", int], int]
ReferenceCost = Callable[["reference.PEContext", int, int, int, int], int]
OptionCheck = Callable[[SimParams, str], None]


@dataclass(frozen=True)
class Design:
    """One architecture: what the engine, the reference and the config checks need to know about it.

    ``options`` are the per-design SimParams fields it takes (geometry fields apply to every design); the
    others must stay at their defaults. Derived facts: a design that takes ``lookahead``/``lookaside`` runs
    on BitTactical's weight schedule; one that takes ``group_size`` merges columns into ShapeShifter's
    groups under column registers; a bit-parallel one counts a cycle per fc step. ``weight_bits`` (Bitlet,
    BitWave, BitVert: 8) makes the engine, the reference and the CLI refuse wider weights (`check_weights`);
    ``check`` refuses combinations of the design's own options (`check_options` calls it).
    """

    name: str
    summary: str
    serial: Serial
    options: frozenset[str]
    cost: EngineCost  # engine: (LayerSimulator, sample) -> compute_cycles of the layer
    reference_cost: ReferenceCost  # reference: (PEContext, window, filter set, filter, row) -> PE cycles
    aliases: tuple[str, ...] = ()
    tactical: str | None = None  # the design `tactical: true` turns this one into
    in_dnnsim: bool = True  # DNNsim models it (its numbers must match DNNsim's)
    weight_bits: int | None = None  # the only weight width it is defined for (wider weights refused), if any
    check: OptionCheck | None = None  # combinations of its options: (params, where) -> None or ConfigError
    keys: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        unknown = sorted(self.options - set(OPTION_FIELDS))
        if unknown:
            raise ValueError(f"design {self.name}: options {unknown} are not SimParams options")
        object.__setattr__(self, "keys", tuple(_key(n) for n in (self.name, *self.aliases)))

    def takes(self, option: str) -> bool:
        """Whether `option` (a SimParams field name) may differ from its default for this design."""
        return option in self.options

    @property
    def scheduled(self) -> bool:
        """Weights rescheduled by BitTactical (zero-weight skipping) before the run."""
        return _TACTICAL_OPTIONS <= self.options

    @property
    def column_groups(self) -> bool:
        """Columns merged into ShapeShifter's precision groups (with DNNsim's trailing-group quirk)."""
        return self.takes(GROUP_SIZE)

    @property
    def fc_counts_steps(self) -> bool:
        """Bit-parallel: an fc layer costs one cycle per step (no per-column pipelining)."""
        return self.serial is Serial.NONE


def _key(name: str) -> str:
    """Lookup key: case, '-', '_' and spaces do not matter ("bit-pragmatic" is BitPragmatic)."""
    return "".join(ch for ch in str(name).casefold() if ch not in "-_ ")


_SHIFTER = frozenset({BITS_FIRST_STAGE, COLUMN_REGISTERS, BOOTH_ENCODING})

DESIGNS: tuple[Design, ...] = (
    Design("DaDianNao", "bit-parallel baseline, one cycle per step", Serial.NONE, frozenset(),
           costs.dadiannao, reference.dadiannao, aliases=("DaDN",), tactical="BitTactical"),
    Design("Stripes", "activations serial at the layer's precision", Serial.ACTIVATIONS, frozenset(),
           costs.stripes, reference.stripes, aliases=("STR",)),
    Design("BitPragmatic", "activations serial over their one bits (two-stage shifter)", Serial.ACTIVATIONS,
           _SHIFTER, costs.bitpragmatic, reference.bitpragmatic, aliases=("Pragmatic", "PRA"),
           tactical="BitTacticalE"),
    Design("Laconic", "both operands serial over their one bits", Serial.BOTH, frozenset({BOOTH_ENCODING}),
           costs.laconic, reference.laconic, aliases=("LAC",)),
    Design("ShapeShifter", "activations serial at a per-window dynamic precision", Serial.ACTIVATIONS,
           frozenset({COLUMN_REGISTERS, GROUP_SIZE}), costs.shapeshifter, reference.shapeshifter,
           tactical="BitTacticalP"),
    Design("Loom", "dynamic activation precision x weight precision", Serial.BOTH, frozenset({PE_SERIAL_BITS}),
           costs.loom, reference.loom, aliases=("LM",)),
    Design("BitTactical", "DaDianNao on BitTactical's zero-weight-skipping schedule", Serial.NONE,
           _TACTICAL_OPTIONS, costs.bittactical, reference.bittactical),
    Design("BitTacticalE", "BitPragmatic on BitTactical's schedule", Serial.ACTIVATIONS,
           _TACTICAL_OPTIONS | _SHIFTER, costs.bittactical_e, reference.bittactical_e, aliases=("TCLe",)),
    Design("BitTacticalP", "ShapeShifter on BitTactical's schedule", Serial.ACTIVATIONS,
           _TACTICAL_OPTIONS | {COLUMN_REGISTERS, GROUP_SIZE}, costs.bittactical_p, reference.bittactical_p,
           aliases=("TCLp",)),
    Design("PragmaticW", "weights serial over their one bits (bits_first_stage 0: bit-column engine)",
           Serial.WEIGHTS, _SHIFTER, costs.pragmatic_w, reference.pragmatic_w, in_dnnsim=False),
    # 8-bit weight-serial bit-column designs (spec: new_designs.md; costs in weight_columns.py)
    Design("Bitlet", "8-bit weights by two's complement columns: the busiest column", Serial.WEIGHTS,
           frozenset(), costs.bitlet, reference.bitlet, in_dnnsim=False, weight_bits=weight_columns.WEIGHT_BITS),
    Design("BitWave", "8-bit weights by sign-magnitude columns: all-zero columns skipped", Serial.WEIGHTS,
           frozenset({DATAFLOW_CHOICE}), costs.bitwave, reference.bitwave, in_dnnsim=False,
           weight_bits=weight_columns.WEIGHT_BITS),
    Design("BitVert", "8-bit weights by columns with bi-directional bit sparsity (BBS)", Serial.WEIGHTS,
           frozenset({BIDIRECTIONAL, MULTIPLIERS, DROP_SIGN_EXTENSION, FIXED_PRECISION}), costs.bitvert,
           reference.bitvert, aliases=("BBS",), in_dnnsim=False, weight_bits=weight_columns.WEIGHT_BITS,
           check=weight_columns.check_bitvert),
)

ARCHS: tuple[str, ...] = tuple(d.name for d in DESIGNS)
TACTICAL_OF: dict[str, str] = {d.name: d.tactical for d in DESIGNS if d.tactical}


def _index(designs: tuple[Design, ...]) -> dict[str, Design]:
    by_key: dict[str, Design] = {}
    for d in designs:
        for key in d.keys:
            if by_key.setdefault(key, d) is not d:
                raise ValueError(f"design name or alias {key!r} used by {by_key[key].name} and {d.name}")
    for base, form in TACTICAL_OF.items():
        if _key(form) not in by_key or not by_key[_key(form)].scheduled:
            raise ValueError(f"design {base}: tactical form {form!r} is not a scheduled design")
    return by_key


_BY_KEY = _index(DESIGNS)


def design_of(arch: str | Design, tactical: bool = False) -> Design:
    """The record of a name or alias (any case; '-', '_' ignored); `tactical` maps a base design to its
    BitTactical form (a BitTactical design stays itself). Raises ConfigError naming the value."""
    design = arch if isinstance(arch, Design) else _BY_KEY.get(_key(arch))
    if design is None:
        raise ConfigError(f"{WHERE} arch={arch!r}: expected one of {', '.join(ARCHS)}")
    if tactical and not design.scheduled:
        if design.tactical is None:
            raise ConfigError(f"{WHERE} arch={design.name} with tactical: expected one of {', '.join(TACTICAL_OF)}")
        design = _BY_KEY[_key(design.tactical)]
    return design


def resolve_arch(name: str, tactical: bool = False) -> str:
    """Canonical architecture name of a name or alias (see `design_of`)."""
    return design_of(name, tactical).name


def check_options(design: Design, params: SimParams, where: str = WHERE) -> None:
    """Refuse an option the design does not take unless it is at its default, and a combination of its options
    that its record's `check` refuses (ConfigError, one line)."""
    for name, value in params.changed_options().items():
        if not design.takes(name):
            default = type(params).model_fields[name].default
            takes = ", ".join(o for o in OPTION_FIELDS if design.takes(o)) or "no options"
            raise ConfigError(
                f"{where}.{name}: got {value!r}, but {design.name} does not take {name} "
                f"(it takes {takes}); leave it at {default!r}"
            )
    if design.check is not None:
        design.check(params, where)


def params_for(design: Design, params: SimParams) -> SimParams:
    """`params` with every option the design does not take reset to its default (geometry kept)."""
    fields = type(params).model_fields
    return params.model_copy(update={n: fields[n].default for n in OPTION_FIELDS if not design.takes(n)})


def check_weights(design: Design, layers) -> None:
    """Refuse weights the design is not defined for (Bitlet/BitWave/BitVert: wider than 8 bits, by value or by
    declared wgt_prec): TraceError, one line naming the first bad layer. Other designs accept any width."""
    if design.weight_bits is not None:
        for layer in layers:
            weight_columns.check_weights(layer, design.name)
