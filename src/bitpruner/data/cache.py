"""Array caches written atomically, so a crash or a parallel job never leaves a half-written file."""

from __future__ import annotations

import logging
import os
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    """Write `arrays` to `path` (.npz) via a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as temp_file:
            # A file object, not a name: np.savez would append ".npz" to the temporary name.
            np.savez(temp_file, **arrays)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def load_arrays(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when the file is absent, unreadable or lacks one of `keys`."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            if not all(key in stored.files for key in keys):
                log.warning("cache %s lacks one of %s; rebuilding it", path, keys)
                return None
            return {key: stored[key] for key in keys}
    except (OSError, ValueError, EOFError, KeyError, RuntimeError, zipfile.BadZipFile, zlib.error) as exc:
        # Any damage (truncated, corrupted, foreign file): the cache is only a shortcut, rebuild it.
        log.warning("cache %s is unreadable (%s); rebuilding it", path, exc)
        return None
