"""Array layout and axis order (issue 11, kind 5): the layout helpers keep every conv and fc product equal to the
model's, and every exported .npy is C-ordered as DNNsim reads it."""

import numpy as np
import pytest
import torch
from torch import nn

from bitpruner.models.layers import prunable_layers
from bitpruner.sim.capture import quantize_model
from bitpruner.sim.designs import ARCHS
from bitpruner.sim.dnnsim_io import load_dnnsim, save_dnnsim
from bitpruner.sim.engine import simulate_layer
from bitpruner.sim.traces import LayerTrace, NetworkTrace, from_torch_layout, to_torch_layout

INPUT = (1, 3, 4, 8)  # N, C, H, W: non-square, so a missed x/y swap changes values, not only shapes


def integer_model(stride: int) -> nn.Sequential:
    """conv -> conv -> flatten -> fc -> fc with integer weights and biases (float64: products are exact)."""
    torch.manual_seed(stride)
    conv2_out = (INPUT[2] - 1) // stride + 1, (INPUT[3] - 1) // stride + 1
    net = nn.Sequential(
        nn.Conv2d(3, 2, 3, padding=1), nn.ReLU(),
        nn.Conv2d(2, 2, 3, padding=1, stride=stride), nn.ReLU(),
        nn.Flatten(), nn.Linear(2 * conv2_out[0] * conv2_out[1], 6), nn.ReLU(), nn.Linear(6, 5),
    ).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randint(-7, 8, p.shape).double())
    return net


def run_with_hooks(net: nn.Sequential, x: torch.Tensor) -> tuple[dict, dict]:
    """Each prunable layer's PyTorch input and output; an fc layer behind Flatten gets Flatten's 4-D input."""
    inputs, outputs, hooks = {}, {}, []
    modules = list(net)
    for i, module in enumerate(modules):
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            name = str(i)
            source = modules[i - 1] if i and isinstance(modules[i - 1], nn.Flatten) else module
            hooks.append(source.register_forward_pre_hook(
                lambda _m, inp, n=name: inputs.__setitem__(n, inp[0].detach())))
            hooks.append(module.register_forward_hook(lambda _m, _i, out, n=name: outputs.__setitem__(n, out.detach())))
    net(x)
    for h in hooks:
        h.remove()
    return inputs, outputs


def xfirst_conv(a: np.ndarray, w: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """out[n, k, ox, oy] = sum_{c, kx, ky} A[n, c, ox*s + kx, oy*s + ky] * W[k, c, kx, ky] (x-first, numpy)."""
    a = np.pad(a, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    _, _, kx_size, ky_size = w.shape
    ox = (a.shape[2] - kx_size) // stride + 1
    oy = (a.shape[3] - ky_size) // stride + 1
    out = np.zeros((a.shape[0], w.shape[0], ox, oy), np.int64)
    for kx in range(kx_size):
        for ky in range(ky_size):
            window = a[:, :, kx : kx + stride * ox : stride, ky : ky + stride * oy : stride]
            out += np.einsum("ncxy,kc->nkxy", window.astype(np.int64), w[:, :, kx, ky].astype(np.int64))
    return out


def trace_product(layer: LayerTrace) -> np.ndarray:
    """The integer product the simulator's trace stands for, in PyTorch's axis order for comparison."""
    if layer.type == "fc":
        return layer.fc_activations.astype(np.int64) @ layer.weights.T.astype(np.int64)
    return np.swapaxes(xfirst_conv(layer.activations, layer.weights, layer.stride, layer.pad), -1, -2)


@pytest.mark.parametrize("stride", [1, 2])
def test_every_layer_order_keeps_the_model_product(stride):
    """conv->conv, conv->fc (a 4-D [1, 2, 4, 8] activation, flattened) and fc->fc: A x W == the layer's output."""
    net = integer_model(stride)
    x = torch.randint(0, 5, INPUT).double()
    inputs, outputs = run_with_hooks(net, x)
    layers = prunable_layers(net)
    assert [inputs[n].dim() for n in layers] == [4, 4, 4, 2]  # the first fc layer sees the conv's 4-D output
    if stride == 1:
        assert tuple(inputs["5"].shape) == (1, 2, 4, 8)
    for name, module in layers.items():
        w, a = from_torch_layout(module.weight.detach().numpy(), inputs[name].numpy())
        kind = "conv" if isinstance(module, nn.Conv2d) else "fc"
        extra = {"stride": module.stride[0], "pad": module.padding[0]} if kind == "conv" else {}
        layer = LayerTrace(name, kind, w, a, **extra)
        bias = module.bias.detach().numpy().reshape((1, -1) + (1,) * (outputs[name].dim() - 2))
        want = outputs[name].numpy() - bias
        got = trace_product(layer)
        assert got.shape == want.shape and np.array_equal(got, want), name


def test_the_old_fc_conversion_broke_the_product_and_the_cycles():
    """The issue's case: swapping a 4-D fc input's axes before flattening pairs activations with other weights."""
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (1, 2, 4, 8)) * (rng.random((1, 2, 4, 8)) < 0.5)
    w = rng.integers(-127, 128, (10, 64)) * (rng.random((10, 64)) < 0.5)
    model_out = a.reshape(1, -1) @ w.T  # torch.flatten order (c, y, x)
    fixed = LayerTrace("fc", "fc", *from_torch_layout(w, a))
    old = LayerTrace("fc", "fc", w, np.swapaxes(a, -1, -2))  # what from_torch_layout used to return
    assert np.array_equal(trace_product(fixed), model_out)
    assert not np.array_equal(trace_product(old), model_out)
    plain = LayerTrace("fc", "fc", w, a.reshape(1, -1))
    for arch in ARCHS:
        assert simulate_layer(fixed, arch) == simulate_layer(plain, arch), arch
    assert simulate_layer(old, "Laconic") != simulate_layer(plain, "Laconic")  # 43 vs 39 here (issue: 43 vs 36)


def test_to_torch_layout_inverts_from_torch_layout():
    rng = np.random.default_rng(2)
    w, a = rng.integers(-9, 9, (4, 3, 2, 5)), rng.integers(0, 9, (2, 3, 6, 7))
    back_w, back_a = to_torch_layout(*from_torch_layout(w, a))
    assert np.array_equal(back_w, w) and np.array_equal(back_a, a)
    fc_w, fc_a = rng.integers(-9, 9, (5, 24)), rng.integers(0, 9, (2, 2, 3, 4))
    w2, a2 = to_torch_layout(*from_torch_layout(fc_w, fc_a))
    assert np.array_equal(w2, fc_w) and np.array_equal(a2, fc_a.reshape(2, -1))
    # Tensors in (with grad), C-ordered numpy arrays out; a weights-only call leaves the placeholder alone.
    tw = torch.randn(4, 3, 2, 5, requires_grad=True)
    out_w, out_a = from_torch_layout(tw, np.empty(0))
    assert out_w.flags.c_contiguous and out_w.shape == (4, 3, 5, 2) and out_a.shape == (0,)


def test_captured_traces_reproduce_the_float_model_up_to_the_scales():
    """Trace capture of the same layer orders: conv(A_int, W_int) * s_a * s_w + bias == the quantized copy's output."""
    net = integer_model(1).float()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(0.1)
    calib = [torch.randn(4, *INPUT[1:], generator=torch.Generator().manual_seed(i)) for i in range(2)]
    qm = quantize_model(net, calib, name="orders")
    x = torch.randn(*INPUT, generator=torch.Generator().manual_seed(7))
    outputs = {}
    hooks = [m.register_forward_hook(lambda _m, _i, out, n=n: outputs.__setitem__(n, out.detach().double()))
             for n, m in prunable_layers(qm.model).items()]
    trace = qm.capture(x)
    for h in hooks:
        h.remove()
    for layer in trace.layers:
        module = prunable_layers(qm.model)[layer.name]
        bias = module.bias.detach().double().numpy().reshape((1, -1) + (1,) * (outputs[layer.name].dim() - 2))
        got = trace_product(layer) * layer.act_scale * layer.wgt_scale + bias
        want = outputs[layer.name].numpy()
        assert np.allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max()), layer.name


