"""Safe to interrupt: signals end a stage with 128 + signal and a KILLED run, resume state kept; a run left
RUNNING by SIGKILL is closed by the next start; a stage whose `dvc repro` died stops by itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from bitpruner.skeleton.signals import StageInterrupted, interruptible
from bitpruner.tracking import stage_run
from bitpruner.tracking.runs import CONTINUES_TAG

REPO = Path(__file__).resolve().parents[2]
LOGGER = {"experiment_name": "bitpruner", "tracking_uri": None, "artifact_location": None, "run_name": None}


def test_signals_raise_stage_interrupted_with_shell_exit_codes():
    with interruptible():
        for signum, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
            with pytest.raises(StageInterrupted) as caught:
                os.kill(os.getpid(), signum)
                time.sleep(1)  # the handler runs between bytecodes; it must not get here
            assert caught.value.exit_code == code
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_interrupted_run_is_killed_and_the_next_start_continues_it(tmp_path, mlflow_db):
    record = tmp_path / "checkpoints" / "train.run"
    record.parent.mkdir()
    with pytest.raises(StageInterrupted):
        with stage_run("train", {"seed": 1}, LOGGER, tmp_path, run_record=record):
            raise StageInterrupted(signal.SIGTERM)
    client = MlflowClient(tracking_uri=f"sqlite:///{mlflow_db}")
    first = record.read_text().strip()
    assert client.get_run(first).info.status == "KILLED"

    # A SIGKILLed run stays RUNNING; the next start of the stage (same resume state) closes it as KILLED.
    experiment = client.get_experiment_by_name("bitpruner").experiment_id
    orphan = client.create_run(experiment, tags={"stage": "train"}).info.run_id
    record.write_text(orphan + "\n")
    with stage_run("train", {"seed": 1}, LOGGER, tmp_path, run_record=record, resumed=True) as run:
        pass
    assert client.get_run(orphan).info.status == "KILLED"
    assert client.get_run(run.run_id).data.tags[CONTINUES_TAG] == orphan
    assert client.get_run(run.run_id).info.status == "FINISHED"


def test_an_error_while_logging_params_still_ends_the_run_failed(tmp_path, mlflow_db, monkeypatch):
    from lightning.pytorch.loggers import MLFlowLogger

    def boom(self, params):
        raise ValueError("bad param")

    monkeypatch.setattr(MLFlowLogger, "log_hyperparams", boom)
    with pytest.raises(ValueError, match="bad param"):
        with stage_run("train", {"seed": 1}, LOGGER, tmp_path):
            pass
    client = MlflowClient(tracking_uri=f"sqlite:///{mlflow_db}")
    runs = client.search_runs([client.get_experiment_by_name("bitpruner").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]


def test_a_stage_ends_when_its_dvc_parent_dies(tmp_path):
    """watch_parent: once the watched process is gone the stage gets SIGTERM (and so exits 143)."""
    script = textwrap.dedent("""
        import subprocess, sys, time
        from bitpruner.skeleton.signals import StageInterrupted, interruptible, watch_parent
        parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        with interruptible():
            watch_parent(parent.pid, interval=0.05)
            parent.kill()
            parent.wait()
            try:
                time.sleep(10)
            except StageInterrupted as exc:
                sys.exit(exc.exit_code)
        sys.exit(0)
    """)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 143, proc.stderr
    assert time.monotonic() - started < 9


@pytest.mark.slow
def test_sigterm_and_sigkill_on_the_train_entry_point(tmp_path, mlflow_db):
    """The real entry point: SIGKILL leaves RUNNING + last.ckpt; the rerun is SIGTERMed (143, KILLED, state kept,
    tagged as continuing the first); the third run resumes and finishes."""
    env = {**os.environ, "BITPRUNER_ROOT": str(tmp_path)}
    cmd = [sys.executable, str(REPO / "pipelines" / "train.py"), "data=digits", "model=mlp", "trainer.max_epochs=60",
           "data.batch_size=32"]
    last = tmp_path / "checkpoints" / "train" / "last.ckpt"

    def start_and_wait_for_checkpoint():
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        mtime = last.stat().st_mtime if last.exists() else 0
        while not (last.exists() and last.stat().st_mtime > mtime) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert last.exists(), "no checkpoint written"
        return proc

    client = MlflowClient(tracking_uri=f"sqlite:///{mlflow_db}")
    first = start_and_wait_for_checkpoint()
    first.send_signal(signal.SIGKILL)
    first.wait()
    runs = client.search_runs([client.get_experiment_by_name("bitpruner").experiment_id])
    assert [r.info.status for r in runs] == ["RUNNING"]
    killed_id = runs[0].info.run_id

    second = start_and_wait_for_checkpoint()
    second.send_signal(signal.SIGTERM)
    _, err = second.communicate(timeout=60)
    assert second.returncode == 143, err.decode()[-2000:]
    assert client.get_run(killed_id).info.status == "KILLED"
    runs = {r.info.run_id: r for r in client.search_runs([client.get_experiment_by_name("bitpruner").experiment_id])}
    second_run = next(r for i, r in runs.items() if i != killed_id)
    assert second_run.info.status == "KILLED" and second_run.data.tags[CONTINUES_TAG] == killed_id
    assert last.exists()
