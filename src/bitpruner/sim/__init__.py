"""Cycle-level simulator of bit-serial accelerators (DNNsim-compatible) and its trace formats."""

import os

# Forked children that touch numba after a parallel call abort under GNU OpenMP; workqueue is fork-safe.
os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
