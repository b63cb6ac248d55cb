"""Process rank under Lightning's DDP launcher, known before the Trainer exists."""

from __future__ import annotations

import os


def global_rank() -> int:
    """Rank of this process; Lightning's launcher exports RANK / LOCAL_RANK to the processes it starts."""
    for name in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        if os.environ.get(name):
            return int(os.environ[name])
    return 0


def is_rank_zero() -> bool:
    return global_rank() == 0
