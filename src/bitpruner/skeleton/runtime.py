"""What a run must fix before any work to be repeatable to the byte: seeds and the thread count.

Same machine, same config (seed included) and same `runtime.threads` -> byte-identical weights and metrics.
Floating-point sums are split across threads, so another thread count changes the last bits (measured: up to
3e-5 in a conv layer's weights after training); the count therefore comes from the config, never from the
machine, and is recorded with the run.
"""

from __future__ import annotations

from typing import Annotated

import lightning as L
import torch
from pydantic import Field

from bitpruner.schema import ConfigNode, parse_node

DEFAULT_THREADS = 2


class RuntimeNode(ConfigNode):
    """The `runtime` config node."""

    threads: Annotated[int, Field(ge=1)] = DEFAULT_THREADS


def threads_of(cfg: dict) -> int:
    """`runtime.threads` (an integer >= 1; default 2); ConfigError naming the key otherwise."""
    return parse_node(RuntimeNode, cfg.get("runtime") or {}, "runtime").threads


def fix_runtime(cfg: dict) -> dict[str, int]:
    """Seed every RNG (python, numpy, torch; dataloader workers too) and pin torch's intra-op thread count.

    Returns what was fixed, for the run's record: {"seed": ..., "threads": ...}.
    """
    threads = threads_of(cfg)
    torch.set_num_threads(threads)
    L.seed_everything(cfg["seed"], workers=True, verbose=False)
    return {"seed": int(cfg["seed"]), "threads": threads}
