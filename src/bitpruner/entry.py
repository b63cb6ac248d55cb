"""What every `pipelines/<stage>.py` does around its library call."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from bitpruner.errors import BitprunerError
from bitpruner.utils.logging import quiet_third_party

ROOT_ENV = "BITPRUNER_ROOT"


def set_project_root(entry_file: str) -> Path:
    """`paths.root_dir` defaults to the repository holding `pipelines/` unless $BITPRUNER_ROOT says otherwise."""
    os.environ.setdefault(ROOT_ENV, str(Path(entry_file).resolve().parents[1]))
    quiet_third_party()
    return Path(os.environ[ROOT_ENV])


def run_stage(stage_fn: Callable, cfg) -> dict:
    """Run the stage; a config or data error becomes one line on stderr and exit status 1; SIGTERM / SIGINT
    end it with status 143 / 130 (the MLflow run is then KILLED and the resume state kept).

    In a Hydra multirun a failing job must not end the sweep: `sys.exit` would escape Hydra's per-job
    handling and kill the sweep, and any exception would make the basic sweeper raise after the batch and
    skip the sweep summary. So there any error is recorded in the job folder (the stage's MLflow run is
    already FAILED) and an empty result returned; the sweep callback reports it and fails the sweep at the end.
    """
    from bitpruner.skeleton.signals import StageInterrupted
    from bitpruner.sweeps.jobs import in_multirun, record_failure

    try:
        return stage_fn(cfg)
    except StageInterrupted as exc:
        # Status 128 + signal, as a shell reports a process killed by it; the resume state stays for a rerun.
        print(f"error: stage {cfg.get('stage', '?')} {exc}; its resume state is kept, run it again to resume",
              file=sys.stderr)
        sys.exit(exc.exit_code)
    except Exception as exc:
        if in_multirun():
            return record_failure(exc)
        message = str(exc) if isinstance(exc, BitprunerError) else tracking_failure(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(1)


def tracking_failure(exc: BaseException) -> str | None:
    """One line for an MLflow store that failed during the run (server gone, disk full), else None."""
    kind = type(exc)
    if not kind.__module__.startswith(("mlflow", "requests", "urllib3", "sqlalchemy")):
        return None
    first = (str(exc).strip().splitlines() or [kind.__name__])[0]
    return f"MLflow tracking failed during the run: {first[:300]}; rerun to resume, or run with logger=none"
