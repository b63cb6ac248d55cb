"""numba settings of the project: every kernel module (simulator, bit projections) imports numba through this module.

- Threading layer: ``workqueue`` unless ``NUMBA_THREADING_LAYER`` says otherwise (forked children that touch
  numba after a parallel call abort under GNU OpenMP; workqueue is fork-safe).
- On-disk cache: every kernel is compiled with ``cache=True`` into ``NUMBA_CACHE_DIR``, which defaults to
  ``$XDG_CACHE_HOME/bitpruner/numba`` (``~/.cache/bitpruner/numba`` without XDG_CACHE_HOME). The default
  place, ``__pycache__`` beside the source, is inside ``src/bitpruner``: a DVC dependency, so every
  ``bitpruner sim`` call would make ``dvc status`` report the pipeline stale.

Both are environment defaults set when this module is imported; when numba was already imported by someone
else, the values are copied into ``numba.config`` (kernels defined afterwards, i.e. ours, see them).

**numba loads lazily.** Importing this module does not import numba: ``numba``, ``njit`` and ``prange`` are
module attributes resolved on first use (``from bitpruner.utils.jit import njit`` imports it). Loading numba
and its first cached kernel costs a few tenths of a second and ~100 MiB of resident memory (LLVM), more than
small simulations take in numpy, so the simulator asks :func:`use_jit` whether a piece of work is worth it.
The simulator's kernels are serial and release the GIL; callers spread them over :func:`threads` threads.
Three optional imports numba makes are skipped when nobody loaded them before (saving ~0.4 s per process):
``scipy.linalg`` (numba only uses it to pick a BLAS inner product for ``np.convolve``/``np.correlate``, which
then use numba's own loop; ``np.dot`` and friends still import scipy when compiled), ``cffi`` (calling cffi
functions from jitted code; no kernel of the project does) and ``coverage`` (line coverage of jitted code,
which needs a coverage tracer started before numba: set ``NUMBA_JIT_COVERAGE=1`` to keep it). At exit, a
process that loaded numba freezes the garbage collector's objects (``gc.freeze``), which skips a ~0.3 s scan
of numba's registries by the interpreter's last collection.

**When to JIT** (``BITPRUNER_JIT``): ``auto`` (default) runs a kernel's numba form when the caller's estimate
of the time it saves over numpy reaches numba's start-up (a twentieth of it once numba is loaded in this
process) or inside :func:`prefer_jit` (a whole run whose estimated saving pays for numba), ``always`` /
``never`` force one form (tests run both; the two forms give identical results).
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import functools
import gc
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from bitpruner.errors import ConfigError

THREADING_LAYER_ENV = "NUMBA_THREADING_LAYER"
DEFAULT_THREADING_LAYER = "workqueue"
CACHE_DIR_ENV = "NUMBA_CACHE_DIR"
CACHE_SUBDIR = ("bitpruner", "numba")
JIT_ENV = "BITPRUNER_JIT"
JIT_MODES = ("auto", "always", "never")
JIT_COVERAGE_ENV = "NUMBA_JIT_COVERAGE"
NUM_THREADS_ENV = "NUMBA_NUM_THREADS"
# Optional imports numba makes at start-up that cost more than they give a simulator run (see above).
SKIPPED_AT_IMPORT = ("coverage",)
SKIPPED_AT_FIRST_KERNEL = ("scipy.linalg.cython_blas", "cffi")
# CPU seconds of importing numba and loading the first cached kernel (benchmarks/sim_jit_calibration.py, on the
# 2-core development machine); once numba is loaded a further kernel costs only its cache file (~10 ms).
NUMBA_STARTUP_S = 0.45
WARM_DISCOUNT = 20


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/bitpruner/numba``, or ``~/.cache/bitpruner/numba`` when XDG_CACHE_HOME is unset."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).joinpath(*CACHE_SUBDIR)


def configure_environment() -> None:
    """Set the threading-layer and cache-dir defaults (the user's own environment values win)."""
    os.environ.setdefault(THREADING_LAYER_ENV, DEFAULT_THREADING_LAYER)
    os.environ.setdefault(CACHE_DIR_ENV, str(default_cache_dir()))


configure_environment()


def jit_mode() -> str:
    """``BITPRUNER_JIT`` (default ``auto``); ConfigError for another value."""
    mode = os.environ.get(JIT_ENV, "auto").strip().lower() or "auto"
    if mode not in JIT_MODES:
        raise ConfigError(f"{JIT_ENV}={os.environ[JIT_ENV]!r}: expected one of {', '.join(JIT_MODES)}")
    return mode


def threads() -> int:
    """Threads for the kernels (numba kernels release the GIL): ``NUMBA_NUM_THREADS`` if set, else the CPUs this
    process may run on. ConfigError for a value that is not an integer >= 1."""
    value = os.environ.get(NUM_THREADS_ENV, "").strip()
    if not value:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{NUM_THREADS_ENV}={value!r}: expected an integer >= 1")
    return int(value)


def numba_loaded() -> bool:
    """Whether numba is already imported in this process (its start-up cost is then paid)."""
    return "numba" in sys.modules


_PREFER_JIT: contextvars.ContextVar[bool] = contextvars.ContextVar("prefer_jit", default=False)


@contextlib.contextmanager
def prefer_jit(prefer: bool = True) -> Iterator[None]:
    """Within the block, ``auto`` runs every kernel's numba form when `prefer` (a caller that knows the whole
    run's work, e.g. a network, decided that it pays for numba's start-up)."""
    token = _PREFER_JIT.set(prefer)
    try:
        yield
    finally:
        _PREFER_JIT.reset(token)


def use_jit(saving: float) -> bool:
    """Run a kernel (or a whole run) in numba, which the caller estimates would save `saving` CPU seconds over
    numpy?

    ``auto``: inside ``prefer_jit()``, or when `saving` >= NUMBA_STARTUP_S (>= NUMBA_STARTUP_S / WARM_DISCOUNT
    once numba is loaded). ``always`` / ``never`` (``BITPRUNER_JIT``) force it.
    """
    mode = jit_mode()
    if mode != "auto":
        return mode == "always"
    if _PREFER_JIT.get():
        return True
    return saving >= (NUMBA_STARTUP_S / WARM_DISCOUNT if numba_loaded() else NUMBA_STARTUP_S)


@contextlib.contextmanager
def _skipped(modules: tuple[str, ...]) -> Iterator[None]:
    """Make `import m` fail for each module not imported yet (None in sys.modules), then undo that."""
    blocked = [m for m in modules if m not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


@functools.cache
def _numba():
    """Import numba with the project's settings (once)."""
    keep_coverage = os.environ.get(JIT_COVERAGE_ENV, "0") not in ("", "0")
    with _skipped(() if keep_coverage else SKIPPED_AT_IMPORT):
        import numba
    # numba imported earlier (e.g. by another package) kept its own defaults: hand it ours.
    if not numba.config.CACHE_DIR:
        numba.config.CACHE_DIR = os.environ[CACHE_DIR_ENV]
    if numba.config.THREADING_LAYER == "default":
        numba.config.THREADING_LAYER = os.environ[THREADING_LAYER_ENV]
    # The first kernel call loads numba's typing and array implementations, which reach for scipy and cffi.
    with _skipped(SKIPPED_AT_FIRST_KERNEL):
        import numba.core.typing.cffi_utils  # noqa: F401
        import numba.np.arraymath  # noqa: F401
    # numba's registries are a large object graph: the interpreter's last garbage collection at exit would scan
    # it for ~0.3 s. Frozen objects are left out of that scan (nothing of numba's needs finalizing then).
    atexit.register(gc.freeze)
    return numba


def __getattr__(name: str):
    # numba, njit (always cached on disk, in the cache dir above) and prange load numba on first use.
    if name == "numba":
        return _numba()
    if name == "njit":
        return functools.partial(_numba().njit, cache=True)
    if name == "prange":
        return _numba().prange
    raise AttributeError(f"module 'bitpruner.utils.jit' has no attribute {name!r}")


# Also (loaded on first use, see __getattr__): numba, njit, prange.
__all__ = ["CACHE_DIR_ENV", "JIT_ENV", "NUMBA_STARTUP_S", "THREADING_LAYER_ENV", "default_cache_dir", "jit_mode",
           "numba_loaded", "prefer_jit", "threads", "use_jit"]
