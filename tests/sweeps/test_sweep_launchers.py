"""Cluster launchers as config groups: `hydra/launcher=slurm` writes the batch script its knobs ask for, and
`hydra/launcher=submitit_local` runs a sweep through the same submitit machinery on this machine.

Both need hydra-submitit-launcher (`pip install -e '.[cluster]'`, part of `.[dev]`); without it they skip.
"""

import os
import re
import shutil
import stat
import subprocess
import sys

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from helpers.models import save_digits_lenet
from helpers.overrides import DIGITS_FAST, ONE_BATCH_PER_SPLIT, PRUNE_BITS_QUICK
from helpers.paths import REPO_ROOT

pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="needs the cluster extra: pip install -e '.[cluster]'")

FAST = [*DIGITS_FAST, *ONE_BATCH_PER_SPLIT, "trainer.max_epochs=2", *PRUNE_BITS_QUICK]
# sbatch/srun test doubles: sbatch keeps a copy of the batch script it is given and refuses it, so the sweep
# stops at submission (nothing waits on a cluster); srun only has to exist (submitit looks for it).
FAKE_SBATCH = """#!/bin/sh
cp "$1" "$SBATCH_CAPTURE"
echo "sbatch: error: test double, nothing submitted" >&2
exit 1
"""
FAKE_SRUN = "#!/bin/sh\nexit 1\n"


def _stage_env(root) -> dict:
    env = {**os.environ, "BITPRUNER_ROOT": str(root), "NUMBA_THREADING_LAYER": "workqueue"}
    for name in ("MLFLOW_TRACKING_URI", "BITPRUNER_PARENT_RUN_ID", "PYTHONWARNINGS"):
        env.pop(name, None)
    return env


def _executable(path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_slurm_launcher_puts_its_knobs_in_the_batch_script(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _executable(bin_dir / "sbatch", FAKE_SBATCH)
    _executable(bin_dir / "srun", FAKE_SRUN)
    script = tmp_path / "batch.sh"
    sweep_dir = tmp_path / "sweep"
    env = {**_stage_env(tmp_path), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "SBATCH_CAPTURE": str(script)}
    cmd = [sys.executable, "pipelines/prune_bits.py", "-m", "logger=none", "seed=1,2,3",
           "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=90",
           "hydra.launcher.gpus_per_node=1", "hydra.launcher.cpus_per_task=4", "hydra.launcher.array_parallelism=2",
           "hydra.launcher.setup=[source .venv/bin/activate]", f"hydra.sweep.dir={sweep_dir}"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "test double, nothing submitted" in proc.stderr, proc.stderr[-3000:]
    text = script.read_text()
    flags = dict(re.findall(r"^#SBATCH --([\w-]+)=(.*)$", text, flags=re.MULTILINE))
    assert flags["partition"] == "gpu" and flags["time"] == "90"
    assert flags["gpus-per-node"] == "1" and flags["cpus-per-task"] == "4"
    assert flags["array"] == "0-2%2"  # three jobs, two at a time
    assert flags["job-name"] == "prune_bits"
    assert flags["output"].startswith(f"{sweep_dir}/.submitit/")
    srun = re.search(r"^srun .* -m submitit\.core\._submit ", text, flags=re.MULTILINE)
    assert srun and text.find("\nsource .venv/bin/activate\n") in range(0, srun.start())  # setup runs first


@pytest.mark.slow
def test_submitit_local_sweep_nests_and_summarizes(tmp_path, mlflow_db_template):
    """Two jobs, each in a process submitit starts: both finish, nest under one parent, and get summarized."""
    shutil.copyfile(mlflow_db_template, tmp_path / "mlflow.db")
    save_digits_lenet(tmp_path / "outputs" / "prune_weights" / "model.ckpt", meta={"dataset": "digits"})
    sweep_dir = tmp_path / "sweep"
    cmd = [sys.executable, "pipelines/prune_bits.py", "-m", *FAST, "seed=1,2", "hydra/launcher=submitit_local",
           f"hydra.sweep.dir={sweep_dir}"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=_stage_env(tmp_path), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The jobs ran in processes of their own: submitit's per-job logs are there.
    assert len(list((sweep_dir / ".submitit").glob("*/*_log.out"))) == 2
    table = pd.read_csv(sweep_dir / "sweep_summary.csv")
    assert list(table["overrides"]) == ["seed=1", "seed=2"] and list(table["status"]) == ["FINISHED"] * 2
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("bitpruner").experiment_id
    parents = client.search_runs([experiment], "tags.`bitpruner.kind` = 'sweep'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'")
    assert sorted(r.info.run_id for r in children) == sorted(table["run_id"])
    assert all(r.info.status == "FINISHED" for r in children)
    for job in (0, 1):  # each job wrote its outputs in its own folder
        assert (sweep_dir / str(job) / "outputs" / "metrics.json").is_file()
    assert not (tmp_path / "outputs" / "prune_bits").exists()
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert {"sweep_summary.csv", "sweep_summary.md", "sweep_tradeoff.png"} <= artifacts


REFUSING_SBATCH = """#!/bin/sh
echo "sbatch: error: Batch job submission failed: Invalid partition name specified" >&2
exit 1
"""


@pytest.mark.parametrize("sbatch", ["refusing", "missing"])
def test_a_sweep_slurm_cannot_submit_fails_its_parent_run_in_one_line(tmp_path, mlflow_db_template, sbatch):
    """sbatch refusing the array, or absent: the sweep's MLflow parent run ends FAILED (not RUNNING), one line on
    stderr names the launcher and the reason (no traceback), and the command exits 1."""
    shutil.copyfile(mlflow_db_template, tmp_path / "mlflow.db")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _executable(bin_dir / "srun", FAKE_SRUN)
    if sbatch == "refusing":
        _executable(bin_dir / "sbatch", REFUSING_SBATCH)
    # No other sbatch reachable: PATH keeps only the folders that hold none.
    kept = [d for d in os.environ["PATH"].split(os.pathsep) if d and not os.path.exists(os.path.join(d, "sbatch"))]
    env = {**_stage_env(tmp_path), "PATH": os.pathsep.join([str(bin_dir), *kept])}
    cmd = [sys.executable, "pipelines/prune_bits.py", "-m", "seed=1,2", "hydra/launcher=slurm",
           f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    reason = ("`sbatch` exited with status 1: sbatch: error: Batch job submission failed: Invalid partition name"
              if sbatch == "refusing" else "`sbatch` not found on PATH")
    assert lines[0].startswith(f"error: hydra/launcher=slurm could not run the sweep: {reason}"), lines[0]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("bitpruner").experiment_id
    parents = client.search_runs([experiment], "tags.`bitpruner.kind` = 'sweep'")
    assert len(parents) == 1 and parents[0].info.status == "FAILED"
    assert parents[0].info.run_id in lines[0] and "marked FAILED" in lines[0]
    assert reason in parents[0].data.tags["bitpruner.sweep.error"]
    assert client.search_runs([experiment], "tags.`bitpruner.kind` = 'stage'") == []  # no job ran
