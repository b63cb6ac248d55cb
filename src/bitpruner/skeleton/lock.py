"""One owner per resume state: a stage holds an exclusive lock on its checkpoint folder for its whole run."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from bitpruner.errors import BitprunerError

LOCK_SUFFIX = ".lock"


class StageBusyError(BitprunerError):
    """Another process runs the same stage on the same checkpoint folder."""


@contextlib.contextmanager
def stage_lock(ckpt_dir: str | Path, stage: str) -> Iterator[Path]:
    """Hold `<ckpt_dir>.lock` (flock, released by the kernel even on SIGKILL) while the block runs.

    Raises StageBusyError at once, naming the holder's PID and the folder, when another process holds it.
    """
    ckpt_dir = Path(ckpt_dir)
    path = ckpt_dir.with_name(ckpt_dir.name + LOCK_SUFFIX)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise StageBusyError(
                f"{ckpt_dir}: in use by PID {holder} (another run of stage {stage}); "
                f"wait for it to end or stop it, or give this run its own paths.ckpt_dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing releases the lock
