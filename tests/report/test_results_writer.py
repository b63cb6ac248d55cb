"""The cross-network results writer (bitpruner.reports.results) and its CLI on synthetic compare folders."""

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from bitpruner.errors import DataError
from bitpruner.reports.results import (
    PLAN_COLUMNS,
    RESULTS_COLUMNS,
    Targets,
    evaluate_targets,
    plan_budget,
    read_compare,
    uniform_fits,
    write_results,
)
from bitpruner.reports.seeds import aggregate, long_table, read_seed_runs
from compare.seed_folders import ACCELS, VARIANTS, write_seeds

PIPELINE = Path(__file__).resolve().parents[2] / "pipelines" / "results.py"
SEEDS = (42, 43)
# Every figure the targets read fixed per seed (no noise), so each test moves one across its threshold.
FIXED = {"non-pruned": {"test_acc": 97.7, "factor": 1.0}, "weight-pruned": {"test_acc": 97.6, "factor": 1.0},
         "uniform-k1": {"test_acc": 96.0, "factor": 0.15}, "uniform-k2": {"test_acc": 97.0, "factor": 0.30}}


def compare_folder(root: Path, name: str = "net", seeds=SEEDS, weight_pruned: dict | None = None,
                   **bit_pruned) -> Path:
    """A compare stage output folder (its comparison.csv) of synthetic seeds; `bit_pruned` (and `weight_pruned`)
    override that variant's figures (test_acc, bit_sparsity, factor = cycles / non-pruned cycles on PragmaticW)."""
    overrides = {**FIXED, "bit-pruned": {"test_acc": 97.5, "bit_sparsity": 0.985, "factor": 0.2, **bit_pruned}}
    if weight_pruned:
        overrides["weight-pruned"] = {**FIXED["weight-pruned"], **weight_pruned}
    runs = read_seed_runs(write_seeds(root / name, seeds, overrides=overrides))
    out = root / name / "outputs" / "compare"
    out.mkdir(parents=True)
    long_table(runs.per_seed, aggregate(runs.per_seed, runs.images)).to_csv(out / "comparison.csv", index=False)
    return out


def verdicts(folder: Path, budgets: dict | None = None) -> dict[str, bool | None]:
    net = read_compare("net", folder)
    net.budgets = budgets
    return {v.key: v.met for v in evaluate_targets(net, Targets(), "PragmaticW-bfs0")}


def test_exact_columns_and_rows(tmp_path):
    folders = {"lenet5": compare_folder(tmp_path, "a"), "resnet20": compare_folder(tmp_path, "b")}
    out = tmp_path / "results"
    write_results(folders, out)
    results = pd.read_csv(out / "results.csv")
    assert list(results.columns) == list(RESULTS_COLUMNS)
    assert len(results) == 2 * len(VARIANTS) * len(ACCELS) and "geomean" not in set(results["accelerator"])
    assert set(results["seeds"]) == {2} and set(results["images"]) == {4}
    row = results[(results["network"] == "lenet5") & (results["variant"] == "bit-pruned")
                  & (results["accelerator"] == "PragmaticW-bfs0")].iloc[0]
    assert row["speedup_vs_nonpruned_mean"] == pytest.approx(5.0, rel=1e-3) and row["test_acc_sd"] == 0
    plans = pd.read_csv(out / "plan_vs_uniform.csv")
    assert list(plans.columns) == list(PLAN_COLUMNS)
    assert plans[plans["network"] == "lenet5"]["budget"].tolist() == ["plan", "uniform-k1", "uniform-k2"]
    plan = plans.iloc[0]
    assert plan["cycles"] == pytest.approx(800 * 0.2, abs=0.5) and plan["seeds"] == 2
    text = (out / "results.md").read_text()
    assert "## lenet5" in text and "## resnet20" in text and "over 2 seeds (42, 43)" in text
    for name in ("lenet5", "resnet20"):
        for png in (f"speedup_{name}.png", f"accuracy_vs_bit_sparsity_{name}.png"):
            assert f"]({png})" in text and (out / png).read_bytes()[:4] == b"\x89PNG"
    assert "**met**" in text and "**not met**" not in text


