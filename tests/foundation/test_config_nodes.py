"""Typed config nodes: every main config validates with its stage's validator; every bad value is one line
naming the key, the value and what was expected; unknown keys are named; optimizer/scheduler targets and
their keyword arguments are checked against the torch classes."""

import copy
from pathlib import Path

import pytest
import torch
import yaml

from bitpruner.compare.config import validate_compare_stage
from bitpruner.config import validate_training
from bitpruner.errors import ConfigError
from bitpruner.plan.config import PlanConfig, validate_plan_stage
from bitpruner.prune_bits.config import validate_prune_bits_stage
from bitpruner.prune_weights.config import validate_prune_weights_stage
from bitpruner.quant.fixed_point import QuantConfig
from bitpruner.simulate.config import VariantSpec, validate_simulate

CONF = Path(__file__).resolve().parents[2] / "conf"
MAIN_CONFIGS = sorted(p.stem for p in CONF.glob("*.yaml"))
STAGE_VALIDATORS = {
    "train": validate_training,
    "prune_weights": lambda cfg: (validate_training(cfg), validate_prune_weights_stage(cfg)),
    "prune_bits": lambda cfg: (validate_training(cfg), validate_prune_bits_stage(cfg)),
    "plan": validate_plan_stage,
    "simulate": validate_simulate,
    "compare": validate_compare_stage,
}
ADAMW_KEYS = "amsgrad, betas, capturable, differentiable, eps, foreach, fused, lr, maximize, weight_decay"

# A training config as the stages see it (plain dict), independent of conf/.
TRAINING = {
    "seed": 42, "resume": True, "export": "last", "paths": {"root_dir": "/x"}, "model": {"name": "lenet5"},
    "trainer": {"max_epochs": 3, "accelerator": "cpu", "deterministic": True},
    "data": {"_target_": "bitpruner.data.DigitsDataModule", "batch_size": 64, "num_workers": 0},
    "optimizer": {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 0.002, "weight_decay": 0.0001},
    "scheduler": {"_target_": "torch.optim.lr_scheduler.CosineAnnealingLR", "_partial_": True, "T_max": 3,
                  "eta_min": 0.0},
}


def with_value(cfg: dict, key: str, value, delete: bool = False) -> dict:
    out = copy.deepcopy(cfg)
    node = out
    *parents, last = key.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if delete:
        del node[last]
    else:
        node[last] = value
    return out


def one_line_error(call, *args) -> str:
    with pytest.raises(ConfigError) as info:
        call(*args)
    text = str(info.value)
    assert "\n" not in text
    return text


def test_every_main_config_has_a_stage_validator():
    assert set(STAGE_VALIDATORS) == set(MAIN_CONFIGS)


@pytest.mark.parametrize("name", MAIN_CONFIGS)
def test_main_config_validates_with_its_stage_validator(compose, name):
    # compare reads its seeds from the project's params.yaml, which the test root lacks: give them
    STAGE_VALIDATORS[name](compose(name, ["seeds=[42]"] if name == "compare" else []))


def test_train_config_types_the_groups_it_composes(compose):
    cfg = compose("train")
    typed = validate_training(cfg)
    group = yaml.safe_load((CONF / "optimizer" / "adamw.yaml").read_text())
    assert typed.optimizer.target == group["_target_"] and typed.optimizer.lr == group["lr"]
    assert typed.optimizer.kwargs() == {k: v for k, v in group.items() if not k.startswith("_")}
    assert typed.scheduler.kwargs()["T_max"] == cfg["trainer"]["max_epochs"] == typed.trainer.max_epochs
    assert typed.trainer.model_extra["accelerator"] == cfg["trainer"]["accelerator"]  # passed through
    assert typed.data.batch_size == cfg["data"]["batch_size"] and typed.seed == cfg["seed"]


