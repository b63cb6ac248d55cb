"""The `prune_bits` stage end to end on `digits`: budgets reached, exact export, consistent reports, resume, errors."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

import bitpruner.skeleton.fit as fit
from bitpruner.errors import ConfigError
from bitpruner.models.checkpoint import build_from_config, load_model_checkpoint, save_model_checkpoint
from bitpruner.models.layers import prunable_layers
from bitpruner.prune_bits import stage as bits_stage
from bitpruner.prune_bits.bits import essential_bits, lane_group_costs
from bitpruner.prune_bits.plan_file import write_plan_file

LENET = {"_target_": "bitpruner.models.LeNet5", "name": "lenet5", "channels": [6, 16], "hidden": [120, 84]}
DIGITS = {"in_channels": 1, "image_size": [8, 8], "num_classes": 10}
# Two batches an epoch: the mechanics, not the accuracy. Schedule 3 -> 2 -> target at epochs 0, 1, 2.
FAST = ["data=digits", "data.batch_size=128", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1",
        "trainer.max_epochs=3", "prune_bits.start_k=3", "prune_bits.epochs_per_step=1"]


@pytest.fixture(scope="module")
def input_ckpt(tmp_path_factory):
    """A LeNet-5 for digits with a third of its weights zeroed (what prune_weights leaves)."""
    torch.manual_seed(0)
    model = build_from_config(LENET, DIGITS)
    with torch.no_grad():
        for layer in prunable_layers(model).values():
            layer.weight[torch.rand_like(layer.weight) < 1 / 3] = 0.0
    path = tmp_path_factory.mktemp("pw") / "model.ckpt"
    return save_model_checkpoint(path, model, LENET, DIGITS, meta={"dataset": "digits", "metrics": {"test_acc": 9.0}})


@pytest.fixture
def rooted(input_ckpt, tmp_path):
    """The input at its default place, outputs/prune_weights/model.ckpt, under the test's root."""
    target = tmp_path / "outputs" / "prune_weights" / "model.ckpt"
    target.parent.mkdir(parents=True)
    target.write_bytes(input_ckpt.read_bytes())
    return target


def _input_zeros(path):
    model, _ = load_model_checkpoint(path)
    return {n: m.weight == 0 for n, m in prunable_layers(model).items()}


