"""Which bit positions of a weight magnitude cost a cycle, per encoding ("term masks").

A term mask has bit p set when the encoded magnitude has a non-zero digit at position p, so the
essential bits are popcount(mask) and a bit-column engine's cycles are popcount(OR of the lane masks).

- binary:       |q| itself (sign-magnitude).
- booth:        the non-zero digits of the minimal signed-digit (NAF) form of |q|.
- dnnsim_booth: DNNsim's "booth-like" recoding, bit for bit as simulator.md states it.
"""

from __future__ import annotations

import os
from functools import cache

import numpy as np

os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
import numba  # noqa: E402

from bitpruner.errors import ConfigError  # noqa: E402

ENCODINGS = ("binary", "booth", "dnnsim_booth")
DNNSIM_TABLE_SIZE = 32768  # DNNsim recodes 15-bit magnitudes
DNNSIM_BOOTH_LIMIT = 28672  # |v| >= this overflows DNNsim's table (it hangs there), so we reject it
DNNSIM_SCAN_STEPS = 16
DNNSIM_RESULT_MASK = 0xFFFF  # the recoded value is a uint16


def check_encoding(encoding: str) -> str:
    if encoding not in ENCODINGS:
        raise ConfigError(f"encoding={encoding!r}: expected one of {', '.join(ENCODINGS)}")
    return encoding


@numba.njit(cache=True)
def dnnsim_booth_recode(n: int) -> int:
    """DNNsim's recoding of magnitude n: scan the 18-bit string of n << 2, three characters at a time."""
    s = n << 2
    out = 0
    run = False
    for i in range(DNNSIM_SCAN_STEPS):
        # Characters i, i+1, i+2 of the 18-character string are bits 17-i, 16-i, 15-i.
        w = (s >> (15 - i)) & 7
        out <<= 1
        if w == 2 or w == 3:
            if run:
                out |= 1
        elif w == 4:
            out |= 1
            run = False
        elif w == 5 or w == 6:
            if not run:
                out |= 1
        elif w == 7:
            if not run:
                out |= 2
                run = True
    return out & DNNSIM_RESULT_MASK


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
def _fill_table(kind: int, size: int) -> np.ndarray:
    out = np.empty(size, dtype=np.uint32)
    for n in range(size):
        if kind == 0:
            out[n] = n
        elif kind == 1:
            out[n] = naf_mask(n)
        else:
            out[n] = dnnsim_booth_recode(n)
    return out


@cache
def _full_table(encoding: str) -> np.ndarray:
    table = _fill_table(ENCODINGS.index(encoding), DNNSIM_TABLE_SIZE)
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
