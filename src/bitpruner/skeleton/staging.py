"""The atomic output set: a stage writes every output into a staging folder that replaces the output folder in
one rename at the end, so a crash never leaves the files of two runs side by side."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from bitpruner.errors import ConfigError
from bitpruner.utils.atomic import write_text

# Files in an output folder that belong to the version control of the folder, not to a run (DVC writes a
# .gitignore listing its cached outputs there): carried over into the new set.
CARRIED = (".gitignore",)
PROJECT_MARKERS = (".git", "dvc.yaml", "pyproject.toml")
# Every output set holds this file (the stage's name): a folder that has it may be replaced by the next run's set.
OUTPUT_SET_MARKER = ".bitpruner-outputs"


def staging_dir(final: Path) -> Path:
    return final.with_name(f".{final.name}.staging")


def check_output_dir(final: str | Path) -> Path:
    """`final` must be a folder of its own: replacing it must not take a project with it."""
    final = Path(final).resolve()
    if any((final / marker).exists() for marker in PROJECT_MARKERS):
        raise ConfigError(f"paths.output_dir={final}: holds a project ({', '.join(PROJECT_MARKERS)}); "
                          "expected a folder of the stage's own, e.g. outputs/<stage>")
    if final.is_dir() and not (final / OUTPUT_SET_MARKER).is_file():
        foreign = sorted(p.name for p in final.iterdir() if p.name not in CARRIED)
        if foreign:
            raise ConfigError(f"paths.output_dir={final}: holds {', '.join(foreign[:5])} but no {OUTPUT_SET_MARKER}; "
                              "expected an empty folder or an earlier run's output folder (replaced as a set)")
    final.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(final.parent, os.W_OK) or (final.exists() and not os.access(final, os.W_OK)):
        raise ConfigError(f"paths.output_dir={final}: not writable")
    return final


@contextlib.contextmanager
def staged_outputs(final: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder beside `final`; when the block succeeds it becomes `final` (the previous
    set is removed); when it fails the staging folder is removed and `final` is left as it was."""
    final = check_output_dir(final)
    staging = staging_dir(final)
    shutil.rmtree(staging, ignore_errors=True)  # a crashed run's leftovers
    staging.mkdir()
    write_text(staging / OUTPUT_SET_MARKER, f"{final.name}\n")
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for name in CARRIED:
        if (final / name).is_file() and not (staging / name).exists():
            shutil.copy2(final / name, staging / name)
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    shutil.rmtree(old, ignore_errors=True)
