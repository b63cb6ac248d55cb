"""Session-wide test environment: offline, quiet, and safe for numba after fork."""

import os
from pathlib import Path

import pytest

from helpers.paths import CONFIG_DIR

os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("GIT_AUTHOR_NAME", "bitpruner tests")
os.environ.setdefault("GIT_AUTHOR_EMAIL", "tests@bitpruner.invalid")
os.environ.setdefault("GIT_COMMITTER_NAME", "bitpruner tests")
os.environ.setdefault("GIT_COMMITTER_EMAIL", "tests@bitpruner.invalid")
# A tracking server configured in the shell must not receive test runs.
os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture(scope="session")
def mlflow_db_template(tmp_path_factory) -> Path:
    """An empty MLflow sqlite store, migrated once: creating one costs seconds of schema migrations."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_db(tmp_path, mlflow_db_template) -> Path:
    """`tmp_path/mlflow.db`, ready to use (a copy of the migrated template)."""
    import shutil

    target = tmp_path / "mlflow.db"
    shutil.copyfile(mlflow_db_template, target)
    return target


@pytest.fixture
def compose(tmp_path, monkeypatch, mlflow_db):
    """compose(config_name, overrides) -> resolved plain dict rooted in tmp_path (outputs, mlflow.db, caches)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from bitpruner.config import to_container

    monkeypatch.setenv("BITPRUNER_ROOT", str(tmp_path))

    def _compose(name: str, overrides: list[str] | None = None) -> dict:
        with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
            cfg = hydra_compose(name, overrides=list(overrides or []))
        return to_container(cfg)

    return _compose
