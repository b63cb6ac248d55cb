"""Locating data set files under a user's `data_dir`, with one-line errors naming what was expected."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from bitpruner.errors import DataError


def require_dir(path: str | Path | None, what: str) -> Path:
    """`path` as an existing directory, or a DataError naming it and the data set expected there."""
    if path is None:
        raise DataError(f"{what}: data_dir is not set; point it at the folder holding the files")
    path = Path(path).expanduser()
    if not path.is_dir():
        raise DataError(f"{path}: directory not found (expected {what})")
    return path


def find_dir_with(candidates: Iterable[Path], names: Sequence[str], what: str) -> Path:
    """The first candidate folder that holds every file in `names`, else a DataError listing them."""
    candidates = list(candidates)
    for folder in candidates:
        if all((folder / name).is_file() for name in names):
            return folder
    # Report the folder closest to complete: that is the one the user meant.
    best = max(candidates, key=lambda folder: sum((folder / name).is_file() for name in names))
    missing = [name for name in names if not (best / name).is_file()]
    looked = ", ".join(str(folder) for folder in candidates)
    raise DataError(
        f"{best}: missing {what} file(s) {', '.join(missing)} (expected {', '.join(names)}; looked in {looked})"
    )
