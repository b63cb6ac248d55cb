"""Naive twins: plain, slow, obviously-correct references of the fast kernels the tests check.

Each function says which kernel it twins. They loop in Python, enumerate every candidate, or spell out a
spec's formula; they share no code with the kernel they check (the simulator's own reference,
`bitpruner.sim.reference`, lives in src). Tests compare a kernel's output with its twin on small inputs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from functools import cache

import numpy as np
import torch

# ---------------------------------------------------------------- essential bits (prune_bits.bits / encodings)

DNNSIM_SCAN_DIGITS = 16  # DNNsim recodes a 16-bit operand, one 3-bit window per digit


def popcount(value: int) -> int:
    """Twin of `essential_bits(q, bits, "binary")` for one magnitude: the number of 1s in binary."""
    return bin(abs(int(value))).count("1")


@cache
def min_signed_digits(n: int) -> int:
    """Twin of `essential_bits(q, bits, "booth")` (NAF/CSD): fewest non-zero digits in {-1, 0, 1} summing to n.

    A recursion on the lowest digit: an even n ends in 0, an odd n in +1 or -1 (take the better).
    """
    n = abs(int(n))
    if n <= 1:
        return n
    if n % 2 == 0:
        return min_signed_digits(n // 2)
    return 1 + min(min_signed_digits((n - 1) // 2), min_signed_digits((n + 1) // 2))


def dnnsim_booth_scan(n: int) -> int:
    """Twin of `term_mask_table("dnnsim_booth", ...)`: simulator.md's DNNsim Booth scan, literally on strings.

    Returns the 16-bit mask of the digits DNNsim emits for the non-negative integer n (< 2**15).
    """
    s = format(n << 2, "018b")
    out, run = 0, False
    for _ in range(DNNSIM_SCAN_DIGITS):
        window = s[:3]
        out <<= 1
        if window in ("010", "011") and run:
            out |= 1
        elif window == "100":
            out |= 1
            run = False
        elif window in ("101", "110") and not run:
            out |= 1
        elif window == "111" and not run:
            out |= 2
            run = True
        s = s[1:]
    return out & 0xFFFF


def essential_bits_of(value: int, encoding: str = "binary") -> int:
    """Twin of `essential_bits` for one integer: popcount, minimal signed digits, or DNNsim's scan."""
    magnitude = abs(int(value))
    if encoding == "binary":
        return popcount(magnitude)
    if encoding == "booth":
        return min_signed_digits(magnitude)
    if encoding == "dnnsim_booth":
        return popcount(dnnsim_booth_scan(magnitude))
    raise ValueError(f"naive essential bits: unknown encoding {encoding!r}")


# ---------------------------------------------------------------- projections (prune_bits.projections)


def nearest(a: float, candidates: Sequence[int]) -> int:
    """The candidate magnitude nearest to `a`, ties toward the smaller (the projections' tie rule)."""
    return min(candidates, key=lambda m: (abs(m - a), m))


def submasks(mask: int) -> list[int]:
    """Twin of the candidate set of `nearest_submask`: every value whose set bits lie within `mask`."""
    return [v for v in range(mask + 1) if v & ~mask == 0]


def allowed_magnitudes(k: int, bits: int = 8, encoding: str = "binary") -> list[int]:
    """Magnitudes 0..2**(bits-1)-1 with at most `k` essential bits (per_weight's allowed set)."""
    return [m for m in range(2 ** (bits - 1)) if essential_bits_of(m, encoding) <= k]


def per_weight_naive(values: Sequence[float], k: int, bits: int = 8, encoding: str = "binary") -> list[int]:
    """Twin of `per_weight`: each value (scale units) to sign * the nearest allowed magnitude."""
    allowed = allowed_magnitudes(k, bits, encoding)
    return [int(np.sign(v)) * nearest(abs(float(v)), allowed) for v in values]


def brute_group_columns(a: Sequence[float], k: int, nbits: int) -> float:
    """Twin of `group_columns`' group error: least total squared error over every set of <= k bit columns.

    `a` are one lane group's magnitudes (scale units); each weight then takes its nearest submask value.
    """
    best = math.inf
    for size in range(k + 1):
        for combo in itertools.combinations(range(nbits), size):
            candidates = submasks(sum(1 << p for p in combo))
            best = min(best, sum((nearest(x, candidates) - x) ** 2 for x in a))
    return best


def brute_group_budget(a: Sequence[float], budget: int, top: int, lane_max: int) -> float:
    """Twin of `group_budget`: least squared error over every assignment with <= `budget` essential bits in
    the group, <= `lane_max` per weight, magnitudes in [0, top]."""
    options = [m for m in range(top + 1) if popcount(m) <= lane_max]
    best = math.inf
    for combo in itertools.product(options, repeat=len(a)):
        if sum(popcount(v) for v in combo) <= budget:
            best = min(best, sum((v - x) ** 2 for v, x in zip(combo, a, strict=True)))
    return best


