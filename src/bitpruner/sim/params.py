"""Simulator parameters (DNNsim's defaults): one table of fields, a typed config node built from it, and a
light twin for the `bitpruner sim` command line.

``FIELDS`` names every parameter with its type, default and bounds. ``SimParams`` is the typed config node
(pydantic, via ``bitpruner.schema``) built from that table; everything that validates configs uses it. It
is built on first use: importing pydantic and building the node costs ~0.14 s of CPU, a third of a small
`bitpruner sim` run (issue 14, README "Simulator speed"), so the command line validates its few flags with
:func:`parse_flags`, which accepts exactly what ``SimParams.parse`` accepts, returns a :class:`SimValues`
(the same values and the part of the node's interface the simulator uses) and hands anything it would not
accept to ``SimParams.parse`` for the one-line error; pydantic then loads only to word that error.

Which design takes which option is the registry's business (`bitpruner.sim.designs`); `ARCHS` and
`resolve_arch` are re-exported here for older imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

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
    # Bitlet / BitWave / BitVert (spec: new_designs.md, sections 2.2, 2.3 and Decisions 1-2)
    "dataflow_choice",
    "bidirectional",
    "multipliers",
    "drop_sign_extension",
    "fixed_precision",
)
WHERE = "simulator"  # default prefix of SimParams errors


class Spec(NamedTuple):
    """One parameter: its type (int or bool, strict), default, inclusive bounds, whether null is allowed."""

    kind: type
    default: Any
    description: str
    ge: int | None = None
    le: int | None = None
    optional: bool = False  # None (null in a config) allowed; `default` may then be None

    def accepts(self, value: Any) -> bool:
        """Whether SimParams takes `value` for this field: exact type (no bool for an int, no "4"), bounds."""
        if value is None:
            return self.optional
        if type(value) is not self.kind:
            return False
        return (self.ge is None or value >= self.ge) and (self.le is None or value <= self.le)


FIELDS: dict[str, Spec] = {
    "lanes": Spec(int, 16, "multipliers per PE (weights/activations per step)", ge=1),
    "columns": Spec(int, 16, "PE columns = windows in lock-step", ge=1),
    "rows": Spec(int, 16, "PE rows = filters per tile", ge=1),
    "tiles": Spec(int, 16, "tiles = filter sets in lock-step", ge=1),
    "pe_width": Spec(int, 16, "PE bit width; precisions may not exceed it", ge=1, le=MAX_PE_WIDTH),
    "bits_first_stage": Spec(int, 0, "first-stage shifter bits of the two-stage shifter", ge=0),
    "column_registers": Spec(int, 0, "run-ahead registers per column (conv only)", ge=0),
    "booth_encoding": Spec(bool, False, "DNNsim's booth-like recoding of the serial operand"),
    "group_size": Spec(int, 1, "ShapeShifter columns per precision group", ge=1),
    "pe_serial_bits": Spec(int, 1, "Loom activation bits per PE cycle", ge=1),
    "lookahead": Spec(int, 2, "BitTactical lookahead h (rows ahead)", ge=0),
    "lookaside": Spec(int, 5, "BitTactical lookaside d (lanes aside)", ge=0),
    "dataflow_choice": Spec(bool, False, "BitWave: min over BitSim's seven (lanes, rows, columns)"),
    "bidirectional": Spec(bool, True, "BitVert: a column costs its minority of ones or zeros"),
    "multipliers": Spec(int, None, "BitVert: column bits per cycle m (null: lanes // 2)", ge=1, optional=True),
    "drop_sign_extension": Spec(int, 3, "BitVert: sign-extension columns skipped, at most", ge=0, le=7),
    "fixed_precision": Spec(int, 0, "BitVert: constant cycles per step (0: data-aware)", ge=0, le=8),
}

_SIM_PARAMS_DOC = """Geometry and per-design options (``FIELDS``); defaults are DNNsim's.

    Strict (no ``"4"`` or ``True`` for an integer), closed (unknown keys refused) and frozen. Values from a
    user (CLI flags, config files) go through :meth:`parse`, which raises ConfigError with one line naming the
    key, e.g. ``simulator.lanes: got 0, expected an integer >= 1``; ``SimParams(...)`` in code raises
    pydantic's ValidationError.
    """


def _changed_options(params) -> dict[str, Any]:
    """The per-design options that differ from their defaults, in OPTION_FIELDS order."""
    return {n: getattr(params, n) for n in OPTION_FIELDS if getattr(params, n) != FIELDS[n].default}


class SimValues:
    """SimParams' values as :func:`parse_flags` accepted them, without pydantic (the `bitpruner sim` path).

    Frozen; every field of ``FIELDS`` as an attribute, and the part of SimParams' interface the simulator and
    the registry use: ``model_fields`` (name -> Spec, whose ``default`` is the field's), ``model_copy(update=)``
    (no validation, as pydantic's), ``model_dump``/``to_dict``, ``changed_options``. Equal to another
    SimValues with the same values.
    """

    __slots__ = tuple(FIELDS)
    model_fields = FIELDS

    def __init__(self, values: Mapping[str, Any] | None = None):
        values = dict(values or {})
        unknown = sorted(set(values) - set(FIELDS))
        if unknown:
            raise TypeError(f"SimValues: unknown field(s) {', '.join(unknown)}")
        for name, spec in FIELDS.items():
            object.__setattr__(self, name, values.get(name, spec.default))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"SimValues is frozen: cannot set {name}")

    def model_copy(self, update: Mapping[str, Any] | None = None) -> SimValues:
        """A copy with `update`'s fields replaced (unchecked, like pydantic's model_copy)."""
        return SimValues({**self.model_dump(), **(update or {})})

    def model_dump(self) -> dict[str, Any]:
        """Every field by name (plain Python values)."""
        return {n: getattr(self, n) for n in FIELDS}

    to_dict = model_dump
    changed_options = _changed_options

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SimValues) and self.model_dump() == other.model_dump()

    def __hash__(self) -> int:
        return hash(tuple(self.model_dump().values()))

    def __repr__(self) -> str:
        return f"SimValues({', '.join(f'{k}={v!r}' for k, v in self.model_dump().items())})"

    def __reduce__(self):
        return (SimValues, (self.model_dump(),))


def parse_flags(data: Mapping[str, Any], where: str = WHERE) -> SimValues:
    """Validate user-given values as ``SimParams.parse`` does, without loading pydantic when they are valid.

    `data` maps field names to values (missing fields take their defaults). Values ``SimParams`` accepts give a
    :class:`SimValues`; anything else (unknown key, wrong type, out of bounds) goes to ``SimParams.parse``,
    which raises ConfigError with its one line naming `where`.key (should it accept what ``Spec.accepts``
    refused, its values are returned as a SimValues all the same).
    """
    if isinstance(data, Mapping) and all(k in FIELDS and FIELDS[k].accepts(v) for k, v in data.items()):
        return SimValues(data)
    return SimValues(SimParams.parse(data, where).model_dump())


def _build_model() -> type:
    """The pydantic node ``SimParams``: one field per ``FIELDS`` entry (same type, default, bounds)."""
    from pydantic import Field

    from bitpruner.schema import ConfigNode, parse_node

    def parse(cls, data: Mapping[str, Any], where: str = WHERE):
        """Validate user-given values (ConfigError, one line naming `where`.key, for the first bad one)."""
        return parse_node(cls, data, where)

    def to_dict(self) -> dict:
        """Every field by name (plain Python values)."""
        return self.model_dump()

    def __reduce_ex__(self, protocol):
        # Pickles by value through `_restore`: a fresh process finds the lazy `SimParams`, not this class.
        if type(self) is not model:
            return super(model, self).__reduce_ex__(protocol)
        return (_restore, (self.model_dump(), sorted(self.model_fields_set)))

    annotations = {n: (s.kind | None if s.optional else s.kind) for n, s in FIELDS.items()}
    namespace = {n: Field(s.default, ge=s.ge, le=s.le, description=s.description) for n, s in FIELDS.items()}
    namespace.update(__module__=__name__, __qualname__="SimParams", __doc__=_SIM_PARAMS_DOC,
                     __annotations__=annotations, parse=classmethod(parse), to_dict=to_dict,
                     changed_options=_changed_options, __reduce_ex__=__reduce_ex__)
    model = type(ConfigNode)("SimParams", (ConfigNode,), namespace)
    return model


def _restore(values: dict[str, Any], fields_set: list[str]):
    """A pickled SimParams (see `_build_model`)."""
    return _LazyModel._built().model_construct(_fields_set=set(fields_set), **values)


class _LazyModel:
    """Stands for the class ``SimParams`` until it is first used, then for ever forwards to it.

    Importing this module (as the registry and the engine do) loads no pydantic. Calling it, reading a
    class attribute (``SimParams.parse``, ``SimParams.model_fields``), subclassing it, ``isinstance`` /
    ``issubclass`` and ``SimParams | None`` build the node once and use it; from then on the module's own
    ``SimParams`` is the node itself (modules that imported the name earlier keep this forwarder).
    """

    _node: type | None = None

    def __init__(self):
        # What introspection (help(), repr of annotations) shows: the node's own names, without building it.
        self.__name__ = self.__qualname__ = "SimParams"
        self.__module__ = __name__
        self.__doc__ = _SIM_PARAMS_DOC

    @classmethod
    def _built(cls) -> type:
        """The node, built on the first call."""
        if cls._node is None:
            cls._node = _build_model()
            globals()["SimParams"] = cls._node  # later imports (and pickle's class lookups) get the node
        return cls._node

    def __call__(self, *args, **kwargs):
        return self._built()(*args, **kwargs)

    def __getattr__(self, name: str):
        if name.startswith("__"):  # protocol probes (typing's, copy's) must not build the node
            raise AttributeError(name)
        return getattr(self._built(), name)

    def __mro_entries__(self, bases):
        return (self._built(),)

    def __instancecheck__(self, obj) -> bool:
        return isinstance(obj, self._built())

    def __subclasscheck__(self, cls) -> bool:
        return issubclass(cls, self._built())

    def __or__(self, other):
        return self._built() | other

    def __ror__(self, other):
        return other | self._built()

    def __repr__(self) -> str:
        return f"<class '{__name__}.SimParams'>"


SimParams: Any = _LazyModel()

_FROM_REGISTRY = ("ARCHS", "TACTICAL_OF", "resolve_arch")


def __getattr__(name: str):
    # Lazy: the registry imports the cost modules, which must not depend on this module at import time.
    if name in _FROM_REGISTRY:
        from bitpruner.sim import designs

        return getattr(designs, name)
    raise AttributeError(f"module 'bitpruner.sim.params' has no attribute {name!r}")
