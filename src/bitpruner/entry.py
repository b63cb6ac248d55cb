"""What every `pipelines/<stage>.py` does around its library call."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from bitpruner.errors import BitprunerError

ROOT_ENV = "BITPRUNER_ROOT"


def set_project_root(entry_file: str) -> Path:
    """`paths.root_dir` defaults to the repository holding `pipelines/` unless $BITPRUNER_ROOT says otherwise."""
    os.environ.setdefault(ROOT_ENV, str(Path(entry_file).resolve().parents[1]))
    os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
    return Path(os.environ[ROOT_ENV])


def run_stage(stage_fn: Callable, cfg) -> dict:
    """Run the stage; a config or data error becomes one line on stderr and exit status 1."""
    try:
        return stage_fn(cfg)
    except BitprunerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
