"""The published bit-level pruning methods (bitlevel.py): the spec's worked examples (new_designs.md 4.1-4.3), the
reference code's outputs (fixtures/bitsim/pruning.json), the checklist's properties on random groups, a plain
step-by-step twin written from the spec, brute-force optimality, the groupings, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bitpruner.errors import ConfigError
from bitpruner.prune_bits.bitlevel import bbs_average, bbs_zero_point, bitflip, project_bitlevel
from bitpruner.prune_bits.projections import group_columns, project, project_ste
from helpers.paths import BITSIM_FIXTURES

FIXTURES = BITSIM_FIXTURES / "pruning.json"
A = [5, -3, 0, 12, -20, -7, 64, -1]
SEEDS = range(3)


def row(values) -> np.ndarray:
    """One group as an fc weight [1, G] (the fixtures' layout: K = 1, C = group size)."""
    return np.array([values])


def run(fn, values, *args, **kwargs) -> list[int]:
    return fn(row(values), *args, group=len(values), **kwargs)[0].tolist()


# ---------------------------------------------------------------- plain twins, written from the spec text


def mag_bits(m: int) -> list[int]:
    """Sign-magnitude columns 1..7 of a magnitude (index 0 unused): column i holds 2^(7 - i)."""
    return [0] + [(m >> (7 - i)) & 1 for i in range(1, 8)]


def nearest_candidate(v: int, step: int, count: int) -> int:
    """Nearest of 0, step, .., (count - 1) * step to v; ties to the smaller (plain scan)."""
    best = 0
    for n in range(count):
        if abs(n * step - v) < abs(best - v):
            best = n * step
    return best


def twin_bitflip(group: list[int], n: int) -> list[int]:
    w = [max(x, -127) for x in group]
    cols = [mag_bits(abs(x)) for x in w]
    zero = [all(c[i] == 0 for c in cols) for i in range(8)]
    p = 8 - n
    for i in range(1, 8):
        if i < p and zero[i]:
            p += 1
    if p >= 8:
        return w
    t = 1
    for i in range(1, p):
        if zero[i]:
            t = i + 1
    out = []
    for x in w:
        m = abs(x)
        v = m % (1 << (8 - t))
        new = m - v + nearest_candidate(v, 1 << (8 - p), 1 << (p - t))
        out.append(-new if x < 0 else new)
    return out


def round_half_even(num: int, den: int) -> int:
    lo = num // den
    twice = 2 * (num - lo * den)
    return lo + 1 if twice > den or (twice == den and lo % 2) else lo


def twin_bbs_average(group: list[int], n: int) -> list[int]:
    pats = [x & 0xFF for x in group]
    bit = [[(u >> (7 - i)) & 1 for i in range(8)] for u in pats]  # index 0 = sign column
    s = 0
    for i in range(1, 4):
        if all(all(b[j] == b[0] for j in range(1, i + 1)) for b in bit):
            s += 1
        else:
            break
    p = 8 - n + s
    if p >= 8:
        return list(group)
    low = 8 - p
    lows = [u % (1 << low) for u in pats]
    r = round_half_even(sum(lows), len(group))
    out = []
    for u, lo in zip(pats, lows, strict=True):
        new = u - lo + r
        out.append(new - 256 if new >= 128 else new)
    return out


def twin_truncate(u: list[int], n: int) -> list[int]:
    mags = [abs(x) for x in u]
    z = 0
    for i in range(1, 8):
        if any(mag_bits(m)[i] for m in mags):
            break
        z += 1
    p = 8 - n + z
    if p >= 8:
        return list(u)
    out = []
    for x in u:
        new = nearest_candidate(abs(x), 1 << (8 - p), 1 << (7 - n))
        out.append(-new if x < 0 else new)
    return out


def zero_point_candidates(group: list[int], n: int, cb: int) -> list[tuple[int, list[int], int]]:
    """(c, w', E(c)) for every constant c in search order."""
    out = []
    for c in range(-(1 << (cb - 1)), 1 << (cb - 1)):
        u = [min(max(x + c, -127), 127) for x in group]
        w = [x - c for x in twin_truncate(u, n)]
        out.append((c, w, sum((a - b) ** 2 for a, b in zip(w, group, strict=True))))
    return out


def twin_bbs_zero_point(group: list[int], n: int, cb: int = 5, narrow: bool = False) -> list[int]:
    best = None
    for _, w, err in zero_point_candidates(group, n, cb):
        if narrow and max(abs(x) for x in w) > 127:
            continue
        if best is None or err < best[1]:
            best = (w, err)
    return best[0]


def random_groups(rng, count: int, sizes=(1, 3, 8, 16)) -> list[list[int]]:
    """Groups of narrow-range 8-bit weights with zeros, small values, large values and one-sided signs."""
    groups = []
    for _ in range(count):
        g = int(rng.choice(sizes))
        kind = rng.integers(4)
        if kind == 0:
            x = rng.integers(-127, 128, g)
        elif kind == 1:
            x = np.round(rng.normal(0, 12, g)).clip(-127, 127)
        elif kind == 2:
            x = rng.integers(0, 40, g)
        else:
            x = -rng.integers(0, 128, g)
        x[rng.random(g) < 0.25] = 0
        groups.append([int(v) for v in x])
    return groups


# ---------------------------------------------------------------- worked examples (spec 4.x)


def test_bitflip_worked_examples():
    assert run(bitflip, A, 4) == [8, 0, 0, 8, -16, -8, 64, 0]  # P = 5, T = 3: ties down (12 -> 8, 20 -> 16)
    assert run(bitflip, A, 2) == [4, -2, 0, 12, -20, -6, 64, 0]
    assert run(bitflip, A, 3) == [4, -4, 0, 12, -20, -8, 64, 0]
    out = np.array(run(bitflip, A, 4))
    assert ((out - A) ** 2).sum() == 52
    assert run(bitflip, [-128, 0, 0, 0, 0, 0, 0, 0], 0) == [-127, 0, 0, 0, 0, 0, 0, 0]  # N = 0: only -128 moves


def test_bbs_average_worked_examples():
    assert run(bbs_average, A, 2) == [5, -3, 1, 13, -19, -7, 65, -3]  # mean of the low 2 bits 0.75 -> 1
    assert run(bbs_average, A, 3) == [3, -5, 3, 11, -21, -5, 67, -5]
    assert run(bbs_average, [64, 1, 1, 1, 0, 0, 0, 1], 2) == [64, 0, 0, 0, 0, 0, 0, 0]  # 0.5 rounds to even 0
    assert run(bbs_average, [5, -3, 0, 12, -20, -7, 33, -1], 2) == [5, -3, 1, 13, -19, -7, 33, -1]  # s = 1
    assert run(bbs_average, [1, 2, 3, 0, -1, -2, -3, 4], 2) == [1, 2, 3, 0, -1, -2, -3, 4]  # s = 3: P = 9


def test_bbs_zero_point_worked_examples():
    assert run(bbs_zero_point, A, 2) == [6, -2, 0, 12, -20, -6, 64, 0]  # first minimum c = -16, error 4
    out = run(bbs_zero_point, A, 4)
    assert out == [6, -2, -2, 14, -18, -10, 62, -2]  # c = -14, error 28 (bit-flip N = 4: 52)
    assert sum((a - b) ** 2 for a, b in zip(out, A, strict=True)) == 28
    assert {x & 7 for x in out} == {6}  # the low three columns of w' are constant (110)


# ---------------------------------------------------------------- the reference code's outputs


def _by_key(group, key):
    method, n, *rest = key.split("_")
    n = int(n[1:])
    if method == "bitflip":
        return run(bitflip, group, n)
    if method == "roundavg":
        return run(bbs_average, group, n)
    return run(bbs_zero_point, group, n, const_bits=int(rest[0][2:]))


def test_fixture_cases_all():
    """Every case of pruning.json (200 groups x 10 calls of BBS-MICRO), reported together."""
    cases = json.loads(FIXTURES.read_text())["cases"]
    assert len(cases) == 200
    checked, wrong = 0, []
    for i, case in enumerate(cases):
        for key, expected in case.items():
            if key == "group":
                continue
            checked += 1
            if _by_key(case["group"], key) != expected:
                wrong.append(f"case {i} {key}")
    assert checked == 2000 and not wrong, wrong[:5]


def test_fixtures_include_what_the_pipeline_clamps():
    """The reference leaves values outside [-127, 127] (zero-point up to 128, averaging -128); narrow_range keeps
    the pipeline's range, never more error than the reference's unconstrained result allows at c = 0."""
    cases = json.loads(FIXTURES.read_text())["cases"]
    outside = [c for c in cases if max(abs(v) for v in c["zeropoint_N2_cb5"]) > 127]
    assert outside  # the fixtures exercise it
    for case in outside:
        group = [max(v, -127) for v in case["group"]]
        out = run(bbs_zero_point, group, 2, narrow_range=True)
        assert max(abs(v) for v in out) <= 127
        assert out == twin_bbs_zero_point(group, 2, narrow=True)


# ---------------------------------------------------------------- properties on random groups (checklist 4)


def first_free_column(group, n) -> int:
    """Bit-flip's T: 1 + the last all-zero magnitude column above the cut P (1 when none)."""
    either = 0
    for v in group:
        either |= abs(max(v, -127))
    p, t = 8 - n, 1
    for i in range(1, 8):
        if i < p and not (either >> (7 - i)) & 1:
            p += 1
            t = i + 1
    return min(t, 8)


def ncols_nonzero_magnitude(values) -> int:
    either = 0
    for v in values:
        either |= abs(v)
    return bin(either).count("1")


@pytest.mark.parametrize("seed", SEEDS)
def test_bitflip_properties_and_twin(seed):
    rng = np.random.default_rng(seed)
    for group in random_groups(rng, 150):
        for n in range(8):
            out = run(bitflip, group, n)
            assert out == twin_bitflip(group, n), (group, n)
            assert ncols_nonzero_magnitude(out) <= 7 - n
            for w, v in zip(group, out, strict=True):
                assert (w != 0) or v == 0  # zeros kept
                assert v == 0 or np.sign(v) == np.sign(w)  # signs kept
                assert abs(v) <= 127
            t = first_free_column(group, n)  # the magnitude bits of columns 1..T-1 are kept
            assert all(abs(v) >> (8 - t) == abs(max(w, -127)) >> (8 - t) for w, v in zip(group, out, strict=True))
            assert run(bitflip, out, n) == out  # idempotent


@pytest.mark.parametrize("seed", SEEDS)
def test_bitflip_never_beats_the_exhaustive_column_search(seed):
    """Brute force: group_columns(k = 7 - N) tries every set of k columns with per-weight nearest values (itself
    checked against brute force), and bit-flip's result is one such assignment, so its error is never smaller;
    bit-flip's own error is at most what clearing the free columns would cost."""
    rng = np.random.default_rng(100 + seed)
    for group in random_groups(rng, 60, sizes=(2, 4, 8)):
        for n in (1, 2, 3, 4):
            out = run(bitflip, group, n)
            err = sum((a - b) ** 2 for a, b in zip(out, group, strict=True))
            best = group_columns(row(group), 7 - n, len(group))[0].tolist()
            assert sum((a - b) ** 2 for a, b in zip(best, group, strict=True)) <= err
            for w, v in zip(group, out, strict=True):  # each weight moves by less than the cleared part allows
                assert abs(abs(v) - abs(w)) < 1 << n + ncols_zero_above(group, n) or v == w


def ncols_zero_above(group, n) -> int:
    """How far the cut moved down (zero magnitude columns above it): bit-flip's P - (8 - N)."""
    either = 0
    for v in group:
        either |= abs(v)
    p = 8 - n
    for i in range(1, 8):
        if i < p and not (either >> (7 - i)) & 1:
            p += 1
    return p - (8 - n)


@pytest.mark.parametrize("seed", SEEDS)
def test_bbs_average_properties_and_twin(seed):
    rng = np.random.default_rng(200 + seed)
    for group in random_groups(rng, 150):
        for n in range(8):
            out = run(bbs_average, group, n)
            assert out == twin_bbs_average(group, n), (group, n)
            pats = [x & 0xFF for x in group]
            s = 0
            for i in range(1, 4):  # leading sign-extension columns
                if all(all(((u >> (7 - j)) & 1) == (u >> 7) for j in range(1, i + 1)) for u in pats):
                    s = i
                else:
                    break
            low = max(0, n - s)
            mask = (1 << low) - 1
            assert len({v & mask for v in out}) == 1  # the low 8 - P columns are constant
            assert all((v & 0xFF) >> low == u >> low for u, v in zip(pats, out, strict=True))  # high bits kept
            assert all(abs(v - w) < (1 << low) or low == 0 and v == w for v, w in zip(out, group, strict=True))
            # least squares under "all low bits equal": no other constant r does better
            if 0 < low <= 4:
                best = min(sum(((u - (u & mask) + r) - (u & 0xFF)) ** 2 for u in pats) for r in range(1 << low))
                err = sum(((v & 0xFF) - u) ** 2 for u, v in zip(pats, out, strict=True))
                assert err == best


@pytest.mark.parametrize("seed", SEEDS)
def test_bbs_zero_point_properties_and_twin(seed):
    rng = np.random.default_rng(300 + seed)
    for group in random_groups(rng, 40):
        for n in (1, 2, 4):
            for narrow in (False, True):
                out = run(bbs_zero_point, group, n, narrow_range=narrow)
                assert out == twin_bbs_zero_point(group, n, narrow=narrow), (group, n, narrow)
                if narrow:
                    assert max(abs(v) for v in out) <= 127
            candidates = zero_point_candidates(group, n, 5)
            out = run(bbs_zero_point, group, n)
            err = sum((a - b) ** 2 for a, b in zip(out, group, strict=True))
            assert err == min(e for _, _, e in candidates)  # brute force over every c
            assert err <= next(e for c, _, e in candidates if c == 0)  # never worse than no shift
            c, _, _ = next(t for t in candidates if t[2] == err)  # the first minimum is the one kept
            u = [min(max(x + c, -127), 127) for x in group]
            either = 0
            for x in u:
                either |= abs(x)
            z = 7 - either.bit_length()  # leading zero magnitude columns of u
            if z < n:  # the low N - z columns of w' are constant
                mask = (1 << (n - z)) - 1
                assert len({v & mask for v in out}) == 1, (group, n, c, out)


def test_groups_of_one_weight_and_all_zero_groups():
    assert run(bitflip, [0] * 8, 4) == [0] * 8
    assert run(bbs_zero_point, [0] * 8, 4) == [0] * 8
    assert run(bbs_average, [0] * 8, 4) == [0] * 8
    # one weight per group: bit-flip is a per-weight limit of 7 - N essential bits
    q = np.arange(-127, 128).reshape(-1, 1)
    out = bitflip(q, 5, 1)
    assert max(bin(abs(int(v))).count("1") for v in out.ravel()) <= 2


# ---------------------------------------------------------------- groupings and layouts


def test_flat_grouping_is_the_reference_reshape():
    rng = np.random.default_rng(7)
    w = rng.integers(-127, 128, (4, 48, 3, 3))  # C = 48, group 32: flat chunks straddle kernel positions
    chunks = w.transpose(0, 2, 3, 1).reshape(-1, 32)
    expected = np.stack([twin_bitflip(list(map(int, c)), 3) for c in chunks]).reshape(4, 3, 3, 48)
    assert np.array_equal(bitflip(w, 3, 32, grouping="flat"), expected.transpose(0, 3, 1, 2))
    fc = rng.integers(-127, 128, (6, 16))
    expected = np.stack([twin_bbs_average(list(map(int, c)), 2) for c in fc.reshape(-1, 8)]).reshape(6, 16)
    assert np.array_equal(bbs_average(fc, 2, 8), expected)
    small = rng.integers(-127, 128, (2, 3, 5, 5))  # C < group: one group per (filter, position) of C weights
    expected = np.stack([twin_bitflip(list(map(int, c)), 4) for c in small.transpose(0, 2, 3, 1).reshape(-1, 3)])
    assert np.array_equal(bitflip(small, 4, 16), expected.reshape(2, 5, 5, 3).transpose(0, 3, 1, 2))


def test_lanes_grouping_short_last_chunk_and_equal_to_flat_when_group_divides_c():
    rng = np.random.default_rng(8)
    w = rng.integers(-127, 128, (3, 20, 2, 2))
    out = bbs_zero_point(w, 2, 8, grouping="lanes")
    kyxc = w.transpose(0, 2, 3, 1).reshape(-1, 20)
    for r, res in zip(kyxc, out.transpose(0, 2, 3, 1).reshape(-1, 20), strict=True):
        expect = []
        for lo in (0, 8, 16):  # chunks 8, 8 and the short 4 of every (filter, position)
            expect += twin_bbs_zero_point(list(map(int, r[lo:lo + 8])), 2)
        assert res.tolist() == expect
    same = rng.integers(-127, 128, (2, 32, 3, 3))
    for fn in (bitflip, bbs_average, bbs_zero_point):
        assert np.array_equal(fn(same, 3, 16, grouping="lanes"), fn(same, 3, 16, grouping="flat"))
    fc = rng.integers(-127, 128, (10, 84))  # LeNet-5's fc3: 840 weights, not a multiple of 16
    assert bitflip(fc, 3, 16, grouping="lanes").shape == (10, 84)


def test_containers_and_float_weights_with_scale():
    w = torch.tensor([[0.5, -0.3, 0.0, 1.2, -2.0, -0.7, 6.4, -0.1]])
    out = bitflip(w, 4, 8, scale=0.1)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.int32
    assert out.tolist() == [run(bitflip, A, 4)]
    ints = torch.tensor([A], dtype=torch.int8)
    assert bbs_average(ints, 2, 8).tolist() == [[5, -3, 1, 13, -19, -7, 65, -3]]
    per_channel = bitflip(torch.stack([w[0], 2 * w[0]]), 4, 8, scale=torch.tensor([0.1, 0.2]))
    assert per_channel[0].tolist() == per_channel[1].tolist() == run(bitflip, A, 4)


def test_dispatchers_project_and_project_ste():
    q = row(A)
    assert project("bitflip", q, N=4, group=8).tolist() == [run(bitflip, A, 4)]
    assert project("bbs_zero_point", q, N=4, group=8, const_bits=5).tolist() == [run(bbs_zero_point, A, 4)]
    w = torch.tensor([[0.5, -0.3, 0.0, 1.2, -2.0, -0.7, 6.4, -0.1]], requires_grad=True)
    out = project_ste("bbs_average", w, torch.tensor(0.1), N=2, group=8)
    assert torch.allclose(out, torch.tensor([[5, -3, 1, 13, -19, -7, 65, -3]]) * 0.1)
    out.sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))  # straight-through
    # prune_bits' entry: k = 7 - N kept columns, groups of `lanes`
    got = project_bitlevel("bitflip", w.detach(), torch.tensor(0.1), k=3, lanes=8)
    assert got.tolist() == [run(bitflip, A, 4)]
    assert project_bitlevel("bbs_average", w.detach(), torch.tensor(0.1), k=7, lanes=8).tolist() == [A]


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: bitflip(row(A), 8, 8), "N=8: expected an integer in [0, 7]"),
        (lambda: bitflip(row(A), -1, 8), "N=-1"),
        (lambda: bbs_average(row(A), 2.5, 8), "N=2.5"),
        (lambda: bitflip(row(A), 2, 0), "group=0: expected a positive integer"),
        (lambda: bbs_zero_point(row(A), 2, 8, const_bits=0), "const_bits=0: expected an integer in [1, 8]"),
        (lambda: bitflip(row(A), 2, 8, grouping="rows"), "grouping='rows': expected one of flat, lanes"),
        (lambda: bitflip(np.zeros((10, 84), dtype=np.int64), 2, 16), "840 weights are not a multiple of group=16"),
        (lambda: bitflip(np.zeros((2, 3, 4), dtype=np.int64), 2, 16), "expected conv [K, C, kh, kw] or fc [K, C]"),
        (lambda: bitflip(row([300] + A[1:]), 2, 8), "weight 300: expected 8-bit integers in [-128, 127]"),
        (lambda: bitflip(row(A), 2, 8, bits=6), "bits=6: the bit-level pruning methods are defined for 8-bit"),
        (lambda: bitflip(np.ones((1, 8)), 2, 8), "float weights need their scale"),
        (lambda: project("bitflop", row(A)), "projection='bitflop'"),
    ],
)
def test_bad_arguments_one_line(call, fragment):
    with pytest.raises(ConfigError) as info:
        call()
    assert fragment in str(info.value) and "\n" not in str(info.value)


