"""Determinism as a contract: same config, seed and thread count -> byte-identical outputs; a run killed
mid-way resumes to the same bits as an uninterrupted one, for every training stage."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest
import torch

from bitpruner.prune_bits.stage import prune_bits
from bitpruner.prune_weights.stage import prune_weights
from bitpruner.train.stage import train
from bitpruner.training.module import ClassifierModule

# An MLP with dropout on the 8x8 digits: dropout draws from torch's global RNG and the loader shuffles with
# the data module's generator, so both streams must survive a resume.
TRAIN = ["data=digits", "model=mlp", "model.hidden=[32]", "model.dropout=0.3", "data.batch_size=128",
         "trainer.max_epochs=4", "logger=none"]
PRUNE = ["data=digits", "data.batch_size=128", "logger=none", "trainer.max_epochs=4",
         "prune_weights.end_epoch=2", "prune_weights.final_sparsity=0.7"]
BITS = ["data=digits", "data.batch_size=128", "logger=none", "trainer.max_epochs=4", "prune_bits.start_k=3",
        "prune_bits.epochs_per_step=1", "prune_bits.k=1", "prune_bits.first_layer_k=2", "prune_bits.last_layer_k=2",
        "baseline_ckpt=null", "input_ckpt=${paths.root_dir}/outputs/train/model.ckpt"]
CRASH_EPOCH = 2
STAGES = {"train": (train, TRAIN), "prune_weights": (prune_weights, PRUNE), "prune_bits": (prune_bits, BITS)}


def crash_once_at(monkeypatch, epoch: int) -> None:
    """The next fit raises at the start of `epoch` (after `last.ckpt` of epoch - 1 is written), once."""
    fired = []

    def crash(self):
        if self.current_epoch == epoch and not fired:
            fired.append(epoch)
            raise RuntimeError("simulated kill")

    monkeypatch.setattr(ClassifierModule, "on_train_epoch_start", crash, raising=False)


def snapshot(out_dir: Path) -> dict:
    """What must be identical between two runs: the weights and integer weights, and metrics.json's bytes."""
    payload = torch.load(out_dir / "model.ckpt", map_location="cpu", weights_only=False)
    return {"state": payload["state_dict"], "meta": payload["meta"],
            "metrics": (out_dir / "metrics.json").read_bytes(), "config": (out_dir / "config.yaml").read_bytes()}


def assert_same(a: dict, b: dict) -> None:
    assert a["metrics"] == b["metrics"]
    assert a["config"] == b["config"]
    assert a["state"].keys() == b["state"].keys()
    for key in a["state"]:
        assert torch.equal(a["state"][key], b["state"][key]), key
    for layer, ints in a["meta"].get("int_weights", {}).items():
        assert torch.equal(torch.as_tensor(ints["q"]), torch.as_tensor(b["meta"]["int_weights"][layer]["q"])), layer


@pytest.fixture
def trained(compose, tmp_path):
    """A small trained MLP at outputs/train/model.ckpt (the input of the pruning stages)."""
    train(compose("train", TRAIN))
    return tmp_path / "outputs" / "train" / "model.ckpt"


@pytest.mark.parametrize("stage", list(STAGES))
def test_killed_run_resumes_to_the_same_bits(stage, compose, tmp_path, monkeypatch, request):
    if stage != "train":
        request.getfixturevalue("trained")
    run, overrides = STAGES[stage]
    out = tmp_path / "outputs" / stage
    run(compose(stage, overrides))
    clean = snapshot(out)
    clean_timing = json.loads((out / "timing.json").read_text())

    crash_once_at(monkeypatch, CRASH_EPOCH)
    with pytest.raises(RuntimeError, match="simulated kill"):
        run(compose(stage, overrides))
    ckpt_dir = tmp_path / "checkpoints" / stage
    assert (ckpt_dir / "last.ckpt").is_file()
    # The failed attempt left the previous output set whole.
    assert_same(snapshot(out), clean)
    resumed_metrics = run(compose(stage, overrides))
    assert resumed_metrics["epochs"] == json.loads(clean["metrics"])["epochs"]
    assert_same(snapshot(out), clean)
    # Elapsed training time counts every attempt, so it is at least the resumed part's.
    assert json.loads((out / "timing.json").read_text())["train_time_s"] > 0 < clean_timing["train_time_s"]
    assert not ckpt_dir.exists()


def test_outputs_are_byte_identical_and_portable(compose, tmp_path, monkeypatch):
    """Two runs of the same config give the same bytes; nothing written depends on where the project lives,
    on the clock, or on the umask being ignored."""
    cfg = compose("train", TRAIN)
    monkeypatch.setattr("os.umask", _fixed_umask(0o027))
    train(cfg)
    out = tmp_path / "outputs" / "train"
    first = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "timing.json"}
    train(cfg)
    second = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "timing.json"}
    assert first == second and {"model.ckpt", "metrics.json", "config.yaml"} <= set(first)
    assert str(tmp_path) not in first["config.yaml"].decode()
    assert b"time" not in first["metrics.json"]
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path.name


def _fixed_umask(mask: int):
    import os

    real = os.umask

    def umask(new: int) -> int:  # report `mask` as the process umask, keep the real one unchanged
        real(real(new))
        return mask

    return umask


def test_a_failed_run_keeps_the_previous_output_set(compose, tmp_path, monkeypatch):
    train(compose("train", TRAIN))
    out = tmp_path / "outputs" / "train"
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("bitpruner.skeleton.fit.write_stage_files", fail)
    with pytest.raises(OSError, match="disk full"):
        train(compose("train", [*TRAIN, "trainer.max_epochs=2"]))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not any(p.name.startswith(".train.") for p in out.parent.iterdir())


def test_thread_count_comes_from_the_config(compose):
    from bitpruner.errors import ConfigError
    from bitpruner.skeleton.runtime import fix_runtime

    before = torch.get_num_threads()
    try:
        assert fix_runtime(compose("train", [*TRAIN, "runtime.threads=1"])) == {"seed": 42, "threads": 1}
        assert torch.get_num_threads() == 1
        with pytest.raises(ConfigError, match="runtime.threads: got 0"):
            fix_runtime(compose("train", [*TRAIN, "runtime.threads=0"]))
    finally:
        torch.set_num_threads(before)


def test_a_second_run_of_a_stage_fails_at_once_naming_the_holder(compose, tmp_path):
    from bitpruner.skeleton.lock import StageBusyError, stage_lock

    cfg = compose("train", TRAIN)
    with stage_lock(cfg["paths"]["ckpt_dir"], "train"):
        # flock locks belong to open files: a second open in this process conflicts like another process.
        with pytest.raises(StageBusyError, match=r"in use by PID \d+ \(another run of stage train\)"):
            train(cfg)
    shutil.rmtree(tmp_path / "checkpoints", ignore_errors=True)