def test_group_columns_stage_outputs(rooted, compose, tmp_path):
    cfg = compose("prune_bits", [*FAST, "prune_bits.k=1", "prune_bits.first_layer_k=2", "prune_bits.last_layer_k=null",
                                 "accelerator.lanes=8",
                                 "optimizer=sgd", "optimizer.weight_decay=0.01"])
    metrics = bits_stage.prune_bits(cfg)
    out = tmp_path / "outputs" / "prune_bits"
    assert json.loads((out / "details.json").read_text()) == metrics
    headline = json.loads((out / "metrics.json").read_text())
    assert 5 <= len(headline) <= 10 and all(metrics[k] == v for k, v in headline.items())
    assert metrics["k"] == {"conv1": 2, "conv2": 1, "fc1": 1, "fc2": 1, "fc3": 1} and metrics["lanes"] == 8

    model, payload = load_model_checkpoint(out / "model.ckpt")
    assert not any("parametrizations" in k or "mask" in k for k in payload["state_dict"])
    ints = payload["meta"]["int_weights"]
    zeros = _input_zeros(rooted)
    for name, layer in prunable_layers(model).items():
        q, scale = ints[name]["q"], ints[name]["scale"]
        assert q.dtype == torch.int8 and ints[name]["bits"] == 8
        assert torch.equal(torch.round(layer.weight / scale).to(torch.int8), q)  # reload: identical integers
        assert lane_group_costs(q, lanes=8)["columns"].max() <= metrics["k"][name]
        assert torch.all(q[zeros[name]] == 0)  # weight-pruning zeros kept through SGD momentum + decay

    table = pd.read_csv(out / "layer_bits.csv")
    assert list(table["name"]) == [*prunable_layers(model), "total"]
    total = table.iloc[-1]
    assert total["bit_sparsity"] == pytest.approx(metrics["bit_sparsity"])
    assert total["column_proxy_cycles"] == metrics["column_proxy_cycles"]
    assert total["weight_sparsity"] == pytest.approx(metrics["weight_sparsity"])
    all_q = np.concatenate([ints[n]["q"].numpy().ravel() for n in ints])
    assert metrics["bit_sparsity"] == pytest.approx(1 - essential_bits(all_q).sum() / (7 * all_q.size))
    assert metrics["mean_bits_per_weight"] == pytest.approx(essential_bits(all_q).mean())
    assert metrics["weight_sparsity"] == pytest.approx(np.mean(all_q == 0))
    assert metrics["input_bit_sparsity"] < metrics["bit_sparsity"]
    assert metrics["column_proxy_speedup_vs_input"] > 1
    assert "baseline_test_acc" not in metrics  # no outputs/train/model.ckpt under this root
    for png in ("layer_bit_sparsity.png", "bit_histogram.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("bitpruner")
    (run,) = client.search_runs([experiment.experiment_id], filter_string="tags.stage = 'prune_bits'")
    assert run.data.tags["dataset"] == "digits" and run.data.tags["model"] == "lenet5"
    assert run.data.metrics["final/bit_sparsity"] == pytest.approx(metrics["bit_sparsity"])
    assert "prune_bits/k_mean" in run.data.metrics
    assert {"metrics.json", "layer_bits.csv", "bit_histogram.png"} <= {a.path for a in client.list_artifacts(run.info.run_id)}


def test_per_weight_with_plan_file_and_admm(rooted, compose, tmp_path):
    plan = write_plan_file(tmp_path / "plan.yaml", {"fc1": 1, "conv2": 1})
    cfg = compose("prune_bits", [*FAST, "logger=none", "prune_bits.mode=per_weight", "prune_bits.k=3",
                                 "prune_bits.first_layer_k=2", "prune_bits.last_layer_k=2", f"prune_bits.plan_file={plan}",
                                 "prune_bits.admm.enabled=true", "prune_bits.admm.epochs=2", "prune_bits.admm.update_every=1",
                                 "baseline_ckpt=" + str(rooted)])
    metrics = bits_stage.prune_bits(cfg)
    assert metrics["k"] == {"conv1": 2, "conv2": 1, "fc1": 1, "fc2": 3, "fc3": 2}  # k, first/last, plan
    model, payload = load_model_checkpoint(tmp_path / "outputs" / "prune_bits" / "model.ckpt")
    for name, entry in payload["meta"]["int_weights"].items():
        assert essential_bits(entry["q"].numpy()).max() <= metrics["k"][name]
    assert metrics["baseline_test_acc"] == metrics["input_test_acc"]


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("prune_bits.k=8", "prune_bits.k=8: expected an integer k in [0, 7]"),
        ("prune_bits.k=-1", "prune_bits.k=-1"),
        ("accelerator.lanes=0", "prune_bits.lanes: got 0"),
        ("prune_bits.mode=bogus", "prune_bits.mode: got 'bogus'"),
        ("prune_bits.layers={conv7: 1}", "'conv7' matches no layer"),
        ("trainer.max_epochs=2", "reaches the target k at epoch 2 (0-based); expected max_epochs > 2"),
        ("prune_bits.plan_file=PLAN", "unknown layer(s) classifier.0"),
        ("prune_bits.plan_file=/nonexistent/plan.yaml", "file not found"),
    ],
)
def test_bad_inputs_fail_before_training(rooted, compose, tmp_path, override, fragment):
    if "PLAN" in override:
        override = override.replace("PLAN", str(write_plan_file(tmp_path / "plan.yaml", {"classifier.0": 1})))
    with pytest.raises(ConfigError) as info:
        bits_stage.prune_bits(compose("prune_bits", [*FAST, "logger=none", override]))
    assert fragment in str(info.value)
    assert not (tmp_path / "outputs" / "prune_bits").exists()
    assert not (tmp_path / "checkpoints" / "prune_bits").exists()


def test_crash_mid_schedule_then_rerun_resumes(rooted, compose, monkeypatch, tmp_path):
    cfg = compose("prune_bits", [*FAST, "logger=none", "prune_bits.k=1", "trainer.max_epochs=4",
                                 "prune_bits.first_layer_k=2", "prune_bits.last_layer_k=2",
                                 "prune_bits.schedule=agp", "prune_bits.end_epoch=2"])
    from bitpruner.training.module import ClassifierModule

    def crash_in_third_epoch(self):
        if self.current_epoch == 2:  # epoch 1's selection (fraction 7/8) is in last.ckpt
            raise RuntimeError("simulated crash")

    monkeypatch.setattr(ClassifierModule, "on_train_epoch_start", crash_in_third_epoch, raising=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        bits_stage.prune_bits(cfg)
    saved = torch.load(tmp_path / "checkpoints" / "prune_bits" / "last.ckpt", weights_only=False)
    assert saved["epoch"] == 1
    selected = {k: v for k, v in saved["state_dict"].items() if k.endswith("group_selected")}
    assert len(selected) == 5
    for v in selected.values():
        assert int(v.sum()) == round(7 / 8 * v.numel())

    monkeypatch.undo()
    monkeypatch.setenv("BITPRUNER_ROOT", str(tmp_path))
    resumed_from = []
    original = fit.prepare_checkpoint_dir

    def spy(*args, **kwargs):
        resumed_from.append(original(*args, **kwargs))
        return resumed_from[-1]

    monkeypatch.setattr(fit, "prepare_checkpoint_dir", spy)
    metrics = bits_stage.prune_bits(cfg)
    assert resumed_from[0] is not None and resumed_from[0].name == "last.ckpt"
    assert metrics["epochs"] == 4
    _, payload = load_model_checkpoint(tmp_path / "outputs" / "prune_bits" / "model.ckpt")
    assert metrics["k"] == {"conv1": 2, "conv2": 1, "fc1": 1, "fc2": 1, "fc3": 2}  # first/last at 2
    for name, entry in payload["meta"]["int_weights"].items():
        assert lane_group_costs(entry["q"], lanes=16)["columns"].max() <= metrics["k"][name]
    assert not (tmp_path / "checkpoints" / "prune_bits").exists()