# ---------------------------------------------------------------- prune_bits modes and `bitpruner project`

from test_prune_bits_stage import FAST, input_ckpt, rooted  # noqa: E402, F401  (the stage test's tiny setup)

from bitpruner.models.checkpoint import load_model_checkpoint  # noqa: E402
from bitpruner.models.layers import prunable_layers  # noqa: E402


def _magnitude_columns_per_group(q: np.ndarray, lanes: int) -> int:
    from bitpruner.prune_bits.lanes import to_lane_groups

    groups = np.abs(to_lane_groups(q.astype(np.int64), lanes))
    either = np.bitwise_or.reduce(groups, axis=1)
    return int(max(bin(int(v)).count("1") for v in either))


@pytest.mark.parametrize(("method", "epochs"), [("bitflip", 0), ("bbs_zero_point", 1)])
def test_prune_bits_bitlevel_modes(rooted, compose, tmp_path, method, epochs):  # noqa: F811
    """0 epochs: the input projected post-training (as published); 1 epoch: fine-tuned with the projection in the
    forward pass. Either way the exported integers satisfy the method's constraint and are stored exactly."""
    from bitpruner.prune_bits import stage as bits_stage

    cfg = compose("prune_bits", [*FAST, "logger=none", f"prune_bits={method}", "accelerator.lanes=8",
                                 f"trainer.max_epochs={epochs}"])
    metrics = bits_stage.prune_bits(cfg)
    assert metrics["mode"] == method and metrics["epochs"] == epochs
    k = {"bitflip": 4, "bbs_zero_point": 3}[method]
    assert set(metrics["k"].values()) == {k}
    model, payload = load_model_checkpoint(tmp_path / "outputs" / "prune_bits" / "model.ckpt")
    input_model, _ = load_model_checkpoint(rooted)
    for name, layer in prunable_layers(model).items():
        entry = payload["meta"]["int_weights"][name]
        q = entry["q"].numpy().astype(np.int64)
        assert torch.equal(torch.round(layer.weight / entry["scale"]).to(torch.int8), entry["q"])
        assert np.abs(q).max() <= 127
        if method == "bitflip":
            assert _magnitude_columns_per_group(q, 8) <= k  # 7 - N non-zero magnitude columns per lane group
            zeros = (prunable_layers(input_model)[name].weight == 0).numpy()
            assert np.all(q[zeros] == 0)
        else:
            # zero-point: every lane group's w' = u' - c shares its low columns; re-projecting changes nothing
            again = bbs_zero_point(q, 7 - k, 8, grouping="lanes", narrow_range=True)
            assert np.array_equal(again, q)
    if epochs == 0:
        # post-training: exactly the projection of the input's 8-bit integers
        from bitpruner.quant.fixed_point import quantize_weight

        for name, layer in prunable_layers(input_model).items():
            qw = quantize_weight(layer.weight, {"bits": 8})
            expect = bitflip(qw.q, 7 - k, 8, grouping="lanes")
            assert np.array_equal(payload["meta"]["int_weights"][name]["q"].numpy(), expect.numpy())
    if method == "bitflip":
        assert metrics["bit_sparsity"] > metrics["input_bit_sparsity"]
    else:  # zero-point keeps no zeros (as published): the stage reports the weight sparsity it leaves
        assert metrics["weight_sparsity"] < metrics["input_weight_sparsity"]


