"""One place for the third-party log and warning noise of the stage entry points (`pipelines/<stage>.py`).

Under Hydra every message should be printed once on the console and written once to the job log
(`logs/<stage>/runs/<time>/<stage>.log`): Hydra's job logging puts both handlers on the root logger, so
a library must not print through a handler of its own as well. Lightning adds a console handler at import
(`INFO: ...` on stderr, besides Hydra's line on stdout), and so do MLflow and submitit; they are removed
here and their records reach the root's handlers like everyone else's. What is noise for this project
(the Lightning "litlogger" advertisement, third-party deprecation warnings, MLflow's database-migration
INFO lines and the SQLAlchemy/Alembic ones under them) is dropped here too.

Called from `bitpruner.entry.set_project_root` (the process that composes the config, and so the
multirun's parent) and, through `QuietLoggingCallback` (conf/hydra/default.yaml), in every job, after
Hydra configured the job's logging: a launcher such as submitit runs jobs in fresh processes where the
entry module's top level never runs.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from typing import Any

from hydra.experimental.callback import Callback

# Libraries that attach a console handler of their own at import; under Hydra their records go to the root.
OWN_HANDLER_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning",
                       "lightning_fabric", "mlflow", "submitit")
# Loggers whose INFO lines are noise for this project: the level they are raised to.
QUIET_LOGGERS = {
    "mlflow.store.db.utils": logging.WARNING,   # "Creating initial MLflow database tables..." on each new store
    "alembic": logging.WARNING,                 # MLflow's schema migrations, one line per revision
    "sqlalchemy": logging.WARNING,
    "huey": logging.WARNING,                    # MLflow's job queue
}
# (logger, pattern): records of that logger whose message matches are dropped.
NOISE_MESSAGES = (
    ("lightning.pytorch.utilities.rank_zero", r"litlogger"),
    ("lightning.fabric.utilities.rank_zero", r"litlogger"),
)
# Third-party deprecations: the project pins its dependencies, and a user of the pipeline cannot act on them.
DEPRECATION_CATEGORIES = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
# Warnings attributed to these modules are the project's own and stay visible.
OWN_MODULES = r"(?!(bitpruner|__main__)(\.|$))"
# MLflow configures its loggers at import (one handler, propagation off) unless this says false.
MLFLOW_CONFIGURE_LOGGING_ENV = "MLFLOW_CONFIGURE_LOGGING"


class NoiseFilter(logging.Filter):
    """Drops the records of one logger whose message matches a pattern (`NOISE_MESSAGES`)."""

    def __init__(self, pattern: str) -> None:
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        return self.pattern.search(record.getMessage()) is None


def quiet_third_party(import_lightning: bool = False) -> None:
    """Filter third-party noise and route libraries' own console output through the root logger.

    Idempotent (safe to call per job). A `-W` option or $PYTHONWARNINGS (`sys.warnoptions`) disables the
    warning filters, so a user chasing a deprecation still sees it. `import_lightning` imports Lightning
    first, so that its console handler, added at import, exists to be removed (a stage imports it anyway).
    Raises nothing.
    """
    os.environ.setdefault(MLFLOW_CONFIGURE_LOGGING_ENV, "false")
    if not sys.warnoptions:
        for category in DEPRECATION_CATEGORIES:
            warnings.filterwarnings("ignore", category=category, module=OWN_MODULES)
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    for name, pattern in NOISE_MESSAGES:
        logger = logging.getLogger(name)
        if not any(isinstance(f, NoiseFilter) and f.pattern.pattern == pattern for f in logger.filters):
            logger.addFilter(NoiseFilter(pattern))
    if import_lightning:
        import lightning  # noqa: F401  (its import adds the console handler removed below)
    if logging.getLogger().handlers:  # only where the root prints (Hydra's handlers), else nothing would
        for name in OWN_HANDLER_LOGGERS:
            logger = logging.getLogger(name)
            for handler in list(logger.handlers):
                if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                    logger.removeHandler(handler)
            logger.propagate = True


class QuietLoggingCallback(Callback):
    """Hydra callback (conf/hydra/default.yaml): `quiet_third_party` in each job, after its logging is set."""

    def on_job_start(self, config: Any = None, **kwargs: Any) -> None:
        quiet_third_party(import_lightning=True)
