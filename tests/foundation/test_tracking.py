"""Stage runs nest under one parent per pipeline execution; failures are recorded."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from bitpruner.tracking import context
from bitpruner.tracking.flatten import MAX_PARAM_CHARS, flatten
from bitpruner.tracking.runs import PIPELINE_TAG, stage_run

LOGGER = {"experiment_name": "nesting", "tracking_uri": None, "artifact_location": None, "run_name": None}


def runs_of(root: Path, experiment: str = "nesting"):
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id])


def test_flatten_config():
    flat = flatten({"a": {"b": 1, "c": [1, 2]}, "d": "x" * 1000, "e": {}})
    assert flat["a.b"] == "1" and flat["a.c"] == "[1, 2]" and flat["e"] == "{}"
    assert len(flat["d"]) == MAX_PARAM_CHARS


def test_stages_of_one_pipeline_share_a_parent(tmp_path, monkeypatch, mlflow_db):
    monkeypatch.setenv(context.PIPELINE_ID_ENV, "pipe-1")
    monkeypatch.delenv(context.PARENT_RUN_ENV, raising=False)
    for stage in ("train", "prune_weights"):
        with stage_run(stage, {"stage": stage}, LOGGER, tmp_path, tags={"model": "m"}) as run:
            run.log_metrics({"final/acc": 1.0})
    monkeypatch.setenv(context.PIPELINE_ID_ENV, "pipe-2")
    with stage_run("train", {"stage": "train"}, LOGGER, tmp_path):
        pass
    client, runs = runs_of(tmp_path)
    parents = [r for r in runs if r.data.tags.get("bitpruner.kind") == "pipeline"]
    stages = [r for r in runs if r.data.tags.get("bitpruner.kind") == "stage"]
    assert sorted(p.data.tags[PIPELINE_TAG] for p in parents) == ["pipe-1", "pipe-2"]
    by_pipeline = {p.info.run_id: p.data.tags[PIPELINE_TAG] for p in parents}
    assert sorted(by_pipeline[s.data.tags["mlflow.parentRunId"]] for s in stages) == ["pipe-1", "pipe-1", "pipe-2"]
    assert all(r.info.status == "FINISHED" for r in runs)
    # artifacts live under mlartifacts/<experiment> beside the sqlite store
    assert all(r.info.artifact_uri.startswith((tmp_path / "mlartifacts" / "nesting").as_uri()) for r in runs)


def test_explicit_parent_and_failure(tmp_path, monkeypatch, mlflow_db):
    monkeypatch.delenv(context.PIPELINE_ID_ENV, raising=False)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp_id = client.create_experiment("nesting")
    sweep = client.create_run(exp_id, run_name="sweep").info.run_id
    monkeypatch.setenv(context.PARENT_RUN_ENV, sweep)
    with pytest.raises(ValueError):
        with stage_run("simulate", {}, LOGGER, tmp_path):
            raise ValueError("boom")
    _, runs = runs_of(tmp_path)
    child = next(r for r in runs if r.info.run_id != sweep)
    assert child.data.tags["mlflow.parentRunId"] == sweep
    assert child.info.status == "FAILED"


def test_standalone_stage_is_a_top_level_run(tmp_path, monkeypatch, mlflow_db):
    monkeypatch.delenv(context.PIPELINE_ID_ENV, raising=False)
    monkeypatch.delenv(context.PARENT_RUN_ENV, raising=False)
    with stage_run("train", {}, LOGGER, tmp_path):
        pass
    _, runs = runs_of(tmp_path)
    assert len(runs) == 1 and "mlflow.parentRunId" not in runs[0].data.tags


def test_tracking_uri_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert context.tracking_uri(None, tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert context.artifact_location(None, tmp_path, "e") == (tmp_path.resolve() / "mlartifacts" / "e").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert context.tracking_uri(None, tmp_path) == "http://127.0.0.1:5999"
    assert context.artifact_location(None, tmp_path, "e") is None
    assert context.tracking_uri("sqlite:///x.db", tmp_path) == "sqlite:///x.db"


def test_pipeline_id_found_from_a_dvc_ancestor(tmp_path):
    """A process started (through a shell) by `dvc repro` reports that dvc process as its pipeline."""
    fake_dvc = tmp_path / "dvc"
    probe = "from bitpruner.tracking.context import pipeline_id; print(pipeline_id())"
    fake_dvc.write_text(f"#!/bin/sh\nsh -c '{sys.executable} -c \"{probe}\"'\n")
    fake_dvc.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != context.PIPELINE_ID_ENV}
    first = subprocess.run([str(fake_dvc), "repro"], capture_output=True, text=True, env=env, timeout=60)
    second = subprocess.run([str(fake_dvc), "repro"], capture_output=True, text=True, env=env, timeout=60)
    assert first.stdout.startswith("dvc-"), first.stderr
    assert first.stdout != second.stdout
    by_hand = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert by_hand.stdout.strip() == "None"