def test_prune_bits_bitlevel_needs_8_bit_weights(rooted, compose):  # noqa: F811
    from bitpruner.prune_bits import stage as bits_stage

    with pytest.raises(ConfigError, match="quant.bits=6: prune_bits.mode=bitflip is defined for 8-bit weights only"):
        bits_stage.prune_bits(compose("prune_bits", [*FAST, "logger=none", "prune_bits=bitflip", "quant.bits=6",
                                                     "prune_bits.k=3"]))


def test_project_cli_on_a_tiny_checkpoint(input_ckpt, tmp_path, capsys):  # noqa: F811
    from bitpruner.cli import main
    from bitpruner.prune_bits.bits import model_bit_stats
    from bitpruner.quant.fixed_point import quantize_weight
    from bitpruner.sim.capture import integer_weights

    out = tmp_path / "bitflip" / "model.ckpt"
    assert main(["project", "--model", str(input_ckpt), "--method", "bitflip", "--N", "3", "--group", "32",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "bit sparsity" in printed and "weight sparsity" in printed and str(out) in printed
    source, _ = load_model_checkpoint(input_ckpt)
    model, payload = load_model_checkpoint(out)
    meta = payload["meta"]
    assert meta["projection"] == {"method": "bitflip", "N": 3, "group": 32, "const_bits": 5, "grouping": "lanes"}
    assert "metrics" not in meta and meta["dataset"] == "digits"
    weights, where = integer_weights(model, payload)  # what trace capture reads: the stored integers
    assert where == "meta.int_weights"
    for name, layer in prunable_layers(source).items():
        expect = bitflip(quantize_weight(layer.weight, {"bits": 8}).q, 3, 32, grouping="lanes")
        assert torch.equal(weights[name].q, expect)
    _, totals = model_bit_stats(weights, bits=8)
    assert f"{100 * totals['bit_sparsity']:.2f}%" in printed
    assert meta["bit_sparsity"] == pytest.approx(totals["bit_sparsity"])

    # a projected checkpoint projects again (its stored integers are the input), zero-point as well
    again = tmp_path / "zp.ckpt"
    assert main(["project", "--model", str(out), "--method", "bbs_zero_point", "--N", "4", "--group", "16",
                 "--out", str(again)]) == 0
    _, payload2 = load_model_checkpoint(again)
    assert payload2["meta"]["weights_from"] == "meta.int_weights"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--N", "9", "--group", "32"], "project.N: got 9, expected an integer in [0, 7]"),
        (["--N", "3", "--group", "32", "--method", "bitflop"], "project.method: got 'bitflop', expected one of"),
        (["--N", "3", "--group", "32", "--grouping", "rows"], "project.grouping: got 'rows'"),
        (["--N", "3", "--group", "0"], "project.group: got 0"),
        (["--N", "3", "--group", "16", "--grouping", "flat"], "layer 'fc3': weight shape (10, 84): 840 weights"),
        (["--N", "3", "--group", "16", "--model", "/nonexistent/model.ckpt"], "/nonexistent/model.ckpt"),
    ],
)
def test_project_cli_errors_are_one_line(input_ckpt, tmp_path, capsys, args, fragment):  # noqa: F811
    from bitpruner.cli import main

    argv = ["project", "--model", str(input_ckpt), "--method", "bitflip", "--out", str(tmp_path / "m.ckpt"), *args]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert fragment in err and "\n" not in err and err.startswith("bitpruner project: error:")
    assert not (tmp_path / "m.ckpt").exists()


