import pytest
from prune_weights_helpers import TinyModule, loader, tiny_data, tiny_net, trainer

from bitpruner.errors import ConfigError
from bitpruner.prune_weights.callback import MagnitudePruningCallback
from bitpruner.prune_weights.config import PruningConfig, plan_layers


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"final_sparsity": 1.0}, "prune_weights.final_sparsity: got 1.0, expected a sparsity in [0, 1)"),
        ({"final_sparsity": -0.1}, "prune_weights.final_sparsity: got -0.1, expected a sparsity in [0, 1)"),
        ({"final_sparsity": float("nan")}, "prune_weights.final_sparsity: got nan"),
        ({"final_sparsity": "0.5"}, "prune_weights.final_sparsity: got '0.5', expected a sparsity"),
        ({"final_sparsity": True}, "prune_weights.final_sparsity: got True"),
        ({"initial_sparsity": 0.5, "final_sparsity": 0.3}, "initial_sparsity=0.5"),
        ({"start_epoch": 5, "end_epoch": 3}, "end_epoch=3 is not after start_epoch=5"),
        ({"frequency": 0}, "prune_weights.frequency: got 0, expected an integer >= 1"),
        ({"start_epoch": True}, "prune_weights.start_epoch: got True, expected an integer >= 0"),
        ({"end_epoch": 4.0}, "prune_weights.end_epoch: got 4.0, expected an integer >= 0"),
        ({"scope": "row"}, "prune_weights.scope: got 'row', expected one of global, layer"),
        ({"schedule": "linear"}, "prune_weights.schedule: got 'linear', expected one of agp, oneshot"),
        ({"overrides": {"0": 1.5}}, "prune_weights.overrides['0']: got 1.5, expected a sparsity in [0, 1)"),
        ({"overrides": [0.5]}, "prune_weights.overrides: got [0.5], expected a mapping"),
        ({"exclude": "fc3"}, "prune_weights.exclude: got 'fc3', expected a list"),
        ({"final_sparsty": 0.9}, "prune_weights: unknown key(s) final_sparsty; expected some of end_epoch, exclude,"),
    ],
)
def test_bad_values_raise_one_line_config_errors(kwargs, fragment):
    with pytest.raises(ConfigError) as info:
        PruningConfig(**kwargs)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError) as from_config:  # the same message from a config node
        PruningConfig.from_mapping(kwargs)
    assert str(from_config.value) == str(info.value)


def test_from_mapping_rejects_unknown_keys_and_coerces():
    cfg = PruningConfig.from_mapping({"final_sparsity": 0, "overrides": {"0": 0.5}, "exclude": ("7",)})
    assert cfg.final_sparsity == 0.0 and isinstance(cfg.final_sparsity, float)
    assert cfg.overrides == {"0": 0.5} and cfg.exclude == ["7"]
    assert PruningConfig.from_mapping({"overrides": None, "exclude": None}) == PruningConfig()
    assert PruningConfig.from_mapping(None) == PruningConfig()
    with pytest.raises(ConfigError, match="unknown key"):
        PruningConfig.from_mapping({"final_sparsty": 0.9})


def test_stage_check_needs_an_epoch_after_the_schedule():
    from bitpruner.prune_weights.config import validate_prune_weights_stage

    cfg = {"prune_weights": {"end_epoch": 3}, "trainer": {"max_epochs": 4, "accelerator": "cpu"}}
    assert validate_prune_weights_stage(cfg).end_epoch == 3
    with pytest.raises(ConfigError, match=r"needs trainer.max_epochs > 3, got max_epochs=3"):
        validate_prune_weights_stage({**cfg, "trainer": {"max_epochs": 3}})
    with pytest.raises(ConfigError, match=r"^trainer.max_epochs: got '4', expected an integer >= 0$"):
        validate_prune_weights_stage({**cfg, "trainer": {"max_epochs": "4"}})


def test_patterns_that_match_nothing_name_the_pattern_and_the_layers():
    model = tiny_net()
    with pytest.raises(ConfigError) as info:
        plan_layers(model, PruningConfig(overrides={"conv1": 0.5}))
    assert "'conv1'" in str(info.value) and "0, 2, 5, 7" in str(info.value)
    with pytest.raises(ConfigError, match="exclude pattern 'fc\\*'"):
        plan_layers(model, PruningConfig(exclude=["fc*"]))


def test_plan_resolves_globs_exclusions_and_conflicts():
    model = tiny_net()
    plan = plan_layers(model, PruningConfig(overrides={"0": 0.3, "[57]": 0.8}, exclude=["2"]))
    assert plan.pooled == [] and plan.own_target == {"0": 0.3, "5": 0.8, "7": 0.8} and plan.excluded == ["2"]
    with pytest.raises(ConfigError, match="both excluded and overridden"):
        plan_layers(model, PruningConfig(overrides={"0": 0.3}, exclude=["0"]))
    with pytest.raises(ConfigError, match="different targets"):
        plan_layers(model, PruningConfig(overrides={"[05]": 0.3, "[57]": 0.8}))
    # an exact name beats a glob
    assert plan_layers(model, PruningConfig(overrides={"*": 0.8, "0": 0.2})).own_target["0"] == 0.2


def test_check_fits_needs_an_epoch_after_the_last_step():
    PruningConfig(start_epoch=0, end_epoch=3).check_fits(4)
    with pytest.raises(ConfigError, match="max_epochs"):
        PruningConfig(start_epoch=0, end_epoch=3).check_fits(3)


def test_bad_pattern_fails_before_the_first_training_step(tmp_path):
    module = TinyModule(tiny_net())
    callback = MagnitudePruningCallback(PruningConfig(end_epoch=1, overrides={"features.0": 0.5}))
    with pytest.raises(ConfigError, match="features.0"):
        trainer(tmp_path, 2, [callback]).fit(module, loader(tiny_data()))
    assert module.steps_seen == 0


@pytest.mark.parametrize(("group", "schedule"), [("agp", "agp"), ("oneshot", "oneshot")])
def test_config_group_composes_into_a_valid_schema(compose, group, schedule):
    cfg = compose("prune_weights", [f"prune_weights={group}", "prune_weights.overrides={conv1: 0.5}"])
    pruning = PruningConfig.from_mapping(cfg["prune_weights"])
    assert pruning.schedule == schedule and pruning.scope == "global" and pruning.final_sparsity == 0.9
    assert pruning.overrides == {"conv1": 0.5} and pruning.exclude == []
    pruning.check_fits(cfg["trainer"]["max_epochs"])
    assert cfg["input_ckpt"].endswith("outputs/train/model.ckpt")
