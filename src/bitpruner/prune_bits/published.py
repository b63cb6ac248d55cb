"""BitPruner as published: the authors' LLSQ bit pruning (code book + progressive revert rule), as pure functions.

Source: the BitPruner authors' public code, repository wangying-ict/LLSQ, file `models/modules/bit_pruning.py`
(`bit_pruning_with_truncation` / `bit_code2` for the code book, `Conv2dBP` / `LinearBP` for the progressive
revert rule, `count_bit` / `bit_sparse` for the bit accounting). Written from a reading of that file, not copied.

- Scale: one power of two per layer. il = ceil(log2(max|w|) + 1 - 1e-5), radix = bits - il, q = round(w * 2^radix),
  so max|w| * 2^radix lies in (64, 128] for 8 bits. LLSQ clamps to [-128, 127]; we clamp to the pipeline's narrow
  range [-127, 127] (sign-magnitude with 7 magnitude bits, what bit accounting and the simulators read), so both
  signs are treated alike.
- Code book: every integer magnitude <= qmax with at most `max_bits` set bits (LLSQ's `bit_code2`: max_bits = 2,
  largest code 96; `bit_code1`: max_bits = 1). A magnitude goes to the nearest code; one exactly on a midpoint goes
  to the upper code (LLSQ's `threshold <= q < next threshold`). LLSQ's loop stops one interval short, so magnitudes
  above the last midpoint (88..127 for bit_code2) are left unchanged there: a quirk. We map them to the largest
  code (96), the evident intent; a magnitude already within the bit cap (e.g. 128 of -128) is kept.
- Revert rule (progressive form): after every optimizer step, while the layer's bit sparsity of the stored integers
  is below its target s0 + (1 - s0) * f, an update whose new integer has more set bits than the stored one is undone
  (float and integer); otherwise it is accepted. Bit sparsity = 1 - set magnitude bits / ((bits - 1) * n).

Integers are carried as int64 tensors (any integer dtype is accepted); floats keep their dtype.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import torch

from bitpruner.errors import ConfigError
from bitpruner.prune_bits.encodings import essential_bits_table
from bitpruner.quant.fixed_point import check_bits, qmax

# LLSQ's guard in il = ceil(log2(max|w|) + 1 - eps): a max|w| that is an exact power of two (up to float error)
# keeps its own exponent instead of wasting one magnitude bit.
RADIX_EPS = 1e-5


# ---------------------------------------------------------------- scale


def radix_position(w: torch.Tensor, bits: int = 8) -> int:
    """LLSQ's radix position of a layer: bits - ceil(log2(max|w|) + 1 - RADIX_EPS); the scale is 2^-radix.

    `w`: float tensor of any shape (the masked latent weight). An all-zero layer gets radix 0 (scale 1: every
    integer is 0 whatever the scale). Source: LLSQ models/modules/bit_pruning.py, Conv2dBP.forward (init_state).
    """
    bits = check_bits(bits)
    amax = float(w.detach().abs().max()) if w.numel() else 0.0
    if amax == 0.0:
        return 0
    if not math.isfinite(amax):
        raise ConfigError(f"max|w| = {amax}: a layer's weights must be finite for the power-of-two scale")
    il = math.ceil(math.log2(amax) + 1 - RADIX_EPS)
    return bits - il


def pow2_scale(radix: int) -> torch.Tensor:
    """0-d float32 scale 2^-radix (exact), the `meta.int_weights` scale of a published-mode layer."""
    return torch.tensor(math.ldexp(1.0, -int(radix)), dtype=torch.float32)


def pow2_quantize(w: torch.Tensor, radix: int, bits: int = 8) -> torch.Tensor:
    """int64 q = clamp(round(w * 2^radix), -qmax, qmax): LLSQ's `truncation` with a narrow-range clamp.

    `w`: float tensor, any shape; the product by 2^radix is exact (a power of two), rounding half to even as
    torch.round (LLSQ's `linear_quantize`). Source: LLSQ models/modules/bit_pruning.py, `truncation`.
    """
    top = qmax(bits)
    return torch.clamp(torch.round(w.detach() * math.ldexp(1.0, int(radix))), -top, top).to(torch.int64)


# ---------------------------------------------------------------- popcount


@cache
def _popcount_table(bits: int) -> np.ndarray:
    # Magnitudes 0..2^(bits-1): one more than qmax, so that -2^(bits-1) (LLSQ's -128) can be counted too.
    return essential_bits_table("binary", 1 << (bits - 1)).astype(np.int64)


def popcount(q: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """int64 number of set magnitude bits of every integer (sign-magnitude: popcount(|q|)), same shape as `q`.

    Raises ConfigError when |q| > 2^(bits-1). Source: LLSQ models/modules/bit_pruning.py, `count_bit`
    (complement=False).
    """
    bits = check_bits(bits)
    mag = q.detach().to(torch.int64).abs()
    top = 1 << (bits - 1)
    if mag.numel() and int(mag.max()) > top:
        raise ConfigError(f"integer magnitude {int(mag.max())} exceeds {top}, the largest {bits}-bit value")
    table = torch.from_numpy(_popcount_table(bits)).to(mag.device)
    return table[mag]


def layer_bit_sparsity(q: torch.Tensor, bits: int = 8) -> float:
    """1 - sum(popcount) / ((bits - 1) * n) of one layer's integers (zeros count 0 bits); 0 for an empty tensor.

    Source: LLSQ models/modules/bit_pruning.py, `bit_sparse` (7 magnitude bits per 8-bit weight); the same
    figure as `prune_bits.bits.bit_sparsity`, in torch so that it runs on the training device every step.
    """
    n = q.numel()
    if n == 0:
        return 0.0
    return 1.0 - int(popcount(q, bits).sum()) / ((bits - 1) * n)


def target_bit_sparsity(s0: float, factor: float) -> float:
    """LLSQ's expected bit sparsity s0 + (1 - s0) * factor (`expected_bit_sparsity_func`); factor in [0, 1)."""
    return s0 + (1.0 - s0) * factor


# ---------------------------------------------------------------- code book


@cache
def codebook(max_bits: int = 2, bits: int = 8) -> tuple[int, ...]:
    """Sorted magnitudes 0..qmax(bits) with at most `max_bits` set bits (LLSQ's `bit_code2` for (2, 8))."""
    bits = check_bits(bits)
    if isinstance(max_bits, bool) or not isinstance(max_bits, int) or not 1 <= max_bits <= bits - 1:
        raise ConfigError(f"max_bits={max_bits!r}: expected an integer in [1, {bits - 1}]")
    table = _popcount_table(bits)[: qmax(bits) + 1]
    return tuple(int(m) for m in np.flatnonzero(table <= max_bits))


@cache
def _codebook_tensors(max_bits: int, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    codes = np.asarray(codebook(max_bits, bits), dtype=np.float64)
    midpoints = (codes[:-1] + codes[1:]) / 2
    return torch.from_numpy(codes.astype(np.int64)), torch.from_numpy(midpoints)


def project_codebook(q: torch.Tensor, max_bits: int = 2, bits: int = 8) -> torch.Tensor:
    """int64 sign-magnitude projection of integers onto the code book: nearest code, midpoints go up, sign kept.

    `q`: integer tensor with |q| <= 2^(bits-1), any shape. Magnitudes above the last code's midpoint go to the
    largest code (the intended cap; LLSQ's loop leaves them unchanged, see the module docstring), except those
    already within `max_bits` set bits (only 2^(bits-1), i.e. -128), which are kept.
    Source: LLSQ models/modules/bit_pruning.py, `bit_pruning_int_truncation`.
    """
    codes, midpoints = _codebook_tensors(max_bits, bits)
    q = q.detach().to(torch.int64)
    mag = q.abs()
    # right=True: index = number of midpoints <= mag, so a magnitude on a midpoint takes the upper code.
    idx = torch.bucketize(mag.to(torch.float64), midpoints.to(q.device), right=True)
    out = codes.to(q.device)[idx]
    keep = popcount(mag, bits) <= max_bits
    out = torch.where(keep, mag, out)
    return torch.where(q < 0, -out, out)


def published_int(w: torch.Tensor, radix: int, bits: int = 8, max_bits: int | None = 2) -> torch.Tensor:
    """int64 integers of a layer in the published mode: pow2_quantize, then the code book (None: no code book).

    Source: LLSQ models/modules/bit_pruning.py, `bit_pruning_with_truncation`.
    """
    q = pow2_quantize(w, radix, bits)
    return q if max_bits is None else project_codebook(q, max_bits, bits)


# ---------------------------------------------------------------- revert rule


def revert_update(old_int: torch.Tensor, new_int: torch.Tensor, old_float: torch.Tensor, new_float: torch.Tensor,
                  sparsity: float, target: float, bits: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """(accepted float, accepted int) of one layer after an optimizer step: LLSQ's progressive revert rule.

    While `sparsity` (of the stored integers `old_int`) < `target`, every weight whose `new_int` has more set
    magnitude bits than its `old_int` gets its `old_float` and `old_int` back; other weights (and all of them
    once sparsity >= target) take `new_float` / `new_int`. All four tensors have the layer's shape; the float
    keeps `new_float`'s dtype, the int is int64. Source: LLSQ models/modules/bit_pruning.py, Conv2dBP.forward
    (training branch).
    """
    new_int = new_int.to(torch.int64)
    old_int = old_int.to(torch.int64)
    if sparsity >= target:
        return new_float, new_int
    raised = popcount(new_int, bits) > popcount(old_int, bits)
    return torch.where(raised, old_float.to(new_float.dtype), new_float), torch.where(raised, old_int, new_int)


__all__ = [
    "RADIX_EPS",
    "codebook",
    "layer_bit_sparsity",
    "popcount",
    "pow2_quantize",
    "pow2_scale",
    "project_codebook",
    "published_int",
    "radix_position",
    "revert_update",
    "target_bit_sparsity",
]
