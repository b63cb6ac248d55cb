"""`plan.rerank` on `digits`: the candidate set, the choice, exact cycles, determinism, the off switch, config errors."""

import pandas as pd
import pytest
import torch
import yaml

from bitpruner.errors import ConfigError
from bitpruner.models.layers import prunable_layers
from bitpruner.plan import stage as plan_stage
from bitpruner.plan.config import PlanConfig, RerankConfig, validate_plan_stage
from bitpruner.plan.frontier import Plan
from bitpruner.plan.rerank import Candidate, candidates, choose, probe_schedule
from helpers.models import LENET_SMALL_CFG, digits_lenet, save_digits_lenet

BUDGET = ["plan.objective=min_drop", "plan.min_speedup=2"]
FAST = ["data=digits", "calibration.batches=1", "logger=none", "plan.candidates=[1,2,7]",
        "plan.modes=[group_columns]", "plan.rerank.epochs=1", "plan.rerank.top=2", *BUDGET]


@pytest.fixture(scope="module")
def input_ckpt(tmp_path_factory):
    """A small LeNet-5 for digits trained one epoch (so projections and fine-tuning move its val figures)."""
    from bitpruner.data import DigitsDataModule

    model = digits_lenet(LENET_SMALL_CFG)
    dm = DigitsDataModule(batch_size=128, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for x, y in dm.train_dataloader():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    path = tmp_path_factory.mktemp("rerank") / "model.ckpt"
    return save_digits_lenet(path, model, LENET_SMALL_CFG, meta={"dataset": "digits"})


def run_plan(compose, input_ckpt, out, extra=()):
    cfg = compose("plan", [*FAST, f"input_ckpt={input_ckpt}", f"paths.output_dir={out}", *extra])
    return cfg, plan_stage.plan(cfg)


def test_rerank_candidates_choice_and_exact_cycles(compose, input_ckpt, tmp_path):
    cfg, metrics = run_plan(compose, input_ckpt, tmp_path / "a")
    out = tmp_path / "a"
    doc = yaml.safe_load((out / "plan.yaml").read_text())
    table = pd.read_csv(out / "rerank.csv")
    sens = pd.read_csv(out / "sensitivity.csv").set_index(["layer", "k"])
    names = list(doc["layers"])
    budget = doc["unpruned_cycles"] / 2

    # Every in-budget uniform plan is a candidate; every candidate meets the budget.
    ks = [tuple(int(r[f"k_{n}"]) for n in names) for _, r in table.iterrows()]
    uniform_in_budget = {k for k, u in doc["uniform"].items() if u["predicted_cycles"] <= budget}
    assert uniform_in_budget and {(k,) * len(names) for k in uniform_in_budget} <= set(ks)
    assert (table["cycles"] <= budget).all() and len(set(ks)) == len(ks) == metrics["rerank_candidates"]
    # Each candidate's cycles are the exact sum of its layers' simulated cycles.
    for plan_ks, cycles in zip(ks, table["cycles"], strict=True):
        assert cycles == sum(sens.at[(n, k), "cycles"] for n, k in zip(names, plan_ks, strict=True))

    # The chosen row is the lowest probe val loss (ties: fewer cycles), and it is what plan.yaml holds.
    (chosen,) = table.index[table["chosen"]]
    best = min(table.index, key=lambda i: (table.at[i, "probe_val_loss"], table.at[i, "cycles"], i))
    assert chosen == best
    assert tuple(doc["layers"].values()) == ks[chosen] and doc["predicted_cycles"] == table.at[chosen, "cycles"]
    assert doc["predicted_cycles"] <= budget
    assert doc["predicted_cycles"] == sum(sens.at[(n, k), "cycles"] for n, k in doc["layers"].items())
    assert doc["rerank"]["enabled"] and doc["rerank"]["candidates"] == len(table)
    assert doc["rerank"]["probe_val_loss"] == pytest.approx(table.at[chosen, "probe_val_loss"], abs=1e-6)
    assert metrics["rerank_probe_val_acc"] == pytest.approx(table.at[chosen, "probe_val_acc"], abs=1e-4)
    assert metrics["k"] == doc["layers"] and set(names) == set(prunable_layers(digits_lenet(LENET_SMALL_CFG)))

    # Deterministic: a second run gives the same choice and the same rerank.csv, byte for byte.
    run_plan(compose, input_ckpt, tmp_path / "b")
    assert (tmp_path / "b" / "rerank.csv").read_bytes() == (out / "rerank.csv").read_bytes()
    assert yaml.safe_load((tmp_path / "b" / "plan.yaml").read_text())["layers"] == doc["layers"]

    # Off (either switch): the frontier's own choice, the one the rerank section records, and no candidates.
    for switch in ("plan.rerank.enabled=false", "plan.rerank.top=0"):
        _, off = run_plan(compose, input_ckpt, tmp_path / "off", [switch])
        old = yaml.safe_load((tmp_path / "off" / "plan.yaml").read_text())
        assert old["layers"] == doc["rerank"]["frontier_choice"] and old["rerank"] == {"enabled": False}
        assert off["rerank_candidates"] == 0 and pd.read_csv(tmp_path / "off" / "rerank.csv").empty
        frontier = pd.read_csv(tmp_path / "off" / "frontier.csv")
        feasible = frontier[frontier["cycles"] <= budget]
        assert frontier[frontier["chosen"]]["predicted_drop"].item() == feasible["predicted_drop"].min()


def plan(ks, drop, cycles):
    return Plan(ks=dict(zip("abc", ks, strict=True)), drop=drop, units=0, cycles=cycles)


def test_candidate_set_against_brute_force():
    frontier = [plan((7, 7, 7), 0.0, 90), plan((2, 7, 1), 0.1, 50), plan((1, 2, 2), 0.4, 40),
                plan((1, 1, 2), 0.9, 35), plan((1, 1, 1), 1.5, 30)]
    uniform = {1: plan((1, 1, 1), 1.5, 30), 2: plan((2, 2, 2), 2.0, 45), 7: plan((7, 7, 7), 0.0, 90)}
    for budget in (30, 44, 45, 60, 100):
        for top in (0, 1, 2, 10):
            got = candidates(frontier, uniform, budget, top)
            want = sorted((p for p in frontier if p.cycles <= budget), key=lambda p: p.drop)[:top]
            want_ks = [tuple(p.ks.values()) for p in want]
            want_ks += [tuple(p.ks.values()) for _, p in sorted(uniform.items())
                        if p.cycles <= budget and tuple(p.ks.values()) not in want_ks]
            assert [tuple(c.plan.ks.values()) for c in got] == want_ks
            assert all(c.plan.cycles <= budget for c in got)
    both = candidates(frontier, uniform, 100, 10)
    assert [c.source for c in both if c.plan.ks == uniform[1].ks] == ["frontier #5+uniform k=1"]


@pytest.mark.parametrize("epochs", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("targets", [{"a": 1, "b": 2}, {"a": 3, "b": 7}, {"a": 4}, {"a": 7}])
def test_probe_schedule_fits_the_data_budget(epochs, targets):
    from bitpruner.prune_bits.config import BitPruneConfig
    from bitpruner.prune_bits.schedule import step_k

    batches = 40
    for schedule in ("step", "oneshot"):
        rr = RerankConfig(enabled=True, epochs=epochs, schedule=schedule, start_k=4)
        start_k, per_step, lightning_epochs, limit = probe_schedule(rr, targets, batches)
        bp = BitPruneConfig(start_k=start_k, epochs_per_step=per_step)
        # The schedule reaches every target before the last Lightning epoch (fine-tuning at the target follows)...
        assert bp.final_epoch(targets) < lightning_epochs
        assert all(step_k(bp, lightning_epochs - 1, t) == t for t in targets.values())
        # ... and the probe sees `epochs` passes of data, up to rounding of one batch per Lightning epoch.
        assert 1 <= limit <= batches and abs(lightning_epochs * limit - epochs * batches) <= lightning_epochs
        if schedule == "oneshot":
            assert all(step_k(bp, 0, t) == t for t in targets.values())
        else:
            assert step_k(bp, 0, min(targets.values())) == max(4, min(targets.values()))


def test_rerank_config_errors(compose):
    for node, fragment in [
        ({"top": -1}, "plan.rerank.top"), ({"epochs": 0}, "plan.rerank.epochs"),
        ({"metric": "acc"}, "plan.rerank.metric"), ({"schedule": "agp"}, "plan.rerank.schedule"),
        ({"start_k": -2}, "plan.rerank.start_k"), ({"bogus": 1}, "unknown key"), ({"enabled": "maybe"}, "enabled"),
    ]:
        with pytest.raises(ConfigError, match=fragment) as info:
            PlanConfig.from_mapping({"objective": "min_drop", "min_speedup": 2, "rerank": node})
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="re-ranking needs objective min_drop"):
        PlanConfig.from_mapping({"rerank": {"enabled": True}})
    assert PlanConfig.from_mapping({"rerank": {"enabled": True, "top": 0}}).rerank.active is False
    cfg = compose("plan", FAST)
    del cfg["optimizer"]
    with pytest.raises(ConfigError, match="optimizer: missing"):
        validate_plan_stage(cfg)
    with pytest.raises(ConfigError, match="optimizer.lr"):
        validate_plan_stage(compose("plan", [*FAST, "optimizer.lr=-1"]))


def _cands(*specs):
    """Candidates (source, cycles) and their probe rows (val_loss, val_acc)."""
    cands = [Candidate(Plan({"a": i}, 0.0, 0, cycles), source) for i, (source, cycles, _, _) in enumerate(specs)]
    rows = [{"probe_val_loss": loss, "probe_val_acc": acc} for _, _, loss, acc in specs]
    return cands, rows


@pytest.mark.parametrize(("margin", "metric", "expected"), [
    (0.0, "val_loss", 0),      # no margin: the best probe wins
    (0.05, "val_loss", 1),     # 0.0581 vs 0.0589 is no clear win: the uniform plan
    (0.01, "val_loss", 0),     # 1.4% lower loss clears a 1% margin
    (0.0, "val_acc", 2),       # highest accuracy, whatever its source
    (0.5, "val_acc", 1),       # 98.9 vs 98.6 does not clear half a point: the uniform plan
])
def test_choose_prefers_the_uniform_plan_on_near_ties(margin, metric, expected):
    cands, rows = _cands(("frontier #1", 1442, 0.0581, 98.6), ("frontier #2+uniform k=1", 1439, 0.0589, 98.6),
                         ("frontier #3", 1500, 0.0700, 98.9))
    assert choose(rows, cands, metric, margin) == expected


def test_choose_takes_a_clear_winner_and_works_without_uniform_candidates():
    cands, rows = _cands(("frontier #1", 1619, 0.0602, 98.6), ("uniform k=1", 1439, 0.0771, 98.4))
    assert choose(rows, cands, "val_loss", 0.05) == 0  # 22% lower loss: clearly better than the uniform plan
    cands, rows = _cands(("frontier #1", 1619, 0.07, 98.0), ("frontier #2", 1500, 0.07, 98.0))
    assert choose(rows, cands, "val_loss", 0.05) == 1  # tie: fewer cycles


@pytest.mark.parametrize(("frontier", "uniform", "metric", "margin", "expected"), [
    # ResNet-20 seed 43: 12% lower probe loss, 0.2 points lower probe accuracy (it ended 0.2 points below uniform k=1
    # after the full fine-tune): the metrics disagree, so the uniform plan
    ((0.03754, 98.6), (0.04247, 98.8), "val_loss", 0.05, 1),
    # LeNet-5 seed 42: lower loss and higher accuracy: the plan
    ((0.05191, 98.8), (0.07560, 98.0), "val_loss", 0.05, 0),
    ((0.05191, 98.0), (0.07560, 98.0), "val_loss", 0.05, 0),   # equal accuracy is no worse
    ((0.05, 99.0), (0.04, 98.0), "val_acc", 0.5, 1),            # more accurate, but a higher loss
    ((0.03, 99.0), (0.04, 98.0), "val_acc", 0.5, 0),
])
def test_choose_with_both_metrics_needs_the_other_metric_no_worse(frontier, uniform, metric, margin, expected):
    cands, rows = _cands(("frontier #1", 1600, *frontier), ("uniform k=1", 1439, *uniform))
    assert choose(rows, cands, metric, margin, both_metrics=True) == expected
    # without both_metrics the first metric alone decides (the margin is cleared in every case above)
    assert choose(rows, cands, metric, margin) == 0
