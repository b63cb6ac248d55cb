"""The planning DP against brute force (every k combination) on small random instances."""

import numpy as np
import pytest

from bitpruner.errors import ConfigError
from bitpruner.plan.frontier import (
    Option,
    dp_frontier,
    drop_units,
    min_cycles_plan,
    min_drop_plan,
    non_dominated,
    pareto_frontier,
    plan_of,
)
from helpers.naive import every_plan, lower_left_frontier

RES = 0.01


def random_instance(rng, layers, ks=(1, 2, 3, 4, 7), on_grid=False):
    """Drops mostly positive (some negative: clipped), cycles falling with k (with random ties)."""
    out = {}
    for i in range(layers):
        opts = []
        for k in ks:
            drop = rng.integers(-5, 120) * RES if on_grid else rng.uniform(-0.05, 1.2)
            opts.append(Option(k=k, drop=0.0 if k == 7 else float(drop), cycles=int(rng.integers(10, 200) * k)))
        out[f"layer{i}"] = opts
    return out


@pytest.mark.parametrize("seed", range(12))
def test_dp_equals_brute_force_on_the_discretized_problem(seed):
    rng = np.random.default_rng(seed)
    options = random_instance(rng, layers=int(rng.integers(1, 5)))
    dp = dp_frontier(options, RES)
    every = [(p.units, p.cycles) for p in every_plan(options, RES)]
    assert [(p.units, p.cycles) for p in dp] == lower_left_frontier(every)
    for p in dp:  # each plan's numbers are its own
        again = plan_of(options, [[o.k for o in options[n]].index(k) for n, k in p.ks.items()], RES)
        assert (again.units, again.cycles) == (p.units, p.cycles)


@pytest.mark.parametrize("seed", range(8))
def test_frontier_is_exact_when_drops_are_on_the_grid(seed):
    rng = np.random.default_rng(100 + seed)
    options = random_instance(rng, layers=4, on_grid=True)
    got = [(round(p.drop, 9), p.cycles) for p in pareto_frontier(options, RES)]
    every = every_plan(options, RES)
    assert got == lower_left_frontier([(round(p.drop, 9), p.cycles) for p in every])
    assert got == [(round(p.drop, 9), p.cycles) for p in non_dominated(every)]  # the re-filter alone


@pytest.mark.parametrize("seed", range(8))
def test_chosen_plans_are_optimal_and_meet_their_constraint(seed):
    rng = np.random.default_rng(200 + seed)
    options = random_instance(rng, layers=4)
    frontier = pareto_frontier(options, RES)
    every = every_plan(options, RES)
    slack = len(options) * RES  # ceil discretization over-estimates a plan's drop by < RES per layer
    for max_drop in (0.0, 0.3, 1.0, 2.5):
        plan = min_cycles_plan(frontier, max_drop)
        assert plan.drop <= max_drop + 1e-9
        # Never worse than the exact optimum of the discretized problem, never better than the true optimum.
        assert plan.cycles <= min(p.cycles for p in every if p.units * RES <= max_drop + 1e-9)
        assert plan.cycles >= min(p.cycles for p in every if p.drop <= max_drop + 1e-9)
        if max_drop > slack:
            assert plan.cycles <= min(p.cycles for p in every if p.drop <= max_drop - slack)
    for fraction in (1.0, 0.6, 0.35):
        budget = fraction * max(p.cycles for p in every)
        if budget < min(p.cycles for p in every):
            continue
        plan = min_drop_plan(frontier, budget)
        assert plan.cycles <= budget
        assert plan.drop <= min(p.drop for p in every if p.cycles <= budget) + slack


def test_negative_drops_count_as_zero_and_units_round_up():
    assert drop_units(-0.3, RES) == 0
    assert drop_units(0.07, RES) == 7  # 0.07 / 0.01 is 7.000000000000001 in floats
    assert drop_units(0.0701, RES) == 8
    options = {"a": [Option(1, -0.5, 10), Option(7, 0.0, 50)], "b": [Option(1, 0.2, 5), Option(7, 0.0, 40)]}
    frontier = pareto_frontier(options, RES)
    assert [(p.ks, p.drop, p.cycles) for p in frontier] == [({"a": 1, "b": 7}, 0.0, 50), ({"a": 1, "b": 1}, 0.2, 15)]


def test_infeasible_constraints_are_clear_errors():
    options = {"a": [Option(1, 0.5, 10), Option(2, 0.2, 20)]}
    frontier = pareto_frontier(options, RES)
    with pytest.raises(ConfigError, match=r"plan.max_drop=0.1: infeasible, the smallest predicted drop .* 0.2"):
        min_cycles_plan(frontier, 0.1)
    with pytest.raises(ConfigError, match="infeasible, the cheapest plan takes 10 cycles"):
        min_drop_plan(frontier, 5)
    with pytest.raises(ConfigError, match="plan.resolution"):
        dp_frontier(options, 0)
