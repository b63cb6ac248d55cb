"""Trace formats: our .npz + network.json, DNNsim's layout, the torch axis swap and validation."""

import numpy as np
import pytest
from tests.sim.conftest import random_layer

from bitpruner.errors import TraceError
from bitpruner.sim.dnnsim_io import load_dnnsim, save_dnnsim
from bitpruner.sim.engine import simulate_layer
from bitpruner.sim.params import SimParams
from bitpruner.sim.traces import LayerTrace, NetworkTrace, from_torch_layout


def sample_network(rng, precisions=True):
    conv = random_layer(rng, "conv", K=4, C=3, k=3, X=6, pad=1)
    conv.name, conv.stride = "conv1", 2
    fc = random_layer(rng, "fc", K=5, C=12, signed_acts=True)
    fc.name = "fc2"
    if precisions:
        conv.act_prec, conv.wgt_prec, fc.act_prec, fc.wgt_prec = 8, 7, 6, 5
    conv.act_scale, conv.act_bits = 0.125, 8
    return NetworkTrace("tiny", [conv, fc], model="lenet5")


def assert_same_layers(a, b):
    assert [layer.name for layer in a.layers] == [layer.name for layer in b.layers]
    for x, y in zip(a.layers, b.layers, strict=True):
        assert (x.type, x.stride, x.pad, x.act_prec, x.wgt_prec) == (y.type, y.stride, y.pad, y.act_prec, y.wgt_prec)
        assert np.array_equal(x.weights, y.weights) and np.array_equal(x.activations, y.activations)


def test_own_format_round_trips(tmp_path, rng):
    net = sample_network(rng)
    back = NetworkTrace.load(net.save(tmp_path / "t"))
    assert_same_layers(net, back)
    assert back.model == "lenet5" and back.layers[0].act_scale == 0.125 and back.layers[0].act_bits == 8


@pytest.mark.parametrize("precisions", [True, False])
def test_dnnsim_layout_round_trips(tmp_path, rng, precisions):
    net = sample_network(rng, precisions)
    save_dnnsim(net, tmp_path)
    assert (tmp_path / "models/tiny/precision.txt").exists() == precisions
    assert np.load(tmp_path / "net_traces/tiny/wgt-conv1.npy").dtype == np.float32
    back = load_dnnsim(tmp_path, "tiny")
    assert_same_layers(net, back)
    assert (tmp_path / "models/tiny/model.csv").read_text().splitlines()[0] == "conv1,conv,2,1"


def test_fc_with_4d_activations_flattens_channel_major(rng):
    a = rng.integers(0, 5, (1, 2, 3, 3))
    w = rng.integers(-3, 3, (4, 18))
    layer = LayerTrace("f", "fc", w, a)
    assert np.array_equal(layer.fc_activations[0], a[0].reshape(-1))
    flat = LayerTrace("f", "fc", w, a.reshape(1, -1))
    assert simulate_layer(layer, "BitPragmatic") == simulate_layer(flat, "BitPragmatic")


def test_from_torch_layout_swaps_x_and_y():
    w = np.arange(2 * 3 * 2 * 4).reshape(2, 3, 2, 4)  # [K, C, H=y, W=x]
    a = np.arange(1 * 3 * 5 * 7).reshape(1, 3, 5, 7)
    w2, a2 = from_torch_layout(w, a)
    assert w2.shape == (2, 3, 4, 2) and a2.shape == (1, 3, 7, 5)
    assert w2[1, 2, 3, 1] == w[1, 2, 1, 3] and a2[0, 1, 6, 4] == a[0, 1, 4, 6]
    fc_w, fc_a = from_torch_layout(np.ones((2, 3)), np.ones((1, 3)))
    assert fc_w.shape == (2, 3) and fc_a.shape == (1, 3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(weights=np.ones((2, 3, 1, 1)), activations=np.ones((1, 4, 2, 2))), "channels"),
        (dict(weights=np.ones((2, 3, 1, 1)) * 0.5, activations=np.ones((1, 3, 2, 2))), "non-integer"),
        (dict(weights=np.ones((2, 3, 1, 1)), activations=np.full((1, 3, 2, 2), 40000)), "16-bit"),
        (dict(weights=np.ones((2, 3, 5, 5)), activations=np.ones((1, 3, 2, 2))), "exceeds padded input"),
    ],
)
def test_validation_errors(kwargs, message):
    with pytest.raises(TraceError, match=message):
        LayerTrace(name="bad", type="conv", **kwargs)


def test_precision_and_booth_limits():
    layer = LayerTrace("c", "conv", np.ones((1, 1, 1, 1)), np.full((1, 1, 1, 1), 30000), act_prec=17)
    with pytest.raises(TraceError, match="exceeds pe_width"):
        simulate_layer(layer, "Stripes")
    layer.act_prec = 16
    with pytest.raises(TraceError, match="28672"):
        simulate_layer(layer, "BitPragmatic", SimParams(booth_encoding=True))
    assert simulate_layer(layer, "BitPragmatic") == bin(30000).count("1")  # fine without Booth
    with pytest.raises(TraceError, match="28672"):
        simulate_layer(LayerTrace("c", "conv", np.full((1, 1, 1, 1), -29000), np.ones((1, 1, 1, 1))),
                       "PragmaticW", SimParams(booth_encoding=True))


def test_missing_files_name_the_path(tmp_path, rng):
    save_dnnsim(sample_network(rng), tmp_path)
    missing = tmp_path / "net_traces/tiny/act-fc2-0.npy"
    missing.unlink()
    with pytest.raises(TraceError, match="act-fc2-0.npy"):
        load_dnnsim(tmp_path, "tiny")
    with pytest.raises(TraceError, match="model.csv"):
        load_dnnsim(tmp_path, "nothere")