@pytest.mark.parametrize(("preset", "n"), [("bitflip", 3), ("bbs_average", 2), ("bbs_zero_point", 4)])
def test_presets_compose_and_allow_post_training(compose, preset, n):
    from bitpruner.prune_bits.config import validate_prune_bits_stage
    from bitpruner.prune_bits.projected_weight import project_int

    cfg = compose("prune_bits", [f"prune_bits={preset}", "trainer.max_epochs=0"])
    bp, quant = validate_prune_bits_stage(cfg)
    assert bp.mode == preset and quant.bits - 1 - bp.k == n
    targets = bp.layer_k(["conv1", "conv2", "fc1"], quant.bits)
    assert set(targets.values()) == {bp.k}  # no milder first / last layer: published methods prune all alike
    bp.check_fits(0, targets)  # zero epochs: post-training projection
    bp.check_fits(1, targets)  # one shot: at the target from the first epoch
    w = torch.tensor([[0.5, -0.3, 0.0, 1.2, -2.0, -0.7, 6.4, -0.1]])
    got = project_int(preset, w, torch.tensor(0.1), bp.k, 8, 8)
    fn = {"bitflip": bitflip, "bbs_average": bbs_average, "bbs_zero_point": bbs_zero_point}[preset]
    assert got.tolist() == [run(fn, A, n, narrow_range=True)]
