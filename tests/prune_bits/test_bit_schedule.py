"""Bit-pruning schedules and per-layer budgets: values at given epochs, config checks."""

import pytest

from bitpruner.prune_bits.config import BitPruneConfig
from bitpruner.prune_bits.plan_file import write_plan_file
from bitpruner.prune_bits.schedule import agp_fraction, agp_update_epochs, layer_state, step_k
from bitpruner.errors import ConfigError

NAMES = ["conv1", "conv2", "fc1", "fc2", "fc3"]


def test_step_schedule_walks_down_to_each_target():
    cfg = BitPruneConfig(start_k=4, epochs_per_step=2)
    assert [step_k(cfg, e, 2) for e in range(8)] == [4, 4, 3, 3, 2, 2, 2, 2]
    assert [step_k(cfg, e, 1) for e in range(8)] == [4, 4, 3, 3, 2, 2, 1, 1]
    assert [step_k(cfg, e, 5) for e in range(3)] == [5, 5, 5]  # a milder target is kept from the start
    assert cfg.final_epoch({"a": 2, "b": 1}) == 6


def test_agp_fraction_is_cubic_between_updates():
    cfg = BitPruneConfig(schedule="agp", start_epoch=1, end_epoch=5, frequency=2, initial_fraction=0.2)
    assert agp_update_epochs(cfg) == [1, 3, 5]
    assert agp_fraction(cfg, 0) == 0.0
    assert agp_fraction(cfg, 1) == pytest.approx(0.2)
    mid = 0.2 + 0.8 * (1 - (1 - 2 / 4) ** 3)
    assert agp_fraction(cfg, 3) == pytest.approx(mid)
    assert agp_fraction(cfg, 4) == pytest.approx(mid)  # constant until the next update
    assert agp_fraction(cfg, 5) == agp_fraction(cfg, 9) == 1.0
    assert layer_state(cfg, 3, 2, 8) == (2, pytest.approx(mid))


def test_admm_phase_is_unconstrained_then_hard():
    cfg = BitPruneConfig.from_mapping({"admm": {"enabled": True, "epochs": 3}})
    assert [layer_state(cfg, e, 2, 8) for e in (0, 2, 3, 7)] == [(7, 0.0), (7, 0.0), (2, 1.0), (2, 1.0)]
    assert cfg.final_epoch({"x": 2}) == 3


def test_layer_k_precedence(tmp_path):
    plan = write_plan_file(tmp_path / "plan.yaml", {"fc2": 3})
    cfg = BitPruneConfig.from_mapping({"k": 2, "first_layer_k": 4, "last_layer_k": None,
                                       "layers": {"fc*": 1, "fc3": 5}, "plan_file": str(plan)})
    assert cfg.layer_k(NAMES, 8) == {"conv1": 4, "conv2": 2, "fc1": 1, "fc2": 3, "fc3": 5}


@pytest.mark.parametrize(
    ("mapping", "fragment"),
    [
        ({"k": 8}, "prune_bits.k=8: expected an integer k in [0, 7]"),
        ({"k": -1}, "prune_bits.k=-1"),
        ({"first_layer_k": 9}, "prune_bits.first_layer_k=9"),
        ({"layers": {"conv9": 1}}, "'conv9' matches no layer"),
        ({"plan_file": "nowhere/plan.yaml"}, "file not found"),
    ],
)
def test_bad_layer_budgets(mapping, fragment):
    with pytest.raises(ConfigError) as info:
        BitPruneConfig.from_mapping(mapping).layer_k(NAMES, 8)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_plan_file_with_unknown_layer(tmp_path):
    plan = write_plan_file(tmp_path / "plan.yaml", {"conv1": 1, "features.0": 2})
    with pytest.raises(ConfigError, match=r"unknown layer\(s\) features.0; layers: conv1"):
        BitPruneConfig.from_mapping({"plan_file": str(plan)}).layer_k(NAMES, 8)


@pytest.mark.parametrize(
    ("mapping", "fragment"),
    [
        ({"mode": "columns"}, "prune_bits.mode='columns'"),
        ({"lanes": 0}, "prune_bits.lanes=0: expected a positive integer"),
        ({"lanes": -4}, "prune_bits.lanes=-4"),
        ({"schedule": "linear"}, "prune_bits.schedule='linear'"),
        ({"encoding": "csd"}, "prune_bits.encoding='csd'"),
        ({"admm": {"rho": 0}}, "prune_bits.admm.rho=0"),
        ({"bogus": 1}, "unknown key(s) bogus"),
        ({"schedule": "agp", "start_epoch": 3, "end_epoch": 3}, "end_epoch=3 is not after start_epoch=3"),
    ],
)
def test_bad_config_values(mapping, fragment):
    with pytest.raises(ConfigError) as info:
        BitPruneConfig.from_mapping(mapping)
    assert fragment in str(info.value)


def test_schedule_must_fit_the_epochs():
    cfg = BitPruneConfig(start_k=4, epochs_per_step=2)
    cfg.check_fits(7, {"a": 2})
    with pytest.raises(ConfigError, match="expected max_epochs > 4"):
        cfg.check_fits(4, {"a": 2})