@pytest.mark.parametrize("optimizer", sorted(p.stem for p in (CONF / "optimizer").glob("*.yaml")))
@pytest.mark.parametrize("scheduler", sorted(p.stem for p in (CONF / "scheduler").glob("*.yaml")))
def test_typed_optimizer_builds_what_hydra_instantiates(compose, optimizer, scheduler):
    from hydra.utils import instantiate

    cfg = compose("train", [f"optimizer={optimizer}", f"scheduler={scheduler}"])
    typed = validate_training(cfg)
    params = [torch.nn.Parameter(torch.zeros(2))]
    reference = instantiate(cfg["optimizer"])(params)
    ours = typed.optimizer.partial_class()(params)
    assert type(ours) is type(reference)
    drop = {"params"}
    assert {k: v for k, v in ours.defaults.items() if k not in drop} == reference.defaults
    if scheduler == "none":
        assert typed.scheduler is None and not cfg.get("scheduler")
    else:
        ref_sched = instantiate(cfg["scheduler"])(reference)
        our_sched = typed.scheduler.partial_class()(ours)
        assert type(our_sched) is type(ref_sched)
        assert {k: getattr(our_sched, k) for k in typed.scheduler.kwargs()} == {
            k: getattr(ref_sched, k) for k in typed.scheduler.kwargs()}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("trainer.max_epochs", -3, "trainer.max_epochs: got -3, expected an integer >= 0"),
        ("trainer.max_epochs", True, "trainer.max_epochs: got True, expected an integer >= 0"),
        ("trainer.max_epochs", "3", "trainer.max_epochs: got '3', expected an integer >= 0"),
        ("data.batch_size", 0, "data.batch_size: got 0, expected an integer > 0"),
        ("data.batch_size", 64.0, "data.batch_size: got 64.0, expected an integer > 0"),
        ("seed", "42", "seed: got '42', expected an integer"),
        ("seed", False, "seed: got False, expected an integer"),
        ("resume", "yes", "resume: got 'yes', expected true or false"),
        ("export", "first", "export: got 'first', expected one of last, best or null"),
        ("optimizer._target_", "torch.optim.Adamx",
         "optimizer._target_: got 'torch.optim.Adamx', expected a torch.optim optimizer class path"),
        ("optimizer._target_", "torch.nn.Linear",
         "optimizer._target_: got 'torch.nn.Linear', expected a torch.optim optimizer class path"),
        ("optimizer._target_", "torch.optim.lr_scheduler.StepLR",
         "optimizer._target_: got 'torch.optim.lr_scheduler.StepLR', expected a torch.optim optimizer class path"),
        ("optimizer._target_", 3, "optimizer._target_: got 3, expected a torch.optim optimizer class path"),
        ("optimizer._partial_", False,
         "optimizer._partial_: got False, expected true (the training module passes the first argument)"),
        ("optimizer.lr", 0, "optimizer.lr: got 0, expected a number > 0"),
        ("optimizer.lr", "0.002", "optimizer.lr: got '0.002', expected a number > 0"),
        ("optimizer.lr", True, "optimizer.lr: got True, expected a number > 0"),
        ("optimizer.weight_decay", -0.1, "optimizer.weight_decay: got -0.1, expected a number >= 0"),
        ("optimizer.foo", 1, f"optimizer: unknown key(s) foo; expected some of {ADAMW_KEYS} "
                             "(the parameters of torch.optim.AdamW)"),
        ("optimizer.momentum", 0.9, f"optimizer: unknown key(s) momentum; expected some of {ADAMW_KEYS} "
                                    "(the parameters of torch.optim.AdamW)"),
        ("scheduler._target_", "torch.optim.AdamW",
         "scheduler._target_: got 'torch.optim.AdamW', expected a torch.optim.lr_scheduler scheduler class path"),
        ("scheduler._partial_", "true",
         "scheduler._partial_: got 'true', expected true (the training module passes the first argument)"),
        ("scheduler.lr", 0.1, "scheduler: unknown key(s) lr; expected some of T_max, eta_min, last_epoch "
                              "(the parameters of torch.optim.lr_scheduler.CosineAnnealingLR)"),
    ],
)
def test_training_bad_values_are_one_line_naming_key_value_and_expectation(key, value, message):
    assert one_line_error(validate_training, with_value(TRAINING, key, value)) == message


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("trainer.max_epochs", "trainer.max_epochs: missing from the config"),
        ("optimizer._partial_", "optimizer._partial_: missing from the config"),
        ("optimizer.lr", "optimizer.lr: missing from the config"),
        ("scheduler.T_max", "scheduler.T_max: missing from the config "
                            "(a required parameter of torch.optim.lr_scheduler.CosineAnnealingLR)"),
        ("data", "data: missing from the config"),
    ],
)
def test_training_missing_keys(key, message):
    assert one_line_error(validate_training, with_value(TRAINING, key, None, delete=True)) == message


def test_training_passes_other_keys_through_and_accepts_no_scheduler():
    typed = validate_training(TRAINING)
    assert typed.trainer.model_extra == {"accelerator": "cpu", "deterministic": True}
    assert typed.data.model_extra["_target_"] == "bitpruner.data.DigitsDataModule"
    for none in (None, {}):
        assert validate_training(with_value(TRAINING, "scheduler", none)).scheduler is None
    assert validate_training(with_value(TRAINING, "scheduler", None, delete=True)).scheduler is None
    # weight_decay unset: the optimizer's own default applies, not the model's placeholder
    bare = validate_training(with_value(TRAINING, "optimizer.weight_decay", None, delete=True))
    assert "weight_decay" not in bare.optimizer.kwargs()
    sgd = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.05, "momentum": 0.9, "nesterov": False}
    assert validate_training(with_value(TRAINING, "optimizer", sgd)).optimizer.kwargs() == {
        k: v for k, v in sgd.items() if not k.startswith("_")}


