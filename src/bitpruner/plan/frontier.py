"""Exact Pareto frontier of per-layer choices: one option (k) per layer, total drop vs total cycles.

The predicted drop of a plan is the sum of its layers' drops, each clipped at 0 (a projection that
happens to raise val accuracy on one layer is noise on a small split, and must not pay for another
layer's real loss). Drops are discretized *upwards* (ceil) to multiples of `resolution`, so a plan
whose discretized drop meets a bound also meets it with its true drop. A dynamic programme over the
layers keeps, for every discretized total drop, the fewest cycles (exact on the discretized problem);
the frontier is then re-filtered on the true (undiscretized) drops.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from bitpruner.errors import ConfigError

# Absorbs float noise in drop / resolution (0.07 / 0.01 = 7.000000000000001 must stay 7 units).
UNIT_EPS = 1e-9
DROP_DIGITS = 9


@dataclass(frozen=True)
class Option:
    """One choice for one layer: its k, predicted drop (points, or loss increase) and cycles."""

    k: int
    drop: float
    cycles: int


@dataclass(frozen=True)
class Plan:
    """One k per layer (in layer order), its predicted total drop (clipped sum), discretized units, cycles."""

    ks: dict[str, int]
    drop: float
    units: int
    cycles: int


def drop_units(drop: float, resolution: float) -> int:
    """ceil(max(drop, 0) / resolution), robust to float noise."""
    return max(0, math.ceil(max(float(drop), 0.0) / resolution - UNIT_EPS))


def _check(options: Mapping[str, Sequence[Option]], resolution: float) -> None:
    if not options:
        raise ConfigError("plan: no layers to plan")
    if not (isinstance(resolution, (int, float)) and resolution > 0):
        raise ConfigError(f"plan.resolution={resolution!r}: expected a number > 0")
    for name, opts in options.items():
        if not opts:
            raise ConfigError(f"plan: layer {name!r} has no candidate k")


def plan_of(options: Mapping[str, Sequence[Option]], choice: Sequence[int], resolution: float) -> Plan:
    """The Plan that picks option `choice[i]` of layer i."""
    picked = [opts[j] for opts, j in zip(options.values(), choice, strict=True)]
    return Plan(ks={n: o.k for n, o in zip(options, picked, strict=True)},
                drop=math.fsum(max(o.drop, 0.0) for o in picked),
                units=sum(drop_units(o.drop, resolution) for o in picked),
                cycles=int(sum(o.cycles for o in picked)))


def dp_frontier(options: Mapping[str, Sequence[Option]], resolution: float) -> list[Plan]:
    """Plans non-dominated in (discretized drop, cycles), by increasing drop; exact on the discretized problem.

    best[u] = fewest cycles of the layers so far at discretized drop u; one back-pointer array per layer.
    Cost O(layers x options x total units) with numpy.
    """
    _check(options, resolution)
    best = np.zeros(1)
    pointers = []
    for opts in options.values():
        units = [drop_units(o.drop, resolution) for o in opts]
        new = np.full(len(best) + max(units), np.inf)
        arg = np.full(len(new), -1, dtype=np.int32)
        for j, (u, o) in enumerate(zip(units, opts, strict=True)):
            cand = best + o.cycles
            seg = new[u:u + len(best)]
            better = cand < seg  # strict: ties keep the earlier option (deterministic)
            seg[better] = cand[better]
            arg[u:u + len(best)][better] = j
        best = new
        pointers.append(arg)
    plans = []
    lowest = np.inf
    for u in np.flatnonzero(np.isfinite(best)):
        if best[u] < lowest:
            lowest = best[u]
            choice, rest = [], int(u)
            for arg, opts in zip(reversed(pointers), reversed(list(options.values())), strict=True):
                j = int(arg[rest])
                choice.append(j)
                rest -= drop_units(opts[j].drop, resolution)
            plans.append(plan_of(options, choice[::-1], resolution))
    return plans


def non_dominated(plans: Sequence[Plan]) -> list[Plan]:
    """Plans no other plan beats on (true drop, cycles), by increasing drop; duplicates keep the first."""
    out = []
    lowest = math.inf
    # Drops equal up to float noise (sums in another order) count as equal.
    for plan in sorted(plans, key=lambda p: (round(p.drop, DROP_DIGITS), p.cycles)):
        if plan.cycles < lowest:
            lowest = plan.cycles
            out.append(plan)
    return out


def pareto_frontier(options: Mapping[str, Sequence[Option]], resolution: float) -> list[Plan]:
    """The frontier: the DP's plans, re-filtered on their true drops."""
    return non_dominated(dp_frontier(options, resolution))


def min_cycles_plan(frontier: Sequence[Plan], max_drop: float) -> Plan:
    """Fewest cycles with predicted drop <= max_drop (ties: the smaller drop)."""
    feasible = [p for p in frontier if p.drop <= max_drop + UNIT_EPS]
    if not feasible:
        least = min(p.drop for p in frontier)
        raise ConfigError(f"plan.max_drop={max_drop}: infeasible, the smallest predicted drop of any plan is "
                          f"{least:.4g} (add k = bits - 1, i.e. no pruning, to plan.candidates or raise max_drop)")
    return min(feasible, key=lambda p: (p.cycles, p.drop))


def min_drop_plan(frontier: Sequence[Plan], max_cycles: float) -> Plan:
    """Smallest predicted drop with cycles <= max_cycles (ties: fewer cycles)."""
    feasible = [p for p in frontier if p.cycles <= max_cycles]
    if not feasible:
        least = min(p.cycles for p in frontier)
        raise ConfigError(f"plan cycle budget {max_cycles:.0f}: infeasible, the cheapest plan takes {least} "
                          f"cycles (add a smaller k to plan.candidates or relax the budget)")
    return min(feasible, key=lambda p: (p.drop, p.cycles))
