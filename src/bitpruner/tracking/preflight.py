"""Before a stage does any work: is the MLflow store it will log to there and writable? A few seconds at most,
then one line, instead of minutes of retries and a long traceback later."""

from __future__ import annotations

import os
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from bitpruner.errors import BitprunerError

PROBE_TIMEOUT_S = 3.0
HINT = "start it, set MLFLOW_TRACKING_URI, or run with logger=none"


class TrackingError(BitprunerError):
    """The MLflow tracking store cannot be reached or written."""


def _sqlite_path(uri: str) -> Path:
    # sqlite:///relative.db, sqlite:////absolute.db
    return Path(uri[len("sqlite:///"):])


def check_sqlite(uri: str, write: bool = True) -> None:
    path = _sqlite_path(uri)
    folder = path.parent if str(path.parent) else Path(".")
    if not write and not path.is_file():
        raise TrackingError(f"MLflow store {path}: no such database (run a stage first, or pass --tracking-uri)")
    if path.exists():
        if path.is_dir():
            raise TrackingError(f"MLflow store {path}: is a folder, expected an sqlite database file; {HINT}")
        if write and (not os.access(path, os.R_OK | os.W_OK) or not os.access(folder, os.W_OK)):
            raise TrackingError(f"MLflow store {path}: read-only (sqlite needs the file and its folder writable); "
                                f"fix the permissions, set MLFLOW_TRACKING_URI, or run with logger=none")
        try:
            mode = "rw" if write else "ro"
            db = sqlite3.connect(f"file:{path}?mode={mode}", uri=True, timeout=PROBE_TIMEOUT_S,
                                 isolation_level=None)
            try:
                db.execute("pragma schema_version").fetchone()
                if write:  # take the write lock and give it back: fails on a read-only file or file system
                    db.execute("begin immediate")
                    db.execute("rollback")
            finally:
                db.close()
        except sqlite3.OperationalError as exc:
            if "readonly" in str(exc) or "read-only" in str(exc) or "unable to open" in str(exc):
                raise TrackingError(f"MLflow store {path}: read-only ({exc}); fix the permissions, set "
                                    f"MLFLOW_TRACKING_URI, or run with logger=none") from None
            raise TrackingError(f"MLflow store {path}: {exc}; {HINT}") from None
        except sqlite3.DatabaseError as exc:
            raise TrackingError(f"MLflow store {path}: not a readable sqlite database ({exc}); move it away, "
                                f"set MLFLOW_TRACKING_URI, or run with logger=none") from None
    elif not folder.is_dir() or not os.access(folder, os.W_OK):
        raise TrackingError(f"MLflow store {path}: cannot be created (folder {folder} missing or read-only); {HINT}")


def check_http(uri: str) -> None:
    health = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(health, timeout=PROBE_TIMEOUT_S) as reply:  # noqa: S310 (the user's server)
            ok = reply.status == 200
    except urllib.error.HTTPError as exc:
        ok = exc.code < 500 and exc.code != 404
        if not ok:
            raise TrackingError(f"MLflow server {uri}: answered HTTP {exc.code} on /health, not an MLflow server "
                                f"or not healthy; {HINT}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(f"MLflow server {uri} unreachable ({reason}); {HINT}") from None
    if not ok:
        raise TrackingError(f"MLflow server {uri}: unhealthy; {HINT}")


def check_tracking_uri(uri: str, write: bool = True) -> None:
    """Raise TrackingError (one line naming the store and what to do) unless `uri` can be logged to (`write`)
    or read."""
    scheme = urlparse(uri).scheme
    if scheme == "sqlite":
        check_sqlite(uri, write)
    elif scheme in ("http", "https"):
        check_http(uri)
    elif scheme in ("", "file"):
        raise TrackingError(f"MLflow store {uri}: a file store, which MLflow >= 3.13 refuses; use "
                            f"sqlite:///mlflow.db or a server URL, or run with logger=none")


def check_logger(logger_cfg: dict | None, root: str | Path) -> None:
    """The stage's `logger.mlflow` node (None: tracking off, nothing to check)."""
    if not logger_cfg:
        return
    from bitpruner.tracking.context import tracking_uri

    check_tracking_uri(tracking_uri(logger_cfg.get("tracking_uri"), root))