@pytest.mark.parametrize(("bit_pruned", "expected"), [
    ({}, {"bit_sparsity": True, "speedup_vs_nonpruned": True, "speedup_vs_weightpruned": True}),
    ({"bit_sparsity": 0.979}, {"bit_sparsity": False}),        # sparsity just under 98%
    ({"test_acc": 97.39}, {"bit_sparsity": False}),            # 0.31 points lost
    ({"test_acc": 97.41}, {"bit_sparsity": True}),             # 0.29 points lost
    ({"factor": 1 / 3.9}, {"speedup_vs_nonpruned": False, "speedup_vs_weightpruned": True}),
    ({"factor": 1 / 4.1}, {"speedup_vs_nonpruned": True}),
    ({"factor": 1 / 3.4}, {"speedup_vs_weightpruned": False}),
])
def test_target_verdicts_flip_at_thresholds(tmp_path, bit_pruned, expected):
    got = verdicts(compare_folder(tmp_path, **bit_pruned))
    assert {k: got[k] for k in expected} == expected


def test_weight_pruned_speedup_target_flips(tmp_path):
    # weight-pruned at 0.85 of the non-pruned cycles: bit-pruned 5x vs non-pruned, 5 * 0.85 = 4.25x vs weight-pruned
    got = verdicts(compare_folder(tmp_path, "a", weight_pruned={"factor": 0.85}))
    assert got["speedup_vs_nonpruned"] is True and got["speedup_vs_weightpruned"] is True
    # 4.2x vs non-pruned, 4.2 * 0.8 = 3.36x vs weight-pruned: only the second fails
    got = verdicts(compare_folder(tmp_path, "b", weight_pruned={"factor": 0.8}, factor=1 / 4.2))
    assert got["speedup_vs_nonpruned"] is True and got["speedup_vs_weightpruned"] is False


def test_plan_vs_uniform_fit_logic(tmp_path):
    # plan: 160 cycles/image on PragmaticW-bfs0; uniform-k1: 120 cycles, 96.0%; uniform-k2: 240 cycles, 97.0%
    folder = compare_folder(tmp_path, "a", test_acc=96.5)
    net = read_compare("net", folder)
    assert uniform_fits(net, "PragmaticW-bfs0") == {1: [True, True], 2: [False, False]}  # the plan's own cycles
    net.budgets = {42: 250.0, 43: 100.0}  # budgets differ by seed: each seed's own
    assert uniform_fits(net, "PragmaticW-bfs0") == {1: [True, False], 2: [True, False]}
    # uniform-k2 (97.0%) beats the plan (96.5%): it counts only when within the budget of every seed
    assert verdicts(folder)["plan_vs_uniform"] is True  # only k1 (96.0%) fits the plan's own cycles
    assert verdicts(folder, {42: 250.0, 43: 250.0})["plan_vs_uniform"] is False
    assert verdicts(folder, {42: 250.0, 43: 200.0})["plan_vs_uniform"] is True
    # the plan less accurate than k1, which fits: not met
    assert verdicts(compare_folder(tmp_path, "b", test_acc=95.9))["plan_vs_uniform"] is False
    # no uniform variants: nothing to judge
    runs = read_seed_runs(write_seeds(tmp_path / "c", SEEDS, variants=("non-pruned", "weight-pruned", "bit-pruned")))
    out = tmp_path / "c" / "cmp"
    out.mkdir()
    long_table(runs.per_seed, aggregate(runs.per_seed, runs.images)).to_csv(out / "comparison.csv", index=False)
    assert verdicts(out)["plan_vs_uniform"] is None


