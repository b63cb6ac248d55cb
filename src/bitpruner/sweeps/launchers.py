"""What the SLURM launcher of `hydra/launcher=slurm` adds to hydra-submitit-launcher's: a clean failure when it
cannot submit or a job does not come back. (Hydra accepts plugins only from the `hydra_plugins` package: the
launcher class is `hydra_plugins.bitpruner_launchers.slurm.SlurmLauncher`, which calls `launch_or_fail`.)

Hydra calls no callback when a launcher raises, so without this the sweep's MLflow parent run (opened by
`bitpruner.sweeps.callback.MlflowSweepCallback.on_multirun_start`) stayed RUNNING and the user got a traceback
of submitit's internals. Here the failure marks the parent FAILED (tag `bitpruner.sweep.error`), prints one line
naming the launcher and the reason, and exits with status 1.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

SUBMIT_COMMAND = "sbatch"
REASON_CHARS = 300  # an MLflow tag value and a terminal line; sbatch's own message fits


def failure_reason(exc: BaseException, command: str = SUBMIT_COMMAND) -> str:
    """One line saying why submitit failed: `sbatch` missing, `sbatch` refusing (its first stderr line), or a
    job that did not complete. `exc` is what submitit raised (FileNotFoundError, submitit's FailedJobError
    wrapping a CalledProcessError, UncompletedJobError, ...)."""
    cause = exc.__cause__
    if isinstance(exc, FileNotFoundError):
        text = f"`{command}` not found on PATH (run the sweep on a SLURM login node, or choose another launcher)"
    elif isinstance(cause, subprocess.CalledProcessError):
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        text = f"`{command}` exited with status {cause.returncode}: {lines[0] if lines else 'no message'}"
    else:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        text = f"{type(exc).__name__}: {lines[0] if lines else 'no message'}"
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 3] + "..."


def launch_or_fail(launch: Callable[[], T], config: Any) -> T:
    """`launch()` (a submitit launcher's own `launch`); when it raises because the jobs could not be submitted or
    did not come back (OSError such as a missing `sbatch`, CalledProcessError, submitit's FailedJobError /
    UncompletedJobError), end the sweep through `fail_sweep`: parent run FAILED, one line, exit status 1."""
    from bitpruner.sweeps.callback import fail_sweep

    # submitit echoes a refusing sbatch's stderr itself before raising; that text is the reason of our one
    # line, so stderr is held back during the launch and given back less that echo. (A warning written while
    # the submitting process waits for the array thus shows when the sweep ends.)
    held = io.StringIO()
    try:
        with contextlib.redirect_stderr(held):
            result = launch()
    except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
        # RuntimeError: submitit's UncompletedJobError / FailedJobError.
        sys.stderr.write(_without(held.getvalue(), str(exc)))
        fail_sweep(config, f"{_choice(config)} could not run the sweep: {failure_reason(exc)}")
        raise  # not reached: fail_sweep exits
    except BaseException:
        sys.stderr.write(held.getvalue())
        raise
    sys.stderr.write(held.getvalue())
    return result


def _without(text: str, echo: str) -> str:
    """`text` less one copy of `echo` (and the blank lines that leaves)."""
    echo = echo.strip()
    if echo:
        text = text.replace(echo, "", 1)
    return "".join(line for line in text.splitlines(keepends=True) if line.strip())


def _choice(config: Any) -> str:
    """How the user chose this launcher (`hydra/launcher=slurm`), for the error line."""
    from omegaconf import OmegaConf

    name = OmegaConf.select(config, "hydra.runtime.choices", default={}).get("hydra/launcher") or "slurm"
    return f"hydra/launcher={name}"
