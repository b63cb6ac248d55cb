"""The published bit-level pruning methods of BitWave and BitVert (BBS) as projections of 8-bit integer weights.

- `bitflip(w, N, group)`: BitWave's bit-flip (Shi et al., HPCA 2024), sign-magnitude: every group keeps at most
  `7 - N` non-zero magnitude columns; each weight moves to the nearest value with the chosen columns.
- `bbs_average(w, N, group)`: BBS rounded column averaging (Chen et al., MICRO 2024), two's complement: after the
  group's redundant sign-extension columns, the low columns of every weight get the group's rounded mean.
- `bbs_zero_point(w, N, group, const_bits)`: BBS zero-point shifting: the group is shifted by the constant
  `c` (a `const_bits`-bit integer) whose truncation to fewer columns errs least; the weights are `u' - c`.

Source: the reference code, BBS-MICRO `bit_flip.bitFlip_*` and `binary_pruning.{roundAvg,zeroPointShifting}_*`
(identical to BitSim's `sim/sim/util/bitflip_layer.py`), as specified step by step in
`../shared/specs/new_designs.md` section 4 and checked against `fixtures/bitsim/pruning.json`.

Groups (`grouping`):
- ``"flat"`` (the reference code's): conv `[K, C, kh, kw]` is reordered to `[K, kh, kw, C]`, flattened and cut into
  consecutive chunks of `group` weights (`group = C` when `C < group`); fc `[K, C]` likewise, row-major. When
  `group` does not divide `C` chunks straddle kernel positions and filters; a tensor whose size is not a multiple
  of the group size is refused (the reference code fails there too).
- ``"lanes"``: `group` consecutive input channels of one filter at one kernel position, the last chunk of a
  position short when `group` does not divide `C` (the lock-step lane groups of `lanes.py`, without padding).
  Equal to ``"flat"`` whenever `group` divides `C` or `C <= group`, and it takes every shape.

Weights are integers in [-128, 127] (numpy or torch, any integer dtype), or float weights with their `scale`
(0-d or [K]), rounded to narrow-range 8-bit integers first. The result has the input's shape, as int32 in the
input's container (numpy array, or torch tensor on the input's device). The reference code can leave values
outside [-127, 127] (zero-point: `u' - c` up to 143; averaging: -128); `narrow_range=True` keeps results in
[-127, 127], as the rest of bitpruner needs (see each function).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bitpruner.errors import ConfigError
from bitpruner.prune_bits.arrays import check_int, to_numpy
from bitpruner.prune_bits.lanes import check_lanes

WBITS = 8  # every method is defined for 8-bit weights (the reference code hard-wires w_bitwidth = 8)
QMAX = (1 << (WBITS - 1)) - 1  # 127: sign-magnitude's largest magnitude
METHODS = ("bitflip", "bbs_average", "bbs_zero_point")
GROUPINGS = ("flat", "lanes")
DEFAULT_GROUP = 16  # BBS-MICRO's default group_size (BitSim's BitWave passes 32)
DEFAULT_CONST_BITS = 5  # BBS-MICRO's const_bitwidth: c in [-16, 15]
SIGN_EXTENSION_MAX = 3  # roundAvg checks columns 1..3 only (`range(1, w_bitwidth - 4)`)


# ---------------------------------------------------------------- checks and containers



def check_n(n: Any) -> int:
    """N, the number of pruned bit columns: an integer in [0, 7]."""
    return check_int("N", n, 0, WBITS - 1)


def check_const_bits(const_bits: Any) -> int:
    """const_bits, the width of the zero-point constant c: an integer in [1, 8]."""
    return check_int("const_bits", const_bits, 1, WBITS)


def check_grouping(grouping: Any) -> str:
    if grouping not in GROUPINGS:
        raise ConfigError(f"grouping={grouping!r}: expected one of {', '.join(GROUPINGS)}")
    return grouping


def check_group(group: Any) -> int:
    try:
        return check_lanes(group)
    except ConfigError:
        raise ConfigError(f"group={group!r}: expected a positive integer (weights per group)") from None



def integer_weights(w, scale=None, bits: int = WBITS) -> tuple[np.ndarray, Callable[[np.ndarray], Any]]:
    """(int64 weights, restore) of integer `w`, or of float `w` rounded to narrow-range 8 bits with `scale`."""
    if bits != WBITS:
        raise ConfigError(f"bits={bits!r}: the bit-level pruning methods are defined for 8-bit weights only")
    arr, restore = to_numpy(w)
    if arr.ndim not in (2, 4):
        raise ConfigError(f"weight shape {tuple(arr.shape)}: expected conv [K, C, kh, kw] or fc [K, C]")
    if np.issubdtype(arr.dtype, np.integer):
        q = arr.astype(np.int64)
        if q.size and (q.min() < -QMAX - 1 or q.max() > QMAX):
            bad = int(q.min()) if q.min() < -QMAX - 1 else int(q.max())
            raise ConfigError(f"weight {bad}: expected 8-bit integers in [-128, 127]")
        return q, restore
    if not np.issubdtype(arr.dtype, np.floating):
        raise ConfigError(f"weights of dtype {arr.dtype}: expected integers or floats")
    if scale is None:
        raise ConfigError("float weights need their scale (or pass integer weights)")
    s = np.asarray(to_numpy(scale)[0], dtype=np.float64).reshape(-1)
    if s.size not in (1, arr.shape[0]) or not np.all(np.isfinite(s) & (s > 0)):
        raise ConfigError(f"scale: expected 1 or {arr.shape[0]} finite positive values, got {s.size}")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"weights of shape {tuple(arr.shape)} contain NaN or inf")
    x = arr.astype(np.float64) / s.reshape((-1,) + (1,) * (arr.ndim - 1))
    return np.clip(np.round(x), -QMAX, QMAX).astype(np.int64), restore


# ---------------------------------------------------------------- grouping


def _kyxc(q: np.ndarray) -> np.ndarray:
    """[K, kh, kw, C] view of conv weights, [K, 1, 1, C] of fc weights."""
    return q.transpose(0, 2, 3, 1) if q.ndim == 4 else q.reshape(q.shape[0], 1, 1, q.shape[1])


def _from_kyxc(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if len(shape) == 4 else x.reshape(shape))


def _apply_grouped(q: np.ndarray, group: int, grouping: str, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Run `fn` ([n, g] groups -> [n, g]) on every group of `q` and put the results back in q's layout."""
    kyxc = _kyxc(q)
    c = kyxc.shape[-1]
    if grouping == "flat":
        g = min(group, c)
        flat = kyxc.reshape(-1)
        if flat.size % g:
            raise ConfigError(f"weight shape {tuple(q.shape)}: {flat.size} weights are not a multiple of group={g} "
                              "(the flat grouping of the reference code); use grouping=lanes")
        out = fn(flat.reshape(-1, g)).reshape(kyxc.shape)
        return _from_kyxc(out, q.shape)
    rows = kyxc.reshape(-1, c)  # one row per (filter, kernel position)
    full = (c // group) * group
    out = np.empty_like(rows)
    if full:
        out[:, :full] = fn(rows[:, :full].reshape(-1, group)).reshape(rows.shape[0], full)
    if full < c:  # the short last chunk of every position is a group of its own
        out[:, full:] = fn(np.ascontiguousarray(rows[:, full:]))
    return _from_kyxc(out.reshape(kyxc.shape), q.shape)


# ---------------------------------------------------------------- kernels on [n, g] groups (int64)


def _nearest_multiple(v: np.ndarray, step: np.ndarray, n_max: np.ndarray) -> np.ndarray:
    """n * step nearest to v >= 0 for n in [0, n_max]; ties go to the smaller; above the top saturates."""
    lo = v // step
    n = lo + (2 * (v - lo * step) > step)
    return np.minimum(n, n_max) * step


def bitflip_groups(x: np.ndarray, n: int) -> np.ndarray:
    """`bitflip` on every row of `x` ([groups, g] int64); see `bitflip`."""
    x = np.where(x < -QMAX, -QMAX, x)  # sign-magnitude has no -128
    mag = np.abs(x)
    either = np.bitwise_or.reduce(mag, axis=1) if mag.shape[1] else np.zeros(mag.shape[0], np.int64)
    # Column i (1..7) holds the bit 2^(7 - i) of the magnitudes; zero[:, i] when no weight of the group has it.
    zero = np.stack([np.zeros_like(either, dtype=bool)] +
                    [((either >> (WBITS - 1 - i)) & 1) == 0 for i in range(1, WBITS)], axis=1)
    p = np.full(x.shape[0], WBITS - n, dtype=np.int64)
    for i in range(1, WBITS):  # every zero column above the cut moves the cut down by one
        p += (i < p) & zero[:, i]
    t = np.ones_like(p)
    for i in range(1, WBITS):  # 1 + the last zero column above the cut: the columns up to it stay as they are
        t = np.where((i < p) & zero[:, i], i + 1, t)
    prune = (p <= WBITS - 1)[:, None]
    p_c = np.minimum(p, WBITS - 1)[:, None]
    t_c = np.minimum(t[:, None], p_c)
    free = np.left_shift(1, WBITS - t_c)  # v = the magnitude bits of columns T..7
    v = mag % free
    step = np.left_shift(1, WBITS - p_c)
    n_max = np.left_shift(1, p_c - t_c) - 1
    new = mag - v + _nearest_multiple(v, step, n_max)
    out = np.where(x < 0, -new, new)
    return np.where(prune, out, x)


def _round_half_even_div(total: np.ndarray, count: int) -> np.ndarray:
    """round(total / count) with ties to even (torch.round), in exact integer arithmetic."""
    q, r = np.divmod(total, count)
    return q + ((2 * r > count) | ((2 * r == count) & (q % 2 == 1)))


def bbs_average_groups(x: np.ndarray, n: int, narrow_range: bool = False) -> np.ndarray:
    """`bbs_average` on every row of `x` ([groups, g] int64); see `bbs_average`."""
    g = x.shape[1]
    u = x & 0xFF  # two's-complement pattern
    sign = (u >> (WBITS - 1)) & 1
    s = np.zeros(x.shape[0], dtype=np.int64)
    running = np.ones(x.shape[0], dtype=bool)
    for i in range(1, SIGN_EXTENSION_MAX + 1):  # leading columns equal to the sign column in every weight
        running &= np.all(((u >> (WBITS - 1 - i)) & 1) == sign, axis=1)
        s += running
    p = WBITS - n + s
    low_bits = np.clip(WBITS - p, 0, WBITS)[:, None]
    lo = u & (np.left_shift(1, low_bits) - 1)
    r = _round_half_even_div(lo.sum(axis=1), g)[:, None] if g else np.zeros((x.shape[0], 1), np.int64)
    new = u - lo + r
    out = np.where(new >= 1 << (WBITS - 1), new - (1 << WBITS), new)
    out = np.where((p <= WBITS - 1)[:, None], out, x)
    return np.maximum(out, -QMAX) if narrow_range else out


def _truncate_sign_magnitude(u: np.ndarray, n: int) -> np.ndarray:
    """Zero-point step 3 for every row of `u` (clipped to [-127, 127]): u' (see `bbs_zero_point`)."""
    mag = np.abs(u)
    either = np.bitwise_or.reduce(mag, axis=1)
    z = np.zeros(u.shape[0], dtype=np.int64)  # leading all-zero magnitude columns (b6, b5, ...)
    running = np.ones(u.shape[0], dtype=bool)
    for i in range(1, WBITS):
        running &= ((either >> (WBITS - 1 - i)) & 1) == 0
        z += running
    p = WBITS - n + z
    p_c = np.minimum(p, WBITS - 1)[:, None]
    step = np.left_shift(1, WBITS - p_c)
    n_max = (1 << (WBITS - 1 - n)) - 1
    new = _nearest_multiple(mag, step, np.full_like(step, n_max))
    out = np.where(u < 0, -new, new)
    return np.where((p <= WBITS - 1)[:, None], out, u)


def bbs_zero_point_groups(x: np.ndarray, n: int, const_bits: int = DEFAULT_CONST_BITS,
                          narrow_range: bool = False) -> np.ndarray:
    """`bbs_zero_point` on every row of `x` ([groups, g] int64); see `bbs_zero_point`."""
    best_err = np.full(x.shape[0], np.iinfo(np.int64).max)
    best = x.copy()
    half = 1 << (const_bits - 1)
    for c in range(-half, half):  # ascending: the first c with the least error wins
        u = np.clip(x + c, -QMAX, QMAX)
        w = _truncate_sign_magnitude(u, n) - c
        err = ((w - x) ** 2).sum(axis=1)
        if narrow_range:  # a shift whose weights leave [-127, 127] is not a candidate (c = 0 always is one)
            err = np.where(np.all(np.abs(w) <= QMAX, axis=1), err, np.iinfo(np.int64).max)
        better = err < best_err
        best_err = np.where(better, err, best_err)
        best = np.where(better[:, None], w, best)
    return best


# ---------------------------------------------------------------- public projections


def _run(w, scale, bits, group, grouping, fn):
    group = check_group(group)
    grouping = check_grouping(grouping)
    q, restore = integer_weights(w, scale, bits)
    out = _apply_grouped(q, group, grouping, fn) if q.size else q
    return restore(out.astype(np.int32))


def bitflip(w, N: int, group: int = DEFAULT_GROUP, *, scale=None, grouping: str = "flat", bits: int = WBITS,
            narrow_range: bool = True):
    """BitWave bit-flip: every group keeps at most 7 - N non-zero magnitude columns (sign-magnitude).

    Per group (spec 4.1): -128 -> -127; P = 8 - N, moved down by one for every all-zero magnitude column above
    it; T = 1 + the last zero column above P; each weight's magnitude bits of columns T..7 become the nearest
    multiple of 2^(8-P) below 2^(8-T) (ties to the smaller, saturating). Keeps zeros, signs of non-zero results
    and the magnitude bits above column T; small weights may become 0. The result always lies in [-127, 127]
    (`narrow_range` is accepted for a uniform signature). Shapes: `w` [K, C, kh, kw] or [K, C].
    Raises ConfigError (one line) for N outside [0, 7], a bad group, grouping or shape, or bits != 8.
    """
    n = check_n(N)
    return _run(w, scale, bits, group, grouping, lambda x: bitflip_groups(x, n))


def bbs_average(w, N: int, group: int = DEFAULT_GROUP, *, scale=None, grouping: str = "flat",
                bits: int = WBITS, narrow_range: bool = False):
    """BBS rounded column averaging (two's complement): the low 8 - P columns of the group become constant.

    Per group (spec 4.2): s = leading columns b6, b5, b4 equal to the sign column in every weight (at most 3);
    P = 8 - N + s; when P <= 7 the low 8 - P bits of every weight become r = the group mean of those bits
    (unsigned), rounded half to even. Keeps the high P two's-complement bits (hence the sign); zeros are not
    kept (0 may become r). `narrow_range=True` turns the one value outside [-127, 127] it can make (-128,
    from high bits 1000.. with r = 0) into -127. Raises ConfigError as `bitflip` does.
    """
    n = check_n(N)
    return _run(w, scale, bits, group, grouping, lambda x: bbs_average_groups(x, n, narrow_range))


def bbs_zero_point(w, N: int, group: int = DEFAULT_GROUP, const_bits: int = DEFAULT_CONST_BITS, *, scale=None,
                   grouping: str = "flat", bits: int = WBITS, narrow_range: bool = False):
    """BBS zero-point shifting: the shifted group u = w + c loses N - z low columns; weights w' = u' - c.

    Per group (spec 4.3), for c = -2^(cb-1) .. 2^(cb-1) - 1: u = clip(w + c, -127, 127); z = leading all-zero
    magnitude columns of u; when P = 8 - N + z <= 7 every |u| becomes the nearest multiple of 2^(8-P) up to
    (2^(7-N) - 1) * 2^(8-P) (ties to the smaller; sign kept); E(c) = sum (u' - c - w)^2. The first c with the
    least E wins, so E never exceeds E(0). Keeps neither signs nor zeros. The reference can return values up
    to 143 / down to -142; `narrow_range=True` searches only the c whose w' all lie in [-127, 127] (c = 0 always
    does). Raises ConfigError as `bitflip` does, and for const_bits outside [1, 8].
    """
    n = check_n(N)
    cb = check_const_bits(const_bits)
    return _run(w, scale, bits, group, grouping, lambda x: bbs_zero_point_groups(x, n, cb, narrow_range))


BITLEVEL: dict[str, Callable[..., Any]] = {
    "bitflip": bitflip,
    "bbs_average": bbs_average,
    "bbs_zero_point": bbs_zero_point,
}


def project_bitlevel(method: str, w, scale, k: int, lanes: int, bits: int = WBITS):
    """What prune_bits' parametrization calls: `method` at N = bits - 1 - k pruned columns, groups of `lanes`
    consecutive channels (grouping "lanes"), const_bits 5, results in [-127, 127]; int32 like `w`'s container."""
    if method not in BITLEVEL:
        raise ConfigError(f"method={method!r}: expected one of {', '.join(METHODS)}")
    n = bits - 1 - k
    if n <= 0:  # no column to prune: plain rounding (bit-flip would still turn -128 into -127, which we never hold)
        q, restore = integer_weights(w, scale, bits)
        return restore(q.astype(np.int32))
    return BITLEVEL[method](w, n, lanes, scale=scale, grouping="lanes", bits=bits, narrow_range=True)

