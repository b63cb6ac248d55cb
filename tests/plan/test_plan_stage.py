"""The `plan` stage end to end on `digits`: tables, plan file prune_bits accepts, constraint met, MLflow, CLI."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from bitpruner.errors import ConfigError
from bitpruner.models.checkpoint import build_from_config, load_model_checkpoint, save_model_checkpoint
from bitpruner.models.layers import prunable_layers
from bitpruner.plan import stage as plan_stage
from bitpruner.prune_bits.config import BitPruneConfig

LENET = {"_target_": "bitpruner.models.LeNet5", "name": "lenet5", "channels": [6, 16], "hidden": [32, 24]}
DIGITS = {"in_channels": 1, "image_size": [8, 8], "num_classes": 10}
CONF = Path(__file__).resolve().parents[2] / "conf"
# Re-ranking (a fine-tune per candidate) has its own tests (test_plan_rerank.py); these cover the frontier's choice.
FAST = ["data=digits", "calibration.batches=1", "plan.candidates=[1,2,7]", "plan.rerank.enabled=false"]


@pytest.fixture(scope="module")
def input_ckpt(tmp_path_factory):
    """A LeNet-5 for digits, briefly trained (so projections move its accuracy), a third of its weights zero."""
    from bitpruner.data import DigitsDataModule

    torch.manual_seed(0)
    model = build_from_config(LENET, DIGITS)
    dm = DigitsDataModule(batch_size=128, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(2):
        for x, y in dm.train_dataloader():
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    with torch.no_grad():
        for layer in prunable_layers(model).values():
            layer.weight[torch.rand_like(layer.weight) < 1 / 3] = 0.0
    path = tmp_path_factory.mktemp("pw") / "model.ckpt"
    return save_model_checkpoint(path, model, LENET, DIGITS, meta={"dataset": "digits"})


@pytest.fixture
def rooted(input_ckpt, tmp_path):
    target = tmp_path / "outputs" / "prune_weights" / "model.ckpt"
    target.parent.mkdir(parents=True)
    target.write_bytes(input_ckpt.read_bytes())
    return target


def test_plan_stage_outputs(rooted, compose, tmp_path):
    cfg = compose("plan", [*FAST, "plan.objective=min_cycles", "plan.max_drop=1.0", "samples=2",
                           "plan.modes=[per_weight,group_columns]"])
    metrics = plan_stage.plan(cfg)
    out = tmp_path / "outputs" / "plan"
    assert json.loads((out / "details.json").read_text()) == metrics
    headline = json.loads((out / "metrics.json").read_text())
    assert 5 <= len(headline) <= 10 and all(metrics[k] == v for k, v in headline.items())
    names = list(prunable_layers(load_model_checkpoint(rooted)[0]))

    table = pd.read_csv(out / "sensitivity.csv")
    assert len(table) == len(names) * 2 * 3  # layers x modes x k
    unprojected = table[table["k"] == 7]
    assert (unprojected["drop"] == 0).all() and (unprojected["loss_increase"] == 0).all()
    assert table.groupby("layer")["drop"].max().max() > 0  # some projection hurts a trained model
    for (_, mode), part in table.groupby(["layer", "mode"]):
        cycles = part.sort_values("k")["cycles"].tolist()
        assert cycles[-1] == part[part["k"] == 7]["cycles"].item()
        if mode == "group_columns":  # a bit-column engine spends <= k columns per lane group
            assert cycles == sorted(cycles)

    # The plan file is exactly what prune_bits reads, and the chosen plan meets its constraint.
    doc = yaml.safe_load((out / "plan.yaml").read_text())
    assert list(doc["layers"]) == names and doc["mode"] == "group_columns"
    assert BitPruneConfig(plan_file=str(out / "plan.yaml")).layer_k(names, 8) == doc["layers"] == metrics["k"]
    gc = table[table["mode"] == "group_columns"].set_index(["layer", "k"])
    predicted = sum(max(gc.at[(n, k), "drop"], 0.0) for n, k in doc["layers"].items())
    assert doc["predicted_drop"] == pytest.approx(predicted, abs=1e-6) and predicted <= 1.0 + 1e-9
    assert doc["predicted_cycles"] == sum(gc.at[(n, k), "cycles"] for n, k in doc["layers"].items())
    assert doc["unpruned_cycles"] == doc["uniform"][7]["predicted_cycles"]
    assert set(doc["uniform"]) == {1, 2, 7}

    frontier = pd.read_csv(out / "frontier.csv")
    assert set(frontier["mode"]) == {"per_weight", "group_columns"}
    for _, part in frontier.groupby("mode"):  # non-dominated: drop up, cycles strictly down
        assert part["predicted_drop"].is_monotonic_increasing and part["cycles"].is_monotonic_decreasing
        assert part["cycles"].is_unique
    chosen = frontier[frontier["chosen"]]
    assert len(chosen) == 1 and chosen["cycles"].item() == doc["predicted_cycles"]
    feasible = frontier[(frontier["mode"] == "group_columns") & (frontier["predicted_drop"] <= 1.0 + 1e-9)]
    assert chosen["cycles"].item() == feasible["cycles"].min()
    assert (out / "frontier.png").read_bytes()[:4] == b"\x89PNG"

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("bitpruner")
    (run,) = client.search_runs([experiment.experiment_id], filter_string="tags.stage = 'plan'")
    assert run.data.metrics["final/predicted_cycles"] == metrics["predicted_cycles"]
    assert {"plan.yaml", "frontier.csv", "frontier.png", "sensitivity.csv"} <= {
        a.path for a in client.list_artifacts(run.info.run_id)}

    # k = 7 is the simulate stage's 8-bit model: the same trace gives the same cycles per layer.
    from bitpruner.sim.accelerators import accelerator_from_config
    from bitpruner.sim.capture import first_samples, quantize_model
    from bitpruner.sim.engine import simulate_network
    from bitpruner.training.builders import build_datamodule

    dm = build_datamodule(cfg)
    model, _ = load_model_checkpoint(rooted)
    trace = quantize_model(model, dm.calibration_batches(1)).capture(first_samples(dm.dataset("test"), 2))
    accel = accelerator_from_config(cfg["accelerator"])
    want = {r.name: r.compute_cycles for r in simulate_network(trace, accel.arch, accel.params, samples=2)}
    assert unprojected[unprojected["mode"] == "per_weight"].set_index("layer")["cycles"].to_dict() == want


def test_min_drop_objective_and_errors(rooted, compose):
    cfg = compose("plan", ["data=digits", "calibration.batches=1", "logger=none", "plan.candidates=[1,7]",
                           "plan.rerank.enabled=false",
                           "plan.modes=[per_weight]", "plan.mode=per_weight", "plan.objective=min_drop",
                           "plan.min_speedup=2"])
    metrics = plan_stage.plan(cfg)
    assert metrics["predicted_speedup"] >= 2 and metrics["mode"] == "per_weight"

    with pytest.raises(ConfigError, match="infeasible, the cheapest plan takes"):
        plan_stage.plan(compose("plan", [*FAST, "logger=none", "plan.objective=min_drop",
                                         "plan.min_speedup=null", "plan.max_cycles=1"]))
    for override, fragment in [
        ("plan.candidates=[1,8]", r"k=\[8\] exceed 7"),
        ("plan.mode=group_budget", "plan.mode='group_budget'"),
        ("plan.max_cycles=100", "exactly one of min_speedup and max_cycles"),
        ("+plan.bogus=1", "unknown key"),
        ("input_ckpt=/nonexistent.ckpt", "nonexistent"),
    ]:
        with pytest.raises((ConfigError, FileNotFoundError), match=fragment):
            plan_stage.plan(compose("plan", [*FAST, "logger=none", override]))


def test_cli_plans_a_given_checkpoint(rooted, compose, tmp_path, capsys):
    from bitpruner.cli import main

    data = compose("plan", ["data=digits"])["data"]
    (rooted.parent / "config.yaml").write_text(yaml.safe_dump({"seed": 0, "data": data}))
    out = tmp_path / "cli_plan"
    argv = ["plan", "--model", str(rooted), "--candidates", "1,7", "--mode", "per_weight", "--min-speedup", "1.5",
            "--out", str(out), "--accelerator", str(CONF / "accelerator" / "pragmaticw_bfs4.yaml")]
    assert main(argv) == 0
    doc = yaml.safe_load((out / "plan.yaml").read_text())
    assert doc["mode"] == "per_weight" and doc["objective"] == "min_drop" and doc["accelerator"] == "PragmaticW-bfs4"
    assert doc["predicted_speedup"] >= 1.5 and set(doc["layers"].values()) <= {1, 7}
    assert {p.name for p in out.iterdir()} >= {"plan.yaml", "sensitivity.csv", "frontier.csv", "frontier.png"}

    assert main([*argv[:-2], "--accelerator", "nosuch"]) == 1
    assert "no conf/accelerator/nosuch.yaml" in capsys.readouterr().err
