import pytest
import torch
from torch import nn

from bitpruner.models.layers import prunable_layers
from bitpruner.prune_weights.config import PruningConfig
from bitpruner.prune_weights.masks import (
    attach_masks,
    attach_masks_for_state_dict,
    effective_weight,
    squash,
    squashed_state_dict,
)
from bitpruner.prune_weights.pruner import MagnitudePruner, overall_sparsity
from bitpruner.prune_weights.schedule import target_sparsity
from helpers.tiny import IMAGE, tiny_data, tiny_net


def zeros(model):
    return {n: int((effective_weight(m) == 0).sum()) for n, m in prunable_layers(model).items()}


def sizes(model):
    return {n: effective_weight(m).numel() for n, m in prunable_layers(model).items()}


@pytest.mark.parametrize("epoch", [1, 2, 3, 4])
def test_layer_scope_zeroes_exactly_round_s_n_per_layer(epoch):
    model = tiny_net()
    cfg = PruningConfig(scope="layer", final_sparsity=0.87, start_epoch=0, end_epoch=4)
    MagnitudePruner(model, cfg).step(epoch)
    s = target_sparsity(cfg, epoch)
    assert zeros(model) == {n: round(s * k) for n, k in sizes(model).items()}


@pytest.mark.parametrize("epoch", [1, 2, 4])
def test_global_scope_zeroes_exactly_round_s_n_over_the_pool(epoch):
    model = tiny_net()
    cfg = PruningConfig(scope="global", final_sparsity=0.9, start_epoch=0, end_epoch=4,
                        overrides={"0": 0.5}, exclude=["7"])
    MagnitudePruner(model, cfg).step(epoch)
    z, k = zeros(model), sizes(model)
    s_pool, s_first = target_sparsity(cfg, epoch), target_sparsity(cfg, epoch, 0.5)
    assert z["2"] + z["5"] == round(s_pool * (k["2"] + k["5"]))
    assert z["0"] == round(s_first * k["0"])
    assert z["7"] == 0
    # one threshold: every surviving pooled weight is at least as large as every pruned one
    pooled = torch.cat([effective_weight(prunable_layers(model)[n]).flatten() for n in ("2", "5")])
    orig = torch.cat([prunable_layers(model)[n].weight_orig.detach().flatten() for n in ("2", "5")])
    assert orig[pooled == 0].abs().max() <= orig[pooled != 0].abs().min()


def test_ties_are_broken_deterministically_and_counts_stay_exact():
    layer = nn.Linear(10, 10)
    with torch.no_grad():
        layer.weight.copy_(torch.arange(100).reshape(10, 10) % 3 - 1.0)  # only -1, 0, 1: many ties
    masks = []
    for _ in range(2):
        model = nn.Sequential(nn.Linear(10, 10))
        model[0].load_state_dict(layer.state_dict())
        MagnitudePruner(model, PruningConfig(schedule="oneshot", final_sparsity=0.55, end_epoch=0)).step(0)
        masks.append(model[0].weight_mask.clone())
    assert int((masks[0] == 0).sum()) == 55
    assert torch.equal(masks[0], masks[1])
    # the 33 exact zeros go first, then the 22 lowest-index ones among the |w| = 1 ties
    flat = (torch.arange(100) % 3 - 1.0).abs()
    assert int((flat == 0).sum()) == 33
    expected = torch.ones(100)
    expected[flat == 0] = 0
    expected[torch.nonzero(flat == 1).flatten()[:22]] = 0
    assert torch.equal(masks[0].flatten(), expected)


def test_masks_only_grow_along_the_schedule():
    model = tiny_net()
    pruner = MagnitudePruner(model, PruningConfig(final_sparsity=0.9, start_epoch=0, end_epoch=5))
    previous = None
    for epoch in range(6):
        pruner.step(epoch)
        with torch.no_grad():  # perturb the latent weights as training would
            for m in prunable_layers(model).values():
                m.weight_orig.add_(torch.randn_like(m.weight_orig) * 0.05)
        current = {n: m.weight_mask.clone() for n, m in prunable_layers(model).items()}
        if previous:
            for n in current:
                assert torch.all(current[n] <= previous[n])
        previous = current


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_masked_weights_stay_exactly_zero_while_training(optimizer):
    model = tiny_net()
    MagnitudePruner(model, PruningConfig(final_sparsity=0.8, schedule="oneshot", end_epoch=0)).step(0)
    before = zeros(model)
    masks = {n: m.weight_mask.clone() for n, m in prunable_layers(model).items()}
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.05)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.5)
    x, y = tiny_data().tensors
    for _ in range(10):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    for n, m in prunable_layers(model).items():
        assert torch.all(effective_weight(m)[masks[n] == 0] == 0)
        assert torch.all(m.weight.detach()[masks[n] == 0] == 0)  # what forward actually used
    assert zeros(model) == before


def test_squashed_state_dict_is_plain_and_reproduces_outputs():
    model = tiny_net()
    MagnitudePruner(model, PruningConfig(final_sparsity=0.75, start_epoch=0, end_epoch=2)).step(1)
    model.eval()
    x = torch.randn(5, 1, IMAGE, IMAGE)
    expected = model(x)
    state = squashed_state_dict(model)
    assert not any(k.endswith(("_mask", "_orig")) for k in state)
    fresh = tiny_net(seed=7)
    fresh.load_state_dict(state)  # strict, no pruning code involved
    fresh.eval()
    assert torch.equal(fresh(x), expected)
    # squash in place gives the same plain tensors, with +0.0 (not -0.0) in the pruned places
    sparsity = overall_sparsity(model)
    squash(model)
    assert set(model.state_dict()) == set(state)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key])
    w = model[2].weight.detach()
    assert not torch.any(torch.signbit(w[w == 0]))
    assert overall_sparsity(model) == sparsity
    assert torch.equal(model(x), expected)


def test_mid_schedule_state_dict_reloads_into_a_fresh_model():
    model = tiny_net()
    MagnitudePruner(model, PruningConfig(final_sparsity=0.9, start_epoch=0, end_epoch=4)).step(2)
    state = {"model." + k: v for k, v in model.state_dict().items()}  # as a LightningModule saves it
    fresh = tiny_net(seed=3)
    with pytest.raises(RuntimeError):
        fresh.load_state_dict({k[len("model."):]: v for k, v in state.items()})
    assert attach_masks_for_state_dict(fresh, state, prefix="model.") == ["0", "2", "5", "7"]
    fresh.load_state_dict({k[len("model."):]: v for k, v in state.items()})
    x = torch.randn(3, 1, IMAGE, IMAGE)
    assert torch.equal(fresh(x), model(x))
    assert zeros(fresh) == zeros(model)


def test_attach_masks_is_idempotent_and_names_must_exist():
    model = tiny_net()
    attach_masks(model, ["0"])
    model[0].weight_mask[0, 0, 0, 0] = 0
    attach_masks(model)  # must not reset layer 0's mask
    assert model[0].weight_mask[0, 0, 0, 0] == 0
    with pytest.raises(ValueError, match="no prunable layer named 9"):
        attach_masks(model, ["9"])
