"""Projections against brute force: constraint holds, result is nearest, zeros kept, idempotent."""

import numpy as np
import pytest
import torch

from bitpruner.errors import BitprunerError, ConfigError
from bitpruner.prune_bits.bits import essential_bits, lane_group_costs
from bitpruner.prune_bits.projections import (
    group_budget,
    group_columns,
    group_error,
    nearest_submask,
    per_weight,
    project,
    project_ste,
)
from helpers.naive import (
    allowed_magnitudes,
    brute_group_budget,
    brute_group_columns,
    lane_groups_loop,
    nearest,
    per_weight_naive,
    popcount,
    submasks,
)

# ------------------------------------------------------------------ per_weight


@pytest.mark.parametrize("encoding", ["binary", "booth"])
def test_per_weight_every_8_bit_value(encoding):
    q = np.arange(-127, 128).reshape(1, -1)
    for k in range(8):
        out = per_weight(q, k, encoding=encoding)[0]
        assert out.tolist() == per_weight_naive(q[0], k, encoding=encoding), f"k={k}"
        assert np.array_equal(per_weight(out.reshape(1, -1), k, encoding=encoding)[0], out)  # idempotent


def test_per_weight_examples_from_spec():
    q = np.array([[7, -7, 3, 6, 0]])
    assert per_weight(q, 1).tolist() == [[8, -8, 2, 4, 0]]


def test_per_weight_nearest_in_float_domain_with_per_channel_scale():
    rng = np.random.default_rng(0)
    w = torch.tensor(rng.normal(size=(3, 40)) * [[0.1], [0.5], [2.0]], dtype=torch.float32)
    scale = w.abs().amax(dim=1) / 127
    w[0, :5] = 0.0
    out = per_weight(w, 2, scale=scale)
    assert out.dtype == torch.int32 and out.shape == w.shape
    allowed = allowed_magnitudes(2)
    for r in range(3):
        for c in range(40):
            u = float(w[r, c]) / float(scale[r])
            assert int(out[r, c]) == int(np.sign(u)) * nearest(abs(u), allowed)
    assert torch.all(out[0, :5] == 0)


def test_per_weight_latent_float_matters():
    # 5.6 rounds to 6 (two bits) but at k=1 the nearest is 4 (error 1.6) not 8 (error 2.4)
    assert per_weight(np.array([[5.6, 6.2]]), 1, scale=1.0).tolist() == [[4, 8]]


# ------------------------------------------------------------------ group_columns


def test_nearest_submask_matches_enumeration():
    rng = np.random.default_rng(1)
    for _ in range(300):
        mask = int(rng.integers(0, 128))
        a = float(rng.choice([rng.uniform(0, 127), rng.integers(0, 255) / 2]))
        assert nearest_submask(a, mask, 7) == nearest(a, submasks(mask))


@pytest.mark.parametrize("bits,lanes", [(8, 3), (5, 4)])
def test_group_columns_against_brute_force(bits, lanes):
    rng = np.random.default_rng(bits)
    top = 2 ** (bits - 1) - 1
    for trial in range(12):
        k = int(rng.integers(0, bits))
        w = rng.uniform(-top, top, size=(2, lanes * 2))
        w[rng.random(w.shape) < 0.2] = 0.0
        if trial % 3 == 0:
            w = np.round(w)  # exact half-unit ties and integers too
            w[0, 0] = 2.5
        res = group_columns(w, k, lanes, bits=bits, scale=1.0, details=True)
        q = res.q
        groups_w = lane_groups_loop(w, lanes)
        groups_q = lane_groups_loop(q, lanes)
        for g in range(groups_w.shape[0]):
            mask = int(res.group_mask[g])
            assert bin(mask).count("1") <= k
            a = [abs(x) for x in groups_w[g]]
            cands = submasks(mask)
            for x, v in zip(groups_w[g], groups_q[g], strict=True):
                assert abs(int(v)) == nearest(abs(x), cands)
                assert v == 0 or np.sign(v) == np.sign(x)
            assert res.group_error[g] == pytest.approx(brute_group_columns(a, k, bits - 1), abs=1e-9)
        assert np.all(q[w == 0] == 0)
        assert np.all(lane_group_costs(q.astype(np.int64), bits, "binary", lanes)["columns"] <= k)


