"""Trace capture: integer weights/activations that reproduce each layer's output, in DNNsim's x-first order."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from simulate_helpers import DIGITS_GEOMETRY, LENET_CFG, bit_prune, zero_smallest
from torch import nn

from bitpruner.errors import TraceError
from bitpruner.models.checkpoint import build_from_config
from bitpruner.models.layers import prunable_layers
from bitpruner.quant import QuantizationError
from bitpruner.quant.activations import quantize_activation
from bitpruner.sim.capture import first_samples, layer_geometry, quantize_model
from bitpruner.sim.engine import simulate_layer
from bitpruner.sim.traces import NetworkTrace

H, W = 5, 7  # non-square on purpose: a missed x/y transpose changes shapes and values


def tiny_net() -> nn.Module:
    torch.manual_seed(3)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(),
        nn.Conv2d(4, 3, 3, stride=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(3 * 2 * 3, 5),
    )
    with torch.no_grad():
        net[0].weight[0, 0] = 0.0  # a whole 3x3 kernel of zeros
        net[2].weight[1, 2, 0, 1] = 0.0
    return net


@pytest.fixture(scope="module")
def captured():
    net = tiny_net()
    calib = [torch.randn(8, 2, H, W, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    qm = quantize_model(net, calib, name="tiny")
    inputs = torch.randn(2, 2, H, W, generator=torch.Generator().manual_seed(9))
    outputs = {}
    hooks = [m.register_forward_hook(lambda _m, _i, out, n=n: outputs.__setitem__(n, out.detach()))
             for n, m in prunable_layers(qm.model).items()]
    trace = qm.capture(inputs)
    for h in hooks:
        h.remove()
    return net, qm, inputs, trace, outputs


def test_shapes_are_x_first_and_geometry_from_modules(captured):
    _, _, _, trace, _ = captured
    conv1, conv2, fc = trace.layers
    assert [layer.name for layer in trace.layers] == ["0", "2", "5"]
    assert conv1.activations.shape == (2, 2, W, H) and conv1.weights.shape == (4, 2, 3, 3)
    assert conv2.activations.shape == (2, 4, W, H)
    assert fc.type == "fc" and fc.activations.shape == (2, 18) and fc.weights.shape == (5, 18)
    assert (conv1.stride, conv1.pad, conv2.stride, conv2.pad) == (1, 1, 2, 0)
    assert all(layer.act_prec == 8 and layer.wgt_prec == 8 for layer in trace.layers)


def test_transpose_matches_the_torch_input(captured):
    _, qm, inputs, trace, _ = captured
    q = quantize_activation(inputs, qm.act_quant["0"]).numpy()  # [n, c, y, x]
    a = trace.layers[0].activations  # [n, c, x, y]
    for x in range(W):
        for y in range(H):
            assert np.array_equal(a[:, :, x, y], q[:, :, y, x])
    assert np.array_equal(trace.layers[0].weights, np.swapaxes(qm.weights["0"].q.numpy(), 2, 3))


def test_integer_conv_and_fc_reproduce_the_layer_outputs(captured):
    _, qm, _, trace, outputs = captured
    modules = prunable_layers(qm.model)
    for layer in trace.layers:
        module = modules[layer.name]
        a = torch.from_numpy(layer.activations).double()
        w = torch.from_numpy(layer.weights).double()
        if layer.type == "conv":
            # back to PyTorch's [.., y, x] before convolving
            acc = F.conv2d(a.transpose(-1, -2), w.transpose(-1, -2), stride=layer.stride, padding=layer.pad)
            bias = module.bias.double().view(1, -1, 1, 1)
        else:
            acc = a @ w.T
            bias = module.bias.double()
        got = acc * layer.act_scale * layer.wgt_scale + bias
        want = outputs[layer.name].double()
        assert got.shape == want.shape
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))


def test_integers_ranges_and_zeros(captured):
    net, qm, _, trace, _ = captured
    calib = [torch.randn(8, 2, H, W, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    first, *rest = trace.layers
    for layer in trace.layers:
        assert layer.weights.dtype == np.int32 and layer.activations.dtype == np.int32
        assert np.abs(layer.weights).max() == 127  # per-layer scale maps max|w| to the top of the narrow range
    assert first.activations.min() < 0 and np.abs(first.activations).max() <= 127  # normal inputs: signed
    for layer in rest:  # after ReLU: unsigned 8-bit
        assert layer.activations.min() >= 0 and layer.activations.max() <= 255
        assert not qm.act_quant[layer.name].signed and qm.act_quant[layer.name].qmax == 255
    # On the calibration data itself the unsigned range is used up to (about) its top.
    again = qm.capture(torch.cat(calib))
    assert all(layer.activations.max() >= 240 for layer in again.layers[1:])
    assert np.all(first.weights[0, 0] == 0)
    assert trace.layers[1].weights[1, 2, 1, 0] == 0  # torch [k, c, y=0, x=1] -> [k, c, x=1, y=0]
    assert np.count_nonzero(first.weights) == np.count_nonzero(net[0].weight.detach().numpy().round(6))


def test_non_square_trace_simulates_and_round_trips(captured, tmp_path):
    _, _, _, trace, _ = captured
    trace.save(tmp_path / "t")
    back = NetworkTrace.load(tmp_path / "t")
    for a, b in zip(trace.layers, back.layers, strict=True):
        assert np.array_equal(a.weights, b.weights) and np.array_equal(a.activations, b.activations)
    assert simulate_layer(trace.layers[1], "Stripes") > 0


def lenet_with_int_weights():
    torch.manual_seed(0)
    model = build_from_config(LENET_CFG, DIGITS_GEOMETRY)
    zero_smallest(model, 0.5)
    int_weights = bit_prune(model)
    return model, {"model_cfg": LENET_CFG, "meta": {"int_weights": int_weights}}


def test_stored_integer_weights_are_used_exactly():
    model, payload = lenet_with_int_weights()
    calib = [torch.randn(4, 1, 8, 8)]
    qm = quantize_model(model, calib, payload, name="bit-pruned")
    assert qm.weight_source == "meta.int_weights"
    trace = qm.capture(torch.randn(1, 1, 8, 8))
    for layer in trace.layers:
        stored = payload["meta"]["int_weights"][layer.name]["q"].numpy()
        expect = np.swapaxes(stored, 2, 3) if stored.ndim == 4 else stored
        assert np.array_equal(layer.weights, expect)
        # one essential bit each: re-quantizing would have stretched max|q| to 127 instead
        assert set(np.unique(np.abs(layer.weights))) <= {0, 1, 2, 4, 8, 16, 32, 64}
    assert trace.model == "lenet5"


def test_stored_integer_weights_that_disagree_with_the_state_dict_fail():
    model, payload = lenet_with_int_weights()
    stored = payload["meta"]["int_weights"]["conv1"]
    q = stored["q"]
    stored["q"] = q // 2
    with pytest.raises(TraceError, match="conv1.*differ from round"):
        quantize_model(model, [torch.randn(2, 1, 8, 8)], payload)
    stored["q"] = q * 4
    with pytest.raises(TraceError, match="conv1.*exceeds 127"):
        quantize_model(model, [torch.randn(2, 1, 8, 8)], payload)
    stored["q"] = q
    del payload["meta"]["int_weights"]["conv1"]
    with pytest.raises(TraceError, match="missing on one side"):
        quantize_model(model, [torch.randn(2, 1, 8, 8)], payload)


@pytest.mark.parametrize("conv, match", [
    (nn.Conv2d(4, 4, 3, dilation=2), "dilation"),
    (nn.Conv2d(4, 4, 3, stride=(1, 2)), "same stride"),
    (nn.Conv2d(4, 4, 3, padding=(1, 0)), "same padding"),
    (nn.Conv2d(4, 4, 3, padding="same"), "explicit integer padding"),
])
def test_unsupported_convolutions_are_clear_errors(conv, match):
    with pytest.raises(TraceError, match=match):
        layer_geometry("c", conv)
    with pytest.raises(TraceError, match=match):
        quantize_model(nn.Sequential(conv), [torch.randn(1, 4, 6, 6)])


def test_first_samples_in_file_order_and_bounds():
    data = [(torch.full((1, 2, 2), float(i)), i) for i in range(5)]
    assert first_samples(data, 3)[:, 0, 0, 0].tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(TraceError, match="holds only 5"):
        first_samples(data, 6)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_weight_fails_capture_naming_the_layer_and_value(bad):
    # The issue: a NaN weight became -2147483648 and capture failed later with "outside 16-bit", never naming NaN.
    net = tiny_net()
    with torch.no_grad():
        net[2].weight[1, 0, 2, 1] = bad
    with pytest.raises(QuantizationError) as info:
        quantize_model(net, [torch.randn(2, 2, H, W)], name="tiny")
    message = str(info.value)
    assert "layer '2' weight" in message and str(bad) in message and "16-bit" not in message
    assert len(message.splitlines()) == 1


def test_a_non_finite_input_fails_capture_naming_the_layer():
    qm = quantize_model(tiny_net(), [torch.randn(4, 2, H, W)], name="tiny")
    x = torch.randn(1, 2, H, W)
    x[0, 1, 2, 3] = float("nan")
    with pytest.raises(QuantizationError, match=r"layer '0' input holds nan at \[0, 1, 2, 3\]"):
        qm.capture(x)


def test_stored_integer_weights_with_nan_or_a_zero_scale_fail():
    model, payload = lenet_with_int_weights()
    stored = payload["meta"]["int_weights"]["conv1"]
    q, scale = stored["q"], stored["scale"]
    stored["q"] = q.double()
    stored["q"][0, 0, 0, 0] = float("nan")
    with pytest.raises(TraceError, match=r"conv1.*q holds NaN or inf"):
        quantize_model(model, [torch.randn(2, 1, 8, 8)], payload)
    stored["q"], stored["scale"] = q, torch.tensor(0.0)
    with pytest.raises(TraceError, match=r"conv1.*scale must be finite and > 0"):
        quantize_model(model, [torch.randn(2, 1, 8, 8)], payload)
    stored["scale"] = scale
    with torch.no_grad():
        model.conv1.weight[0, 0, 0, 0] = float("inf")
    with pytest.raises(QuantizationError, match=r"layer 'conv1' weight holds inf"):
        quantize_model(model, [torch.randn(2, 1, 8, 8)], payload)


def test_every_captured_integer_fits_the_precision_its_trace_declares(captured):
    _, _, _, trace, _ = captured
    for layer in trace.layers:
        for values, bits in ((layer.activations, layer.act_prec), (layer.weights, layer.wgt_prec)):
            signed = values.min() < 0
            low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
            assert low <= values.min() and values.max() <= high
    trace.check_widths(16)  # the simulator's own check agrees