# ---------------------------------------------------------------- lane groups / buffer rows


def lane_groups_loop(w: np.ndarray, lanes: int) -> np.ndarray:
    """Twin of `bitpruner.prune_bits.lanes.to_lane_groups`, one element at a time.

    conv W[K, C, kh, kw] (PyTorch order) or fc W[K, C]: group f * T + (ky * kw + kx) * nch + chunk holds
    channels chunk * lanes .. + lanes - 1 of filter f at (ky, kx); missing channels are 0. [K * T, lanes].
    """
    w4 = w if w.ndim == 4 else w.reshape(w.shape[0], w.shape[1], 1, 1)
    k, c, kh, kw = w4.shape
    nch = -(-c // lanes)
    out = np.zeros((k * kh * kw * nch, lanes), dtype=w.dtype)
    for f in range(k):
        for ky in range(kh):
            for kx in range(kw):
                for chunk in range(nch):
                    row = f * kh * kw * nch + (ky * kw + kx) * nch + chunk
                    for lane in range(lanes):
                        channel = chunk * lanes + lane
                        if channel < c:
                            out[row, lane] = w4[f, channel, ky, kx]
    return out


def buffer_rows_loop(w_xy: np.ndarray, lanes: int) -> np.ndarray:
    """Twin of `bitpruner.sim.engine.Geometry.weight_rows`, one element at a time, per simulator.md.

    Trace layout W[K, C, Kx, Ky] (x first) or fc W[K, C]: row t = (ky * Kx + kx) * nch + chunk, lane i =
    channel chunk * lanes + i (0 past C). Returns int64 [K, T, lanes].
    """
    w4 = w_xy if w_xy.ndim == 4 else w_xy.reshape(w_xy.shape[0], w_xy.shape[1], 1, 1)
    k, c, kx_size, ky_size = w4.shape
    nch = -(-c // lanes)
    out = np.zeros((k, kx_size * ky_size * nch, lanes), dtype=np.int64)
    for f in range(k):
        for ky in range(ky_size):
            for kx in range(kx_size):
                for chunk in range(nch):
                    t = (ky * kx_size + kx) * nch + chunk
                    for lane in range(lanes):
                        channel = chunk * lanes + lane
                        if channel < c:
                            out[f, t, lane] = w4[f, channel, kx, ky]
    return out


# ---------------------------------------------------------------- ADMM (prune_bits.admm)


def admm_update(w: torch.Tensor, u: torch.Tensor,
                project: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Twin of `AdmmState.step`'s update for one layer: Z = project(W + U), U' = U + W - Z; returns (Z, U')."""
    z = project(w + u)
    return z, u + w - z


def admm_penalty(w: torch.Tensor, z: torch.Tensor, u: torch.Tensor, rho: float) -> torch.Tensor:
    """rho / 2 * ||W - Z + U||^2 as a differentiable torch scalar (its W-gradient twins `add_penalty_grad`)."""
    return 0.5 * rho * ((w - z + u) ** 2).sum()


# ---------------------------------------------------------------- schedules (prune_weights.schedule)


def agp_formula(t: float, s_i: float, s_f: float, t0: float, n: int, dt: float) -> float:
    """Twin of `agp_sparsity`: Zhu & Gupta's s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt))^3."""
    return s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt)) ** 3


# ---------------------------------------------------------------- Pareto frontiers (sweeps, plan)


def pareto_keep(points: Sequence[tuple[float, float]]) -> list[bool]:
    """Twin of `bitpruner.sweeps.summary.pareto_mask` (higher is better on both axes), pair by pair."""
    keep = []
    for i, (x, y) in enumerate(points):
        dominated = False
        for j, (ox, oy) in enumerate(points):
            if j != i and ox >= x and oy >= y and (ox, oy) != (x, y):
                dominated = True
        keep.append(not dominated)
    return keep


def every_plan(options: Mapping[str, Sequence], resolution: float) -> list:
    """Every combination of one option per layer, as `bitpruner.plan.frontier.Plan`s (brute force)."""
    from bitpruner.plan.frontier import plan_of

    ranges = (range(len(o)) for o in options.values())
    return [plan_of(options, choice, resolution) for choice in itertools.product(*ranges)]


def lower_left_frontier(pairs: Sequence[tuple[float, int]]) -> list[tuple[float, int]]:
    """Distinct (cost a, cost b) pairs no other pair beats on both (lower is better), by increasing a.

    Twin of `dp_frontier` (on (units, cycles)) and of `non_dominated` / `pareto_frontier` (on (drop, cycles)),
    by pairwise comparison.
    """
    distinct = sorted(set(pairs))
    return [p for p in distinct
            if not any(q != p and q[0] <= p[0] and q[1] <= p[1] for q in distinct)]
