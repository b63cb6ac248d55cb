"""numba settings of the project: every kernel module (simulator, bit projections) imports numba through this module.

- Threading layer: ``workqueue`` unless ``NUMBA_THREADING_LAYER`` says otherwise (forked children that touch
  numba after a parallel call abort under GNU OpenMP; workqueue is fork-safe).
- On-disk cache: every kernel is compiled with ``cache=True`` into ``NUMBA_CACHE_DIR``, which defaults to
  ``$XDG_CACHE_HOME/bitpruner/numba`` (``~/.cache/bitpruner/numba`` without XDG_CACHE_HOME). The default
  place, ``__pycache__`` beside the source, is inside ``src/bitpruner``: a DVC dependency, so every
  ``bitpruner sim`` call would make ``dvc status`` report the pipeline stale.

Both are environment defaults set before numba is imported; when numba was already imported by someone
else, the values are copied into ``numba.config`` (kernels defined afterwards, i.e. ours, see them).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

THREADING_LAYER_ENV = "NUMBA_THREADING_LAYER"
DEFAULT_THREADING_LAYER = "workqueue"
CACHE_DIR_ENV = "NUMBA_CACHE_DIR"
CACHE_SUBDIR = ("bitpruner", "numba")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/bitpruner/numba``, or ``~/.cache/bitpruner/numba`` when XDG_CACHE_HOME is unset."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).joinpath(*CACHE_SUBDIR)


def configure_environment() -> None:
    """Set the threading-layer and cache-dir defaults (the user's own environment values win)."""
    os.environ.setdefault(THREADING_LAYER_ENV, DEFAULT_THREADING_LAYER)
    os.environ.setdefault(CACHE_DIR_ENV, str(default_cache_dir()))


configure_environment()

import numba  # noqa: E402  (after the environment above: numba reads it once, at import)

# numba imported earlier (e.g. by another package) kept its own defaults: hand it ours.
if not numba.config.CACHE_DIR:
    numba.config.CACHE_DIR = os.environ[CACHE_DIR_ENV]
if numba.config.THREADING_LAYER == "default":
    numba.config.THREADING_LAYER = os.environ[THREADING_LAYER_ENV]

# The simulator's decorators: always cached on disk (in the cache dir above).
njit = functools.partial(numba.njit, cache=True)
prange = numba.prange

__all__ = ["CACHE_DIR_ENV", "THREADING_LAYER_ENV", "default_cache_dir", "njit", "numba", "prange"]
