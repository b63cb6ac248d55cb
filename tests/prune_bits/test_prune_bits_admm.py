"""ADMM (bitpruning.md): Z = Proj(W + U), U += W - Z every `update_every` steps, rho x growth per update, and
the penalty gradient rho (W - Z + U), each against values computed here with the projection called directly."""

import pytest
import torch
from torch import nn

from bitpruner.prune_bits.admm import AdmmState
from bitpruner.prune_bits.config import AdmmConfig
from bitpruner.prune_bits.projected_weight import BitProjectedWeight, attach_projections, latent_weight
from bitpruner.prune_bits.projections import group_budget, group_columns, per_weight
from bitpruner.quant.fixed_point import QuantConfig, qmax
from helpers.naive import admm_penalty, admm_update

QUANT = QuantConfig(bits=8)
LANES = 4
TARGET_K = 2
RHO, GROWTH, EVERY = 0.5, 1.5, 2
CFG = AdmmConfig(enabled=True, rho=RHO, rho_growth=GROWTH, update_every=EVERY, epochs=1)
STEP_NOISE = 0.05  # how far "training" moves the latent weights between ADMM updates
MODES = ["per_weight", "group_columns", "group_budget"]


def tiny_linear(seed: int = 0) -> nn.Linear:
    """Linear(8 -> 3) with a third of its weights zero (a weight-pruning mask for the projection to keep)."""
    torch.manual_seed(seed)
    layer = nn.Linear(8, 3)
    with torch.no_grad():
        layer.weight[torch.rand_like(layer.weight) < 1 / 3] = 0.0
    return layer


def project_directly(mode: str, v: torch.Tensor) -> torch.Tensor:
    """scale * Proj_k(v) with the per-layer scale max|v| / qmax worked out here, the projection called directly."""
    scale = v.abs().max() / qmax(QUANT.bits)
    if mode == "per_weight":
        q = per_weight(v, TARGET_K, scale=scale)
    elif mode == "group_columns":
        q = group_columns(v, TARGET_K, LANES, scale=scale)
    else:  # the same mean budget as the other modes: k bits per weight of a lane group
        q = group_budget(v, TARGET_K * LANES, LANES, scale=scale)
    return q.to(torch.float32) * scale


def move_weights(w: torch.Tensor, seed: int) -> None:
    """Perturb every latent weight, masked ones too (as momentum or weight decay would)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w.add_(torch.randn(w.shape, generator=g) * STEP_NOISE)


@pytest.mark.parametrize("mode", MODES)
def test_updates_follow_z_proj_w_plus_u_and_u_plus_w_minus_z(mode):
    layer = tiny_linear()
    mask = (layer.weight != 0).float()
    w = nn.Parameter(layer.weight.detach().clone())
    layers = {"fc": (BitProjectedWeight(w, QUANT, mode, LANES), w)}
    state = AdmmState(CFG, {"fc": TARGET_K})

    state.start(layers)
    assert torch.equal(state.z["fc"], project_directly(mode, w.detach() * mask))
    assert torch.equal(state.u["fc"], torch.zeros_like(w))
    assert state.rho == RHO

    for update in (1, 2, 3):
        z_before, u_before = state.z["fc"].clone(), state.u["fc"].clone()
        for step in range(EVERY):
            move_weights(w, seed=10 * update + step)
            updated = state.step(layers)
            # Z, U and rho change on every EVERY-th step only.
            assert updated == (step == EVERY - 1)
            if not updated:
                assert torch.equal(state.z["fc"], z_before) and torch.equal(state.u["fc"], u_before)
                assert state.rho == pytest.approx(RHO * GROWTH ** (update - 1))
        z, u = admm_update(w.detach() * mask, u_before, lambda v: project_directly(mode, v))
        assert torch.allclose(state.z["fc"], z, rtol=0, atol=1e-7), f"update {update}: Z"
        assert torch.allclose(state.u["fc"], u, rtol=0, atol=1e-6), f"update {update}: U"
        assert state.rho == pytest.approx(RHO * GROWTH**update)
        # Z is feasible (every weight at most k bits for per_weight) and keeps the mask's zeros.
        assert torch.all(state.z["fc"][mask == 0] == 0) and torch.all(state.u["fc"][mask == 0] == 0)
    assert bool(state.u["fc"].abs().sum() > 0)  # the dual variable did move


def test_penalty_gradient_is_the_gradient_of_the_augmented_term():
    net = nn.Sequential(tiny_linear(1))
    mask = (net[0].weight != 0).float()
    proj = attach_projections(net, QUANT, "per_weight", LANES)["0"]
    proj.k.fill_(TARGET_K)
    proj.group_selected.fill_(True)
    w = latent_weight(net[0])
    layers = {"0": (proj, w)}
    state = AdmmState(CFG, {"0": TARGET_K})
    state.start(layers)
    for step in range(2 * EVERY):  # two updates: U != 0 and rho has grown
        move_weights(w, seed=step)
        state.step(layers)
    z, u, rho = state.z["0"], state.u["0"], state.rho
    assert rho == pytest.approx(RHO * GROWTH**2) and bool(u.abs().sum() > 0)

    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(6, 8, generator=g), torch.randint(0, 3, (6,), generator=g)
    # Reference: autograd of loss + rho/2 ||W*mask - Z + U||^2 with respect to the latent weight.
    objective = nn.functional.cross_entropy(net(x), y) + admm_penalty(w * mask, z, u, rho)
    (want,) = torch.autograd.grad(objective, w)

    # The callback's way: backward of the loss alone, then add_penalty_grad before the optimizer step.
    net.zero_grad()
    nn.functional.cross_entropy(net(x), y).backward()
    task_grad = w.grad.clone()
    state.add_penalty_grad(layers)
    assert torch.allclose(w.grad, want, rtol=1e-6, atol=1e-7)
    # By hand: the added term is rho * (W - Z + U), zero where the mask is.
    assert torch.allclose(w.grad - task_grad, rho * (w.detach() * mask - z + u) * mask, atol=1e-7)
    assert torch.all(w.grad[mask == 0] == 0)
    assert state.penalty(layers) == pytest.approx(float(admm_penalty(w.detach() * mask, z, u, rho)), rel=1e-6)


def test_layers_without_gradient_are_left_alone():
    w = nn.Parameter(tiny_linear().weight.detach().clone())
    layers = {"fc": (BitProjectedWeight(w, QUANT, "per_weight", LANES), w)}
    state = AdmmState(CFG, {"fc": TARGET_K})
    state.start(layers)
    state.add_penalty_grad(layers)
    assert w.grad is None
