"""Model-level fixed point: export, fake-quant on/off (with other parametrizations), activation calibration."""

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from bitpruner.errors import ConfigError, DataError
from bitpruner.quant import (
    calibrate_activations,
    dequantize,
    fake_quant_model,
    quantize_activation,
    quantize_model_weights,
    remove_fake_quant,
)


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))


class Mask(nn.Module):
    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * self.mask


def test_export_names_shapes_and_values():
    net = small_net()
    qws = quantize_model_weights(net, bits=8, per_channel=True)
    assert list(qws) == ["0", "3"]
    assert qws["0"].q.shape == (4, 3, 3, 3) and qws["0"].scale.shape == (4,)
    assert torch.allclose(dequantize(qws["3"]), net[3].weight, atol=float(qws["3"].scale.max()) / 2 + 1e-7)


def test_fake_quant_model_forward_backward_and_removal():
    net = small_net()
    x = torch.randn(2, 3, 8, 8)
    latent = net[0].weight.detach().clone()
    fake_quant_model(net, {"bits": 4})
    assert torch.allclose(net[0].weight, dequantize(quantize_model_weights(net, bits=4)["0"]))
    net(x).sum().backward()
    assert net[0].parametrizations.weight.original.grad is not None
    with pytest.raises(ConfigError, match="already"):
        fake_quant_model(net, {"bits": 4})
    remove_fake_quant(net)
    assert not parametrize.is_parametrized(net[0])
    assert torch.equal(net[0].weight, latent)  # latent float weights come back


def test_remove_keeps_other_parametrizations_and_bake():
    net = small_net()
    mask = (torch.rand_like(net[0].weight) > 0.5).float()
    parametrize.register_parametrization(net[0], "weight", Mask(mask))
    fake_quant_model(net, {"bits": 8})
    assert torch.all(net[0].weight[mask == 0] == 0)
    remove_fake_quant(net)
    assert len(net[0].parametrizations.weight) == 1 and isinstance(net[0].parametrizations.weight[0], Mask)
    fake_quant_model(net, {"bits": 3})
    with pytest.raises(ConfigError, match="bake"):
        remove_fake_quant(net, bake=True)
    net2 = small_net()
    fake_quant_model(net2, {"bits": 3})
    baked = net2[3].weight.detach().clone()
    remove_fake_quant(net2, bake=True)
    assert torch.equal(net2[3].weight, baked) and len(torch.unique(baked)) <= 7


def test_activation_calibration_signedness_and_fake_quant_hooks():
    net = small_net()
    batches = [(torch.randn(4, 3, 8, 8), torch.zeros(4)) for _ in range(3)]
    aq = calibrate_activations(net, batches, bits=8)
    assert aq["0"].signed and not aq["3"].signed  # raw input is signed, the Linear sits after a ReLU
    x = batches[0][0]
    assert aq["0"].scale == pytest.approx(max(float(b[0].abs().max()) for b in batches) / 127)
    q = quantize_activation(x, aq["0"])
    assert int(q.abs().max()) <= 127 and q.dtype == torch.int32
    plain = net(x)
    fake_quant_model(net, {"bits": 8}, act_quant=aq)
    quantized = net(x)
    assert not torch.equal(plain, quantized) and torch.allclose(plain, quantized, atol=0.05)
    remove_fake_quant(net)
    assert torch.equal(net(x), plain)
    with pytest.raises(DataError, match="no batches"):
        calibrate_activations(net, [], bits=8)
    with pytest.raises(ConfigError, match="activation bits"):
        calibrate_activations(net, batches, bits=20)
