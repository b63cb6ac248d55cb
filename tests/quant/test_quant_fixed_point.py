"""Weight fixed point: ranges, scales, round trips, STE gradient, config errors."""

import pytest
import torch

from bitpruner.errors import ConfigError
from bitpruner.quant import (
    QuantConfig,
    dequantize,
    fake_quant,
    qmax,
    quantize_weight,
    round_ste,
    weight_scale,
)
from bitpruner.quant.fixed_point import is_power_of_two


def test_qmax_is_narrow_range():
    assert [qmax(b) for b in (2, 4, 8, 16)] == [1, 7, 127, 32767]


@pytest.mark.parametrize("bits", [4, 8])
def test_round_trip_within_half_a_step(bits):
    w = torch.randn(16, 8, 3, 3)
    qw = quantize_weight(w, {"bits": bits})
    assert qw.q.dtype == torch.int32
    assert int(qw.q.abs().max()) == qmax(bits)  # the largest weight lands exactly on qmax
    assert torch.all((dequantize(qw) - w).abs() <= qw.scale / 2 + 1e-6)
    # integers survive a second quantization unchanged
    assert torch.equal(quantize_weight(dequantize(qw), {"bits": bits}).q, qw.q)


def test_per_channel_scales_map_each_channel_max_to_qmax():
    w = torch.randn(5, 4, 3, 3) * torch.tensor([0.01, 0.1, 1.0, 10.0, 0.5]).view(5, 1, 1, 1)
    w[3] = 0.0  # an all-zero channel keeps a finite scale
    qw = quantize_weight(w, QuantConfig(bits=8, scale="channel"))
    assert qw.scale.shape == (5,)
    per_channel_max = qw.q.abs().reshape(5, -1).amax(dim=1)
    assert per_channel_max.tolist() == [127, 127, 127, 0, 127]
    assert torch.allclose(qw.scale[[0, 1, 2, 4]], w.abs().reshape(5, -1).amax(dim=1)[[0, 1, 2, 4]] / 127)
    assert torch.all(qw.q[3] == 0) and torch.isfinite(qw.scale).all()


def test_power_of_two_scales_are_powers_of_two_and_do_not_clip():
    w = torch.randn(6, 10) * 0.37
    for per_channel in (False, True):
        scale = weight_scale(w, 8, per_channel=per_channel, power_of_two=True)
        assert is_power_of_two(scale)
        qw = quantize_weight(w, {"bits": 8, "per_channel": per_channel, "power_of_two": True})
        assert torch.all((dequantize(qw) - w).abs() <= qw.scale.reshape(-1, 1) / 2 + 1e-7)
    assert not is_power_of_two(torch.tensor([0.3]))


def test_ste_gradient_is_identity():
    x = torch.linspace(-3, 3, 50, requires_grad=True)
    y = round_ste(x * 2.3)
    g = torch.randn(50)
    y.backward(g)
    assert torch.allclose(x.grad, g * 2.3)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    out = fake_quant(w, bits=4, per_channel=True)
    out.backward(torch.ones_like(out))
    assert torch.equal(w.grad, torch.ones_like(w))
    expected = dequantize(quantize_weight(w.detach(), {"bits": 4, "scale": "channel"}))
    assert torch.allclose(out.detach(), expected)


@pytest.mark.parametrize("bad", [1, 17, 0, 8.0, "8", True])
def test_bad_bits_raise(bad):
    with pytest.raises(ConfigError, match="bits"):
        QuantConfig(bits=bad)


def test_bad_scale_mode_and_keys_raise():
    with pytest.raises(ConfigError, match="'tensor'"):
        QuantConfig(scale="tensor")
    with pytest.raises(ConfigError, match="unknown"):
        QuantConfig.from_any({"bitz": 8})
