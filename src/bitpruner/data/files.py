"""Locating and opening data set files under a user's `data_dir`, with one-line errors naming what was expected.

Files in the wild are compressed whatever their names say (a gzip file saved without `.gz`, a `.gz` a
browser already unpacked), so `open_data_file` goes by the magic bytes, not the suffix. When files are
missing, the message lists what was looked for and what the folder holds (an archive found there is named:
it needs extracting).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

from bitpruner.errors import DataError
from bitpruner.utils.messages import one_line, shown

# Magic bytes -> compression; `zip` is refused with a hint (an archive of several files, not one stream).
MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"), (b"PK\x03\x04", "zip"))
MAGIC_BYTES = 6  # the longest magic above
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip", ".tar.xz", ".tar.bz2", ".7z", ".rar")
LISTED_ENTRIES = 8  # folder entries named in a message before "+N more"
READ_CHUNK = 1 << 20
# What the decompressors raise on damaged or truncated input.
DECOMPRESS_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError)


def folder_contents(folder: Path) -> str:
    """What `folder` holds, for a message: `found a, b/, c (+N more)`, `found nothing (empty folder)`, ...."""
    folder = Path(folder)
    try:
        entries = sorted(folder.iterdir(), key=lambda entry: entry.name)
    except FileNotFoundError:
        return "the folder does not exist"
    except OSError as exc:
        return f"the folder is unreadable ({exc.strerror or one_line(exc)})"
    if not entries:
        return "found nothing (empty folder)"
    names = [shown(entry.name) + ("/" if entry.is_dir() else "") for entry in entries]
    listed = ", ".join(names[:LISTED_ENTRIES])
    more = f" (+{len(names) - LISTED_ENTRIES} more)" if len(names) > LISTED_ENTRIES else ""
    archives = [entry.name for entry in entries if entry.name.lower().endswith(ARCHIVE_SUFFIXES)]
    hint = f"; extract {shown(archives[0])} there first" if archives else ""
    return f"found {listed}{more}{hint}"


def require_dir(path: str | Path | None, what: str) -> Path:
    """`path` as an existing directory, or a DataError naming it and the data set expected there."""
    if path is None:
        raise DataError(f"{what}: data_dir is not set; point it at the folder holding the files")
    path = Path(path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise DataError(f"{shown(path)}: a file, expected a directory holding {what}")
    raise DataError(f"{shown(path)}: directory not found (expected {what})")


def find_dir_with(candidates: Iterable[Path], names: Sequence[str], what: str) -> Path:
    """The first candidate folder that holds every file in `names`, else a DataError listing them and what
    the closest folder holds."""
    candidates = list(candidates)
    for folder in candidates:
        if all((folder / name).is_file() for name in names):
            return folder
    # Report the folder closest to complete: that is the one the user meant.
    best = max(candidates, key=lambda folder: sum((folder / name).is_file() for name in names))
    missing = [name for name in names if not (best / name).is_file()]
    looked = ", ".join(shown(folder) for folder in candidates)
    raise DataError(
        f"{shown(best)}: missing {what} file(s) {', '.join(missing)} (expected {', '.join(names)}; "
        f"looked in {looked}; {folder_contents(best)})"
    )


def compression_of(head: bytes) -> str | None:
    """The compression the first bytes of a file show (gzip, bzip2, xz, zip), or None for none."""
    for magic, kind in MAGIC:
        if head.startswith(magic):
            return kind
    return None


def open_data_file(path: Path, what: str) -> tuple[BinaryIO, str | None]:
    """A binary handle on the decompressed content of `path` and the compression found (None: plain).

    Compression is detected from the magic bytes, whatever the name says. Raises DataError for a missing,
    unreadable or directory path and for a zip archive (to extract, not to read as one file).
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{shown(path)}: a directory, expected {what}")
    try:
        with open(path, "rb") as handle:
            head = handle.read(MAGIC_BYTES)
        kind = compression_of(head)
        if kind == "zip":
            raise DataError(f"{shown(path)}: a zip archive; extract it (expected {what})")
        opener = {"gzip": gzip.open, "bzip2": bz2.open, "xz": lzma.open}.get(kind, open)
        return opener(path, "rb"), kind
    except OSError as exc:
        raise DataError(f"{shown(path)}: cannot read {what} ({exc.strerror or one_line(exc)})") from None


def read_up_to(handle: BinaryIO, count: int) -> bytes:
    """At most `count` bytes from `handle`, fewer only at the end of the stream; read in chunks, so a
    header claiming a huge size costs no more memory than the data really there."""
    parts = []
    left = count
    while left > 0:
        part = handle.read(min(left, READ_CHUNK))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def damaged_stream(path: Path, kind: str | None, exc: BaseException) -> DataError:
    """The DataError for a read that failed inside a (de)compressed stream."""
    if isinstance(exc, EOFError):
        state = f"truncated {kind} stream" if kind else "truncated file"
    else:
        state = f"damaged {kind} stream" if kind else "unreadable file"
    return DataError(f"{shown(path)}: {state} ({one_line(exc) if str(exc) else type(exc).__name__})")

