"""BitSim's flavour of the weight-serial designs, for cross-checks only (spec: new_designs.md, sections 1-3).

BitSim (github yc2367/BitSim, commit 6845fad2, ``sim/sim/{bitlet,bitwave,bitvert,pragmatic}.py``) models
Bitlet (MICRO'21), BitWave (HPCA'24), BitVert/BBS (MICRO'24) and a weight-serial Pragmatic with its own tiling
and a few quirks that our engine deliberately does not copy (the spec's decision 1): BitWave's ``- 1`` and
sign column, Pragmatic's sign term, no floor of 1 cycle, window sets that never span two output rows, an fc
tiling in which the rows' costs add up. This module reproduces BitSim's *compute* cycles exactly (the first
element of its ``calc_cycle()``; no DRAM, no energy) so that the engine can be compared with BitSim's figures
(``fixtures/bitsim/{group_costs,layers}.json``) where the two tilings agree (spec 3.3). Nothing in the
pipeline simulates with it.

Two layers of API:

- per-tile costs, pure functions of a tile's groups ``tiles[..., F, G]`` (``F`` filters of one block of up
  to ``h`` filters, ``G`` weights each; any leading axes are independent tiles): :func:`bitlet_tile_cost`,
  :func:`bitwave_tile_cost`, :func:`bitvert_tile_cost`, :func:`pragmatic_tile_cost`, or
  :func:`tile_cost` by design name;
- :func:`bitsim_tiles` (BitSim's grouping of a layer into tiles) and :func:`bitsim_layer_cycles` (its layer
  cycles: the sum of tile costs times the column tiles, BitWave's dataflow minimum and its bit-flip
  preprocessing included).

Weights are 8-bit integers in ``[-128, 127]`` (BitSim hard-wires ``w_bitwidth = 8``); anything else is refused
with one line. Pure numpy; no torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bitpruner.errors import ConfigError, TraceError
from bitpruner.prune_bits.bitlevel import bitflip
from bitpruner.sim.weight_columns import WEIGHT_BITS, WEIGHT_MAX, WEIGHT_MIN, outside_int8

INT8_MIN, INT8_MAX = WEIGHT_MIN, WEIGHT_MAX  # BitSim's w_bitwidth: every encoding is 8 bits wide
SM_MIN = INT8_MIN + 1  # sign-magnitude has no -128: BitSim reads it as -127
_BYTE = (1 << WEIGHT_BITS) - 1

# BitSim's own class names (its vocabulary, not our registry's: its Pragmatic is not our PragmaticW).
BITLET, BITWAVE, BITVERT, PRAGMATIC = "Bitlet", "BitWave", "BitVert", "Pragmatic"
DESIGN_NAMES = (BITLET, BITWAVE, BITVERT, PRAGMATIC)
BITWAVE_BITFLIP_GROUP = 32  # BitWave's `_get_quantized_weight` bit-flips groups of 32 (C when C < 32)
# BitWave's configurable dataflows, (G, h, w) = (pe_dotprod_size, pe_array h, pe_array w), in BitSim's order.
BITWAVE_DATAFLOWS: tuple[tuple[int, int, int], ...] = (
    (8, 32, 16), (16, 32, 8), (32, 32, 4), (128, 8, 1), (16, 64, 1), (32, 32, 1), (16, 1, 16),
)
BITVERT_LSB_PRUNED_COLUMNS = 2  # en_lsb_pruning: BitVert's constant drops to p - 2 columns
BITVERT_LOW_PRECISION = {True: 4, False: 6}  # en_ol_channel: p_low with / without en_eager_compression


def _key(name: str) -> str:
    return "".join(ch for ch in str(name).casefold() if ch not in "-_ ")


_DESIGN_BY_KEY = {_key(n): n for n in DESIGN_NAMES}


def design_name(design: str) -> str:
    """Canonical name of a BitSim design (case, '-', '_' and spaces ignored); ConfigError otherwise."""
    name = _DESIGN_BY_KEY.get(_key(design))
    if name is None:
        raise ConfigError(f"bitsim design={design!r}: expected one of {', '.join(DESIGN_NAMES)}")
    return name


def _int8(values, what: str) -> np.ndarray:
    """int64 copy of `values` (integers, or floats holding integers) in [-128, 127]; TraceError otherwise."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "iuf":
        raise TraceError(f"{what}: dtype {arr.dtype}; expected 8-bit integers")
    if arr.size and arr.dtype.kind == "f" and not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
        raise TraceError(f"{what}: holds non-integer values; expected 8-bit integers")
    bad = outside_int8(arr)
    if bad is not None:
        raise TraceError(f"{what}: value {bad} outside 8-bit two's complement [{INT8_MIN}, {INT8_MAX}] "
                         f"(BitSim's designs are 8-bit only)")
    return arr.astype(np.int64)


