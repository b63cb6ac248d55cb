"""The `prune_weights` stage end to end on `digits`: outputs, exact sparsity, plain reload, errors, resume."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

import bitpruner.skeleton.fit as fit
from bitpruner.errors import ConfigError
from bitpruner.models.checkpoint import build_from_config, load_model_checkpoint, save_model_checkpoint
from bitpruner.models.layers import prunable_layers
from bitpruner.prune_weights import stage as prune_stage
from bitpruner.training.builders import build_datamodule
from bitpruner.training.evaluate import evaluate

REPO = Path(__file__).resolve().parents[2]
FAST = ["data=digits", "data.batch_size=256"]
PRUNE = [*FAST, "trainer.max_epochs=3", "prune_weights.end_epoch=2", "prune_weights.final_sparsity=0.8"]


LENET = {"_target_": "bitpruner.models.LeNet5", "name": "lenet5", "channels": [6, 16], "hidden": [120, 84]}
DIGITS = {"in_channels": 1, "image_size": [8, 8], "num_classes": 10}


@pytest.fixture(scope="module")
def trained_ckpt(tmp_path_factory):
    """What the `train` stage leaves for digits (an untrained LeNet-5 is enough to test the mechanics)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("train") / "model.ckpt"
    model = build_from_config(LENET, DIGITS)
    return save_model_checkpoint(path, model, LENET, DIGITS, meta={"dataset": "digits", "metrics": {"test_acc": 9.0}})


@pytest.fixture
def trained(trained_ckpt, tmp_path):
    """The checkpoint at its default place, outputs/train/model.ckpt under the test's root."""
    target = tmp_path / "outputs" / "train" / "model.ckpt"
    target.parent.mkdir(parents=True)
    shutil.copy(trained_ckpt, target)
    return target


def test_stage_prunes_exactly_and_writes_plain_outputs(trained, tmp_path):
    env = {**os.environ, "BITPRUNER_ROOT": str(tmp_path), "BITPRUNER_PIPELINE_ID": "test-pipeline"}
    proc = subprocess.run([sys.executable, str(REPO / "pipelines/prune_weights.py"), *PRUNE,
                           "prune_weights.overrides={conv1: 0.5}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "outputs" / "prune_weights"
    metrics = json.loads((out / "details.json").read_text())
    headline = json.loads((out / "metrics.json").read_text())
    assert 5 <= len(headline) <= 10 and all(metrics[k] == v for k, v in headline.items())
    assert metrics["epochs"] == 3
    assert metrics["baseline_test_acc"] == 9.0
    assert metrics["test_acc_drop"] == pytest.approx(9.0 - metrics["test_acc"])

    # The checkpoint is plain: no masks, rebuilt with no pruning code, exact per-scope sparsity.
    payload = torch.load(out / "model.ckpt", weights_only=False)
    assert not any(k.endswith(("_mask", "_orig")) for k in payload["state_dict"])
    model, _ = load_model_checkpoint(out / "model.ckpt")
    layers = prunable_layers(model)
    zeros = {n: int((m.weight == 0).sum()) for n, m in layers.items()}
    sizes = {n: m.weight.numel() for n, m in layers.items()}
    pool = [n for n in layers if n != "conv1"]
    assert sum(zeros[n] for n in pool) == round(0.8 * sum(sizes[n] for n in pool))
    assert zeros["conv1"] == round(0.5 * sizes["conv1"])
    assert metrics["sparsity"] == pytest.approx(sum(zeros.values()) / sum(sizes.values()), abs=1e-12)
    assert metrics["sparsity_layer"]["conv1"] == pytest.approx(zeros["conv1"] / sizes["conv1"])

    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert evaluate(model, build_datamodule(cfg).test_dataloader())["acc"] == pytest.approx(metrics["test_acc"])

    table = pd.read_csv(out / "layer_sparsity.csv")
    assert list(table["layer"]) == [*layers, "total"]
    assert table["nonzeros"].iloc[-1] == sum(sizes.values()) - sum(zeros.values())
    assert (out / "layer_sparsity.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "checkpoints" / "prune_weights").exists()

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("bitpruner")
    (run,) = client.search_runs([experiment.experiment_id], filter_string="tags.stage = 'prune_weights'")
    assert run.info.status == "FINISHED"
    assert run.data.metrics["final/sparsity"] == pytest.approx(metrics["sparsity"])
    assert "sparsity/overall" in run.data.metrics and "val/acc" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "layer_sparsity.csv", "layer_sparsity.png"} <= artifacts


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("prune_weights.final_sparsity=1.0", "prune_weights.final_sparsity: got 1.0"),
        ("prune_weights.end_epoch=0", "end_epoch=0 is not after start_epoch=0"),
        ("prune_weights.exclude=[features.0]", "'features.0' matches no layer; layers: conv1, conv2, fc1, fc2, fc3"),
        ("trainer.max_epochs=2", "max_epochs > 2"),
    ],
)
def test_bad_pruning_config_fails_before_training(trained, compose, tmp_path, override, fragment):
    cfg = compose("prune_weights", [*PRUNE, "logger=none", override])
    with pytest.raises(ConfigError) as info:
        prune_stage.prune_weights(cfg)
    assert fragment in str(info.value)
    assert not (tmp_path / "outputs" / "prune_weights").exists()


def test_missing_input_checkpoint_is_a_config_error(compose, tmp_path):
    with pytest.raises(ConfigError, match="model checkpoint not found"):
        prune_stage.prune_weights(compose("prune_weights", [*PRUNE, "logger=none"]))


def test_crash_mid_schedule_then_rerun_resumes_with_masks(trained, compose, monkeypatch, tmp_path):
    cfg = compose("prune_weights", [*PRUNE, "logger=none"])
    from bitpruner.training.module import ClassifierModule

    def crash_in_third_epoch(self):
        if self.current_epoch == 2:  # epoch 1's masks are in last.ckpt
            raise RuntimeError("simulated crash")

    monkeypatch.setattr(ClassifierModule, "on_train_epoch_start", crash_in_third_epoch, raising=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        prune_stage.prune_weights(cfg)
    last = tmp_path / "checkpoints" / "prune_weights" / "last.ckpt"
    saved = torch.load(last, weights_only=False)
    masks = {k: v for k, v in saved["state_dict"].items() if k.endswith("weight_mask")}
    assert len(masks) == 5 and saved["epoch"] == 1

    monkeypatch.undo()
    monkeypatch.setenv("BITPRUNER_ROOT", str(tmp_path))
    resumed_from = []
    original = fit.prepare_checkpoint_dir

    def spy(*args, **kwargs):
        resumed_from.append(original(*args, **kwargs))
        return resumed_from[-1]

    monkeypatch.setattr(fit, "prepare_checkpoint_dir", spy)
    metrics = prune_stage.prune_weights(cfg)
    assert resumed_from[0] is not None and resumed_from[0].name == "last.ckpt"
    model, _ = load_model_checkpoint(tmp_path / "outputs" / "prune_weights" / "model.ckpt")
    for key, mask in masks.items():
        layer = key[len("model."): -len(".weight_mask")]
        assert torch.all(prunable_layers(model)[layer].weight[mask == 0] == 0)  # epoch-1 zeros kept
    n = sum(m.weight.numel() for m in prunable_layers(model).values())
    assert metrics["sparsity"] == pytest.approx(round(0.8 * n) / n, abs=1e-12)
