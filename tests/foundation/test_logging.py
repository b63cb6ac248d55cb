"""Logging of the stage entry points: each message once on the console and once in Hydra's job log, and the
third-party noise (Lightning's litlogger tip, deprecations, MLflow's migration lines) filtered in one place
(`bitpruner.utils.logging`)."""

import logging
import os
import re
import subprocess
import sys
import warnings
from collections import Counter

import pytest

from bitpruner.utils import logging as quiet
from helpers.overrides import DIGITS_FAST, ONE_BATCH_PER_SPLIT
from helpers.paths import REPO_ROOT

# Hydra's job-logging format, and the one Lightning's own console handler prints ("INFO: message").
HYDRA_LINE = re.compile(r"^\[[^\]]+\]\[(?P<name>[^\]]+)\]\[(?P<level>[A-Z]+)\] - (?P<message>.*)$")
LIBRARY_LINE = re.compile(r"^(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL): (?P<message>.*)$")


def _messages(text: str) -> list[str]:
    """The log messages of console or log-file text, whatever handler printed them."""
    found = []
    for line in text.splitlines():
        match = HYDRA_LINE.match(line) or LIBRARY_LINE.match(line)
        if match:
            found.append(match["message"])
    return found


@pytest.fixture(scope="module")
def train_run(tmp_path_factory):
    """A one-epoch `train` on digits without tracking: (completed process, job-log text)."""
    root = tmp_path_factory.mktemp("logging-root")
    env = {**os.environ, "BITPRUNER_ROOT": str(root), "NUMBA_THREADING_LAYER": "workqueue"}
    env.pop("PYTHONWARNINGS", None)
    run_dir = root / "run"
    cmd = [sys.executable, "pipelines/train.py", *DIGITS_FAST, *ONE_BATCH_PER_SPLIT, "trainer.max_epochs=1",
           "logger=none", f"hydra.run.dir={run_dir}"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, (run_dir / "train.log").read_text()


def test_each_message_once_on_the_console_and_once_in_the_job_log(train_run):
    proc, job_log = train_run
    console = Counter(_messages(proc.stdout + proc.stderr))
    logged = Counter(_messages(job_log))
    assert "`Trainer.fit` stopped: `max_epochs=1` reached." in console  # Lightning's messages are there
    assert [m for m, n in console.items() if n > 1] == []
    assert [m for m, n in logged.items() if n > 1] == []
    assert console == logged


def test_third_party_noise_is_filtered(train_run):
    proc, job_log = train_run
    for text in (proc.stdout, proc.stderr, job_log):
        assert "litlogger" not in text
    assert "is deprecated" not in proc.stderr  # torch's LeafSpec FutureWarning, raised from Lightning


@pytest.fixture
def clean_logging():
    """Restore the loggers this module's unit tests touch (handlers, propagation, levels, filters)."""
    names = ["", *quiet.OWN_HANDLER_LOGGERS, *quiet.QUIET_LOGGERS, *(n for n, _ in quiet.NOISE_MESSAGES)]
    saved = {n: (list(logging.getLogger(n).handlers), logging.getLogger(n).propagate, logging.getLogger(n).level,
                 list(logging.getLogger(n).filters)) for n in names}
    env = os.environ.get(quiet.MLFLOW_CONFIGURE_LOGGING_ENV)
    yield
    for name, (handlers, propagate, level, filters) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:], logger.propagate, logger.filters[:] = handlers, propagate, filters
        logger.setLevel(level)
    if env is None:
        os.environ.pop(quiet.MLFLOW_CONFIGURE_LOGGING_ENV, None)


class _Collect(logging.Handler):
    """Keeps the messages it is handed."""

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


class _OwnConsole(logging.StreamHandler):
    """Stands for the console handler a library adds at import; keeps what it would print."""

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_library_console_handlers_give_way_to_the_root(clean_logging):
    root = logging.getLogger()
    collect = _Collect()
    root.handlers[:] = [collect]
    lightning = logging.getLogger("lightning")
    own = _OwnConsole()
    lightning.handlers[:] = [own]
    logging.getLogger("mlflow").propagate = False
    quiet.quiet_third_party()
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    rank_zero.setLevel(logging.INFO)
    rank_zero.info("GPU available: False, used: False")
    rank_zero.info("Tip: try installing [litlogger](https://pypi.org/project/litlogger/)")
    logging.getLogger("mlflow.tracking").warning("tracking server slow")
    logging.getLogger("mlflow.store.db.utils").info("Creating initial MLflow database tables...")
    logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
    assert own.messages == [] and lightning.handlers == []
    assert collect.messages == ["GPU available: False, used: False", "tracking server slow"]
    quiet.quiet_third_party()  # idempotent: one filter per noisy logger
    assert sum(isinstance(f, quiet.NoiseFilter) for f in rank_zero.filters) == 1


def test_without_root_handlers_library_handlers_stay(clean_logging):
    logging.getLogger().handlers[:] = []
    lightning = logging.getLogger("lightning")
    own = logging.StreamHandler()
    lightning.handlers[:] = [own]
    quiet.quiet_third_party()
    assert lightning.handlers == [own]  # outside Hydra nothing else would print Lightning's messages


def _warn(category, module):
    """A warning attributed to `module`, its message naming both."""
    warnings.warn_explicit(f"{category.__name__} from {module}", category, "somewhere.py", 1, module=module)


def test_third_party_deprecations_are_filtered_ours_are_not(clean_logging, monkeypatch):
    monkeypatch.setattr(sys, "warnoptions", [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet.quiet_third_party()
        for category in (DeprecationWarning, FutureWarning, PendingDeprecationWarning):
            _warn(category, "lightning.pytorch.utilities._pytree")
        _warn(FutureWarning, "bitpruner.prune_bits.stage")
        _warn(UserWarning, "lightning.pytorch.loops.fit_loop")
    assert [str(w.message) for w in caught] == ["FutureWarning from bitpruner.prune_bits.stage",
                                                "UserWarning from lightning.pytorch.loops.fit_loop"]


def test_warning_options_of_the_user_win(clean_logging, monkeypatch):
    monkeypatch.setattr(sys, "warnoptions", ["default"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet.quiet_third_party()
        _warn(DeprecationWarning, "lightning.pytorch.utilities._pytree")
    assert len(caught) == 1
