"""`dvc repro` in a fresh copy of the repository (slow: trains every stage of the pipeline)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[2]
# Fast knobs: the mechanics of the pipeline (two seeds fanned out and aggregated), not its accuracy (that is
# `make repro`'s job).
FAST_PARAMS = {"data": "digits", "seeds": [1, 2], "train.epochs": 1}


def fresh_copy(dest: Path) -> Path:
    """The working tree's tracked and untracked-but-not-ignored files, as a new git repository."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split("\n")
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=dest, check=True, capture_output=True)
    return dest


def set_params(path: Path, overrides: dict) -> None:
    params = yaml.safe_load(path.read_text())
    for dotted, value in overrides.items():
        node = params
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.mark.slow
def test_dvc_repro_in_a_fresh_copy(tmp_path):
    repo = fresh_copy(tmp_path / "repo")
    set_params(repo / "params.yaml", FAST_PARAMS)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BITPRUNER_", "MLFLOW_"))}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    dvc = [sys.executable, "-m", "dvc"]
    proc = subprocess.run([*dvc, "repro"], cwd=repo, env=env, capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    stages = list(yaml.safe_load((repo / "dvc.yaml").read_text())["stages"])
    seeded = [s for s in stages if s != "compare"]
    for stage in seeded:
        for seed in FAST_PARAMS["seeds"]:
            assert (repo / "outputs" / "seeds" / str(seed) / stage / "metrics.json").is_file(), (stage, seed)
    summary = json.loads((repo / "outputs" / "compare" / "metrics.json").read_text())
    assert summary["seeds"] == 2
    import pandas as pd

    table = pd.read_csv(repo / "outputs" / "compare" / "comparison.csv")
    assert set(table["seed"].astype(str)) == {"1", "2", "mean"}  # the per-seed rows and the aggregate
    again = subprocess.run([*dvc, "repro"], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "didn't change" in again.stdout
    metrics = subprocess.run([*dvc, "metrics", "show", "--json"], cwd=repo, env=env, capture_output=True,
                             text=True, timeout=600)
    assert metrics.returncode == 0 and "test_acc" in metrics.stdout

    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("bitpruner")
    runs = client.search_runs([experiment.experiment_id])
    stage_runs = [r for r in runs if r.data.tags.get("bitpruner.kind") == "stage"]
    parents = {r.data.tags.get("mlflow.parentRunId") for r in stage_runs}
    assert sorted(r.data.tags["stage"] for r in stage_runs) == sorted([*seeded * 2, "compare"])
    assert len(parents) == 1 and None not in parents, "one parent run for the whole dvc repro"
    assert all(r.info.status == "FINISHED" for r in runs)


@pytest.mark.slow
def test_ddp_on_cpu_two_processes(tmp_path, mlflow_db):
    env = {**os.environ, "BITPRUNER_ROOT": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, str(REPO / "pipelines/train.py"), "data=digits", "trainer=ddp", "trainer.max_epochs=1",
         "logger=none"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "distributed_backend=gloo" in proc.stderr + proc.stdout
    assert (tmp_path / "outputs" / "train" / "metrics.json").is_file()
