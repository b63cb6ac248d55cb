"""Helpers the projection modules share: torch/numpy round trips and integer argument checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bitpruner.errors import ConfigError


def to_numpy(a) -> tuple[np.ndarray, Callable[[np.ndarray], Any]]:
    """(numpy view of `a`, a function that turns a result back into `a`'s container: a torch tensor on `a`'s
    device, or the numpy array itself). Half-precision tensors become float32 (numpy has no bfloat16)."""
    if hasattr(a, "detach"):  # a torch tensor; torch is imported only when one is passed
        import torch

        device = a.device
        a = a.detach().cpu()
        if a.dtype in (torch.float16, torch.bfloat16):
            a = a.float()
        return a.numpy(), lambda out: torch.from_numpy(out).to(device)
    return np.asarray(a), lambda out: out


def check_int(name: str, value, lo: int, hi: int | None = None) -> int:
    """`value` as an int in [lo, hi] (hi None: >= lo); ConfigError naming `name` otherwise (bools refused)."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < lo or (hi is not None and value > hi):
        expected = f"an integer in [{lo}, {hi}]" if hi is not None else f"an integer >= {lo}"
        raise ConfigError(f"{name}={value!r}: expected {expected}")
    return int(value)