def test_training_old_optimizer_form_says_what_changed():
    old = with_value(TRAINING, "optimizer", {"name": "adam", "lr": 0.001})
    assert one_line_error(validate_training, old).startswith("optimizer: got the old form {name: 'adam', ...}")


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"bitz": 8}, "quant: unknown key(s) bitz; expected some of bits, power_of_two, scale"),
        ({"bits": True}, "quant.bits: got True, expected an integer in [2, 16]"),
        ({"bits": "8"}, "quant.bits: got '8', expected an integer in [2, 16]"),
        ({"bits": 17}, "quant.bits: got 17, expected an integer in [2, 16]"),
        ({"scale": "tensor"}, "quant.scale: got 'tensor', expected one of layer, channel"),
        ({"power_of_two": 1}, "quant.power_of_two: got 1, expected true or false"),
        ({"per_channel": "yes"}, "quant.per_channel: got 'yes', expected true or false"),
    ],
)
def test_quant_node(node, message):
    assert one_line_error(QuantConfig.from_any, node) == message
    assert one_line_error(lambda: QuantConfig(**node)) == message


def test_quant_node_accepts_the_legacy_per_channel_key():
    assert QuantConfig.from_any({"per_channel": True}) == QuantConfig(scale="channel")
    assert QuantConfig.from_any({"per_channel": True, "scale": "layer"}).scale == "layer"
    assert QuantConfig.from_any(None) == QuantConfig()


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"bogus": 1}, "plan: unknown key(s) bogus; expected some of candidates, drop_metric, encoding, max_cycles, "
                       "max_drop, min_speedup, mode, modes, objective, rerank, resolution"),
        ({"candidates": [1, True]}, "plan.candidates[1]: got True, expected a non-empty list of integers >= 0"),
        ({"candidates": [1, -2]}, "plan.candidates: got [1, -2], expected a non-empty list of integers >= 0"),
        ({"candidates": []}, "plan.candidates: got [], expected a non-empty list of integers >= 0"),
        ({"candidates": "1,2"}, "plan.candidates: got '1,2', expected a list"),
        ({"candidates": [1, 1]}, "plan.candidates: got [1, 1], expected distinct integers (no duplicates)"),
        ({"modes": ["per_weight", "rows"]},
         "plan.modes[1]: got 'rows', expected a non-empty subset of per_weight, group_columns"),
        ({"mode": "group_budget"}, "plan.mode='group_budget': expected one of plan.modes "
                                   "['per_weight', 'group_columns']"),
        ({"resolution": "0.01"}, "plan.resolution: got '0.01', expected a number > 0"),
        ({"resolution": 0}, "plan.resolution: got 0, expected a number > 0"),
        ({"max_drop": None}, "plan.max_drop=None: expected a number >= 0 for objective min_cycles"),
        ({"objective": "min_drop"}, "plan: objective min_drop needs exactly one of min_speedup and max_cycles "
                                    "(got min_speedup=None, max_cycles=None)"),
        ({"objective": "min_drop", "max_cycles": 1.5}, "plan.max_cycles: got 1.5, expected an integer > 0 or null"),
        ({"objective": "min_drop", "min_speedup": -2}, "plan.min_speedup: got -2, expected a number > 0 or null"),
        ({"drop_metric": "top5"}, "plan.drop_metric: got 'top5', expected one of acc, loss"),
    ],
)
def test_plan_node(node, message):
    assert one_line_error(PlanConfig.from_mapping, node) == message


def test_plan_node_defaults_and_lists():
    assert PlanConfig.from_mapping(None) == PlanConfig()
    cfg = PlanConfig.from_mapping({"candidates": [3, 1], "modes": ["per_weight"], "mode": "per_weight"})
    assert cfg.candidates == (3, 1) and cfg.modes == ("per_weight",)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("plan.candidates=[1,8]", "plan.candidates: k=[8] exceed 7, the most a 8-bit weight has (7 = no projection)"),
        ("samples=0", "samples: got 0, expected an integer >= 1"),
        ("samples=true", "samples: got True, expected an integer >= 1"),
        ("bits.activations=17", "bits.activations: got 17, expected an integer in [2, 16]"),
        ("+bits.weights=8", "bits: unknown key(s) weights; expected some of activations"),
        ("calibration.batches=0", "calibration.batches: got 0, expected an integer >= 1"),
        ("calibration.batch_size='32'", "calibration.batch_size: got '32', expected an integer >= 1 or null"),
        ("+calibration.shuffle=true", "calibration: unknown key(s) shuffle; expected some of batch_size, batches"),
        ("quant.bits=9", None),  # fine on its own: the check is against pe_width below
        ("accelerator.pe_width=8", "quant.bits=9 exceeds pe_width=8 of PragmaticW-bfs0"),
        ("+quant.bitz=8", "quant: unknown key(s) bitz; expected some of bits, power_of_two, scale"),
    ],
)
def test_plan_stage(compose, override, message):
    overrides = [override] if override != "accelerator.pe_width=8" else ["quant.bits=9", override]
    cfg = compose("plan", overrides)
    if message is None:
        plan_cfg, quant, accel = validate_plan_stage(cfg)
        assert quant.bits == 9 and accel.params.pe_width == 16 and plan_cfg.candidates == (1, 2, 3, 4, 7)
        return
    assert one_line_error(validate_plan_stage, cfg) == message


