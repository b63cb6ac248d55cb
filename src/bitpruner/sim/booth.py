"""DNNsim's "booth-like" recoding table (not minimal signed-digit form; see docs/simulator.md)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

BOOTH_TABLE_SIZE = 1 << 15
# DNNsim's table overflows (and its simulator hangs) from here on; traces must stay below it.
BOOTH_LIMIT = 28672
_SCAN_STEPS = 16


@lru_cache(maxsize=1)
def booth_table() -> np.ndarray:
    """int64 [32768]: recoded value of every 15-bit magnitude (vectorized form of the spec's scan)."""
    n = np.arange(BOOTH_TABLE_SIZE, dtype=np.int64)
    padded = n << 2  # the 18-bit string of n << 2, most significant character first
    result = np.zeros_like(n)
    run = np.zeros(n.shape, dtype=bool)
    for i in range(_SCAN_STEPS):
        window = (padded >> (15 - i)) & 0b111  # characters i, i+1, i+2 of the string
        result <<= 1
        set0 = (((window == 0b010) | (window == 0b011)) & run) | (window == 0b100)
        set0 |= ((window == 0b101) | (window == 0b110)) & ~run
        set1 = (window == 0b111) & ~run
        result |= set0.astype(np.int64) | (set1.astype(np.int64) << 1)
        run = np.where(window == 0b100, False, run | set1)
    result &= 0xFFFF
    result.setflags(write=False)
    return result


def booth_scan(n: int) -> int:
    """The spec's scan, literally, for one magnitude (slow; for tests and documentation)."""
    bits = format(n << 2, "018b")
    result, run = 0, False
    for _ in range(_SCAN_STEPS):
        s = bits[:3]
        result <<= 1
        if s in ("010", "011") and run:
            result |= 1
        elif s == "100":
            result |= 1
            run = False
        elif s in ("101", "110") and not run:
            result |= 1
        elif s == "111" and not run:
            result |= 2
            run = True
        bits = bits[1:]
    return result & 0xFFFF
