"""Which bit positions of a weight magnitude cost a cycle, per encoding ("term masks").

A term mask has bit p set when the encoded magnitude has a non-zero digit at position p, so the
essential bits are popcount(mask) and a bit-column engine's cycles are popcount(OR of the lane masks).

- binary:       |q| itself (sign-magnitude).
- booth:        the non-zero digits of the minimal signed-digit (NAF) form of |q|.
- dnnsim_booth: DNNsim's "booth-like" recoding (`bitpruner.sim.booth`, the simulator's table).
"""

from __future__ import annotations

from functools import cache

import numpy as np

from bitpruner.errors import ConfigError  # noqa: E402
from bitpruner.sim.booth import BOOTH_LIMIT, BOOTH_TABLE_SIZE, booth_table  # noqa: E402
from bitpruner.utils.jit import numba  # the project's numba settings (threading layer, cache outside src/)

ENCODINGS = ("binary", "booth", "dnnsim_booth")
# DNNsim recodes 15-bit magnitudes; |v| >= DNNSIM_BOOTH_LIMIT overflows its table (it hangs there), so we reject it.
DNNSIM_TABLE_SIZE = BOOTH_TABLE_SIZE
DNNSIM_BOOTH_LIMIT = BOOTH_LIMIT


def check_encoding(encoding: str) -> str:
    if encoding not in ENCODINGS:
        raise ConfigError(f"encoding={encoding!r}: expected one of {', '.join(ENCODINGS)}")
    return encoding


@numba.njit(cache=True)
def naf_mask(n: int) -> int:
    """Positions of the non-zero digits of the non-adjacent form of n >= 0."""
    mask = 0
    pos = 0
    while n != 0:
        if n & 1:
            digit = 2 - (n & 3)  # +1 when n = 1 mod 4, -1 when n = 3 mod 4
            n -= digit
            mask |= 1 << pos
        n >>= 1
        pos += 1
    return mask


@numba.njit(cache=True)
def _naf_table(size: int) -> np.ndarray:
    out = np.empty(size, dtype=np.uint32)
    for n in range(size):
        out[n] = naf_mask(n)
    return out


@cache
def _full_table(encoding: str) -> np.ndarray:
    if encoding == "binary":
        table = np.arange(DNNSIM_TABLE_SIZE, dtype=np.uint32)
    elif encoding == "booth":
        table = _naf_table(DNNSIM_TABLE_SIZE)
    else:  # the simulator's own table: one implementation of DNNsim's scan
        table = booth_table().astype(np.uint32)
    table.setflags(write=False)
    return table


def term_mask_table(encoding: str, max_magnitude: int) -> np.ndarray:
    """Read-only uint32 term masks of the magnitudes 0..max_magnitude (at most 32767)."""
    check_encoding(encoding)
    if not 0 <= max_magnitude < DNNSIM_TABLE_SIZE:
        raise ConfigError(f"max magnitude {max_magnitude}: expected 0..{DNNSIM_TABLE_SIZE - 1}")
    return _full_table(encoding)[: max_magnitude + 1]


def essential_bits_table(encoding: str, max_magnitude: int) -> np.ndarray:
    """uint8 essential bits of the magnitudes 0..max_magnitude."""
    return np.bitwise_count(term_mask_table(encoding, max_magnitude)).astype(np.uint8)


def check_magnitudes(mag: np.ndarray, encoding: str, max_magnitude: int) -> None:
    """Raise ConfigError when a magnitude is out of the bit width, or overflows DNNsim's Booth table."""
    top = int(mag.max()) if mag.size else 0
    if top > max_magnitude:
        raise ConfigError(
            f"weight magnitude {top} exceeds {max_magnitude}, the largest this bit width allows"
        )
    if encoding == "dnnsim_booth" and top >= DNNSIM_BOOTH_LIMIT:
        raise ConfigError(f"weight magnitude {top} >= {DNNSIM_BOOTH_LIMIT} overflows DNNsim's Booth table")
