"""Bit pruning: essential-bit accounting, lane groups and projections onto bit constraints."""

import os

# Forked workers that touch numba after a parallel numba call abort under GNU OpenMP; workqueue is safe.
os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
