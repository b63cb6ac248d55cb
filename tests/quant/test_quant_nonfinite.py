"""Non-finite and unrepresentable numbers at the quantizer: refused with one line naming the layer, never an
integer outside the declared range (issue 11, kind 4)."""

import math

import pytest
import torch
from torch import nn

from bitpruner.errors import ConfigError, TraceError
from bitpruner.quant import (
    ActivationQuant,
    QuantizationError,
    QuantizedWeight,
    calibrate_activations,
    dequantize,
    qmax,
    quantize_activation,
    quantize_model_weights,
    quantize_weight,
    weight_scale,
)
from bitpruner.quant.fixed_point import MIN_SCALE


def small_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 5))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("scale", ["layer", "channel"])
def test_a_non_finite_weight_is_refused_naming_layer_value_and_index(bad, scale):
    # The issue: one NaN weight gave scale 1.0, zeros elsewhere and -2147483648 for the NaN; inf an infinite scale.
    w = torch.randn(4, 3, 3, 3)
    w[2, 1, 0, 2] = bad
    with pytest.raises(QuantizationError) as info:
        quantize_weight(w, {"bits": 8, "scale": scale}, name="features.3")
    message = str(info.value)
    assert "'features.3'" in message and str(bad) in message and "[2, 1, 0, 2]" in message
    assert "1 of 108" in message and len(message.splitlines()) == 1
    # Callers that catch either family see it: stages catch ConfigError, trace capture TraceError.
    assert isinstance(info.value, ConfigError) and isinstance(info.value, TraceError)


def test_model_export_names_the_first_bad_layer_before_returning_anything():
    net = small_net()
    with torch.no_grad():
        net[3].weight[4, 7] = math.nan
    with pytest.raises(QuantizationError, match=r"layer '3' weight holds nan at \[4, 7\]"):
        quantize_model_weights(net, bits=8)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_calibration_activations_are_refused_naming_the_first_layer_that_sees_them(bad):
    net = small_net()
    good = torch.randn(4, 2, 6, 6)
    broken = torch.randn(4, 2, 6, 6)
    broken[1, 0, 2, 3] = bad
    with pytest.raises(QuantizationError) as info:
        calibrate_activations(net, [good, (broken, torch.zeros(4))], bits=8)
    message = str(info.value)
    assert "batch 2" in message and "layer '0' input" in message and str(bad) in message
    assert "[1, 0, 2, 3]" in message
    assert not net[0]._forward_pre_hooks  # the calibration hooks are gone after the error


def test_quantize_activation_refuses_nan_instead_of_saturating_it():
    aq = ActivationQuant(scale=0.1, signed=False, bits=8)
    x = torch.tensor([[0.5, math.nan, 3.0]])
    with pytest.raises(QuantizationError, match=r"layer 'fc1' input holds nan at \[0, 1\]"):
        quantize_activation(x, aq, "fc1")
    q = quantize_activation(torch.tensor([[-5.0, 0.04, 1e30]]), aq)
    assert q.tolist() == [[0, 0, 255]]  # finite values beyond the range saturate as before


def test_all_zero_layers_and_channels_get_scale_one_and_zero_integers():
    qw = quantize_weight(torch.zeros(3, 4), {"bits": 8})
    assert float(qw.scale) == 1.0 and torch.all(qw.q == 0)
    w = torch.randn(3, 4)
    w[1] = 0.0
    qw = quantize_weight(w, {"bits": 8, "scale": "channel"})
    assert float(qw.scale[1]) == 1.0 and torch.all(qw.q[1] == 0)
    aq = calibrate_activations(nn.Sequential(nn.Linear(3, 2)), [torch.zeros(2, 3)], bits=8)
    assert aq["0"].scale == 1.0


@pytest.mark.parametrize("amax", [1e-45, 1e-40, 1e-37])
@pytest.mark.parametrize("power_of_two", [False, True])
def test_a_scale_that_would_underflow_to_zero_is_clamped_and_stays_finite(amax, power_of_two):
    # amax / 127 underflows float32 (a zero scale turned w / scale into inf and NaN).
    w = torch.tensor([amax, -amax / 2, 0.0], dtype=torch.float32)
    qw = quantize_weight(w, {"bits": 8, "power_of_two": power_of_two})
    assert torch.isfinite(qw.scale) and float(qw.scale) >= MIN_SCALE / 2
    assert int(qw.q.abs().max()) <= 127
    # Brute force: the integers are round(w / scale) clamped, in float64.
    want = torch.clamp(torch.round(w.double() / float(qw.scale)), -127, 127)
    assert torch.equal(qw.q.double(), want)


def test_extreme_finite_weights_always_land_inside_the_declared_range():
    rng = torch.Generator().manual_seed(5)
    f32 = torch.finfo(torch.float32)
    for trial in range(40):
        bits = 2 + trial % 15
        w = torch.randn(6, 5, generator=rng) * 10.0 ** float(torch.randint(-40, 38, (1,), generator=rng))
        w[0, 0] = f32.max if trial % 3 == 0 else w[0, 0]
        w[1, 1] = f32.tiny if trial % 4 == 0 else w[1, 1]
        for scale in ("layer", "channel"):
            try:
                qw = quantize_weight(w, {"bits": bits, "scale": scale})
            except QuantizationError as exc:
                # Only where q * scale really passes float32's maximum (checked here in float64).
                assert "overflow" in str(exc)
                cfg_scale = weight_scale(w, bits, per_channel=scale == "channel").double()
                q = torch.clamp(torch.round(w.double() / cfg_scale.reshape(-1, 1) if scale == "channel"
                                            else w.double() / cfg_scale), -qmax(bits), qmax(bits))
                assert float((q * (cfg_scale.reshape(-1, 1) if scale == "channel" else cfg_scale)).abs().max()) > f32.max
                continue
            assert qw.q.dtype == torch.int32 and int(qw.q.abs().max()) <= qmax(bits)
            assert torch.isfinite(qw.scale).all() and (qw.scale > 0).all()
            assert torch.isfinite(dequantize(qw)).all()


def test_quantized_weight_refuses_integers_outside_its_range_and_bad_scales():
    with pytest.raises(QuantizationError, match=r"integer 128 outside the declared range \[-127, 127\]"):
        QuantizedWeight(q=torch.tensor([1, 128], dtype=torch.int32), scale=torch.tensor(0.1), bits=8)
    with pytest.raises(QuantizationError, match=r"-2147483648 outside"):
        QuantizedWeight(q=torch.tensor([-(2**31)], dtype=torch.int32), scale=torch.tensor(0.1), bits=8)
    with pytest.raises(QuantizationError, match="integer tensor"):
        QuantizedWeight(q=torch.tensor([1.0]), scale=torch.tensor(0.1), bits=8)
    for scale in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(QuantizationError, match="finite and > 0"):
            QuantizedWeight(q=torch.tensor([1], dtype=torch.int32), scale=torch.tensor(scale), bits=8)
    QuantizedWeight(q=torch.tensor([-127, 127], dtype=torch.int32), scale=torch.tensor(0.1), bits=8)  # the ends are fine


@pytest.mark.parametrize("scale", [0.0, -0.5, math.nan, math.inf, "x"])
def test_activation_quantizer_refuses_a_scale_that_is_not_a_finite_positive_number(scale):
    with pytest.raises(QuantizationError, match="activation scale"):
        ActivationQuant(scale=scale, signed=False, bits=8)
