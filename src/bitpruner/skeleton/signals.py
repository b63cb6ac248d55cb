"""SIGTERM and SIGINT end a stage cleanly: an exception that unwinds the run (MLflow marks it KILLED, resume
state is kept), then exit status 128 + signal (143, 130), as shells and schedulers expect.

A stage started by `dvc repro` also ends when that dvc process dies (a SIGKILLed `dvc repro` must not leave an
orphan that later overwrites outputs): a watchdog thread sends the stage SIGTERM once its dvc ancestor is gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

HANDLED = (signal.SIGTERM, signal.SIGINT)
WATCH_INTERVAL_S = 1.0
SIGNAL_EXIT_BASE = 128


class StageInterrupted(BaseException):  # noqa: N818 - like KeyboardInterrupt, not an error of the stage
    """A stage was asked to stop by a signal; `exit_code` = 128 + signal number."""

    def __init__(self, signum: int):
        self.signum = int(signum)
        super().__init__(f"interrupted by {signal.Signals(self.signum).name}")

    @property
    def exit_code(self) -> int:
        return SIGNAL_EXIT_BASE + self.signum


def _raise(signum, _frame):
    raise StageInterrupted(signum)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Within the block SIGTERM/SIGINT raise StageInterrupted (main thread only); handlers restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in HANDLED}
    for s in HANDLED:
        signal.signal(s, _raise)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()[19]


def watch_parent(pid: int | None, start_time: str | None = None, interval: float = WATCH_INTERVAL_S) -> None:
    """Send this process SIGTERM as soon as process `pid` (started at `start_time`, /proc's field 22) is gone.

    No-op when `pid` is None (a stage started by hand). Daemon thread: it never keeps the process alive.
    """
    if pid is None:
        return
    expected = start_time or _start_time(pid)
    me = os.getpid()

    def poll() -> None:
        stop = threading.Event()
        while not stop.wait(interval):
            if _start_time(pid) != expected:  # gone, or the pid reused by another process
                os.kill(me, signal.SIGTERM)
                return

    threading.Thread(target=poll, name="bitpruner-parent-watch", daemon=True).start()
