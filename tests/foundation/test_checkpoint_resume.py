"""A damaged resume state (truncated or foreign `last.ckpt`, unreadable fingerprint file) is one warning line
and a clean restart, never a traceback (issue 11, kind 3)."""

from __future__ import annotations

import io

import pytest
import torch

import bitpruner.skeleton.fit as fit
from bitpruner.train import stage as train_stage
from bitpruner.training.resume import fingerprint_path, prepare_checkpoint_dir
from helpers.models import save_digits_lenet

FINGERPRINT = "0123abcd"
LIGHTNING_LIKE = {"pytorch-lightning_version": "2.6.0", "state_dict": {"model.w": torch.ones(3)}, "epoch": 1}


def lightning_bytes() -> bytes:
    buffer = io.BytesIO()
    torch.save(LIGHTNING_LIKE, buffer)
    return buffer.getvalue()


def plant(ckpt_dir, last: bytes | None, stamp: bytes | None = (FINGERPRINT + "\n").encode()) -> None:
    """A resume state as a stopped run leaves it, with `last` as last.ckpt's bytes (None: a folder there)."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    if last is None:
        (ckpt_dir / "last.ckpt").mkdir()
    else:
        (ckpt_dir / "last.ckpt").write_bytes(last)
    if stamp is not None:
        fingerprint_path(ckpt_dir).write_bytes(stamp)


def assert_clean_restart(ckpt_dir, capsys, fragment: str) -> None:
    assert prepare_checkpoint_dir(ckpt_dir, FINGERPRINT, resume=True) is None
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"warning: resume state {ckpt_dir} is damaged (")
    assert fragment in lines[0] and lines[0].endswith("; the run restarts cleanly")
    assert ckpt_dir.is_dir() and not any(ckpt_dir.iterdir())
    assert fingerprint_path(ckpt_dir).read_text() == FINGERPRINT + "\n"


def test_intact_state_resumes(tmp_path, capsys):
    ckpt_dir = tmp_path / "checkpoints" / "train"
    plant(ckpt_dir, lightning_bytes())
    assert prepare_checkpoint_dir(ckpt_dir, FINGERPRINT, resume=True) == ckpt_dir / "last.ckpt"
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("make, fragment", [
    (lambda: lightning_bytes()[:200], "truncated or damaged zip archive (200 bytes"),
    (lambda: b"", "empty file (0 bytes)"),
    (lambda: b"garbage\n", "a text file (starts with 'garbage')"),
    (lambda: None, "is a directory"),
])
def test_damaged_last_checkpoint_restarts_cleanly(tmp_path, capsys, make, fragment):
    ckpt_dir = tmp_path / "checkpoints" / "train"
    plant(ckpt_dir, make())
    assert_clean_restart(ckpt_dir, capsys, f"last.ckpt: {fragment}")


def test_foreign_last_checkpoint_restarts_cleanly(tmp_path, capsys):
    ckpt_dir = tmp_path / "checkpoints" / "train"
    model_ckpt = save_digits_lenet(tmp_path / "model.ckpt")  # a stage output copied over the resume state
    plant(ckpt_dir, model_ckpt.read_bytes())
    assert_clean_restart(ckpt_dir, capsys, "not a Lightning checkpoint")


@pytest.mark.parametrize("stamp, fragment", [
    (b"\xff\xfe\x00binary", "unreadable fingerprint file (UnicodeDecodeError)"),
    (None, "unreadable fingerprint file (Is a directory)"),
])
def test_unreadable_fingerprint_restarts_cleanly(tmp_path, capsys, stamp, fragment):
    ckpt_dir = tmp_path / "checkpoints" / "train"
    plant(ckpt_dir, lightning_bytes(), stamp=stamp)
    if stamp is None:
        fingerprint_path(ckpt_dir).mkdir()
    assert_clean_restart(ckpt_dir, capsys, fragment)


def test_changed_fingerprint_restarts_silently(tmp_path, capsys):
    ckpt_dir = tmp_path / "checkpoints" / "train"
    plant(ckpt_dir, b"damaged, but from another config", stamp=b"ffff\n")
    assert prepare_checkpoint_dir(ckpt_dir, FINGERPRINT, resume=True) is None
    assert capsys.readouterr().err == "" and not any(ckpt_dir.iterdir())


def test_other_ranks_only_read(tmp_path, capsys):
    ckpt_dir = tmp_path / "checkpoints" / "train"
    plant(ckpt_dir, b"")
    assert prepare_checkpoint_dir(ckpt_dir, FINGERPRINT, resume=True, clean=False) is None
    assert (ckpt_dir / "last.ckpt").exists() and capsys.readouterr().err == ""  # rank 0 cleans and says so


def test_train_stage_with_a_truncated_last_checkpoint_restarts_and_finishes(compose, monkeypatch, capsys):
    cfg = compose("train", ["data=digits", "trainer.max_epochs=1", "data.batch_size=256", "logger=none"])
    original = fit.prepare_checkpoint_dir
    seen = []

    def plant_then_prepare(ckpt_dir, fingerprint, resume, clean=True):
        # What a run killed while writing last.ckpt leaves: the right fingerprint, a cut-off file.
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        (ckpt_dir / "last.ckpt").write_bytes(lightning_bytes()[:500])
        fingerprint_path(ckpt_dir).write_text(fingerprint + "\n")
        seen.append(original(ckpt_dir, fingerprint, resume, clean))
        return seen[-1]

    monkeypatch.setattr(fit, "prepare_checkpoint_dir", plant_then_prepare)
    metrics = train_stage.train(cfg)
    assert seen == [None] and metrics["epochs"] == 1
    warnings = [line for line in capsys.readouterr().err.splitlines() if "resume state" in line]
    assert len(warnings) == 1 and "last.ckpt: truncated or damaged zip archive (500 bytes" in warnings[0]