def test_group_columns_idempotent_and_column_bound_on_conv():
    rng = np.random.default_rng(7)
    w = torch.tensor(rng.normal(size=(6, 20, 3, 3)), dtype=torch.float32)
    w[w.abs() < 0.5] = 0.0
    scale = w.abs().max() / 127
    for k in (1, 2, 3):
        q = group_columns(w, k, 16, scale=scale)
        assert torch.all(q[w == 0] == 0)
        assert lane_group_costs(q, 8, "binary", 16)["columns"].max() <= k
        assert torch.equal(group_columns(q, k, 16), q)
        assert torch.equal(group_columns(q.to(torch.float32) * scale, k, 16, scale=scale), q)


def test_group_columns_wide_bits_greedy_keeps_constraint():
    rng = np.random.default_rng(3)
    w = rng.integers(-511, 512, size=(4, 32))
    q = group_columns(w, 3, 8, bits=10)
    assert lane_group_costs(q, 10, "binary", 8)["columns"].max() <= 3
    # exact for k = 1: the greedy's first choice is the best single column
    res = group_columns(w[:1, :4], 1, 4, bits=10, details=True)
    assert res.group_error[0] == pytest.approx(brute_group_columns([abs(x) for x in w[0, :4]], 1, 9))


def test_group_error_matches_definition():
    w = torch.tensor([[0.31, -0.18, 0.0, 0.05]])
    scale = torch.tensor([0.01])
    q = per_weight(w, 1, scale=scale)
    err = group_error(w, q, 2, scale=scale)
    d = (q.double() * 0.01 - w.double()) ** 2
    assert err.tolist() == pytest.approx([float(d[0, :2].sum()), float(d[0, 2:].sum())])


# ------------------------------------------------------------------ group_budget


def test_group_budget_against_brute_force():
    rng = np.random.default_rng(11)
    bits, lanes, top = 5, 3, 15
    for _ in range(15):
        budget = int(rng.integers(0, 13))
        lane_max = int(rng.integers(1, 5))
        w = rng.uniform(-top, top, size=(1, lanes))
        w[rng.random(w.shape) < 0.2] = 0.0
        q = group_budget(w, budget, lanes, bits=bits, scale=1.0, lane_max=lane_max)
        bits_used = np.vectorize(popcount)(q)
        assert bits_used.sum() <= budget and bits_used.max() <= lane_max
        assert np.all(q[w == 0] == 0) and np.all((q == 0) | (np.sign(q) == np.sign(w)))
        err = float(((q - w) ** 2).sum())
        assert err == pytest.approx(brute_group_budget(list(np.abs(w[0])), budget, top, lane_max), abs=1e-9)


def test_group_budget_per_group_and_idempotent():
    rng = np.random.default_rng(5)
    q0 = rng.integers(-127, 128, size=(4, 32, 3, 3))
    q = group_budget(q0, 12, 16)
    per_group = lane_groups_loop(np.vectorize(popcount)(q), 16).sum(axis=1)
    assert per_group.max() <= 12
    assert np.array_equal(group_budget(q, 12, 16), q)


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda w: per_weight(w, -1), "k=-1"),
        (lambda w: per_weight(w, 8), "k=8"),
        (lambda w: group_columns(w, 2, 0), "lanes"),
        (lambda w: group_columns(w, 2, -3), "lanes"),
        (lambda w: group_budget(w, -1, 16), "budget=-1"),
        (lambda w: per_weight(w, 2, bits=1), "bits=1"),
        (lambda w: per_weight(w, 2, bits=17), "bits=17"),
        (lambda w: per_weight(w.astype(float), 2), "scale"),
        (lambda w: per_weight(w * 2, 2), "exceeds"),
        (lambda w: project("magic", w), "magic"),
        (lambda w: per_weight(w.astype(float), 2, scale=np.ones(3)), "scale"),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises(ConfigError, match=match):
        call(np.array([[100, -3], [5, 0]]))


def test_project_ste_forward_is_projection_backward_is_identity():
    w = torch.randn(4, 8, 3, 3, requires_grad=True)
    scale = w.detach().abs().amax(dim=(1, 2, 3)) / 127
    out = project_ste("group_columns", w, scale, k=2, lanes=4)
    q = group_columns(w.detach(), 2, 4, scale=scale)
    assert torch.allclose(out.detach(), q.float() * scale.view(-1, 1, 1, 1))
    out.sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))


def test_non_finite_weights_and_float_stats_raise():
    w = torch.tensor([[0.1, float("nan")]])
    with pytest.raises(BitprunerError, match="NaN"):
        per_weight(w, 2, scale=0.01)
    with pytest.raises(ConfigError, match="integer"):
        essential_bits(np.array([0.5]), 8)
    half = per_weight(torch.tensor([[0.07, -0.029]], dtype=torch.bfloat16), 1, scale=0.01)
    assert half.tolist() == [[8, -2]]
