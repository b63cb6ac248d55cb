"""Seeded random corruptions of a file's bytes, a time limit that no reader's `except Exception` can swallow,
and the check every fuzzed read must pass (a result, or exactly one one-line BitprunerError naming the file)."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bitpruner.errors import BitprunerError

# Byte-level corruptions every format gets; a test adds its format's own (wrong dtype, ...).
KINDS = ("truncate", "flip", "append", "zero", "text")
CASE_SECONDS = 10.0  # the longest one read may take (a hang fails the test instead of stalling it)
JUNK_BYTES = 64  # at most this many random bytes appended
FLIPS = 3  # at most this many bytes flipped at once
TEXTS = (b"", b"hello\n", b"# not the file\nkey: value\n", "caf\u00e9 \u2603\n".encode(), b"\x00" * 16)


class Deadline(BaseException):
    """Raised by `time_limit`; a BaseException, so a reader's `except Exception` cannot turn it into an answer."""


@contextlib.contextmanager
def time_limit(seconds: float = CASE_SECONDS) -> Iterator[None]:
    """Raise Deadline in the main thread when the block runs longer than `seconds` (SIGALRM; POSIX only)."""

    def expire(_signum, _frame):
        raise Deadline(f"took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Case:
    """One corrupted variant: what was done (`kind`, `detail`) and the resulting bytes."""

    kind: str
    detail: str
    data: bytes


def corrupt(data: bytes, rng: np.random.Generator, kind: str) -> Case:
    """`data` changed by one corruption of `kind` (one of KINDS), drawn from `rng`."""
    if kind == "truncate":
        cut = int(rng.integers(0, len(data)))  # strictly shorter, possibly empty
        return Case(kind, f"first {cut} of {len(data)} bytes", data[:cut])
    if kind == "flip":
        out = bytearray(data)
        offsets = sorted({int(o) for o in rng.integers(0, len(data), int(rng.integers(1, FLIPS + 1)))})
        for offset in offsets:
            out[offset] ^= int(rng.integers(1, 256))  # never 0: the byte really changes
        return Case(kind, f"bytes at {offsets} flipped", bytes(out))
    if kind == "append":
        junk = rng.integers(0, 256, int(rng.integers(1, JUNK_BYTES + 1)), dtype=np.uint8).tobytes()
        return Case(kind, f"{len(junk)} junk bytes appended", data + junk)
    if kind == "zero":
        return Case(kind, "zero length", b"")
    if kind == "text":
        text = TEXTS[int(rng.integers(0, len(TEXTS)))]
        return Case(kind, f"replaced by text {text[:20]!r}", text)
    raise ValueError(f"unknown corruption {kind!r}")


def cases(data: bytes, seed: int, count: int, extra: dict[str, Callable[[np.random.Generator], bytes]] | None = None
          ) -> list[Case]:
    """`count` corrupted variants of `data`, the kinds in turn (KINDS, then `extra`'s), seeded by `seed`."""
    rng = np.random.default_rng(seed)
    kinds = [*KINDS, *(extra or {})]
    out = []
    for index in range(count):
        kind = kinds[index % len(kinds)]
        if kind in KINDS:
            out.append(corrupt(data, rng, kind))
        else:
            out.append(Case(kind, kind, extra[kind](rng)))
    return out


def read_or_error(read: Callable[[Path], object], path: Path, case: Case) -> object | BitprunerError:
    """`read(path)` within the time limit: its result, or the BitprunerError it raised after checking that
    the message is one line naming the file. Any other exception, or a hang, fails the calling test."""
    started = time.perf_counter()
    try:
        with time_limit():
            result = read(path)
    except BitprunerError as exc:
        message = str(exc)
        assert "\n" not in message and "\r" not in message, f"{case}: multi-line message {message!r}"
        assert path.name in message, f"{case}: message does not name the file: {message!r}"
        return exc
    except Deadline:
        raise AssertionError(f"{case.kind} ({case.detail}): no answer within {CASE_SECONDS} s") from None
    except Exception as exc:  # noqa: BLE001 - the property under test: nothing but BitprunerError escapes
        raise AssertionError(f"{case.kind} ({case.detail}): {type(exc).__name__}: {exc}") from exc
    assert time.perf_counter() - started < CASE_SECONDS
    return result
