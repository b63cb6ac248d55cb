"""Hand-computed cycle counts and the Booth table."""

import numpy as np
import pytest

from bitpruner.sim.booth import BOOTH_TABLE_SIZE, booth_scan, booth_table
from bitpruner.sim.engine import simulate_layer
from bitpruner.sim.kernels import pragmatic_rows
from bitpruner.sim.params import SimParams
from bitpruner.sim.traces import LayerTrace


def shifter(rows, bits_first_stage):
    reach = min((1 << bits_first_stage) - 1, 15)
    return pragmatic_rows(np.asarray(rows, dtype=np.int64), reach)


def test_shifter_limits(rng):
    rows = rng.integers(0, 1 << 15, (200, 16)) * (rng.random((200, 16)) < 0.7)
    popcount = np.vectorize(lambda v: bin(int(v)).count("1"))
    or_pop = popcount(np.bitwise_or.reduce(rows, axis=1))
    max_pop = popcount(rows).max(axis=1)
    assert np.array_equal(shifter(rows, 0), np.maximum(or_pop, 1))
    assert np.array_equal(shifter(rows, 4), np.maximum(max_pop, 1))  # 15-bit reach: one shifter per lane
    mid = shifter(rows, 2)
    assert np.all((mid >= np.maximum(max_pop, 1)) & (mid <= np.maximum(or_pop, 1)))


def test_shifter_hand_cases():
    # lanes 0b1010 and 0b0101: bit columns {0,1,2,3} -> 4 cycles shared; each lane has 2 ones.
    assert shifter([[0b1010, 0b0101]], 0)[0] == 4
    assert shifter([[0b1010, 0b0101]], 1)[0] == 2  # reach 1: offset 0 clears bit0 and bit1 together
    # lanes 0b1 and 0b1000: reach 1 cannot cover bit 3 from offset 0 -> 2 cycles; reach 3 can -> 1.
    assert shifter([[0b0001, 0b1000]], 1)[0] == 2
    assert shifter([[0b0001, 0b1000]], 2)[0] == 1
    assert shifter([[0, 0, 0]], 0)[0] == 1  # all-zero still costs a cycle


def conv_layer(K=5, C=7, k=3, X=6, act_prec=None):
    rng = np.random.default_rng(0)
    return LayerTrace("c", "conv", rng.integers(-9, 9, (K, C, k, k)), rng.integers(0, 9, (1, C, X, X)),
                      act_prec=act_prec)


def test_dadiannao_and_stripes_count_steps():
    params = SimParams(lanes=4, columns=3, rows=2, tiles=2)
    layer = conv_layer(K=5, C=7, k=3, X=6, act_prec=5)
    # 4x4 = 16 windows -> 6 window sets; 5 filters -> 3 filter sets -> 2 groups; rows = 2 chunks x 9 = 18.
    steps = 6 * 2 * 18
    assert simulate_layer(layer, "DaDianNao", params) == steps
    assert simulate_layer(layer, "Stripes", params) == steps * 5


def test_fc_columns_formula():
    # fc, 1 group, T rows of constant cost P on Cc columns: column t%Cc is free again after P cycles.
    layer = LayerTrace("f", "fc", np.ones((3, 40), int), np.ones((1, 40), int), act_prec=6)
    params = SimParams(lanes=4, columns=4)  # T = 10 rows
    # steps start at 0..9 but each column waits for its previous row: starts 0,1,2,3,6,7,8,9,12,13 -> ends +6
    assert simulate_layer(layer, "Stripes", params) == 19
    assert simulate_layer(layer, "DaDianNao", params) == 10


def test_laconic_is_product_of_popcounts():
    w = np.zeros((1, 2, 1, 1), int)
    a = np.zeros((1, 2, 1, 1), int)
    w[0, :, 0, 0] = [0b111, 0b1]
    a[0, :, 0, 0] = [0b11, 0b1111]
    layer = LayerTrace("c", "conv", w, a)
    assert simulate_layer(layer, "Laconic", SimParams(lanes=2)) == max(3 * 2, 1 * 4)


def test_shapeshifter_signed_precision():
    a = np.array([[[[3]], [[-4]]]])  # signed layer: 3 -> top bit 1 (+1 sign) ; -4 -> ~(-4)=3 -> 1 (+1)
    layer = LayerTrace("c", "conv", np.ones((1, 2, 1, 1), int), a)
    assert simulate_layer(layer, "ShapeShifter", SimParams(lanes=2)) == 3
    assert simulate_layer(layer, "Loom", SimParams(lanes=2)) == 3 * 16


def test_booth_table_matches_the_spec_scan():
    table = booth_table()
    assert table.shape == (BOOTH_TABLE_SIZE,)
    for n in list(range(0, 4096)) + list(range(4096, BOOTH_TABLE_SIZE, 97)):
        assert table[n] == booth_scan(n), n


def test_booth_recoding_properties():
    table = booth_table()[:28672]
    n = np.arange(table.size)
    terms = np.vectorize(lambda v: bin(int(v)).count("1"))(table)
    plain = np.vectorize(lambda v: bin(int(v)).count("1"))(n)
    assert np.all(terms <= plain)  # recoding never adds terms
    assert table[0] == 0 and table[1] == 1 and terms[7] == 2  # 7 = 8 - 1
    assert np.all((table > 0) == (n > 0))


@pytest.mark.parametrize("arch", ["BitPragmatic", "PragmaticW"])
def test_bit_column_engine_reads_or_of_lanes(arch):
    # Weight-serial engine with bits_first_stage 0 costs the number of bit columns holding a one.
    w = np.zeros((1, 4, 1, 1), int)
    w[0, :, 0, 0] = [0b1001, 0b0001, 0b1000, 0]
    layer = LayerTrace("c", "conv", w, np.ones((1, 4, 1, 1), int))
    if arch == "BitPragmatic":
        layer = LayerTrace("c", "conv", np.ones((1, 4, 1, 1), int), w.transpose(1, 0, 2, 3).reshape(1, 4, 1, 1))
    assert simulate_layer(layer, arch, SimParams(lanes=4)) == 2
    assert simulate_layer(layer, arch, SimParams(lanes=4, bits_first_stage=4)) == 2
