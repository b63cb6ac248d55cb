"""The retraining parametrization: projected forward, straight-through backward, zeros kept, export contract."""

import numpy as np
import torch
from torch import nn

from bitpruner.prune_bits.bits import essential_bits, lane_group_costs
from bitpruner.prune_bits.projected_weight import (
    attach_projections,
    latent_weight,
    projection_of,
    squash_projections,
)
from bitpruner.prune_bits.projections import group_columns
from bitpruner.quant.fixed_point import QuantConfig, quantize_weight

QUANT = QuantConfig(bits=8)


def _net(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(20, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 5))
    with torch.no_grad():
        net[0].weight[:, :3] = 0.0  # weight-pruning zeros
        net[3].weight[::2] = 0.0
    return net


def test_forward_is_the_projection_and_backward_is_straight_through():
    net = _net()
    projs = attach_projections(net, QUANT, "group_columns", lanes=16)
    conv = net[0]
    proj = projs["0"]
    proj.k.fill_(2)
    proj.group_selected.fill_(True)
    w = latent_weight(conv).detach().clone()
    q = quantize_weight(w, QUANT)
    expected = group_columns(w, 2, 16, scale=q.scale).to(torch.float32) * q.scale
    assert torch.equal(conv.weight, expected)
    # Every lane group uses at most 2 bit columns.
    ints = torch.round(conv.weight / q.scale).to(torch.int32)
    assert lane_group_costs(ints, lanes=16)["columns"].max() <= 2

    x = torch.randn(2, 20, 6, 6)
    conv(x).sum().backward()
    grad = latent_weight(conv).grad
    mask = (w != 0).float()
    # Gradient of sum(conv(x)) w.r.t. the effective weight, masked: the STE passes it unchanged.
    ref_w = conv.weight.detach().clone().requires_grad_(True)
    nn.functional.conv2d(x, ref_w, conv.bias).sum().backward()
    assert torch.allclose(grad, ref_w.grad * mask)
    assert torch.all(grad[:, :3] == 0)


def test_pruned_zeros_stay_zero_under_momentum_and_weight_decay():
    net = _net()
    attach_projections(net, QUANT, "per_weight", lanes=16)
    for proj in (projection_of(net[0]), projection_of(net[3])):
        proj.k.fill_(2)
        proj.group_selected.fill_(True)
    opt = torch.optim.SGD(net.parameters(), lr=0.5, momentum=0.9, weight_decay=0.1)
    for _ in range(5):
        opt.zero_grad()
        net(torch.randn(4, 20, 6, 6)).pow(2).mean().backward()
        opt.step()
    assert torch.all(net[0].weight[:, :3] == 0) and torch.all(net[3].weight[::2] == 0)
    ints = squash_projections(net, {"0": 2, "3": 1})
    assert torch.all(net[0].weight[:, :3] == 0) and torch.all(net[3].weight[::2] == 0)
    assert essential_bits(ints["0"]["q"].numpy()).max() <= 2
    assert essential_bits(ints["3"]["q"].numpy()).max() <= 1


def test_squash_contract_integers_from_stored_floats():
    net = _net(3)
    attach_projections(net, QuantConfig(bits=8, scale="channel"), "group_columns", lanes=8)
    ints = squash_projections(net, {"0": 1, "3": 3})
    assert not any("parametrizations" in k for k in net.state_dict())
    for name, layer in (("0", net[0]), ("3", net[3])):
        entry = ints[name]
        assert entry["q"].dtype == torch.int8 and entry["bits"] == 8 and entry["scale"].shape == (layer.weight.shape[0],)
        s = entry["scale"].reshape(-1, *([1] * (layer.weight.dim() - 1)))
        assert torch.equal(torch.round(layer.weight / s).to(torch.int8), entry["q"])
    assert lane_group_costs(ints["0"]["q"], lanes=8)["columns"].max() <= 1


def test_agp_selection_grows_lowest_error_first():
    net = _net(1)
    proj = attach_projections(net, QUANT, "group_columns", lanes=4)["3"]
    w = latent_weight(net[3])
    n = proj.group_selected.numel()
    proj.select_groups(w, 1, 0.25)
    first = proj.group_selected.clone()
    assert int(first.sum()) == round(0.25 * n)
    proj.select_groups(w, 1, 0.5)
    assert int(proj.group_selected.sum()) == round(0.5 * n) and torch.all(proj.group_selected[first])
    # The selected groups are the lowest-error ones (all-zero rows cost nothing and come first).
    from bitpruner.prune_bits.projections import group_error

    scale = proj.scale(w)
    err = group_error(w.detach() * proj.mask, group_columns(w.detach() * proj.mask, 1, 4, scale=scale), 4, scale=scale)
    assert err[first.numpy()].max() <= np.sort(err)[int(first.sum()) - 1] + 1e-12


def test_quantized_accuracy_is_the_accuracy_of_integer_weights():
    from torch.utils.data import DataLoader, TensorDataset

    from bitpruner.quant.evaluate import quantized_accuracy, quantized_model
    from bitpruner.training.evaluate import evaluate

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    before = net[1].weight.detach().clone()
    loader = DataLoader(TensorDataset(torch.randn(40, 1, 4, 4), torch.randint(0, 3, (40,))), batch_size=16)
    coarse = quantized_model(net, 2)  # 2 bits: weights in {-s, 0, s}
    q = quantize_weight(before, QuantConfig(bits=2))
    assert torch.equal(coarse[1].weight, q.q.float() * q.scale)
    assert quantized_accuracy(net, loader, 2) == evaluate(coarse, loader)
    assert torch.equal(net[1].weight, before)  # the caller's model keeps its float weights
