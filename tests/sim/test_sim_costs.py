"""Hand-computed cycle counts and the Booth table."""

from pathlib import Path

import numpy as np
import pytest
import yaml
from tests.sim.conftest import random_layer

from bitpruner.sim.accelerators import accelerator_from_config
from bitpruner.sim.booth import BOOTH_TABLE_SIZE, booth_scan, booth_table
from bitpruner.sim.engine import simulate_layer
from bitpruner.sim.params import SimParams
from bitpruner.sim.reference import _pragmatic
from bitpruner.sim.traces import LayerTrace
from bitpruner.sim.vectorized import shifter_rows

CONFIG_DIR = Path(__file__).resolve().parents[2] / "conf" / "accelerator"


def shifter(rows, bits_first_stage):
    reach = min((1 << bits_first_stage) - 1, 15)
    return shifter_rows(np.asarray(rows, dtype=np.int64), reach)


@pytest.mark.parametrize("bits_first_stage", [1, 2, 3])
def test_shifter_matches_the_literal_scan(rng, jit_mode, bits_first_stage):
    # Sparse rows of 16-bit values (Booth-recoded magnitudes reach bit 15), all-zero rows included.
    rows = rng.integers(0, 1 << 16, (300, 16)) * (rng.random((300, 16)) < 0.4)
    rows[::7] = 0
    expected = [_pragmatic([int(v) for v in row], bits_first_stage) for row in rows]
    assert shifter(rows, bits_first_stage).tolist() == expected


def test_shifter_limits(rng, jit_mode):
    rows = rng.integers(0, 1 << 15, (200, 16)) * (rng.random((200, 16)) < 0.7)
    popcount = np.vectorize(lambda v: bin(int(v)).count("1"))
    or_pop = popcount(np.bitwise_or.reduce(rows, axis=1))
    max_pop = popcount(rows).max(axis=1)
    assert np.array_equal(shifter(rows, 0), np.maximum(or_pop, 1))
    assert np.array_equal(shifter(rows, 4), np.maximum(max_pop, 1))  # 15-bit reach: one shifter per lane
    mid = shifter(rows, 2)
    assert np.all((mid >= np.maximum(max_pop, 1)) & (mid <= np.maximum(or_pop, 1)))


def test_shifter_hand_cases(jit_mode):
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
    # Stripes = window sets x filter-set groups x buffer rows x precision; DaDianNao the same without precision.
    params = SimParams(lanes=4, columns=3, rows=2, tiles=2)
    layer = conv_layer(K=5, C=7, k=3, X=6, act_prec=5)
    # 4x4 = 16 windows -> 6 window sets of 3; 5 filters -> 3 filter sets of 2 -> 2 groups of 2 tiles;
    # buffer rows: ceil(7 / 4) = 2 channel chunks x 9 kernel positions = 18.
    assert simulate_layer(layer, "DaDianNao", params) == 6 * 2 * 18 == 216
    assert simulate_layer(layer, "Stripes", params) == 216 * 5 == 1080


def test_dadiannao_and_stripes_strided_padded_non_square_conv():
    rng = np.random.default_rng(1)
    w = rng.integers(-9, 9, (9, 16, 3, 2))  # 9 filters, 16 channels, kernel 3 (x) by 2 (y)
    a = rng.integers(0, 9, (1, 16, 7, 5))  # input 7 (x) by 5 (y)
    layer = LayerTrace("c", "conv", w, a, stride=2, pad=1, act_prec=7)
    params = SimParams(lanes=8, columns=5, rows=4, tiles=2)
    # padded 9 x 7: Ox = (9 - 3) // 2 + 1 = 4, Oy = (7 - 2) // 2 + 1 = 3 -> 12 windows -> 3 window sets of 5;
    # 9 filters -> 3 filter sets of 4 -> 2 groups of 2 tiles; 16 channels / 8 lanes = 2 chunks x 6 positions = 12.
    assert simulate_layer(layer, "DaDianNao", params) == 3 * 2 * 12 == 72
    assert simulate_layer(layer, "Stripes", params) == 72 * 7 == 504


