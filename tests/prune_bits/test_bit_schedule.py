"""Bit-pruning schedules and per-layer budgets: values at given epochs, config checks."""

import pytest

from bitpruner.errors import ConfigError
from bitpruner.prune_bits.config import BitPruneConfig
from bitpruner.prune_bits.plan_file import write_plan_file
from bitpruner.prune_bits.schedule import agp_fraction, agp_update_epochs, layer_state, step_k

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
        ({"mode": "columns"}, "prune_bits.mode: got 'columns', expected one of per_weight, group_columns, group_budget"),
        ({"lanes": 0}, "prune_bits.lanes: got 0, expected a positive integer (the lane group size G)"),
        ({"lanes": -4}, "prune_bits.lanes: got -4"),
        ({"lanes": "16"}, "prune_bits.lanes: got '16'"),
        ({"k": True}, "prune_bits.k: got True, expected an integer"),
        ({"k": 2.0}, "prune_bits.k: got 2.0, expected an integer"),
        ({"first_layer_k": "1"}, "prune_bits.first_layer_k: got '1', expected an integer or null"),
        ({"layers": {"fc1": "1"}}, "prune_bits.layers.fc1: got '1'"),
        ({"layers": [1]}, "prune_bits.layers: got [1], expected a mapping"),
        ({"schedule": "linear"}, "prune_bits.schedule: got 'linear', expected one of step, agp"),
        ({"encoding": "csd"}, "prune_bits.encoding: got 'csd', expected one of binary, booth, dnnsim_booth"),
        ({"initial_fraction": 1.5}, "prune_bits.initial_fraction: got 1.5, expected a number in [0, 1]"),
        ({"initial_fraction": "0.5"}, "prune_bits.initial_fraction: got '0.5'"),
        ({"epochs_per_step": 0}, "prune_bits.epochs_per_step: got 0, expected an integer >= 1"),
        ({"admm": {"rho": 0}}, "prune_bits.admm.rho: got 0, expected a number > 0"),
        ({"admm": {"rho_growth": 0.9}}, "prune_bits.admm.rho_growth: got 0.9, expected a number >= 1"),
        ({"admm": {"enabled": "yes"}}, "prune_bits.admm.enabled: got 'yes', expected true or false"),
        ({"admm": {"epochs": False}}, "prune_bits.admm.epochs: got False, expected an integer >= 1"),
        ({"admm": {"rhoo": 1}}, "prune_bits.admm: unknown key(s) rhoo; expected some of enabled, epochs, rho,"),
        ({"bogus": 1}, "prune_bits: unknown key(s) bogus; expected some of admm, encoding,"),
        ({"schedule": "agp", "start_epoch": 3, "end_epoch": 3}, "end_epoch=3 is not after start_epoch=3"),
    ],
)
def test_bad_config_values(mapping, fragment):
    with pytest.raises(ConfigError) as info:
        BitPruneConfig.from_mapping(mapping)
    assert fragment in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ConfigError) as direct:  # built in code: the same one-line message
        BitPruneConfig(**mapping)
    assert str(direct.value) == str(info.value)


def test_from_mapping_defaults_and_nulls():
    assert BitPruneConfig.from_mapping({"layers": None, "admm": None}) == BitPruneConfig()
    cfg = BitPruneConfig.from_mapping({"initial_fraction": 0, "admm": {"rho": 2}})
    assert isinstance(cfg.initial_fraction, float) and isinstance(cfg.admm.rho, float) and cfg.admm.rho == 2.0


@pytest.mark.parametrize(
    ("node", "bits", "fragment"),
    [
        ({"k": 2, "first_layer_k": 1, "last_layer_k": 2}, 2, "prune_bits.k=2: expected an integer k in [0, 1]"),
        ({"k": 1, "first_layer_k": 4}, 4, "prune_bits.first_layer_k=4: expected an integer k in [0, 3]"),
        ({"k": 1, "layers": {"fc*": 8}}, 8, "prune_bits.layers['fc*']=8: expected an integer k in [0, 7]"),
        ({"k": -1}, 8, "prune_bits.k=-1"),
    ],
)
def test_stage_check_budgets_against_the_weight_width(node, bits, fragment):
    from bitpruner.prune_bits.config import validate_prune_bits_stage

    with pytest.raises(ConfigError) as info:
        validate_prune_bits_stage({"prune_bits": node, "quant": {"bits": bits}})
    assert fragment in str(info.value) and "\n" not in str(info.value)
    ok = {**node, "k": 0, "first_layer_k": None, "last_layer_k": 1, "layers": None}
    bp, quant = validate_prune_bits_stage({"prune_bits": ok, "quant": {"bits": bits, "scale": "channel"}})
    assert bp.k == 0 and bp.last_layer_k == 1 and quant.bits == bits and quant.per_channel


def test_schedule_must_fit_the_epochs():
    cfg = BitPruneConfig(start_k=4, epochs_per_step=2)
    cfg.check_fits(7, {"a": 2})
    with pytest.raises(ConfigError, match="expected max_epochs > 4"):
        cfg.check_fits(4, {"a": 2})
