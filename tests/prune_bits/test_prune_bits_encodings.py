"""Essential bits of every 8-bit (and every 15-bit, for DNNsim's table) value against plain Python."""

import numpy as np
import pytest

from bitpruner.errors import ConfigError
from bitpruner.prune_bits.bits import bit_sparsity, essential_bits, term_masks
from bitpruner.prune_bits.encodings import DNNSIM_BOOTH_LIMIT, term_mask_table
from helpers.naive import dnnsim_booth_scan, min_signed_digits, popcount


def test_binary_is_popcount_of_magnitude():
    q = np.arange(-127, 128)
    expected = [popcount(v) for v in q]
    assert essential_bits(q, 8, "binary").tolist() == expected


def test_booth_is_minimal_signed_digit_count():
    q = np.arange(-127, 128)
    expected = [min_signed_digits(v) for v in q]
    assert essential_bits(q, 8, "booth").tolist() == expected
    masks = term_masks(q, 8, "booth")
    assert not np.any(masks & (masks >> 1)), "NAF digits are never adjacent"


def test_dnnsim_booth_table_matches_spec_scan_on_all_15_bit_values():
    table = term_mask_table("dnnsim_booth", 32767)
    sample = range(0, 32768)
    assert [int(table[n]) for n in sample] == [dnnsim_booth_scan(n) for n in sample]


def test_dnnsim_differs_from_naf_for_a_fifth_of_inputs():
    # simulator.md: "they differ for about a fifth of inputs" (in the number of terms).
    n = np.arange(DNNSIM_BOOTH_LIMIT)
    d = np.bitwise_count(term_mask_table("dnnsim_booth", n[-1])) != np.bitwise_count(
        term_mask_table("booth", n[-1])
    )
    assert 0.1 < d.mean() < 0.3


def test_dnnsim_overflow_and_range_errors():
    with pytest.raises(ConfigError, match="28672"):
        essential_bits(np.array([[28672]]), 16, "dnnsim_booth")
    with pytest.raises(ConfigError, match="128"):
        essential_bits(np.array([128]), 8)
    with pytest.raises(ConfigError, match="ternary"):
        essential_bits(np.array([1]), 8, "ternary")


def test_bit_sparsity_counts_zero_weights_and_b_minus_1_bits():
    q = np.array([0, 0, 127, 1])  # bits: 0 + 0 + 7 + 1 = 8 of 4 * 7 = 28
    assert bit_sparsity(q, 8) == pytest.approx(1 - 8 / 28)
