"""Everything a resumed fit needs beyond Lightning's own checkpoint: RNG streams, data order, elapsed time.

Lightning restores weights, optimizer, scheduler, loop counters, callback and data module states (the data
module's state is its shuffle generator: `BaseDataModule.state_dict`, restored before any loader is iterated).
It does not restore the global RNGs, which augmentation and dropout draw from, so a resumed run used to
diverge. `ResumeStateCallback` stores them in `last.ckpt` and puts them back at the start of the first epoch
after a restore: that is the point where the uninterrupted run has the same states (the checkpoint is written
after the epoch's validation, and nothing draws random numbers in between), and it is after Lightning's
sanity check, which draws numbers of its own.
"""

from __future__ import annotations

import random
import time
from typing import Any

import lightning as L
import numpy as np
import torch


def capture_rng() -> dict[str, Any]:
    """The states of python's, numpy's and torch's (CPU) global generators, as plain types and tensors (what a
    `weights_only` checkpoint load accepts)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"python": random.getstate(),
            "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
            "torch": torch.get_rng_state()}


def restore_rng(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])


class ResumeStateCallback(L.Callback):
    """Saves and restores the global RNG streams and the elapsed fit time.

    `fit_seconds` is the wall time spent in `fit` over every attempt (the interrupted ones included).
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None
        self._carried = 0.0
        self._started: float | None = None

    @property
    def fit_seconds(self) -> float:
        running = time.perf_counter() - self._started if self._started is not None else 0.0
        return self._carried + running

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.perf_counter()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._carried, self._started = self.fit_seconds, None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending is None:
            return
        restore_rng(self._pending["rng"])
        self._pending = None

    def state_dict(self) -> dict[str, Any]:
        return {"rng": capture_rng(), "fit_seconds": self.fit_seconds}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict
        self._carried = float(state_dict.get("fit_seconds", 0.0))
