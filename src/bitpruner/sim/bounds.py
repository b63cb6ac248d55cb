"""Up-front bounds for simulating a trace: what a layer's simulation will allocate, checked before it runs.

The engine allocates arrays sized by the layer and the geometry (padded input x lanes, windows x buffer rows,
the BitTactical schedule, per-tile step plans); a pad of 100000 or ``--tiles 1000000000`` asks for hundreds of
GiB and used to die in numpy's ``ArrayMemoryError``. :func:`layer_bytes` estimates, from shapes only, the
largest of those allocations (an upper bound of the engine's int64 arrays and Python lists, not an exact
figure), and :func:`check_memory` refuses a layer beyond a limit with one line that gives the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from bitpruner.errors import TraceError
from bitpruner.sim.traces import LayerTrace, NetworkTrace

GIB = 1 << 30
DEFAULT_MEMORY_LIMIT_GIB = 8.0  # far above any real layer (a VGG-16 conv layer at 224x224 needs ~0.2 GiB)
VALUE_BYTES = 8  # the engine computes in int64
FC_TIMER_BYTES = 36  # one fc column timer: a Python int in a list slot
MAP_ENTRY_BYTES = 128  # one BitTactical search-map entry: a tuple of two ints in a list, then a numpy row
# Copies of the padded input the activation-side costs hold at once (values, magnitudes or bit counts and their
# temporaries: ShapeShifter holds about five).
ACT_COPIES = 6
# Arrays of a filter-set group's weight-buffer rows (rows, magnitudes, popcounts and their temporaries).
WEIGHT_COPIES = 6
# Window x row arrays of gather_rows (x and y indices, the gathered values, their transposed copy).
WINDOW_COPIES = 4
# Per-slot arrays of the BitTactical schedule (padded weights, schedule, source rows/lanes, activation tuples) and
# of its lane patterns (one per busy tile x filter x lane and step: keys, indices, masks and their sorted copies).
SCHEDULE_COPIES = 32


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class LayerFootprint:
    """Sizes (in values) that drive a layer's allocations, and their total in bytes."""

    padded_input: tuple[int, int, int]  # Xp, Yp, channels rounded up to whole lanes
    windows: int  # output windows rounded up to whole window sets
    rows: int  # weight-buffer rows T
    filter_groups: int
    total_bytes: int
    largest: str  # the term that dominates, in words (for the error message)


def layer_bytes(layer: LayerTrace, params, scheduled: bool = False) -> LayerFootprint:
    """Estimate the bytes simulating `layer` with `params` (a SimParams) allocates at once.

    `scheduled`: the design runs on BitTactical's weight schedule (its per-set arrays and per-tile step
    plans count too). Shapes only; Python ints throughout, so absurd sizes cannot overflow.
    """
    lanes, cols, rows, tiles = params.lanes, params.columns, params.rows, params.tiles
    w, a = layer.weights.shape, layer.activations.shape
    if layer.type == "fc":
        k, c = w
        kx = ky = xp = yp = 1
    else:
        k, c, kx, ky = w
        xp, yp = a[2] + 2 * layer.pad, a[3] + 2 * layer.pad
    nch = _ceil_div(c, lanes)
    cpad = nch * lanes
    t = nch * kx * ky
    n_win = ((xp - kx) // layer.stride + 1) * ((yp - ky) // layer.stride + 1)
    ws = _ceil_div(n_win, cols)
    groups = _ceil_div(_ceil_div(k, rows), tiles)
    padded_cols = _ceil_div(cols, params.group_size) * params.group_size  # ShapeShifter pads to whole groups
    terms = {
        f"padded input {xp} x {yp} x {cpad} channels": ACT_COPIES * xp * yp * cpad,
        f"{ws * cols} windows x {t} buffer rows": WINDOW_COPIES * ws * cols * t + 3 * n_win + ws * cols * cpad,
        f"{min(k, rows * tiles)} filters x {t} rows x {lanes} lanes": WEIGHT_COPIES * min(k, rows * tiles) * t * lanes,
        f"{ws} window sets x {groups} filter-set groups x {t} steps x {padded_cols} columns":
            2 * ws * groups * t * (cols + padded_cols),
        f"{params.column_registers} column registers": params.column_registers,
    }
    if layer.type == "fc":
        terms[f"{cols} fc column timers"] = cols * FC_TIMER_BYTES // VALUE_BYTES
    if scheduled:
        sets = _ceil_div(k, rows)
        terms[f"{sets} filter sets x {rows} rows x {t} buffer rows x {lanes} lanes"] = (
            SCHEDULE_COPIES * sets * rows * t * lanes)
        # Per filter-set group and step: a list (8-byte slots) and an array of one buffer row per tile, plus the
        # per-tile counters.
        terms[f"{groups} filter-set groups x {t + 1} steps x {tiles} tiles"] = 3 * groups * (t + 1) * tiles
        entries = params.lookahead + params.lookaside
        terms[f"{entries} search-map entries"] = entries * MAP_ENTRY_BYTES // VALUE_BYTES
    largest = max(terms, key=terms.get)
    return LayerFootprint((xp, yp, cpad), ws * cols, t, groups, VALUE_BYTES * sum(terms.values()), largest)


def _size(n_bytes: int) -> str:
    """Bytes in GiB (or MiB / KiB below one GiB / MiB), e.g. '41,166.9 GiB', '3.2 MiB'."""
    for unit, scale in (("GiB", GIB), ("MiB", 1 << 20)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:,.1f} {unit}"
    return f"{n_bytes / 1024:,.1f} KiB"


def check_memory(trace: NetworkTrace, params, scheduled: bool = False,
                 limit_gib: float = DEFAULT_MEMORY_LIMIT_GIB) -> None:
    """Raise TraceError for the first layer whose :func:`layer_bytes` exceeds `limit_gib` GiB, with the numbers."""
    for layer in trace.layers:
        fp = layer_bytes(layer, params, scheduled)
        if fp.total_bytes > limit_gib * GIB:
            raise TraceError(
                f"layer {layer.name!r}: simulating it needs about {_size(fp.total_bytes)} (mostly "
                f"{fp.largest}; stride {layer.stride}, pad {layer.pad}), beyond the {limit_gib:g} GiB limit; "
                f"check the layer's geometry and the simulator's, or raise --memory-limit"
            )
