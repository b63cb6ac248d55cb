"""What every stage run holds from start to end: the lock on its resume state, signal handling, the watch
on its `dvc repro` parent, the fixed runtime (seeds, threads), its clock, and its staged output folder."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bitpruner.skeleton.lock import stage_lock
from bitpruner.skeleton.runtime import fix_runtime
from bitpruner.skeleton.signals import interruptible, watch_parent
from bitpruner.skeleton.staging import check_output_dir, staged_outputs
from bitpruner.utils.dist import is_rank_zero

RUN_RECORD_SUFFIX = ".run"


@dataclass
class StageSession:
    """One run of a stage. `out_dir` is the final output folder; write into `staging` (inside `outputs()`)."""

    name: str
    cfg: dict
    runtime: dict
    started: float = field(default_factory=time.perf_counter)
    staging: Path | None = None

    @property
    def out_dir(self) -> Path:
        return Path(self.cfg["paths"]["output_dir"])

    @property
    def ckpt_dir(self) -> Path:
        return Path(self.cfg["paths"]["ckpt_dir"])

    @property
    def run_record(self) -> Path:
        """Beside the resume state: the MLflow run id of the last run that used it."""
        return self.ckpt_dir.with_name(self.ckpt_dir.name + RUN_RECORD_SUFFIX)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @contextlib.contextmanager
    def outputs(self) -> Iterator[Path]:
        """The staging folder; it replaces `out_dir` whole when the block succeeds."""
        with staged_outputs(self.out_dir) as staging:
            self.staging = staging
            try:
                yield staging
            finally:
                self.staging = None


@contextlib.contextmanager
def stage_session(name: str, cfg: dict) -> Iterator[StageSession]:
    """Lock `paths.ckpt_dir` (rank 0; other DDP ranks only read it), turn SIGTERM/SIGINT into StageInterrupted,
    end with a dead `dvc repro` parent, seed every RNG and pin the thread count. An output folder that cannot be
    written and an MLflow store that cannot be reached or written fail here, before any work."""
    from bitpruner.tracking.context import dvc_ancestor
    from bitpruner.tracking.preflight import check_logger

    check_output_dir(cfg["paths"]["output_dir"])
    if is_rank_zero():
        check_logger((cfg.get("logger") or {}).get("mlflow"), cfg["paths"]["root_dir"])
    lock = stage_lock(cfg["paths"]["ckpt_dir"], name) if is_rank_zero() else contextlib.nullcontext()
    with lock, interruptible():
        watch_parent(*dvc_ancestor())
        yield StageSession(name=name, cfg=cfg, runtime=fix_runtime(cfg))