def test_dadiannao_and_stripes_fc_counted_by_hand():
    layer = LayerTrace("f", "fc", np.ones((9, 10), int), np.ones((1, 10), int), act_prec=6)
    # 10 channels / 4 lanes = 3 buffer rows; 9 filters -> 5 filter sets of 2 -> 3 groups of 2 tiles; 9 steps.
    one_column = SimParams(lanes=4, columns=1, rows=2, tiles=2)
    assert simulate_layer(layer, "DaDianNao", one_column) == 3 * 3 == 9
    # One column: every step waits for the previous one, so Stripes = window sets (1) x groups x rows x precision.
    assert simulate_layer(layer, "Stripes", one_column) == 1 * 3 * 3 * 6 == 54
    # Four columns, row t on column t % 4 (c: issue cycle, cc: column free at), cost 6 per step:
    # group 0: t0 c=0 cc0=6, t1 c=1 cc1=7, t2 c=2 cc2=8; group 1: t0 c=max(3, 6)=6 cc0=12, t1 c=7 cc1=13,
    # t2 c=8 cc2=14; group 2: t0 c=max(9, 12)=12 cc0=18, t1 c=13 cc1=19, t2 c=14 cc2=20 -> 20 cycles.
    four_columns = SimParams(lanes=4, columns=4, rows=2, tiles=2)
    assert simulate_layer(layer, "Stripes", four_columns) == 20
    assert simulate_layer(layer, "DaDianNao", four_columns) == 9  # bit-parallel: one cycle per step


def test_fc_columns_formula():
    # fc, 1 group, T rows of constant cost P on Cc columns: column t%Cc is free again after P cycles.
    layer = LayerTrace("f", "fc", np.ones((3, 40), int), np.ones((1, 40), int), act_prec=6)
    params = SimParams(lanes=4, columns=4)  # T = 10 rows
    # steps start at 0..9 but each column waits for its previous row: starts 0,1,2,3,6,7,8,9,12,13 -> ends +6
    assert simulate_layer(layer, "Stripes", params) == 19
    assert simulate_layer(layer, "DaDianNao", params) == 10


def pragmatic_w_bfs0():
    """The bit-pruning target accelerator, from its config file."""
    path = CONFIG_DIR / "pragmaticw_bfs0.yaml"
    accel = accelerator_from_config(yaml.safe_load(path.read_text()), path.name)
    assert accel.arch == "PragmaticW" and accel.params.bits_first_stage == 0
    return accel


def pruned_copy(layer, rng, fraction):
    """The same layer with a random `fraction` of its weights set to zero (activations shared)."""
    w = layer.weights * (rng.random(layer.weights.shape) >= fraction)
    return LayerTrace(layer.name, layer.type, w, layer.activations, stride=layer.stride, pad=layer.pad)


@pytest.mark.parametrize("kind, columns", [("conv", None), ("fc", None), ("fc", 1)])
def test_pragmatic_w_bfs0_never_slower_on_a_weight_pruned_copy(kind, columns):
    accel = pragmatic_w_bfs0()
    # fc on 16 columns overlaps its rows (a row costs < 16 cycles here), which hides most savings; on one column
    # the rows run back to back and every saved bit column shows.
    params = accel.params if columns is None else accel.params.model_copy(update={"columns": columns})
    rng = np.random.default_rng(17)
    for trial in range(4):
        shape = dict(K=4, C=600) if kind == "fc" else dict(K=20, C=20, k=3, X=5, pad=1)
        dense = random_layer(rng, kind, sparsity=0.1, max_mag=127, **shape)
        dense_cycles = simulate_layer(dense, accel.arch, params)
        previous = dense_cycles
        for fraction in (0.3, 0.6, 0.9):  # the same uniform draws: each copy zeroes a superset of the last
            pruned = pruned_copy(dense, np.random.default_rng(trial), fraction)
            cycles = simulate_layer(pruned, accel.arch, params)
            assert cycles <= previous, (trial, fraction)
            previous = cycles
        if kind == "conv" or columns == 1:
            assert previous < dense_cycles  # 90% zeros leave fewer bit columns in 16-lane rows
        # All weights zero: every step costs its minimum of one cycle, which is DaDianNao's count.
        zeros = pruned_copy(dense, rng, 1.0)
        assert simulate_layer(zeros, accel.arch, params) == simulate_layer(zeros, "DaDianNao", params)


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
