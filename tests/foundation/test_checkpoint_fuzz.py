"""Property: a randomly corrupted model checkpoint loads with exactly the clean file's weights, or fails with
exactly one one-line ConfigError naming the file; never another exception type, never a hang. Seeded and
bounded: a small budget in the default suite, a larger one under -m slow."""

from __future__ import annotations

import gzip
import io
import pickle

import numpy as np
import pytest
import torch

from bitpruner.errors import ConfigError
from bitpruner.models.checkpoint import load_model_checkpoint
from helpers.corruptions import cases, read_or_error
from helpers.models import LENET_SMALL_CFG, save_digits_lenet

FAST_CASES = 60
SLOW_CASES = 800
# Corruptions whose result is known without reading: the same weights, or an error.
SAME = ("float64",)
ERROR = ("truncate", "zero", "text", "int", "nan", "drop", "extra", "gzip", "pickle")


def torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def variants(payload: dict) -> dict:
    """Format-level corruptions of a clean payload, each a function of a seeded generator."""
    state = payload["state_dict"]
    names = list(state)

    def with_state(new_state: dict) -> bytes:
        return torch_bytes({**payload, "state_dict": new_state})

    def nan(rng):
        poisoned = {k: v.clone() for k, v in state.items()}
        target = poisoned[names[int(rng.integers(0, len(names)))]].view(-1)
        target[int(rng.integers(0, target.numel()))] = float(rng.choice([np.nan, np.inf, -np.inf]))
        return with_state(poisoned)

    def drop(rng):
        kept = dict(state)
        kept.pop(names[int(rng.integers(0, len(names)))])
        return with_state(kept)

    return {
        "float64": lambda rng: with_state({k: v.double() for k, v in state.items()}),
        "int": lambda rng: with_state({k: v.to(torch.int64) for k, v in state.items()}),
        "nan": nan,
        "drop": drop,
        "extra": lambda rng: with_state({**state, f"extra{int(rng.integers(0, 9))}.weight": torch.zeros(3)}),
        "gzip": lambda rng: gzip.compress(torch_bytes(payload), mtime=0),
        "pickle": lambda rng: pickle.dumps({k: v for k, v in payload.items() if k != "state_dict"}),
    }


def run_checkpoint_property(tmp_path, seed: int, count: int) -> dict[str, int]:
    torch.manual_seed(seed)
    clean_path = save_digits_lenet(tmp_path / "clean.ckpt", cfg=LENET_SMALL_CFG, meta={"dataset": "digits"})
    clean = clean_path.read_bytes()
    payload = torch.load(clean_path, weights_only=True)
    reference = payload["state_dict"]
    tally = {"same": 0, "error": 0}
    path = tmp_path / "model.ckpt"
    for case in cases(clean, seed, count, variants(payload)):
        path.write_bytes(case.data)
        outcome = read_or_error(load_model_checkpoint, path, case)
        if isinstance(outcome, ConfigError):
            assert case.kind not in SAME, f"{case.kind}: {outcome}"
            tally["error"] += 1
            continue
        # A damaged checkpoint must never load with other weights: zip CRCs and the checks catch it.
        assert case.kind not in ERROR, f"{case.kind} ({case.detail}) loaded"
        model, _ = outcome
        loaded = model.state_dict()
        assert set(loaded) == set(reference)
        assert all(torch.equal(loaded[k], reference[k]) for k in reference), f"{case.kind} ({case.detail})"
        assert not model.training
        tally["same"] += 1
    return tally


def test_corrupted_checkpoint_loads_the_clean_weights_or_fails_in_one_line(tmp_path):
    tally = run_checkpoint_property(tmp_path, seed=41, count=FAST_CASES)
    assert tally["error"] > 0 and tally["same"] > 0


@pytest.mark.slow
def test_corrupted_checkpoint_property_large_budget(tmp_path):
    run_checkpoint_property(tmp_path, seed=42, count=SLOW_CASES)