def _positive(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"bitsim {what}={value!r}: expected an integer >= 1")
    return int(value)


def _tiles(tiles, what: str = "tile") -> np.ndarray:
    arr = _int8(tiles, what)
    if arr.ndim < 2:
        raise TraceError(f"{what}: shape {arr.shape}; expected [..., filters, group] (at least 2 axes)")
    return arr


# ---------------------------------------------------------------- encodings (sim/sim/util/bin_int_convert.py)


def twos_complement_ones(tiles: np.ndarray) -> np.ndarray:
    """Ones per two's-complement column: int64 ``[..., F, 8]``, index b = bit b (b7 = the sign column).

    ``tiles[..., F, G]``: int64 8-bit values. Column b of a group is bit b of its G weights' 8-bit patterns
    (BitSim's ``int_to_twosComplement``: -1 is ``11111111``, -128 is ``10000000``).
    """
    u = tiles & _BYTE
    # one plane at a time: a [..., F, G, 8] array of bits would take 8x the layer's memory
    return np.stack([((u >> b) & 1).sum(axis=-1) for b in range(WEIGHT_BITS)], axis=-1)


def sign_magnitude(tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BitSim's sign-magnitude (``int_to_signMagnitude``): (magnitudes, negative) of ``tiles``, same shape.

    -128 has no 7-bit magnitude and is read as -127; zero has sign 0.
    """
    w = np.maximum(tiles, SM_MIN)
    return np.abs(w), w < 0


# ---------------------------------------------------------------- per-tile costs (quirks included)


def bitlet_tile_cost(tiles) -> np.ndarray:
    """Bitlet's tile cost in BitSim (``bitlet.py``): max over filters and the 8 two's-complement columns of
    the ones in the column. All-zero tile: 0 (no floor).

    ``tiles``: integers ``[..., F, G]`` in [-128, 127]; returns int64 ``[...]`` (cycles per tile).
    Raises TraceError for values outside 8 bits.
    """
    t = _tiles(tiles)
    return twos_complement_ones(t).max(axis=(-1, -2))


def bitwave_tile_cost(tiles, *, bitflip: bool = True, w_prec: int = WEIGHT_BITS) -> np.ndarray:
    """BitWave's tile cost in BitSim (``bitwave.py`` ``_count_zero_bit_column``), quirks included:

        cost = max over filters f of (nzmag(g_f) + [g_f has a negative weight]) - 1

    ``nzmag`` = number of sign-magnitude columns b6..b0 with a one (-128 read as -127); the sign plane counts
    as a column and 1 is subtracted, so an all-zero tile costs -1 and a tile without negative weights in its
    busiest filters one less than its non-zero columns. ``bitflip=False`` is BitSim's ``en_bitflip=False``:
    the constant ``w_prec - 1`` per tile.

    ``tiles``: integers ``[..., F, G]`` in [-128, 127]; returns int64 ``[...]``. Raises TraceError for values
    outside 8 bits.
    """
    t = _tiles(tiles)
    if not bitflip:
        return np.full(t.shape[:-2], int(w_prec) - 1, np.int64)
    mag, neg = sign_magnitude(t)
    nzmag = np.bitwise_count(np.bitwise_or.reduce(mag, axis=-1)).astype(np.int64)
    return (nzmag + neg.any(axis=-1)).max(axis=-1) - 1


def bitvert_tile_cost(tiles, group_size: int | None = None, *, bbs: bool = False, lsb_pruning: bool = False,
                      w_prec: int = WEIGHT_BITS) -> np.ndarray:
    """BitVert's tile cost in BitSim (``bitvert.py``).

    - ``bbs=False`` ("no BBS", ``_count_no_b2s_cycle``): with ``m = group_size / 2`` multipliers per PE,
      ``max(1, max over filters of sum over the 8 two's-complement columns of ceil(ones_b / m))``;
    - ``bbs=True``: the constant ``w_prec`` per tile (BitSim never counts bi-directional work per group);
      with ``lsb_pruning`` the constant ``w_prec - 2``.

    ``tiles``: integers ``[..., F, G']`` in [-128, 127]; ``group_size`` = the PE's dot-product size G (default
    ``G'``; a layer's last chunk may be shorter than G but ``m`` stays ``G / 2``). Returns int64 ``[...]``.
    Raises TraceError for values outside 8 bits, ConfigError for a bad group size.
    """
    t = _tiles(tiles)
    if bbs or lsb_pruning:
        return np.full(t.shape[:-2], int(w_prec) - (BITVERT_LSB_PRUNED_COLUMNS if lsb_pruning else 0), np.int64)
    g = t.shape[-1] if group_size is None else _positive(group_size, "group_size")
    if t.shape[-1] > g:
        raise ConfigError(f"bitsim BitVert: groups of {t.shape[-1]} weights exceed group_size={g}")
    # ceil(ones / (g / 2)) in integers: 2 * ones / g is exact, so it is the same ceiling as BitSim's float one.
    cols = -(-2 * twos_complement_ones(t) // g)
    return np.maximum(cols.sum(axis=-1).max(axis=-1), 1)


def pragmatic_tile_cost(tiles) -> np.ndarray:
    """BitSim's weight-serial Pragmatic tile cost (``pragmatic.py``): max over the tile's weights of
    ``popcount(|w|) + [w < 0]`` (sign-magnitude, -128 read as -127; the sign plane is summed with the
    magnitude). All-zero tile: 0. No two-stage shifter limit, no Booth.

    ``tiles``: integers ``[..., F, G]`` in [-128, 127]; returns int64 ``[...]``. Raises TraceError for values
    outside 8 bits.
    """
    t = _tiles(tiles)
    mag, neg = sign_magnitude(t)
    return (np.bitwise_count(mag).astype(np.int64) + neg).max(axis=(-1, -2))


def tile_cost(design: str, tiles, group_size: int | None = None, *, bitflip: bool = True, bbs: bool = False,
              lsb_pruning: bool = False, w_prec: int = WEIGHT_BITS) -> np.ndarray:
    """The BitSim tile cost of `design` (Bitlet, BitWave, BitVert, Pragmatic; any case): int64 ``[...]`` for
    ``tiles[..., F, G]``. Options as the per-design functions; one a design does not take must stay at its
    default (ConfigError, one line)."""
    name = design_name(design)
    _check_options(name, bitflip=bitflip, bbs=bbs, lsb_pruning=lsb_pruning, w_prec=w_prec)
    if name == BITLET:
        return bitlet_tile_cost(tiles)
    if name == BITWAVE:
        return bitwave_tile_cost(tiles, bitflip=bitflip, w_prec=w_prec)
    if name == BITVERT:
        return bitvert_tile_cost(tiles, group_size, bbs=bbs, lsb_pruning=lsb_pruning, w_prec=w_prec)
    return pragmatic_tile_cost(tiles)


_OPTION_DEFAULTS = {"bitflip": True, "bbs": False, "lsb_pruning": False, "w_prec": WEIGHT_BITS,
                    "dataflows": None, "outlier_ratio": None, "eager_compression": True}
_OPTIONS_OF = {
    BITLET: frozenset(),
    PRAGMATIC: frozenset(),
    BITWAVE: frozenset({"bitflip", "w_prec", "dataflows"}),
    BITVERT: frozenset({"bbs", "lsb_pruning", "w_prec", "outlier_ratio", "eager_compression"}),
}


def _check_options(name: str, **options) -> None:
    for option, value in options.items():
        if option not in _OPTIONS_OF[name] and value != _OPTION_DEFAULTS[option]:
            takes = ", ".join(sorted(_OPTIONS_OF[name])) or "no options"
            raise ConfigError(f"bitsim {name}: got {option}={value!r}, but {name} does not take {option} "
                              f"(it takes {takes}); leave it at {_OPTION_DEFAULTS[option]!r}")
    w_prec = options.get("w_prec", WEIGHT_BITS)
    if isinstance(w_prec, bool) or not isinstance(w_prec, (int, np.integer)) or not 1 <= w_prec <= WEIGHT_BITS:
        raise ConfigError(f"bitsim {name}: w_prec={w_prec!r}; expected an integer in [1, {WEIGHT_BITS}]")


# ---------------------------------------------------------------- BitSim's grouping of a layer


def bitsim_tiles(weights, G: int, h: int, *, depthwise: bool = False) -> np.ndarray:
    """BitSim's tiles of a layer: int64 ``[n_tiles, F, G]``, zero-padded (section 1 of the spec).

    ``weights``: PyTorch layout, conv ``[K, C, kh, kw]`` or fc ``[K, C]``, integers in [-128, 127].
    A tile is one group position with a block of up to ``h`` consecutive filters (``F = h``; the last block's
    missing filters and a short last chunk are zero, which never changes a BitSim tile cost):

    - conv with ``C >= kh*kw``: a group is G consecutive input channels of one filter at one kernel position
      (``ceil(C/G)`` chunks per position);
    - conv with ``kh*kw > C`` (first layers): G consecutive kernel positions of one input channel, positions
      in PyTorch row-major order ``p = y*kw + x`` (``ceil(kh*kw/G)`` chunks per channel);
    - fc: G consecutive input channels;
    - ``depthwise`` (BitSim's ``_calc_cycle_dwconv``, used when the input has more channels than the weights):
      every filter alone (``F = 1``, no row parallelism), chunks of kernel positions per weight channel.

    The order of the tiles is not BitSim's loop order (only their sum matters). BitSim's kernels are square;
    this accepts ``kh != kw`` with ``kh*kw`` in place of ``k**2``. Raises TraceError for bad shapes or values,
    ConfigError for a bad G or h.
    """
    G, h = _positive(G, "G"), _positive(h, "h")
    w = _int8(weights, "bitsim weights")
    if w.ndim not in (2, 4) or 0 in w.shape:
        raise TraceError(f"bitsim weights: shape {w.shape}; expected conv [K, C, kh, kw] or fc [K, C], no empty axis")
    if depthwise and w.ndim != 4:
        raise TraceError(f"bitsim weights: depthwise needs conv weights [K, C, kh, kw], got shape {w.shape}")
    K, C = w.shape[:2]
    if w.ndim == 2:
        groups = _chunk(w, G)  # [K, nch, G]
    else:
        positions = w.shape[2] * w.shape[3]
        if depthwise or positions > C:
            groups = _chunk(w.reshape(K, C, positions), G).reshape(K, -1, G)  # [K, C * chunks, G]
        else:
            groups = _chunk(w.reshape(K, C, positions).transpose(0, 2, 1), G).reshape(K, -1, G)
    if depthwise:
        h = 1
    n_blocks = -(-K // h)
    padded = np.zeros((n_blocks * h,) + groups.shape[1:], np.int64)
    padded[:K] = groups
    # [blocks, h, groups, G] -> [blocks * groups, h, G]
    return np.ascontiguousarray(padded.reshape(n_blocks, h, -1, G).transpose(0, 2, 1, 3)).reshape(-1, h, G)


def _chunk(values: np.ndarray, G: int) -> np.ndarray:
    """values[..., n] -> [..., ceil(n/G), G], the last chunk zero-padded."""
    n = values.shape[-1]
    chunks = -(-n // G)
    out = np.zeros(values.shape[:-1] + (chunks * G,), np.int64)
    out[..., :n] = values
    return out.reshape(values.shape[:-1] + (chunks, G))


def bitwave_weights(weights, w_prec: int = WEIGHT_BITS) -> np.ndarray:
    """The weights BitSim's BitWave costs (``bitwave.py`` ``_get_quantized_weight``): the layer bit-flipped with
    groups of 32 and ``N = 8 - w_prec`` (spec 4.1), whatever ``en_bitflip`` says, then read in sign-magnitude.

    ``weights``: PyTorch layout conv ``[K, C, kh, kw]`` / fc ``[K, C]``, integers in [-128, 127]. The flip is
    ``bitpruner.prune_bits.bitlevel.bitflip`` with the reference code's flat grouping (conv reordered to
    ``[K, kh, kw, C]``, flattened, cut into chunks of 32, or of ``C`` when ``C < 32``). With ``N = 0`` it only
    turns -128 into -127; at ``N = 7`` (``w_prec = 1``) BitSim's loops never reach a group either, so only
    -128 changes there too. Returns int64 of the same shape. Raises TraceError when the tensor does not cut
    into whole groups (BitSim's reshape fails there too) or for values outside 8 bits.
    """
    w = _int8(weights, "bitsim weights")
    g = min(BITWAVE_BITFLIP_GROUP, w.shape[1])
    if w.size % g:
        raise TraceError(f"bitsim BitWave weights of shape {w.shape}: {w.size} values do not cut into the "
                         f"bit-flip's groups of {g} (BitSim fails there too)")
    n = WEIGHT_BITS - int(w_prec)
    if n == WEIGHT_BITS - 1:  # BitSim's loop bounds skip every group at N = 7
        n = 0
    return np.asarray(bitflip(w, n, BITWAVE_BITFLIP_GROUP, grouping="flat"), dtype=np.int64)


# ---------------------------------------------------------------- layer cycles


def bitsim_layer_cycles(weights, design: str, G: int, h: int, w: int, *, oh: int | None = None,
                        ow: int | None = None, tokens: int = 1, depthwise: bool = False,
                        w_prec: int = WEIGHT_BITS, bitflip: bool = True,
                        dataflows: Sequence[tuple[int, int, int]] | None = None, bbs: bool = False,
                        lsb_pruning: bool = False, outlier_ratio: float | None = None,
                        eager_compression: bool = True) -> int | float:
    """BitSim's compute cycles of one layer (``_calc_cycle_conv2d`` / ``_calc_cycle_dwconv`` / ``_calc_cycle_fc``).

        conv: S * ceil(ow / w) * oh        fc: S * ceil(tokens / w)        S = sum over tiles of the tile cost

    ``weights``: PyTorch layout, conv ``[K, C, kh, kw]`` (``oh``, ``ow`` = the output's height and width:
    BitSim's column tiles never span two output rows) or fc ``[K_out, C_in]`` (``tokens`` output rows, 1 for a
    CNN classifier); integers in [-128, 127]. ``design``: Bitlet, BitWave, BitVert, Pragmatic (any case).
    ``G`` weights per PE dot product, ``h`` x ``w`` PE array (rows = filters, columns = outputs); tiles as
    :func:`bitsim_tiles` (``depthwise``: BitSim's depthwise path, one filter per tile).

    Per-design options (BitSim's constructor arguments; others must stay at their defaults):

    - BitWave: ``w_prec`` (``input_precision_s``; the layer is bit-flipped first with groups of 32 and
      ``N = 8 - w_prec``, as BitSim always does), ``bitflip`` (``en_bitflip``: data-aware cost, else the
      constant ``w_prec - 1`` per tile), ``dataflows`` (None: the one geometry ``(G, h, w)``; a sequence of
      ``(G, h, w)``, e.g. :data:`BITWAVE_DATAFLOWS`: the minimum over them, ``en_config_dataflow``). BitSim
      hard-wires G = 8 for its single dataflow; pass ``G=8`` to reproduce it.
    - BitVert: ``bbs`` (constant ``w_prec`` per tile), ``lsb_pruning`` (constant ``w_prec - 2``),
      ``outlier_ratio`` r (``en_ol_channel``: ``tiles * (r * w_prec + (1 - r) * p_low)``, ``p_low`` 4 with
      ``eager_compression`` else 6; fractional, a float; BitSim reads r from an outlier-channel file).

    Returns int cycles (a float only with ``outlier_ratio``). Raises TraceError for bad weights,
    ConfigError for a bad design, geometry or option.
    """
    name = design_name(design)
    _check_options(name, bitflip=bitflip, bbs=bbs, lsb_pruning=lsb_pruning, w_prec=w_prec, dataflows=dataflows,
                   outlier_ratio=outlier_ratio, eager_compression=eager_compression)
    wts = _int8(weights, "bitsim weights")
    if wts.ndim == 4 and (oh is None or ow is None):
        raise ConfigError(f"bitsim conv layer: oh={oh!r}, ow={ow!r}; expected the output height and width")
    outputs = (_positive(oh, "oh"), _positive(ow, "ow")) if wts.ndim == 4 else _positive(tokens, "tokens")
    if name == BITWAVE:
        wts = bitwave_weights(wts, w_prec)
        geometries = [(G, h, w)] if dataflows is None else [tuple(d) for d in dataflows]
        if not geometries or any(len(d) != 3 for d in geometries):
            raise ConfigError(f"bitsim BitWave dataflows={dataflows!r}: expected a non-empty list of (G, h, w)")
        return min(_cycles(wts, name, g, hh, ww, outputs, depthwise, bitflip=bitflip, w_prec=w_prec)
                   for g, hh, ww in geometries)
    if name == BITVERT and outlier_ratio is not None:
        r = float(outlier_ratio)
        if not 0.0 <= r <= 1.0:
            raise ConfigError(f"bitsim BitVert outlier_ratio={outlier_ratio!r}: expected a fraction in [0, 1]")
        n_tiles = bitsim_tiles(wts, G, h, depthwise=depthwise).shape[0] * _column_tiles(outputs, w)
        return n_tiles * (r * w_prec + (1.0 - r) * BITVERT_LOW_PRECISION[bool(eager_compression)])
    return _cycles(wts, name, G, h, w, outputs, depthwise, bbs=bbs, lsb_pruning=lsb_pruning, w_prec=w_prec)


def _column_tiles(outputs: tuple[int, int] | int, w: int) -> int:
    """How often the PE columns run the layer's tiles: conv ``ceil(ow / w) * oh`` (a set of columns never spans
    two output rows), fc ``ceil(tokens / w)``."""
    w = _positive(w, "w")
    if isinstance(outputs, tuple):
        oh, ow = outputs
        return -(-ow // w) * oh
    return -(-outputs // w)


def _cycles(wts: np.ndarray, name: str, G: int, h: int, w: int, outputs, depthwise: bool, **options) -> int:
    """S x column tiles, S = the sum of the layer's tile costs under the geometry (G, h, w)."""
    total = int(tile_cost(name, bitsim_tiles(wts, G, h, depthwise=depthwise), G, **options).sum())
    return total * _column_tiles(outputs, w)
