"""Analytic oracles for the lock-step weight-serial engine (issue 13 item 5; spec new_designs.md section 5).

- LLSQ's ``get_ave_cycle`` (wangying-ict/LLSQ ``utils/sparsity_analysis.py``, the BitPruner authors' expected
  lock-step cost), re-derived from the spec: the expected cycles of ``k`` iid weights in lock-step, each lane
  clearing one essential bit per cycle, capped at 5. Against ``PragmaticW`` with a full-reach shifter, and
  against BitSim's Pragmatic tile cost (``bitpruner.sim.bitsim``).
- The column oracle for ``bits_first_stage = 0`` (one shared shifter: one cycle per non-zero bit column).

The engine's total is first checked exactly against the step costs counted here from the weights; the mean
step cost is then compared with the oracle within 4 standard errors (sample standard deviation of the step
costs over the square root of their number: steps are independent for iid weights).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from bitpruner.sim import bitsim
from bitpruner.sim.engine import simulate_layer
from bitpruner.sim.params import SimParams
from bitpruner.sim.traces import LayerTrace

LLSQ_CAP = 5  # get_ave_cycle lumps 5 or more essential bits into 5 cycles
MAGNITUDE_BITS = 7  # 8-bit weights: magnitudes below 2**7
STEPS = 4608  # steps per run, as in the spec's measurements
TOLERANCE_SE = 4.0  # standard errors


def llsq_ave_cycle(p: list[float], k: int, fraction: float = 1 / 3) -> float:
    """LLSQ's ``get_ave_cycle(bit_distribution, k, fraction)``, from the spec's formula (not LLSQ's code).

    ``p[i]``: share of weights with exactly i essential bits (zeros included). A ``1 - fraction`` share of the
    zeros is skipped by a sparse format; of the ``t`` share that enters, the expected max over ``k`` draws capped
    at 5 is ``sum_j (1 - P(max <= j))``, j = 0..4; times ``t`` for a group of original weights.
    """
    p = list(p) + [0.0] * (LLSQ_CAP + 1 - len(p))
    t = 1.0 - p[0] * (1.0 - fraction)
    q = [p[0] * fraction / t] + [pi / t for pi in p[1:]]
    return t * sum(1.0 - sum(q[: j + 1]) ** k for j in range(LLSQ_CAP))


def _enumerated_max(p: list[float], k: int) -> float:
    """Twin of llsq_ave_cycle(p, k, fraction=1): E[min(max of k iid draws, 5)] by enumerating every k-tuple."""
    return sum(math.prod(p[i] for i in combo) * min(max(combo), LLSQ_CAP)
               for combo in itertools.product(range(len(p)), repeat=k))


def test_llsq_worked_example():
    assert llsq_ave_cycle([0.5, 0.25, 0.25], 2, fraction=1.0) == pytest.approx(1.1875)
    assert llsq_ave_cycle([0.5, 0.25, 0.25], 2, fraction=1 / 3) == pytest.approx(1.03125)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_llsq_formula_equals_enumeration(k):
    rng = np.random.default_rng(k)
    for _ in range(5):
        p = rng.dirichlet(np.ones(8)).tolist()  # 0..7 essential bits: the cap at 5 matters
        assert llsq_ave_cycle(p, k, fraction=1.0) == pytest.approx(_enumerated_max(p, k))


# ---------------------------------------------------------------- iid weights


def _magnitudes_by_bits() -> list[np.ndarray]:
    """The 7-bit magnitudes with exactly i ones, for i = 0..7."""
    values = np.arange(1 << MAGNITUDE_BITS)
    return [values[np.bitwise_count(values) == i] for i in range(MAGNITUDE_BITS + 1)]


def iid_weights(rng, shape, p: list[float]) -> np.ndarray:
    """int64 weights: an essential-bit count i drawn from p, then a uniform magnitude with i ones, random sign."""
    by_bits = _magnitudes_by_bits()
    counts = rng.choice(len(p), size=shape, p=p)
    mags = np.zeros(shape, np.int64)
    for i in range(1, len(p)):
        sel = counts == i
        mags[sel] = rng.choice(by_bits[i], size=int(sel.sum()))
    return mags * rng.choice([-1, 1], size=shape)


def _bit_distribution(p0: float, top: int = LLSQ_CAP) -> list[float]:
    """p_0 zeros, the rest spread unevenly over 1..top essential bits."""
    rest = np.arange(top, 0, -1, dtype=float)  # more mass on few bits, as in trained layers
    return [p0] + (rest / rest.sum() * (1.0 - p0)).tolist()


def _histogram(w: np.ndarray, bits: np.ndarray | None = None) -> list[float]:
    """The layer's share of weights with i essential bits (LLSQ builds it per layer): popcount(|w|) by default."""
    bits = np.bitwise_count(np.abs(w)) if bits is None else bits
    return (np.bincount(bits.ravel(), minlength=LLSQ_CAP + 1) / bits.size).tolist()


def _layer(w: np.ndarray) -> LayerTrace:
    """A 1 x 1 conv on a 1 x 1 input: one window set, T = C / L rows, every step a weight-only cost."""
    K, C = w.shape
    return LayerTrace("iid", "conv", w.reshape(K, C, 1, 1), np.ones((1, C, 1, 1), np.int64))


def _step_costs(w: np.ndarray, L: int, k_filters: int, per_weight) -> np.ndarray:
    """Step costs counted from the weights: steps = (filter-set group, buffer row); each is the max over the
    group's filters and the row's L lanes of `per_weight`, floored at 1 (the engine's rule)."""
    K, C = w.shape
    blocks = per_weight(w).reshape(K // k_filters, k_filters, C // L, L)
    return np.maximum(blocks.max(axis=(1, 3)), 1).ravel()


def _assert_within(measured: np.ndarray, oracle: float, what: str) -> None:
    se = measured.std(ddof=1) / math.sqrt(measured.size)
    gap = abs(measured.mean() - oracle)
    assert gap <= TOLERANCE_SE * se, f"{what}: mean {measured.mean():.4f} vs oracle {oracle:.4f} ({gap / se:.1f} SE)"


@pytest.mark.parametrize("L, R, Tt, p0", [(4, 2, 1, 0.3), (2, 1, 1, 0.5), (16, 1, 1, 0.6), (4, 2, 2, 0.8)])
@pytest.mark.parametrize("seed", [0, 1])
def test_pragmatic_w_against_llsq(L, R, Tt, p0, seed):
    """PragmaticW, bits_first_stage 3 (each lane clears one bit per cycle), no Booth, no column registers:
    E[step] = get_ave_cycle(p, L*R*Tt, fraction=1) + p_0^k (the floor of 1 on all-zero steps)."""
    rng = np.random.default_rng(seed)
    k = L * R * Tt
    rows, groups = 48, STEPS // 48
    w = iid_weights(rng, (groups * k // L, rows * L), _bit_distribution(p0))  # K = groups * R * Tt filters
    params = SimParams(lanes=L, rows=R, tiles=Tt, columns=1, bits_first_stage=3)
    engine = simulate_layer(_layer(w), "PragmaticW", params)
    steps = _step_costs(w, L, R * Tt, lambda v: np.bitwise_count(np.abs(v)).astype(np.int64))
    assert steps.size == STEPS and engine == steps.sum()  # one window set: compute_cycles = sum of step costs
    p = _histogram(w)
    _assert_within(steps, llsq_ave_cycle(p, k, fraction=1.0) + p[0] ** k, f"PragmaticW L={L} R={R} Tt={Tt}")


@pytest.mark.parametrize("G, h, p0", [(8, 4, 0.4), (4, 2, 0.7)])
def test_bitsim_pragmatic_against_llsq(G, h, p0):
    """BitSim's Pragmatic: essential bits popcount(|w|) + [w < 0], k = G * h, no floor term (an empty tile costs 0)."""
    rng = np.random.default_rng(7)
    w = iid_weights(rng, (h * 96, G * 48), _bit_distribution(p0, top=LLSQ_CAP - 1))  # + sign stays <= 5
    tiles = bitsim.bitsim_tiles(w, G, h)
    costs = bitsim.pragmatic_tile_cost(tiles)
    assert tiles.shape[0] == STEPS
    p = _histogram(w, np.bitwise_count(np.abs(w)) + (w < 0))
    _assert_within(costs, llsq_ave_cycle(p, G * h, fraction=1.0), f"BitSim Pragmatic G={G} h={h}")


@pytest.mark.parametrize("L, p0", [(4, 0.3), (16, 0.5), (8, 0.9)])
def test_pragmatic_w_bfs0_against_the_column_oracle(L, p0):
    """PragmaticW with bits_first_stage 0, R = Tt = 1: E[step] = sum_b (1 - (1 - s_b)^L) + p_0^L, s_b = P(bit b
    of |w| is set) (the expected number of non-zero columns, by linearity; also BitWave's natural cost)."""
    rng = np.random.default_rng(L)
    mags = np.round(np.abs(rng.normal(0.0, 30.0, (96, L * 48)))).clip(0, (1 << MAGNITUDE_BITS) - 1).astype(np.int64)
    w = np.where(rng.random(mags.shape) < p0, 0, mags) * rng.choice([-1, 1], mags.shape)
    params = SimParams(lanes=L, rows=1, tiles=1, columns=1, bits_first_stage=0)
    engine = simulate_layer(_layer(w), "PragmaticW", params)
    # Steps counted from the weights: the non-zero columns of the OR of a row's L magnitudes, floored at 1.
    ored = np.bitwise_or.reduce(np.abs(w).reshape(96, 48, L), axis=2)
    steps = np.maximum(np.bitwise_count(ored).astype(np.int64), 1).ravel()
    assert steps.size == STEPS and engine == steps.sum()
    mag = np.abs(w)
    s = [float(((mag >> b) & 1).mean()) for b in range(MAGNITUDE_BITS)]
    p_zero = float((w == 0).mean())
    oracle = sum(1.0 - (1.0 - sb) ** L for sb in s) + p_zero**L
    _assert_within(steps, oracle, f"PragmaticW bfs 0 L={L}")
