"""The training stage end to end on `digits`: outputs, MLflow records, reload, failure, resume."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

import bitpruner.skeleton.fit as fit
from bitpruner.models.checkpoint import load_model_checkpoint
from bitpruner.train import stage as train_stage
from bitpruner.training.builders import build_datamodule
from bitpruner.training.evaluate import evaluate

REPO = Path(__file__).resolve().parents[2]
FAST = ["data=digits", "trainer.max_epochs=1", "data.batch_size=128"]


def client_for(root: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")


def stage_runs(root: Path, stage: str):
    client = client_for(root)
    experiment = client.get_experiment_by_name("bitpruner")
    return client.search_runs([experiment.experiment_id], filter_string=f"tags.stage = '{stage}'")


def test_entry_point_trains_writes_outputs_and_tracks(tmp_path, mlflow_db):
    env = {**os.environ, "BITPRUNER_ROOT": str(tmp_path), "BITPRUNER_PIPELINE_ID": "test-pipeline"}
    proc = subprocess.run([sys.executable, str(REPO / "pipelines/train.py"), *FAST],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / "outputs" / "train"
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"test_acc", "val_acc", "test_loss", "val_loss", "epochs", "test_acc_8bit"} <= set(metrics)
    assert abs(metrics["test_acc_8bit"] - metrics["test_acc"]) < 10
    assert metrics["epochs"] == 1
    assert 0 <= metrics["test_acc"] <= 100
    assert (out / "config.yaml").is_file()
    assert not (tmp_path / "checkpoints" / "train").exists(), "resume state is dropped after success"
    assert (tmp_path / "logs" / "train").is_dir(), "Hydra's run folders go under logs/"

    runs = stage_runs(tmp_path, "train")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.metrics["final/test_acc"] == pytest.approx(metrics["test_acc"])
    assert "val/acc" in run.data.metrics and "train/loss_epoch" in run.data.metrics
    assert run.data.params["model._target_"] == "bitpruner.models.LeNet5"
    assert run.data.tags["model"] == "lenet5" and run.data.tags["dataset"] == "digits"
    assert len(run.data.tags["git_commit"]) > 0
    parent_id = run.data.tags["mlflow.parentRunId"]
    parent = client_for(tmp_path).get_run(parent_id)
    assert parent.data.tags["bitpruner.pipeline_id"] == "test-pipeline"
    artifacts = {a.path for a in client_for(tmp_path).list_artifacts(run.info.run_id)}
    assert {"metrics.json", "config.yaml"} <= artifacts

    # The checkpoint rebuilds the model with no training code and scores the same.
    model, payload = load_model_checkpoint(out / "model.ckpt")
    cfg_path = out / "config.yaml"
    import yaml

    cfg = yaml.safe_load(cfg_path.read_text())
    datamodule = build_datamodule(cfg)
    assert evaluate(model, datamodule.test_dataloader())["acc"] == pytest.approx(metrics["test_acc"])
    assert payload["geometry"]["image_size"] == [8, 8]


def test_bad_config_fails_before_training_with_one_line(tmp_path, mlflow_db):
    env = {**os.environ, "BITPRUNER_ROOT": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(REPO / "pipelines/train.py"), *FAST, "trainer.max_epochs=-3"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == "error: trainer.max_epochs: got -3, expected an integer >= 0"
    assert not (tmp_path / "outputs").exists()


def test_crash_marks_run_failed_and_rerun_resumes(compose, tmp_path, monkeypatch):
    monkeypatch.setenv("BITPRUNER_PIPELINE_ID", "crash-pipeline")
    cfg = compose("train", ["data=digits", "trainer.max_epochs=2", "data.batch_size=256"])
    from bitpruner.training.module import ClassifierModule

    def crash_in_second_epoch(self):
        if self.current_epoch == 1:
            raise RuntimeError("simulated crash")

    monkeypatch.setattr(ClassifierModule, "on_train_epoch_start", crash_in_second_epoch, raising=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_stage.train(cfg)
    failed = stage_runs(tmp_path, "train")
    assert [r.info.status for r in failed] == ["FAILED"]
    parent = client_for(tmp_path).get_run(failed[0].data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FAILED"
    assert not (tmp_path / "outputs" / "train" / "metrics.json").exists()
    assert (tmp_path / "checkpoints" / "train" / "last.ckpt").is_file()

    monkeypatch.undo()
    monkeypatch.setenv("BITPRUNER_ROOT", str(tmp_path))
    resumed_from = []
    original = fit.prepare_checkpoint_dir

    def spy(*args, **kwargs):
        resumed_from.append(original(*args, **kwargs))
        return resumed_from[-1]

    monkeypatch.setattr(fit, "prepare_checkpoint_dir", spy)
    metrics = train_stage.train(cfg)
    assert resumed_from[0] is not None and resumed_from[0].name == "last.ckpt"
    assert metrics["epochs"] == 2
    statuses = sorted(r.info.status for r in stage_runs(tmp_path, "train"))
    assert statuses == ["FAILED", "FINISHED"]


def test_changed_config_restarts_instead_of_resuming(tmp_path):
    import torch

    from bitpruner.training.resume import prepare_checkpoint_dir

    ckpt = tmp_path / "checkpoints" / "train"
    lightning_like = {"pytorch-lightning_version": "2.6.0", "state_dict": {}}  # what a resume state must hold
    assert prepare_checkpoint_dir(ckpt, "aaa", resume=True) is None
    torch.save(lightning_like, ckpt / "last.ckpt")
    assert prepare_checkpoint_dir(ckpt, "aaa", resume=True) == ckpt / "last.ckpt"
    assert prepare_checkpoint_dir(ckpt, "aaa", resume=False) is None
    torch.save(lightning_like, ckpt / "last.ckpt")
    assert prepare_checkpoint_dir(ckpt, "bbb", resume=True) is None
    assert not (ckpt / "last.ckpt").exists()
