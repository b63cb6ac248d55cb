"""Resume from `last.ckpt` only when it was written by the same config; otherwise start clean.

A damaged resume state (a truncated or foreign `last.ckpt`, an unreadable fingerprint file) is never fatal:
one line on stderr says so, and the run restarts cleanly as if there had been none.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from bitpruner.errors import ConfigError

FINGERPRINT_SUFFIX = ".fingerprint"
LAST = "last.ckpt"
# What every Lightning checkpoint holds (Lightning's own name for its version key).
LIGHTNING_KEYS = ("pytorch-lightning_version", "state_dict")


def fingerprint_path(ckpt_dir: str | Path) -> Path:
    """The file beside `ckpt_dir` holding the fingerprint of the run that wrote it."""
    ckpt_dir = Path(ckpt_dir)
    # Beside the folder, not in it: Lightning warns about a non-empty checkpoint folder.
    return ckpt_dir.with_name(ckpt_dir.name + FINGERPRINT_SUFFIX)


def damaged_resume_checkpoint(last: str | Path) -> str | None:
    """Why `last` (a Lightning `last.ckpt`) cannot be resumed from, or None when it reads as one.

    Reads the whole file weights-only (see `bitpruner.models.checkpoint.read_torch_file`); never raises for
    bad content.
    """
    from bitpruner.models.checkpoint import read_torch_file

    try:
        payload = read_torch_file(last, "resume checkpoint")
    except ConfigError as exc:
        return str(exc)
    if not isinstance(payload, dict) or not all(key in payload for key in LIGHTNING_KEYS):
        kind = type(payload).__name__ if not isinstance(payload, dict) else "dict"
        return f"{last}: holds a {kind} without {' and '.join(LIGHTNING_KEYS)}, not a Lightning checkpoint"
    if not isinstance(payload["state_dict"], dict):
        return f"{last}: its state_dict is a {type(payload['state_dict']).__name__}, expected a mapping"
    return None


def _read_fingerprint(stamp: Path) -> tuple[str | None, str | None]:
    """(the stored fingerprint or None when there is none, why it is unreadable or None)."""
    if not stamp.exists() and not stamp.is_symlink():
        return None, None
    try:
        return stamp.read_text(encoding="utf-8").strip(), None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        return None, f"{stamp}: unreadable fingerprint file ({reason})"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def prepare_checkpoint_dir(ckpt_dir: str | Path, fingerprint: str, resume: bool, clean: bool = True) -> Path | None:
    """Return the checkpoint to resume from, or None; a stale, damaged or unwanted folder is emptied.

    `clean=False` (DDP ranks other than 0) only reads: rank 0 owns the folder. A damaged resume state prints
    one line (`warning: resume state ... is damaged (...); the run restarts cleanly`) and is replaced. Raises
    ConfigError when the folder cannot be (re)created.
    """
    ckpt_dir = Path(ckpt_dir)
    stamp = fingerprint_path(ckpt_dir)
    last = ckpt_dir / LAST
    stored, damage = _read_fingerprint(stamp)
    if resume and damage is None and stored == fingerprint and (last.exists() or last.is_symlink()):
        damage = damaged_resume_checkpoint(last)
        if damage is None:
            return last
    if not clean:
        return None
    if damage is not None and resume:
        print(f"warning: resume state {ckpt_dir} is damaged ({damage}); the run restarts cleanly",
              file=sys.stderr, flush=True)
    try:
        _remove(ckpt_dir)
        _remove(stamp)
        ckpt_dir.mkdir(parents=True)
        stamp.write_text(fingerprint + "\n")
    except OSError as exc:
        raise ConfigError(f"{ckpt_dir}: cannot prepare the resume state ({exc.strerror or exc}); "
                          "expected a writable folder") from None
    return None


def clear_checkpoint_dir(ckpt_dir: str | Path) -> None:
    """After a successful stage the outputs hold the model; the resume state is dropped."""
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    try:
        _remove(fingerprint_path(ckpt_dir))
    except OSError:
        pass  # a leftover stamp only forces a clean start next time
