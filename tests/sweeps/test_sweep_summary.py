"""Sweep summary pieces: key metrics of each stage's runs, the Pareto mask, the table and plot."""

import itertools
import math
import random

import pandas as pd

from bitpruner.entry import run_stage
from bitpruner.sweeps.summary import key_metrics, pareto_mask, plot_tradeoff, summary_markdown, summary_table
from helpers.naive import pareto_keep


def test_key_metrics_of_prune_bits_and_simulate_runs():
    prune_bits = {"final/test_acc": 95.0, "final/bit_sparsity": 0.7, "final/column_proxy_speedup_vs_input": 1.5,
                  "final/k/conv1": 2.0, "final/val_acc": 96.0, "epoch": 3.0}
    assert key_metrics(prune_bits) == {"test_acc": 95.0, "bit_sparsity": 0.7, "column_proxy_speedup_vs_input": 1.5}
    simulate = {"final/bit-pruned/test_acc": 94.0, "final/non-pruned/test_acc": 97.0,
                "final/bit-pruned/bit_sparsity": 0.8, "final/speedup_vs_nonpruned/geomean": 2.5,
                "final/speedup_vs_nonpruned/stripes": 1.0, "final/bit-pruned/speedup_vs_nonpruned/geomean": 2.5}
    assert key_metrics(simulate, headline="bit-pruned") == {
        "test_acc": 94.0, "bit_sparsity": 0.8, "speedup_vs_nonpruned/geomean": 2.5}


def test_pareto_mask_matches_brute_force():
    rng = random.Random(0)
    for n in range(1, 8):
        points = [(rng.randint(0, 4), rng.randint(0, 4)) for _ in range(n)]
        x, y = zip(*points, strict=True)
        assert pareto_mask(list(x), list(y)) == pareto_keep(points)
    # Distinct points on a staircase are all kept; a point below-left of another is dropped.
    assert pareto_mask([1, 2, 3, 0.5], [3, 2, 1, 0.5]) == [True, True, True, False]
    assert all(itertools.starmap(lambda a, b: a is b, zip(pareto_mask([1.0], [1.0]), [True], strict=True)))


def test_summary_table_markdown_and_plot(tmp_path):
    rows = [{"job": 0, "overrides": "prune_bits.k=1", "status": "FINISHED", "run_id": "a", "test_acc": 90.0,
             "bit_sparsity": 0.8, "column_proxy_speedup_vs_input": 2.0},
            {"job": 1, "overrides": "prune_bits.k=2", "status": "FINISHED", "run_id": "b", "test_acc": 95.0,
             "bit_sparsity": 0.6, "column_proxy_speedup_vs_input": 1.4},
            {"job": 2, "overrides": "prune_bits.k=3", "status": "FAILED", "run_id": "c", "error": "ValueError: x"}]
    table = summary_table(rows)
    assert list(table.columns) == ["job", "overrides", "status", "run_id", "test_acc", "bit_sparsity",
                                   "column_proxy_speedup_vs_input", "error"]
    assert math.isnan(table.loc[2, "test_acc"])
    md = summary_markdown(table, "Sweep", ["data=digits"])
    assert "2 of 3 jobs finished. Every job: `data=digits`." in md
    assert "| 0 | `prune_bits.k=1` | FINISHED | 90.00 | 80.00% | 2.00x | – |" in md
    assert "run_id" not in md
    png = plot_tradeoff(table, tmp_path / "t.png", "Sweep")
    assert png.stat().st_size > 1000
    assert plot_tradeoff(pd.DataFrame({"job": [0], "test_acc": [1.0], "bit_sparsity": [math.nan]}),
                         tmp_path / "none.png", "x") is None


def test_run_stage_outside_a_multirun_still_raises():
    def broken(cfg):
        raise RuntimeError("boom")

    try:
        run_stage(broken, {})
    except RuntimeError as exc:
        assert str(exc) == "boom"
    else:
        raise AssertionError("run_stage swallowed an error outside a multirun")


def test_collect_tabulates_cell_folders(tmp_path, capsys):
    import json

    from bitpruner.sweeps.collect import main

    for name, acc, sparsity in (("k1-per_weight", 90.0, 0.8), ("k2-per_weight", 95.0, 0.6)):
        (tmp_path / "cells" / name).mkdir(parents=True)
        (tmp_path / "cells" / name / "metrics.json").write_text(json.dumps(
            {"test_acc": acc, "bit_sparsity": sparsity, "column_proxy_speedup_vs_input": 2.0, "k": {"fc1": 1}}))
    assert main([str(tmp_path / "cells"), "--out", str(tmp_path / "out")]) == 0
    table = pd.read_csv(tmp_path / "out" / "sweep_summary.csv")
    assert list(table["overrides"]) == ["k1-per_weight", "k2-per_weight"]
    assert list(table["test_acc"]) == [90.0, 95.0] and list(table["column_proxy_speedup_vs_input"]) == [2.0, 2.0]
    assert (tmp_path / "out" / "sweep_tradeoff.png").is_file()
    assert main([str(tmp_path / "nothing"), "--out", str(tmp_path / "out")]) == 1
    assert "no <cell>/metrics.json" in capsys.readouterr().err
