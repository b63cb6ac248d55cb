"""A Hydra multirun of `prune_bits` on digits: parent + nested children in MLflow, a failed job, the summary."""

import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from helpers.models import save_digits_lenet
from helpers.overrides import DIGITS_FAST, ONE_BATCH_PER_SPLIT, PRUNE_BITS_QUICK
from helpers.paths import REPO_ROOT

# One batch a step, two epochs: schedule 3 -> target; job 1 asks Lightning for a device that does not exist.
FAST = [*DIGITS_FAST, *ONE_BATCH_PER_SPLIT, "trainer.max_epochs=2", *PRUNE_BITS_QUICK]


def run_sweep(root, mlflow_db_template, sweep_args: list[str]):
    """Run a prune_bits multirun rooted in `root`: (sweep dir, completed process)."""
    shutil.copyfile(mlflow_db_template, root / "mlflow.db")
    save_digits_lenet(root / "outputs" / "prune_weights" / "model.ckpt", meta={"dataset": "digits"})
    sweep_dir = root / "sweep"
    env = {**os.environ, "BITPRUNER_ROOT": str(root), "NUMBA_THREADING_LAYER": "workqueue"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("BITPRUNER_PARENT_RUN_ID", None)
    cmd = [sys.executable, "pipelines/prune_bits.py", "-m", *FAST, *sweep_args, f"hydra.sweep.dir={sweep_dir}"]
    return sweep_dir, subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def swept(tmp_path_factory, mlflow_db_template):
    """Run the sweep once: (root, sweep dir, completed process)."""
    root = tmp_path_factory.mktemp("sweep-root")
    return root, *run_sweep(root, mlflow_db_template, ["trainer.accelerator=cpu,no_such_device"])


def test_sweep_nests_runs_and_records_the_failure(swept):
    root, sweep_dir, proc = swept
    assert proc.returncode == 1, proc.stderr[-3000:]  # a failed job fails the sweep, after the summary
    assert "error: 1 of 2 sweep jobs failed (#1)" in proc.stderr
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("bitpruner")
    parents = client.search_runs([experiment.experiment_id], "tags.`bitpruner.kind` = 'sweep'")
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.tags["bitpruner.sweep.failed"] == "1"
    children = client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    by_job = {int(r.data.tags["bitpruner.sweep.job"]): r for r in children}
    assert sorted(by_job) == [0, 1]
    assert by_job[0].info.status == "FINISHED" and by_job[1].info.status == "FAILED"
    assert all(r.data.tags["stage"] == "prune_bits" for r in children)
    # Each job wrote into its own folder, not outputs/prune_bits.
    assert by_job[0].data.params["paths.output_dir"] == str(sweep_dir / "0" / "outputs")
    assert (sweep_dir / "0" / "outputs" / "metrics.json").is_file()
    assert not (root / "outputs" / "prune_bits").exists()
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"sweep_summary.csv", "sweep_summary.md", "sweep_tradeoff.png"} <= artifacts


def test_sweep_summary_rows(swept):
    root, sweep_dir, _ = swept
    table = pd.read_csv(sweep_dir / "sweep_summary.csv")
    assert list(table["job"]) == [0, 1]
    assert list(table["status"]) == ["FINISHED", "FAILED"]
    assert table.loc[1, "overrides"] == "trainer.accelerator=no_such_device"
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    metrics = client.get_run(table.loc[0, "run_id"]).data.metrics
    assert table.loc[0, "test_acc"] == pytest.approx(metrics["final/test_acc"])
    assert table.loc[0, "bit_sparsity"] == pytest.approx(metrics["final/bit_sparsity"])
    assert table.loc[0, "column_proxy_speedup_vs_input"] == pytest.approx(metrics["final/column_proxy_speedup_vs_input"])
    assert pd.isna(table.loc[1, "test_acc"]) and "no_such_device" in table.loc[1, "error"]
    markdown = (sweep_dir / "sweep_summary.md").read_text()
    assert "1 of 2 jobs finished." in markdown and "| 1 | `trainer.accelerator=no_such_device` | FAILED |" in markdown
    assert (sweep_dir / "sweep_tradeoff.png").stat().st_size > 1000


@pytest.mark.slow
def test_joblib_launcher_sweep(tmp_path, mlflow_db_template):
    """Two worker processes (hydra-joblib-launcher): the jobs still nest under the parent and get summarized."""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    sweep_dir, proc = run_sweep(tmp_path, mlflow_db_template, ["hydra/launcher=joblib_local", "seed=1,2"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = pd.read_csv(sweep_dir / "sweep_summary.csv")
    assert list(table["overrides"]) == ["seed=1", "seed=2"] and list(table["status"]) == ["FINISHED"] * 2
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("bitpruner").experiment_id
    parent = client.search_runs([experiment], "tags.`bitpruner.kind` = 'sweep'")[0]
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(r.info.run_id for r in children) == sorted(table["run_id"])
