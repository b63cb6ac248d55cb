"""Mode `published` (BitPruner as published, LLSQ models/modules/bit_pruning.py): the pow2 scale, the code book
against brute force, the revert rule, a stage run whose exported integers obey the cap, exact resume, bad options."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bitpruner.errors import ConfigError
from bitpruner.models.checkpoint import load_model_checkpoint
from bitpruner.models.layers import prunable_layers
from bitpruner.prune_bits import stage as bits_stage
from bitpruner.prune_bits.bits import bit_sparsity, essential_bits
from bitpruner.prune_bits.callback import BitPruningCallback
from bitpruner.prune_bits.config import BitPruneConfig, PublishedConfig
from bitpruner.prune_bits.projected_weight import attach_projections, latent_weight
from bitpruner.prune_bits.published import (
    codebook,
    layer_bit_sparsity,
    popcount,
    pow2_quantize,
    pow2_scale,
    project_codebook,
    published_int,
    radix_position,
    revert_update,
)
from bitpruner.quant.fixed_point import QuantConfig, is_power_of_two
from bitpruner.sim.capture import integer_weights
from foundation.test_reproducibility import assert_same, crash_once_at, snapshot
from helpers.models import digits_lenet, save_digits_lenet

# Two batches an epoch on the 8x8 digits: the mechanics, not the accuracy.
FAST = ["data=digits", "data.batch_size=128", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1",
        "trainer.max_epochs=3", "logger=none", "baseline_ckpt=null", "prune_bits=published"]


# ---------------------------------------------------------------- brute-force twins


def brute_popcount(v: int) -> int:
    return bin(abs(v)).count("1")


def brute_codebook_value(v: int, max_bits: int = 2, top: int = 127) -> int:
    """Nearest magnitude in 0..top with <= max_bits set bits by exhaustive search (ties: the larger), sign kept;
    a magnitude already within the cap (128 of -128) is kept."""
    mag = abs(v)
    if brute_popcount(mag) <= max_bits:
        out = mag
    else:
        codes = [m for m in range(top + 1) if brute_popcount(m) <= max_bits]
        out = min(codes, key=lambda c: (abs(mag - c), -c))
    return -out if v < 0 else out


def brute_radix(amax: float, bits: int = 8) -> int:
    return bits - math.ceil(math.log2(amax) + 1 - 1e-5)


# ---------------------------------------------------------------- kernels


@pytest.mark.parametrize("max_bits", [1, 2, 3])
def test_codebook_equals_brute_force_on_all_256_values(max_bits):
    values = torch.arange(-128, 128)
    got = project_codebook(values, max_bits).tolist()
    assert got == [brute_codebook_value(v, max_bits) for v in range(-128, 128)]
    assert list(codebook(max_bits)) == [m for m in range(128) if brute_popcount(m) <= max_bits]


def test_codebook_cases_named_by_the_issue():
    assert codebook(2)[-1] == 96 and len(codebook(2)) == 29  # LLSQ's bit_code2
    assert codebook(1) == (0, 1, 2, 4, 8, 16, 32, 64)  # LLSQ's bit_code1
    q = torch.tensor([7, -7, 88, 112, 127, -127, -128, 11, 13])
    # 7 is the midpoint of 6 and 8: the upper code; 88..127 -> 96 (LLSQ leaves them: the quirk we fix)
    assert project_codebook(q).tolist() == [8, -8, 96, 96, 96, -96, -128, 12, 12]


def test_popcount_and_sparsity_match_the_numpy_accounting():
    q = torch.randint(-127, 128, (5, 7), generator=torch.Generator().manual_seed(1))
    assert popcount(q).tolist() == [[brute_popcount(v) for v in row] for row in q.tolist()]
    assert layer_bit_sparsity(q) == pytest.approx(bit_sparsity(q.numpy()))
    with pytest.raises(ConfigError, match="exceeds 128"):
        popcount(torch.tensor([129]))


@pytest.mark.parametrize("seed", range(6))
def test_random_layers_have_at_most_two_bits_on_a_pow2_grid(seed):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(16, 8, 3, 3, generator=gen) * 10.0 ** (seed - 3)
    w[torch.rand(w.shape, generator=gen) < 0.3] = 0.0
    radix = radix_position(w)
    amax = float(w.abs().max())
    assert radix == brute_radix(amax)
    assert 64 < amax * 2.0 ** radix <= 128 * 2 ** 1e-5  # the max lands in the top magnitude octave
    q = published_int(w, radix)
    assert int(popcount(q).max()) <= 2 and int(q.abs().max()) <= 127
    assert torch.all(q[w == 0] == 0)
    expected = [max(-127, min(127, round(v * 2.0 ** radix))) for v in w.flatten().tolist()]  # half to even
    assert pow2_quantize(w, radix).flatten().tolist() == expected
    scale = pow2_scale(radix)
    assert scale.dim() == 0 and scale.dtype == torch.float32 and is_power_of_two(scale)
    assert float(scale) == 2.0 ** -radix


def test_radix_of_exact_powers_of_two_and_zero_layers():
    assert radix_position(torch.tensor([0.5, -0.1])) == 8  # log2 = -1 exactly: il = 0 (the 1e-5 guard)
    assert radix_position(torch.tensor([0.51])) == 7
    assert radix_position(torch.zeros(3)) == 0
    with pytest.raises(ConfigError, match="finite"):
        radix_position(torch.tensor([float("nan"), 1.0]))


def test_revert_rule_below_and_at_target():
    old_int = torch.tensor([3, 4, 0, -8, 5])
    new_int = torch.tensor([7, 5, 0, -9, 4])   # bits 2->3 raised, 1->2 raised, same, 1->2 raised, 2->1
    old_f = torch.tensor([0.1, 0.2, 0.0, -0.3, 0.4])
    new_f = torch.tensor([0.11, 0.21, 0.0, -0.31, 0.39])
    w, q = revert_update(old_int, new_int, old_f, new_f, sparsity=0.5, target=0.6)
    assert q.tolist() == [3, 4, 0, -8, 4]
    assert torch.equal(w, torch.tensor([0.1, 0.2, 0.0, -0.3, 0.39]))
    for sparsity in (0.6, 0.9):  # at or above the target: every update accepted
        w, q = revert_update(old_int, new_int, old_f, new_f, sparsity=sparsity, target=0.6)
        assert torch.equal(q, new_int) and torch.equal(w, new_f)


def test_parametrization_reverts_bit_raising_updates_and_keeps_zeros():
    model = digits_lenet()
    with torch.no_grad():
        for layer in prunable_layers(model).values():
            layer.weight[::2] = 0.0
    cfg = PublishedConfig(increase_factor=0.9, codebook=False)  # a target it cannot reach: the rule keeps acting
    projections = attach_projections(model, QuantConfig(), "published", 16, published=cfg)
    layers = prunable_layers(model)
    proj, w = projections["fc1"], latent_weight(layers["fc1"])
    proj.init_published(w, cfg.increase_factor)
    stored = proj.stored_int.clone().to(torch.int64)
    assert float(proj.target_sparsity) == pytest.approx(0.9 + 0.1 * float(proj.initial_sparsity))
    with torch.no_grad():
        w.add_(torch.randn_like(w) * 0.05)  # a large "optimizer step", zeros too (momentum, decay)
    moved = w.detach().clone()
    reverted = proj.published_step(w)
    new_int = published_int(moved * proj.mask, int(proj.radix), max_bits=None)
    raised = popcount(new_int) > popcount(stored)
    assert reverted == int(raised.sum()) > 0
    assert torch.equal(proj.stored_int.to(torch.int64), torch.where(raised, stored, new_int))
    q, scale = proj.project(w)
    assert torch.equal(q.to(torch.int64), proj.stored_int.to(torch.int64))  # stored == projection of the latent
    assert torch.all(q[proj.mask == 0] == 0) and float(scale) == 2.0 ** -int(proj.radix)
    out = layers["fc1"].weight  # the forward value: scale * q, straight-through to the masked latent
    assert torch.equal(out, q * scale)


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("node", "fragment"),
    [
        ({"published": {"increase_factor": 1.0}}, "prune_bits.published.increase_factor"),
        ({"published": {"edge_factor": -0.1}}, "prune_bits.published.edge_factor"),
        ({"published": {"max_bits": 0}}, "prune_bits.published.max_bits"),
        ({"published": {"codebook": "maybe"}}, "prune_bits.published.codebook"),
        ({"published": {"bogus": 1}}, "prune_bits.published"),
        ({"first_layer_k": 1}, "prune_bits.first_layer_k=1: mode=published takes no per-layer k"),
        ({"layers": {"fc1": 1}}, "prune_bits.layers="),
        ({"schedule": "agp"}, "prune_bits.schedule=agp: mode=published"),
        ({"admm": {"enabled": True}}, "prune_bits.admm.enabled=true: mode=published"),
    ],
)
def test_bad_published_options_are_one_line(node, fragment):
    with pytest.raises(ConfigError) as info:
        BitPruneConfig.from_mapping({"mode": "published", **node})
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_published_layer_k_and_quant_checks():
    bp = BitPruneConfig.from_mapping({"mode": "published", "k": 5})
    assert bp.layer_k(["a", "b"], 8) == {"a": 2, "b": 2}  # k unused: the code book's cap is recorded
    f = bp.published.increase_factor
    assert [bp.published.layer_factor(i, 3) for i in range(3)] == [f * 0.5, f, f * 0.5]  # f/2 on first and last
    with pytest.raises(ConfigError, match="quant.scale=channel"):
        bp.check_quant(QuantConfig(scale="channel"))
    with pytest.raises(ConfigError, match="quant.bits=6"):
        bp.check_quant(QuantConfig(bits=6))


# ---------------------------------------------------------------- stage


@pytest.fixture
def rooted(tmp_path):
    """A weight-pruned LeNet-5 for digits (a third of the weights zero) at outputs/prune_weights/model.ckpt."""
    model = digits_lenet()
    with torch.no_grad():
        gen = torch.Generator().manual_seed(0)
        for layer in prunable_layers(model).values():
            layer.weight[torch.rand(layer.weight.shape, generator=gen) < 1 / 3] = 0.0
    path = tmp_path / "outputs" / "prune_weights" / "model.ckpt"
    path.parent.mkdir(parents=True)
    return save_digits_lenet(path, model, meta={"dataset": "digits", "metrics": {"test_acc": 9.0}})


def test_stage_exports_capped_integers_on_pow2_scales(rooted, compose, tmp_path, monkeypatch):
    cfg = compose("prune_bits", FAST)
    seen = []
    original = BitPruningCallback.revert_step

    def spy(self, pl_module):
        seen.append(1)
        return original(self, pl_module)

    monkeypatch.setattr(BitPruningCallback, "revert_step", spy)
    metrics = bits_stage.prune_bits(cfg)
    assert len(seen) == 3 * 2  # after every optimizer step: 3 epochs x 2 batches
    assert metrics["mode"] == "published" and set(metrics["k"].values()) == {2}
    model, payload = load_model_checkpoint(tmp_path / "outputs" / "prune_bits" / "model.ckpt")
    assert not any("stored_int" in k or "radix" in k for k in payload["state_dict"])
    assert payload["meta"]["quant"]["power_of_two"] is True
    ints = payload["meta"]["int_weights"]
    zeros = {n: m.weight == 0 for n, m in prunable_layers(load_model_checkpoint(rooted)[0]).items()}
    all_bits = []
    for name, layer in prunable_layers(model).items():
        q, scale = ints[name]["q"], ints[name]["scale"]
        assert q.dtype == torch.int8 and scale.dim() == 0 and scale.dtype == torch.float32
        assert is_power_of_two(scale)
        assert int(essential_bits(q.numpy()).max()) <= 2
        assert torch.all(q[zeros[name]] == 0)
        assert torch.equal(torch.round(layer.weight / scale).to(torch.int8), q)
        all_bits.append(essential_bits(q.numpy()).ravel())
    bits = np.concatenate(all_bits)
    assert metrics["bit_sparsity"] == pytest.approx(1 - bits.sum() / (7 * bits.size))
    assert metrics["input_bit_sparsity"] < metrics["bit_sparsity"]
    # The simulate stage traces exactly these integers and scales.
    traced, source = integer_weights(model, payload, 8)
    assert source == "meta.int_weights"
    for name, qw in traced.items():
        assert torch.equal(qw.q.to(torch.int64), ints[name]["q"].to(torch.int64))
        assert torch.equal(qw.scale, ints[name]["scale"])


def record_revert_steps(monkeypatch) -> list:
    """Spy on the revert rule: (epoch, per-layer (target, reverted after the step)) at every optimizer step."""
    records = []
    original = BitPruningCallback.revert_step

    def spy(self, pl_module):
        original(self, pl_module)
        layers = self._layers(pl_module).values()
        records.append((pl_module.current_epoch, [(float(p.target_sparsity), p.stored_int.clone()) for p, _ in layers]))

    monkeypatch.setattr(BitPruningCallback, "revert_step", spy)
    return records


def test_killed_published_run_resumes_to_the_same_bits(rooted, compose, tmp_path, monkeypatch):
    # f = 0.9: a target the layers do not reach in 4 epochs, so the rule reverts updates all along.
    overrides = [*FAST, "trainer.max_epochs=4", "prune_bits.published.increase_factor=0.9"]
    out = tmp_path / "outputs" / "prune_bits"
    clean_steps = record_revert_steps(monkeypatch)
    bits_stage.prune_bits(compose("prune_bits", overrides))
    clean = snapshot(out)
    assert len(clean_steps) == 4 * 2
    tail = [r for r in clean_steps if r[0] >= 2]

    crash_once_at(monkeypatch, 2)
    with pytest.raises(RuntimeError, match="simulated kill"):
        bits_stage.prune_bits(compose("prune_bits", overrides))
    saved = torch.load(tmp_path / "checkpoints" / "prune_bits" / "last.ckpt", weights_only=False)
    assert saved["epoch"] == 1
    assert sum(k.endswith("stored_int") for k in saved["state_dict"]) == 5
    resumed_steps = record_revert_steps(monkeypatch)
    bits_stage.prune_bits(compose("prune_bits", overrides))
    assert_same(snapshot(out), clean)
    # The resumed steps saw the first attempt's targets (s0 not re-measured) and the same stored integers.
    assert [e for e, _ in resumed_steps] == [e for e, _ in tail] == [2, 2, 3, 3]
    for (_, got), (_, want) in zip(resumed_steps, tail, strict=True):
        for (t_got, q_got), (t_want, q_want) in zip(got, want, strict=True):
            assert t_got == t_want and torch.equal(q_got, q_want)


def test_bad_stage_options_fail_before_training(rooted, compose, tmp_path):
    for override, fragment in (("prune_bits.published.increase_factor=1.5", "prune_bits.published.increase_factor"),
                               ("quant.scale=channel", "quant.scale=channel"),
                               ("prune_bits.first_layer_k=1", "prune_bits.first_layer_k=1")):
        with pytest.raises(ConfigError) as info:
            bits_stage.prune_bits(compose("prune_bits", [*FAST, override]))
        assert fragment in str(info.value)
    assert not (tmp_path / "outputs" / "prune_bits").exists()
