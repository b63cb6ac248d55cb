"""Resume from `last.ckpt` only when it was written by the same config; otherwise start clean."""

from __future__ import annotations

import shutil
from pathlib import Path

FINGERPRINT_SUFFIX = ".fingerprint"
LAST = "last.ckpt"


def prepare_checkpoint_dir(ckpt_dir: str | Path, fingerprint: str, resume: bool, clean: bool = True) -> Path | None:
    """Return the checkpoint to resume from, or None; a stale or unwanted folder is emptied.

    `clean=False` (DDP ranks other than 0) only reads: rank 0 owns the folder.
    """
    ckpt_dir = Path(ckpt_dir)
    # Beside the folder, not in it: Lightning warns about a non-empty checkpoint folder.
    stamp = ckpt_dir.with_name(ckpt_dir.name + FINGERPRINT_SUFFIX)
    last = ckpt_dir / LAST
    if resume and last.is_file() and stamp.is_file() and stamp.read_text().strip() == fingerprint:
        return last
    if not clean:
        return None
    if ckpt_dir.exists():
        shutil.rmtree(ckpt_dir)
    ckpt_dir.mkdir(parents=True)
    stamp.write_text(fingerprint + "\n")
    return None


def clear_checkpoint_dir(ckpt_dir: str | Path) -> None:
    """After a successful stage the outputs hold the model; the resume state is dropped."""
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    Path(ckpt_dir).with_name(Path(ckpt_dir).name + FINGERPRINT_SUFFIX).unlink(missing_ok=True)
