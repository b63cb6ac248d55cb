"""`hydra/launcher=slurm`: hydra-submitit-launcher's SlurmLauncher whose failure to submit (sbatch missing or
refusing) or to get a job's result back marks the sweep's MLflow parent run FAILED, prints one line naming the
launcher and the reason, and exits with status 1 (`bitpruner.sweeps.launchers.launch_or_fail`).

Hydra imports every module of `hydra_plugins` at start-up: without the `cluster` extra this defines nothing.
"""

from typing import Any

try:
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
        SlurmLauncher as _SubmititSlurmLauncher,
    )
except ImportError:  # the cluster extra is not installed: `hydra/launcher=slurm` is then unavailable anyway
    _SubmititSlurmLauncher = None

if _SubmititSlurmLauncher is not None:

    class SlurmLauncher(_SubmititSlurmLauncher):
        """The plugin's SlurmLauncher with a clean failure (see the module docstring)."""

        def launch(self, job_overrides: Any, initial_job_idx: int) -> Any:
            from bitpruner.sweeps.launchers import launch_or_fail

            return launch_or_fail(lambda: super(SlurmLauncher, self).launch(job_overrides, initial_job_idx),
                                  self.config)