def test_plan_stage_passes_accelerator_errors_through(compose):
    text = one_line_error(validate_plan_stage, compose("plan", ["+accelerator.lanez=4"]))
    assert text.startswith("accelerator: unknown key(s)") and "lanez" in text


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("samples", 0, "samples: got 0, expected an integer >= 1"),
        ("samples", "1", "samples: got '1', expected an integer >= 1"),
        ("bits.weights", 1, "bits.weights: got 1, expected an integer in [2, 16]"),
        ("bits.activations", 8.0, "bits.activations: got 8.0, expected an integer in [2, 16]"),
        ("bits.act", 8, "bits: unknown key(s) act; expected some of activations, weights"),
        ("calibration.batch_size", 0, "calibration.batch_size: got 0, expected an integer >= 1 or null"),
        ("traced_accuracy", "yes", "traced_accuracy: got 'yes', expected true or false"),
        ("export_dnnsim", 1, "export_dnnsim: got 1, expected true or false"),
        ("progress", None, "progress: got None, expected true or false"),
        ("baseline", "nope", "baseline: got 'nope', expected one of the variant names "
                             "['non-pruned', 'weight-pruned', 'bit-pruned', 'bit-flip (BitWave)', 'BBS (BitVert)']"),
        ("variants", [], "variants: got [], expected a non-empty list of {name, ckpt, metrics, acc_key, required, project}"),
        ("variants.0.foo", 1, "variants[0]: unknown key(s) foo; expected some of acc_key, ckpt, metrics, name, "
                              "project, required"),
        ("variants.1.name", "a/b", "variants[1].name: got 'a/b', expected a name without '/' or ',' "
                                   "(it names files and metrics)"),
        ("variants.1.name", "", "variants[1].name: got '', expected a non-empty string"),
        ("variants.1.name", "non-pruned", "variants: names ['non-pruned', 'non-pruned', 'bit-pruned', "
         "'bit-flip (BitWave)', 'BBS (BitVert)'] must be unique"),
        ("variants.2.ckpt", "", "variants[2].ckpt: got '', expected a checkpoint path"),
        ("variants.2.required", "yes", "variants[2].required: got 'yes', expected true or false"),
        ("variants.2.acc_key", 3, "variants[2].acc_key: got 3, expected a string or null"),
    ],
)
def test_simulate_stage(compose, key, value, message):
    cfg = with_value(compose("simulate"), key, value)
    assert one_line_error(validate_simulate, cfg) == message


def test_simulate_stage_missing_ckpt_and_accelerator_checks(compose):
    cfg = compose("simulate")
    assert one_line_error(validate_simulate, with_value(cfg, "variants.0.ckpt", None, delete=True)) == (
        "variants[0].ckpt: missing from the config")
    assert one_line_error(validate_simulate, with_value(cfg, "accelerators.stripes.arch", "Nope")).startswith(
        "accelerators.stripes: simulator arch='Nope'")
    narrow = with_value(with_value(cfg, "accelerators.stripes.pe_width", 8), "bits.weights", 9)
    assert one_line_error(validate_simulate, narrow) == "bits.weights=9 exceeds pe_width=8 of Stripes"


def test_simulate_stage_returns_typed_variants_and_accelerators(compose):
    cfg = compose("simulate")
    specs, accels = validate_simulate(cfg)
    assert [s.name for s in specs] == [v["name"] for v in cfg["variants"]]
    assert [s.ckpt for s in specs] == [Path(v["ckpt"]) for v in cfg["variants"]]
    assert [s.required for s in specs] == [v.get("required", False) for v in cfg["variants"]]
    assert [a.name for a in accels] == [node["name"] for node in cfg["accelerators"].values()]
    spec = VariantSpec(name="x", ckpt="a/model.ckpt", metrics="")
    assert spec.ckpt == Path("a/model.ckpt") and spec.metrics is None and spec.required is False
    with pytest.raises(ConfigError, match=r"^variant.required: got 1, expected true or false$"):
        VariantSpec(name="x", ckpt="a.ckpt", required=1)
