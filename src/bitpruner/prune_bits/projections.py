"""Projections of weights onto bit constraints (bitpruning.md, "Projections").

Every projection takes float weights `w` with their `scale` (0-d / float per layer, or [K] per output
channel), or integer weights `q` (scale optional, only used to report errors), and returns int32 weights
of the same shape and container (numpy array, or torch tensor on the input's device). "Nearest" is in the
float domain: the error of a weight is |scale * q' - w|, so the latent float weight matters, not only its
rounded q. Magnitudes beyond qmax(bits) saturate first. Signs are kept, zeros stay zero, results are
deterministic.

Speed trick shared by the kernels: allowed magnitudes are integers, so every midpoint between two of
them is a multiple of 1/2, and the nearest allowed value of u (ties toward the smaller magnitude) is
constant on each interval ((j-1)/2, j/2]; a table indexed by j = ceil(2u) answers in O(1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from itertools import combinations
from typing import Any

import numpy as np

from bitpruner.errors import BitprunerError, ConfigError  # noqa: E402
from bitpruner.prune_bits.arrays import check_int, to_numpy
from bitpruner.prune_bits.bitlevel import BITLEVEL  # noqa: E402
from bitpruner.prune_bits.encodings import check_encoding, essential_bits_table  # noqa: E402
from bitpruner.prune_bits.lanes import check_lanes, from_lane_groups, group_filters, to_lane_groups  # noqa: E402
from bitpruner.quant.fixed_point import check_bits, qmax  # noqa: E402
from bitpruner.utils.jit import numba  # the project's numba settings (threading layer, cache outside src/)

# group_columns tries every subset of bit positions up to this width (C(7, k) <= 35 subsets, a
# 128 x 255 table); wider weights choose the positions greedily (see group_columns).
EXHAUSTIVE_MAX_BITS = 8


@dataclass
class ProjectionResult:
    """Projected integer weights, each lane group's float-domain squared error, and (group_columns) the
    bit positions each group chose (bit p set = column p allowed)."""

    q: Any
    group_error: np.ndarray
    group_mask: np.ndarray | None = None


# ---------------------------------------------------------------- inputs and outputs


@dataclass
class _Units:
    raw: np.ndarray  # the caller's weights, contiguous, float32 or float64 (weight layout)
    unit_scale: np.ndarray  # [K] divisor taking raw to units of the scale (ones for integer weights)
    error_scale: np.ndarray  # [K] scale of every output channel, for float-domain errors
    restore: Callable[[np.ndarray], Any]  # int32 numpy -> the caller's container

    @property
    def inner(self) -> int:
        return int(np.prod(self.raw.shape[1:]))

    @property
    def x(self) -> np.ndarray:
        """Signed weights in units of the scale (float64); the kernels divide the same way on the fly."""
        return self.raw.astype(np.float64) / self.unit_scale.reshape((-1,) + (1,) * (self.raw.ndim - 1))

    def group_unit_scale(self, lanes: int) -> np.ndarray:
        return self.unit_scale[group_filters(self.raw.shape, lanes)]



def _units(w, scale, bits: int) -> _Units:
    arr, restore = to_numpy(w)
    if arr.ndim not in (2, 4):
        raise ConfigError(f"weight shape {tuple(arr.shape)}: expected conv [K, C, kh, kw] or fc [K, C]")
    k = arr.shape[0]
    is_int = np.issubdtype(arr.dtype, np.integer)
    if not (is_int or np.issubdtype(arr.dtype, np.floating)):
        raise ConfigError(f"weights of dtype {arr.dtype}: expected integers or floats")
    if scale is None:
        if not is_int:
            raise ConfigError("float weights need their scale (or pass integer weights q)")
        filter_scale = np.ones(k)
    else:
        s = np.asarray(to_numpy(scale)[0], dtype=np.float64).reshape(-1)
        if s.size not in (1, k):
            raise ConfigError(
                f"scale has {s.size} entries: expected 1 (per layer) or {k} (per output channel)"
            )
        if not np.all(np.isfinite(s) & (s > 0)):
            raise ConfigError(f"scale {s.min():g}..{s.max():g}: expected finite positive values")
        filter_scale = np.broadcast_to(s, (k,)).copy()
    if is_int:
        top = int(np.abs(arr.astype(np.int64)).max()) if arr.size else 0
        if top > qmax(bits):
            raise ConfigError(f"weight magnitude {top} exceeds {qmax(bits)}, the largest {bits} bits allow")
    elif not np.all(np.isfinite(arr)):
        # The kernels index tables with the weights; a NaN would index out of bounds.
        raise BitprunerError(
            f"weights of shape {tuple(arr.shape)} contain NaN or inf (did training diverge?)"
        )
    # Integers travel as float64 (exact): the kernels then compile for two dtypes only, float32 and float64.
    raw = arr.astype(np.float64) if is_int else arr
    unit_scale = np.ones(k) if is_int else filter_scale
    return _Units(np.ascontiguousarray(raw), unit_scale, filter_scale, restore)



# ---------------------------------------------------------------- tables


def _nearest_table(allowed: np.ndarray, top: int) -> np.ndarray:
    """T[j] = allowed value nearest to j/2 (ties toward the smaller), for j = 0..2*top."""
    values = np.flatnonzero(allowed)
    targets = np.arange(2 * top + 1) / 2.0
    pos = np.searchsorted(values, targets, side="right") - 1
    lo = values[pos]
    hi = values[np.minimum(pos + 1, values.size - 1)]
    table = np.where(targets - lo <= hi - targets, lo, hi).astype(np.int32)
    table.setflags(write=False)
    return table


@cache
def per_weight_table(bits: int, k: int, encoding: str = "binary") -> np.ndarray:
    """Nearest magnitude with <= k essential bits for every half-unit target (see module docstring)."""
    top = qmax(bits)
    return _nearest_table(essential_bits_table(encoding, top) <= k, top)


@numba.njit(cache=True)
def nearest_submask(a: float, mask: int, nbits: int) -> int:
    """Magnitude nearest to a >= 0 whose set bits all lie in `mask` (ties toward the smaller)."""
    x = int(math.floor(a))
    lo = 0
    for p in range(nbits - 1, -1, -1):
        bit = 1 << p
        if x & bit:
            if mask & bit:
                lo |= bit
            else:  # lo < x from here on: take every lower allowed bit
                lo |= mask & (bit - 1)
                break
    hi = ((lo | ~mask) + 1) & mask  # next submask above lo; 0 when lo is the largest
    if hi <= lo:
        return lo
    return lo if a - lo <= hi - a else hi


@numba.njit(cache=True)
def _fill_submask_table(nbits: int) -> np.ndarray:
    top = (1 << nbits) - 1
    table = np.empty((1 << nbits, 2 * top + 1), dtype=np.int32)
    for mask in range(1 << nbits):
        for j in range(2 * top + 1):
            table[mask, j] = nearest_submask(j / 2.0, mask, nbits)
    return table


@cache
def submask_table(bits: int) -> np.ndarray:
    """[mask, j]: magnitude nearest to j/2 with bits inside mask, for all masks of bits-1 positions."""
    table = _fill_submask_table(check_bits(bits) - 1)
    table.setflags(write=False)
    return table


def column_subsets(bits: int, k: int) -> np.ndarray:
    """Masks of the k-subsets of the bits-1 magnitude positions, ascending (smaller subsets are dominated)."""
    nbits = bits - 1
    masks = [sum(1 << p for p in combo) for combo in combinations(range(nbits), min(k, nbits))]
    return np.array(sorted(masks), dtype=np.int64)


# ---------------------------------------------------------------- kernels


@numba.njit(cache=True, parallel=True)
def _per_weight_kernel(raw, unit_scale, inner, table, top, out):
    for i in numba.prange(raw.size):
        v = np.float64(raw[i]) / unit_scale[i // inner]
        a = min(abs(v), top)
        m = table[int(math.ceil(2.0 * a))]
        out[i] = -m if v < 0 else m


@numba.njit(cache=True)
def _prepare_group(xg, g, scale, top, a, js):
    nonzero = 0
    for i in range(xg.shape[1]):
        v = min(abs(np.float64(xg[g, i]) / scale), top)
        a[i] = v
        js[i] = int(math.ceil(2.0 * v))
        if v > 0:
            nonzero += 1
    return nonzero


@numba.njit(cache=True, parallel=True)
def _group_columns_exhaustive(xg, gscale, cands, near, top, out, chosen):
    n, lanes = xg.shape
    for g in numba.prange(n):
        a = np.empty(lanes)
        js = np.empty(lanes, dtype=np.int64)
        if _prepare_group(xg, g, gscale[g], top, a, js) == 0:
            chosen[g] = 0
            for i in range(lanes):
                out[g, i] = 0
            continue
        best = np.inf
        best_mask = cands[0]
        for c in range(cands.size):
            m = cands[c]
            e = 0.0
            for i in range(lanes):
                d = near[m, js[i]] - a[i]
                e += d * d
                if e >= best:  # this subset cannot win any more
                    break
            if e < best:
                best = e
                best_mask = m
        chosen[g] = best_mask
        for i in range(lanes):
            v = near[best_mask, js[i]]
            out[g, i] = -v if xg[g, i] < 0 else v


@numba.njit(cache=True, parallel=True)
def _group_columns_greedy(xg, gscale, k, nbits, top, out, chosen):
    n, lanes = xg.shape
    for g in numba.prange(n):
        a = np.empty(lanes)
        js = np.empty(lanes, dtype=np.int64)
        mask = 0
        if _prepare_group(xg, g, gscale[g], top, a, js) > 0:
            for _ in range(k):
                best = np.inf
                best_p = -1
                for p in range(nbits):
                    if mask & (1 << p):
                        continue
                    m = mask | (1 << p)
                    e = 0.0
                    for i in range(lanes):
                        d = nearest_submask(a[i], m, nbits) - a[i]
                        e += d * d
                    if e < best:
                        best = e
                        best_p = p
                mask |= 1 << best_p
        chosen[g] = mask
        for i in range(lanes):
            v = nearest_submask(a[i], mask, nbits)
            out[g, i] = -v if xg[g, i] < 0 else v


@numba.njit(cache=True, parallel=True)
def _group_budget_kernel(xg, gscale, budget, near_by_c, ebits, top, out):
    n, lanes = xg.shape
    cap = near_by_c.shape[0] - 1
    for g in numba.prange(n):
        a = np.empty(lanes)
        js = np.empty(lanes, dtype=np.int64)
        _prepare_group(xg, g, gscale[g], top, a, js)
        # f[b]: least squared error of the lanes so far spending at most b essential bits. Only
        # b <= reach (the most the lanes so far could use) is stored: f is flat beyond it.
        f = np.zeros(budget + 1)
        fn = np.empty(budget + 1)
        reach = np.zeros(lanes, dtype=np.int64)
        choice = np.zeros((lanes, budget + 1), dtype=np.int64)
        prev_reach = 0
        for i in range(lanes):
            if a[i] == 0.0:
                reach[i] = prev_reach
                continue  # a zero stays zero at no cost; choice 0 maps to 0
            # Options: the nearest value with <= c bits, c = 0.. until more bits cannot get closer.
            best_value = near_by_c[cap, js[i]]
            n_opt = 0
            for c in range(cap + 1):
                n_opt += 1
                if near_by_c[c, js[i]] == best_value:
                    break
            max_cost = ebits[best_value]
            for c in range(n_opt):
                max_cost = max(max_cost, ebits[near_by_c[c, js[i]]])
            cur_reach = min(budget, prev_reach + max_cost)
            for b in range(cur_reach + 1):
                fn[b] = np.inf
                for c in range(n_opt):
                    v = near_by_c[c, js[i]]
                    cost = ebits[v]
                    if cost <= b:
                        d = v - a[i]
                        e = f[min(b - cost, prev_reach)] + d * d
                        if e < fn[b]:
                            fn[b] = e
                            choice[i, b] = c
            f, fn = fn, f
            reach[i] = cur_reach
            prev_reach = cur_reach
        b = prev_reach
        for i in range(lanes - 1, -1, -1):
            b = min(b, reach[i])
            v = near_by_c[choice[i, b], js[i]] if a[i] > 0.0 else 0
            out[g, i] = -v if xg[g, i] < 0 else v
            b -= ebits[v]


# ---------------------------------------------------------------- public projections


def per_weight(w, k: int, *, bits: int = 8, scale=None, encoding: str = "binary"):
    """Every weight -> the nearest magnitude with at most k essential bits (ties toward the smaller; 7 -> 8 at k=1).

    Table-driven for every width up to 16 bits: the allowed set of a `bits`-bit weight has at most 2^15
    magnitudes, so the half-unit table (2 * qmax + 1 entries) stays small; `encoding` picks how bits count.
    """
    bits = check_bits(bits)
    k = check_int("k", k, 0, bits - 1)
    check_encoding(encoding)
    units = _units(w, scale, bits)
    out = np.empty(units.raw.size, dtype=np.int32)
    table = per_weight_table(bits, k, encoding)
    _per_weight_kernel(
        units.raw.ravel(), units.unit_scale, max(units.inner, 1), table, float(qmax(bits)), out
    )
    return units.restore(out.reshape(units.raw.shape))


def group_columns(w, k: int, lanes: int = 16, *, bits: int = 8, scale=None, details: bool = False):
    """Each lane group shares one set S of <= k bit positions; each weight -> nearest value with bits in S.

    S minimizes the group's squared float-domain error. Up to 8 bits every k-subset of the bits-1
    positions is tried (subsets smaller than k are never better than a superset), the first best in
    ascending mask order wins. Wider weights choose S greedily: k times, add the position that lowers the
    group's error most (exact for k = 1, a heuristic beyond). A bit-column engine then spends at most k
    cycles on the group. With `details`, returns a ProjectionResult with each group's error and S.
    """
    bits = check_bits(bits)
    k = check_int("k", k, 0, bits - 1)
    lanes = check_lanes(lanes)
    units = _units(w, scale, bits)
    xg = to_lane_groups(units.raw, lanes)
    gscale = units.group_unit_scale(lanes)
    out = np.empty(xg.shape, dtype=np.int32)
    chosen = np.empty(xg.shape[0], dtype=np.int64)
    top = float(qmax(bits))
    if bits <= EXHAUSTIVE_MAX_BITS:
        _group_columns_exhaustive(xg, gscale, column_subsets(bits, k), submask_table(bits), top, out, chosen)
    else:
        _group_columns_greedy(xg, gscale, k, bits - 1, top, out, chosen)
    q = from_lane_groups(out, units.raw.shape)
    if not details:
        return units.restore(q)
    return ProjectionResult(units.restore(q), _group_error_units(units, q, lanes), chosen)


def group_budget(w, budget: int, lanes: int = 16, *, bits: int = 8, scale=None, lane_max: int | None = None):
    """Each lane group spends at most `budget` essential bits in total, where they remove the most error.

    A lane may hold at most `lane_max` bits (default bits-1): a lane over that lock-step maximum is trimmed
    before the budget is shared. The sharing is exact (a dynamic programme over the group's lanes and the
    budget), not a one-bit-at-a-time greedy: error versus bits is not convex (7 costs 1 at one bit and
    still 1 at two), and a greedy stalls there. Each weight becomes the nearest value with at most its
    share of bits; ties prefer the smaller share.
    """
    bits = check_bits(bits)
    budget = check_int("budget", budget, 0)
    lanes = check_lanes(lanes)
    cap = bits - 1 if lane_max is None else check_int("lane_max", lane_max, 0, bits - 1)
    units = _units(w, scale, bits)
    xg = to_lane_groups(units.raw, lanes)
    out = np.empty(xg.shape, dtype=np.int32)
    near_by_c = np.stack([per_weight_table(bits, c) for c in range(cap + 1)])
    ebits = essential_bits_table("binary", qmax(bits)).astype(np.int64)
    _group_budget_kernel(
        xg, units.group_unit_scale(lanes), min(budget, lanes * cap), near_by_c, ebits, float(qmax(bits)), out
    )
    return units.restore(from_lane_groups(out, units.raw.shape))


def _group_error_units(units: _Units, q: np.ndarray, lanes: int) -> np.ndarray:
    d2 = to_lane_groups((q.astype(np.float64) - units.x) ** 2, lanes).sum(axis=1)
    return d2 * units.error_scale[group_filters(units.raw.shape, lanes)] ** 2


def group_error(w, q, lanes: int = 16, *, scale=None, bits: int = 16) -> np.ndarray:
    """Float-domain squared error sum((scale * q - w)^2) of every lane group (groups as in lanes.py).

    Used to rank groups, e.g. to project the lowest-error groups first. `bits` only bounds integer `w`.
    """
    units = _units(w, scale, check_bits(bits))
    q_arr = to_numpy(q)[0]
    if q_arr.shape != units.raw.shape:
        raise ConfigError(f"projected shape {q_arr.shape} differs from the weight shape {units.raw.shape}")
    return _group_error_units(units, q_arr, check_lanes(lanes))


PROJECTIONS: dict[str, Callable[..., Any]] = {
    "per_weight": per_weight,
    "group_columns": group_columns,
    "group_budget": group_budget,
}
# The published bit-level methods (BitWave bit-flip, BBS averaging and zero-point shifting): bitlevel.py.
PROJECTIONS.update(BITLEVEL)


def project(method: str, w, **params):
    """Dispatch by name: per_weight(k), group_columns(k, lanes), group_budget(budget, lanes), and the 8-bit
    bit-level methods bitflip(N, group), bbs_average(N, group), bbs_zero_point(N, group, const_bits)."""
    if method not in PROJECTIONS:
        raise ConfigError(f"projection={method!r}: expected one of {', '.join(PROJECTIONS)}")
    return PROJECTIONS[method](w, **params)


def project_ste(method: str, w, scale, **params):
    """Torch: `w + (scale * q' - w).detach()` — the projected weights in the forward pass, the identity
    gradient to the latent float weights `w` in the backward pass (bitpruning.md, retraining)."""
    import torch

    from bitpruner.quant.fixed_point import broadcast_scale

    q = project(method, w.detach(), scale=scale, **params)
    s = torch.as_tensor(scale, dtype=w.dtype, device=w.device)
    projected = q.to(w.dtype) * broadcast_scale(s.reshape(-1) if s.dim() else s, w)
    return w + (projected - w).detach()