def fortran_layer() -> LayerTrace:
    """Sparse one-bit weights whose first buffer row (channels 0-15) is all zero: bit columns tell layouts apart."""
    rng = np.random.default_rng(0)
    w = (1 << rng.integers(0, 8, (3, 40, 1, 1))) * (rng.random((3, 40, 1, 1)) < 0.3)
    w[:, :16] = 0
    a = rng.integers(0, 100, (1, 40, 3, 3))
    return LayerTrace("conv", "conv", np.asfortranarray(w), np.asfortranarray(a))


def read_row_major(path) -> np.ndarray:
    """A .npy's data as DNNsim's reader takes it: row-major, whatever the header's fortran_order says."""
    with open(path, "rb") as f:
        np.lib.format.read_magic(f)  # np.save writes format 1.0 for headers this small
        shape, _fortran, dtype = np.lib.format.read_array_header_1_0(f)
        return np.frombuffer(f.read(), dtype=dtype).reshape(shape)


def test_save_dnnsim_writes_c_order_that_a_row_major_reader_gets_right(tmp_path):
    layer = fortran_layer()
    assert layer.weights.flags.c_contiguous  # LayerTrace stores C order whatever it is given
    layer.weights = np.asfortranarray(layer.weights)  # as a caller might set it afterwards
    save_dnnsim(NetworkTrace("net", [layer]), tmp_path)
    path = tmp_path / "net_traces/net/wgt-conv.npy"
    with open(path, "rb") as f:
        np.lib.format.read_magic(f)
        header = f.read(200)
    assert b"'fortran_order': False" in header
    assert np.array_equal(read_row_major(path), layer.weights)
    back = load_dnnsim(tmp_path, "net").layers[0]
    assert simulate_layer(back, "PragmaticW") == simulate_layer(layer, "PragmaticW")


def test_a_fortran_ordered_file_read_row_major_gives_other_cycles(tmp_path):
    """Why C order matters: the file np.save writes for a Fortran array, read as DNNsim does, is another layer."""
    layer = fortran_layer()
    np.save(tmp_path / "f.npy", np.asfortranarray(layer.weights.astype(np.float32)))
    seen = read_row_major(tmp_path / "f.npy")
    assert not np.array_equal(seen, layer.weights)
    misread = LayerTrace("conv", "conv", seen, layer.activations)
    assert simulate_layer(misread, "PragmaticW") != simulate_layer(layer, "PragmaticW")
    # Our reader honours the header: the same file loads as the right layer.
    assert np.array_equal(np.load(tmp_path / "f.npy"), layer.weights)
