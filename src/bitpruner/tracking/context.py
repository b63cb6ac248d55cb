"""Where a run belongs: tracking URI, git commit, DVC experiment, the pipeline execution it is part of."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

PARENT_RUN_ENV = "BITPRUNER_PARENT_RUN_ID"
PIPELINE_ID_ENV = "BITPRUNER_PIPELINE_ID"
DVC_EXP_ENV = "DVC_EXP_NAME"
DVC_COMMANDS = ("repro", "exp")


def tracking_uri(configured: str | None, root: str | Path) -> str:
    """An explicit config value, else $MLFLOW_TRACKING_URI, else the sqlite store at the project root."""
    if configured:
        return str(configured)
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(root).resolve() / 'mlflow.db'}"


def artifact_location(configured: str | None, root: str | Path, experiment: str) -> str | None:
    """`mlartifacts/<experiment>` beside the default store; a tracking server chooses its own."""
    if configured:
        return Path(configured).resolve().as_uri()
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return None
    return (Path(root).resolve() / "mlartifacts" / experiment).as_uri()


def git_commit(root: str | Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def _proc_stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a process from /proc, or None off Linux."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[1]), fields[19]


def _is_dvc_pipeline(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    names = [os.path.basename(a.decode(errors="replace")) for a in argv if a]
    for i, name in enumerate(names[:3]):
        if name == "dvc" or name.startswith("dvc."):
            return any(cmd in names[i + 1:] for cmd in DVC_COMMANDS)
    return False


def dvc_ancestor() -> tuple[int, str] | tuple[None, None]:
    """(pid, start time) of the `dvc repro` / `dvc exp run` process that launched this one, or (None, None)."""
    pid = os.getppid()
    for _ in range(16):  # a handful of shells sit between dvc and the stage
        if pid <= 1:
            break
        stat = _proc_stat(pid)
        if stat is None:
            break
        if _is_dvc_pipeline(pid):
            return pid, stat[1]
        pid = stat[0]
    return None, None


def run_label(run_dir: str | Path, root: str | Path) -> str:
    """A pipeline run's folder relative to `<root>/outputs` (`seeds/42` for dvc.yaml's seed fan-out), "" for
    outputs/ itself or a folder elsewhere (a sweep job's)."""
    run, outputs = Path(root, run_dir).resolve(), Path(root, "outputs").resolve()
    if run == outputs or outputs not in run.parents:
        return ""
    return run.relative_to(outputs).as_posix()


def pipeline_id() -> str | None:
    """The pipeline execution this process belongs to.

    $BITPRUNER_PIPELINE_ID when set (`make repro` sets it); otherwise the `dvc repro` / `dvc exp run`
    process that launched this stage, found among our ancestors: every stage of one `dvc repro` shares it.
    None for a stage started by hand, which then runs as a top-level MLflow run.
    """
    explicit = os.environ.get(PIPELINE_ID_ENV)
    if explicit:
        return explicit
    pid, started = dvc_ancestor()
    return None if pid is None else f"dvc-{pid}-{started}"
