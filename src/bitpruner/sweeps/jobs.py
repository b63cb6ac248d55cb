"""What a sweep job leaves for the sweep's summary: its own record file in its Hydra job folder.

A job may run in another process (joblib launcher), so the callback's job hooks and the multirun
hooks share nothing in memory; they meet in the job folders under `hydra.sweep.dir`.
"""

from __future__ import annotations

import json
import math
import sys
import traceback
from pathlib import Path

JOB_RECORD = "sweep_job.json"
FAILURE_RECORD = "sweep_failure.json"
ERROR_CHARS = 300


def in_multirun() -> bool:
    """True inside a job of a Hydra multirun (False outside Hydra, e.g. a test calling a stage directly)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    except (ImportError, ValueError):
        return False


def job_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


class FailedStage(dict):
    """A failed job's result: no metrics (every key reads NaN, so an entry point's `metrics[key]` works)."""

    def __init__(self, error: str):
        super().__init__()
        self.error = error

    def __missing__(self, key):
        return math.nan


def record_failure(exc: BaseException) -> FailedStage:
    """Print the traceback, write the job folder's failure record and return a FailedStage.

    Hydra's basic sweeper re-raises a job's exception after the batch, which would skip
    `on_multirun_end` (no summary, parent left open); catching here lets the other jobs and the summary run.
    """
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    error = one_line(exc)
    folder = job_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FAILURE_RECORD).write_text(json.dumps({"error": error}))
    return FailedStage(error)


def one_line(exc: BaseException) -> str:
    """`Type: message` on one line, cut to ERROR_CHARS (a summary cell, an MLflow tag)."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 3] + "..."


def read_failure(folder: Path) -> str | None:
    path = Path(folder) / FAILURE_RECORD
    return json.loads(path.read_text())["error"] if path.is_file() else None


def write_job_record(folder: Path, record: dict) -> None:
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / JOB_RECORD).write_text(json.dumps(record, indent=2, default=str))


def read_job_records(sweep_dir: Path) -> list[dict]:
    """Every job record under the sweep folder, in job order."""
    records = [json.loads(p.read_text()) for p in Path(sweep_dir).rglob(JOB_RECORD)]
    return sorted(records, key=lambda r: int(r.get("num", 0)))