def test_plan_budget_from_plan_file(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("layers: {conv1: 2}\nconstraint: cycles <= 1850\npredicted_cycles: 1790\n")
    assert plan_budget(path) == 1850.0
    path.write_text("layers: {conv1: 2}\nconstraint: predicted drop <= 0.5\npredicted_cycles: 1790\n")
    assert plan_budget(path) == 1790.0
    path.write_text("layers: {conv1: 2}\nconstraint: predicted drop <= 0.5\n")
    with pytest.raises(DataError, match="plan.yaml"):
        plan_budget(path)
    with pytest.raises(DataError, match="nope.yaml"):
        plan_budget(tmp_path / "nope.yaml")


def load_cli():
    spec = importlib.util.spec_from_file_location("results_cli", PIPELINE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_writes_results_and_reports_errors_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BITPRUNER_ROOT", str(tmp_path))
    cli = load_cli()
    folder = compare_folder(tmp_path, "a", test_acc=96.5)
    plans = tmp_path / "plans"
    for seed in SEEDS:
        (plans / f"seed{seed}").mkdir(parents=True)
        (plans / f"seed{seed}" / "plan.yaml").write_text("layers: {x: 1}\nconstraint: cycles <= 250\n")
    out = tmp_path / "results"
    argv = ["--network", f"lenet5={folder}", "--plan-file", f"lenet5={plans}/seed{{seed}}/plan.yaml",
            "--plan-accelerator", "PragmaticW-bfs0", "--out", str(out)]
    assert cli.main(argv) == 0
    text = (out / "results.md").read_text()
    assert "**not met**" in text and "250, 250" in text  # uniform-k2 fits 250 and beats the plan
    assert "lenet5: not met: plan (bit-pruned)" in capsys.readouterr().out
    assert cli.main([*argv[:4], "--plan-accelerator", "Nope", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--plan-accelerator 'Nope'" in err and "PragmaticW-bfs4" in err
    assert cli.main(["--network", f"x={tmp_path / 'missing'}", "--out", str(out)]) == 1
    assert str(tmp_path / "missing" / "comparison.csv") in capsys.readouterr().err


def test_pragmatic_speedup_is_mean_of_per_seed_geomeans(tmp_path):
    import numpy as np

    from bitpruner.reports.results import pragmatic_speedup

    folders = write_seeds(tmp_path, (1, 2, 3))  # noisy seeds: per-seed figures differ
    runs = read_seed_runs(folders)
    out = tmp_path / "cmp"
    out.mkdir()
    long_table(runs.per_seed, aggregate(runs.per_seed, runs.images)).to_csv(out / "comparison.csv", index=False)
    net = read_compare("net", out)
    accels = ("PragmaticW-bfs0", "PragmaticW-bfs4")
    for column in ("speedup_vs_nonpruned", "speedup_vs_weightpruned"):
        per_seed = []
        for folder in folders.values():
            raw = pd.read_csv(folder / "comparison.csv").set_index(["variant", "accelerator"])
            per_seed.append(np.sqrt(np.prod([raw.at[("bit-pruned", a), column] for a in accels])))
        mean, sd = pragmatic_speedup(net, "bit-pruned", column, accels)
        assert mean == pytest.approx(np.mean(per_seed), rel=1e-12) and sd == pytest.approx(np.std(per_seed, ddof=1))


def test_predicted_cycles_set_beside_simulated(tmp_path):
    # the plan (bit-pruned) simulates 160 cycles per image on PragmaticW-bfs0 in both seeds (compare_folder)
    folder = compare_folder(tmp_path, "a")
    for seed, predicted in zip(SEEDS, (160, 159), strict=True):
        (tmp_path / "plans" / str(seed)).mkdir(parents=True)
        (tmp_path / "plans" / str(seed) / "plan.yaml").write_text(
            f"layers: {{x: 1}}\nconstraint: cycles <= 250\npredicted_cycles: {predicted}\n")
    out = tmp_path / "results"
    write_results({"net": folder}, out, plan_files={"net": str(tmp_path / "plans" / "{seed}" / "plan.yaml")})
    text = (out / "results.md").read_text()
    assert "predicted cycles (plan.yaml) / simulated after fine-tuning, per seed: 160 / 160, 159 / 160 " \
           "(equal in 1 of 2 seeds)" in text
    write_results({"net": folder}, out)  # without plan files: no such sentence
    assert "predicted cycles" not in (out / "results.md").read_text()
