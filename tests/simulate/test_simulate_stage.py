"""The `simulate` stage end to end on digits with three tiny LeNet-5 checkpoints."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from simulate_helpers import write_three_checkpoints

from bitpruner.errors import ConfigError
from bitpruner.sim.dnnsim_io import load_dnnsim
from bitpruner.sim.engine import simulate_layer
from bitpruner.sim.traces import NetworkTrace
from bitpruner.simulate.stage import simulate

CONFIG_DIR = Path(__file__).resolve().parents[2] / "conf"
DEFAULT_ACCELERATORS = ["Stripes", "BitPragmatic", "Laconic", "BitTacticalE", "PragmaticW-bfs0", "PragmaticW-bfs4",
                        "Bitlet", "BitWave", "BitVert"]
# The three models, then the published bit-level methods applied post-training to the non-pruned one (`project:`).
VARIANTS = ["non-pruned", "weight-pruned", "bit-pruned", "bit-flip (BitWave)", "BBS (BitVert)"]


@pytest.fixture(scope="module")
def default_run(tmp_path_factory, mlflow_db_template):
    """Run the default stage (all accelerators, MLflow on) once on three checkpoints; shared by the module."""
    import shutil

    from hydra import compose, initialize_config_dir

    from bitpruner.config import to_container

    root = tmp_path_factory.mktemp("simulate")
    shutil.copyfile(mlflow_db_template, root / "mlflow.db")
    write_three_checkpoints(root)
    # the train stage's metrics.json carries the 8-bit accuracy: it must be read, not re-evaluated
    (root / "outputs/train/metrics.json").write_text(json.dumps({"test_acc": 99.0, "test_acc_8bit": 91.5}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BITPRUNER_ROOT", str(root))
        with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
            cfg = to_container(compose("simulate", overrides=["data=digits", "progress=false"]))
        metrics = simulate(cfg)
    return root / "outputs/simulate", metrics, root


def test_stage_outputs_and_consistent_tables(default_run):
    out, metrics, _ = default_run
    for name in ("cycles.csv", "comparison.csv", "comparison.md", "variants.csv", "metrics.json", "config.yaml",
                 "speedups.png", "layer_cycles.png"):
        assert (out / name).is_file(), name
    cycles = pd.read_csv(out / "cycles.csv")
    table = pd.read_csv(out / "comparison.csv")
    assert list(dict.fromkeys(cycles["accelerator"])) == DEFAULT_ACCELERATORS
    assert list(dict.fromkeys(table["variant"])) == VARIANTS
    assert len(cycles) == len(VARIANTS) * len(DEFAULT_ACCELERATORS) * 5  # variants x accelerators x LeNet-5 layers
    assert (cycles["compute_cycles"] > 0).all()
    # the default: the mean over 32 test images; cycles.csv keeps the sum and the mean per image
    assert (cycles["samples"] == 32).all() and metrics["samples"] == 32
    assert np.array_equal(cycles["cycles_per_image"], cycles["compute_cycles"] / cycles["samples"])

    # comparison.csv's cycles: per image, i.e. compute cycles summed over layers / images
    totals = cycles.groupby(["variant", "accelerator"])["compute_cycles"].sum() / 32
    rows = table[table["accelerator"] != "geomean"].set_index(["variant", "accelerator"])
    for (variant, accel), row in rows.iterrows():
        assert row["cycles"] == pytest.approx(totals[(variant, accel)], rel=1e-12)
        assert row["speedup_vs_nonpruned"] == pytest.approx(totals[("non-pruned", accel)] / row["cycles"])
        assert row["speedup_vs_weightpruned"] == pytest.approx(totals[("weight-pruned", accel)] / row["cycles"])
    # Stripes ignores the data: every variant costs the same
    assert rows.loc[("bit-pruned", "Stripes"), "speedup_vs_nonpruned"] == 1.0
    # one essential bit per weight: the weight-serial engine speeds up on the bit-pruned model
    assert rows.loc[("bit-pruned", "PragmaticW-bfs0"), "speedup_vs_weightpruned"] > 1.5

    geo = table[table["accelerator"] == "geomean"].set_index("variant")
    for variant in VARIANTS:
        own = rows.loc[variant]
        for key in ("cycles", "speedup_vs_nonpruned", "speedup_vs_weightpruned"):
            expect = math.exp(np.log(own[key].to_numpy()).mean())
            assert geo.at[variant, key] == pytest.approx(expect)
        assert geo.at[variant, "speedup_vs_nonpruned"] == pytest.approx(
            geo.at["non-pruned", "cycles"] / geo.at[variant, "cycles"])

    on_disk = json.loads((out / "details.json").read_text())
    assert on_disk == pytest.approx(metrics)
    headline = json.loads((out / "metrics.json").read_text())
    assert 5 <= len(headline) <= 10 and "speedup_vs_nonpruned/geomean" in headline  # whatever the accelerators
    assert "bit-flip (BitWave)/speedup_vs_nonpruned/geomean" in headline and "BBS (BitVert)/test_acc" in headline
    assert all(on_disk[k] == pytest.approx(v) for k, v in headline.items())
    for _, row in table.iterrows():
        v, a = row["variant"], row["accelerator"]
        assert on_disk[f"{v}/cycles/{a}"] == pytest.approx(row["cycles"])
        if v != "non-pruned":
            assert on_disk[f"{v}/speedup_vs_nonpruned/{a}"] == pytest.approx(row["speedup_vs_nonpruned"])
        if v == "bit-pruned":
            assert on_disk[f"speedup_vs_nonpruned/{a}"] == pytest.approx(row["speedup_vs_nonpruned"])
            assert on_disk[f"speedup_vs_weightpruned/{a}"] == pytest.approx(row["speedup_vs_weightpruned"])
    assert "non-pruned/speedup_vs_nonpruned/Stripes" not in on_disk  # a variant against itself

    md = (out / "comparison.md").read_text()
    assert all(a in md for a in DEFAULT_ACCELERATORS) and "geometric mean" in md
    bp_geo = f"{geo.at['bit-pruned', 'speedup_vs_nonpruned']:.2f}x"
    assert bp_geo in md
    assert "Compute cycles per image (mean over 32 test images, sum over layers)" in md
    assert "| non-pruned cycles / image |" in md and "the first 32 test images of `digits`" in md


def test_variant_statistics_and_accuracy_sources(default_run):
    out, metrics, _ = default_run
    variants = pd.read_csv(out / "variants.csv").set_index("variant")
    assert variants.at["non-pruned", "test_acc"] == 91.5
    assert "test_acc_8bit" in variants.at["non-pruned", "acc_source"]
    assert variants.at["weight-pruned", "acc_source"].startswith("evaluated")  # no metrics.json there
    # the fallback is the traced model's own accuracy, which every variant reports as well
    assert variants.at["weight-pruned", "test_acc"] == variants.at["weight-pruned", "traced_test_acc"]
    assert variants["traced_test_acc"].between(0, 100).all()
    assert 0.0 <= variants.at["weight-pruned", "test_acc"] <= 100.0
    assert variants.at["weight-pruned", "weight_sparsity"] == pytest.approx(0.6, abs=0.02)
    assert variants.at["bit-pruned", "weights_from"] == "meta.int_weights"
    assert variants.at["non-pruned", "weights_from"] == "quantize_weight"
    assert variants.at["bit-pruned", "mean_bits_per_nonzero"] == pytest.approx(1.0)
    assert variants.at["bit-pruned", "bit_sparsity"] > variants.at["weight-pruned", "bit_sparsity"]
    assert metrics["bit-pruned/bit_sparsity"] == pytest.approx(variants.at["bit-pruned", "bit_sparsity"])


def test_published_pruning_variants(default_run):
    """bit-flip (BitWave) and BBS (BitVert): the non-pruned checkpoint's 8-bit integers projected with the configured
    method, traced as projected, their accuracy the traced model's, their sparsity reported like the others."""
    from bitpruner.models.checkpoint import load_model_checkpoint
    from bitpruner.models.layers import prunable_layers
    from bitpruner.prune_bits.bitlevel import bbs_zero_point, bitflip
    from bitpruner.quant.fixed_point import quantize_weight

    out, metrics, root = default_run
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    spec = {v["name"]: v.get("project") for v in cfg["variants"]}
    assert spec["bit-flip (BitWave)"] == {"method": "bitflip", "N": 3, "group": 32}
    assert spec["BBS (BitVert)"] == {"method": "bbs_zero_point", "N": 4, "group": 32, "const_bits": 5}
    variants = pd.read_csv(out / "variants.csv").set_index("variant")
    source, _ = load_model_checkpoint(root / "outputs/train/model.ckpt")
    for name, fn, n in (("bit-flip (BitWave)", bitflip, 3), ("BBS (BitVert)", bbs_zero_point, 4)):
        row = variants.loc[name]
        assert row["acc_source"].startswith("evaluated") and row["test_acc"] == row["traced_test_acc"]
        assert row["weights_from"].startswith("quantize_weight + ") and f"(N={n}, group=32" in row["weights_from"]
        trace = NetworkTrace.load(out / "traces" / name)  # names with spaces and parentheses name folders
        for layer, (lname, module) in zip(trace.layers, prunable_layers(source).items(), strict=True):
            q = quantize_weight(module.weight, {"bits": 8}).q
            expect = fn(q, n, 32, grouping="lanes", narrow_range=True).numpy()
            assert layer.name == lname
            assert np.array_equal(layer.weights, np.swapaxes(expect, 2, 3) if expect.ndim == 4 else expect)
            assert not np.array_equal(expect, q.numpy()) or lname == "conv1"
        assert metrics[f"{name}/bit_sparsity"] == pytest.approx(row["bit_sparsity"])
        assert metrics[f"{name}/weight_sparsity"] == pytest.approx(row["weight_sparsity"])
    # bit-flip keeps zeros and only clears bits; zero-point keeps no zeros (as published)
    assert variants.at["bit-flip (BitWave)", "bit_sparsity"] > variants.at["non-pruned", "bit_sparsity"]
    assert variants.at["bit-flip (BitWave)", "weight_sparsity"] >= variants.at["non-pruned", "weight_sparsity"]
    table = pd.read_csv(out / "comparison.csv").set_index(["variant", "accelerator"])
    if "BitWave" in DEFAULT_ACCELERATORS:  # its cost: non-zero magnitude columns; bit-flip only clears columns
        assert table.loc[("bit-flip (BitWave)", "BitWave"), "speedup_vs_nonpruned"] >= 1.0
    md = (out / "comparison.md").read_text()
    assert "| bit-flip (BitWave) |" in md and "BBS (BitVert) vs non-pruned" in md


def test_traces_written_in_both_formats(default_run):
    import torch

    out, _, root = default_run
    payload = torch.load(root / "outputs/prune_bits/model.ckpt", weights_only=False)
    ours = NetworkTrace.load(out / "traces/bit-pruned")
    dnnsim = load_dnnsim(out / "traces/dnnsim", "bit-pruned")
    assert [layer.name for layer in ours.layers] == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    for a, b in zip(ours.layers, dnnsim.layers, strict=True):
        assert np.array_equal(a.weights, b.weights) and np.array_equal(a.activations, b.activations)
        assert (a.stride, a.pad, a.act_prec, a.wgt_prec) == (b.stride, b.pad, b.act_prec, b.wgt_prec)
        stored = payload["meta"]["int_weights"][a.name]["q"].numpy()
        assert np.array_equal(a.weights, np.swapaxes(stored, 2, 3) if stored.ndim == 4 else stored)


def test_mlflow_run_logged(default_run):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{default_run[2] / 'mlflow.db'}")
    exp = client.get_experiment_by_name("bitpruner")
    runs = client.search_runs([exp.experiment_id], filter_string="tags.stage = 'simulate'")
    assert len(runs) == 1
    run = runs[0]
    assert run.data.tags["model"] == "lenet5" and run.data.tags["dataset"] == "digits"
    assert "final/speedup_vs_nonpruned/geomean" in run.data.metrics
    from bitpruner.tracking.names import mlflow_key

    # variant names with spaces and parentheses reach MLflow as sanitized keys
    assert mlflow_key("final/BBS (BitVert)/test_acc") == "final/BBS _BitVert_/test_acc"
    assert "final/BBS _BitVert_/test_acc" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"comparison.md", "comparison.csv", "cycles.csv", "speedups.png"} <= artifacts


def test_optional_variants_may_be_absent(compose, tmp_path):
    paths = write_three_checkpoints(tmp_path)
    paths["prune_bits"].unlink()
    paths["prune_weights"].unlink()
    cfg = compose("simulate", ["data=digits", "logger=none", "progress=false", "samples=3", "traced_accuracy=false",
                               "~accelerator@accelerators.bitpragmatic", "~accelerator@accelerators.laconic",
                               "~accelerator@accelerators.bittacticale", "~accelerator@accelerators.pragmaticw_bfs4",
                               "~accelerator@accelerators.bitlet", "~accelerator@accelerators.bitwave",
                               "~accelerator@accelerators.bitvert"])
    metrics = simulate(cfg)
    out = tmp_path / "outputs/simulate"
    table = pd.read_csv(out / "comparison.csv")
    assert set(table["variant"]) == {"non-pruned", "bit-flip (BitWave)", "BBS (BitVert)"}  # the last two: train's
    assert list(table[table["variant"] == "non-pruned"]["accelerator"]) == ["Stripes", "PragmaticW-bfs0", "geomean"]
    assert table["speedup_vs_weightpruned"].isna().all()
    assert "non-pruned/cycles/PragmaticW-bfs0" in metrics
    # three images traced; compute_cycles add up over them, the table's cycles are per image (Stripes does not
    # look at the data: 3x one image in all, one image's cycles per image)
    trace = NetworkTrace.load(out / "traces/non-pruned")
    assert all(layer.activations.shape[0] == 3 for layer in trace.layers)
    cycles = pd.read_csv(out / "cycles.csv")
    assert (cycles["samples"] == 3).all() and metrics["samples"] == 3
    assert np.array_equal(cycles["cycles_per_image"], cycles["compute_cycles"] / 3)
    own = cycles[cycles["variant"] == "non-pruned"]
    stripes = own[own["accelerator"] == "Stripes"].set_index("layer")
    for layer in trace.layers:
        assert stripes.at[layer.name, "compute_cycles"] == 3 * simulate_layer(layer, "Stripes", samples=1)
    rows = table.set_index(["variant", "accelerator"])
    for accel in ("Stripes", "PragmaticW-bfs0"):
        per_layer = own[own["accelerator"] == accel]
        assert rows.at[("non-pruned", accel), "cycles"] == pytest.approx(per_layer["compute_cycles"].sum() / 3)
        assert metrics[f"non-pruned/cycles/{accel}"] == pytest.approx(per_layer["compute_cycles"].sum() / 3)
    # a weight-serial design's cycles per image do not depend on the image: 3 images give 1 image's figure
    from bitpruner.sim.accelerators import accelerator_from_config

    accel = accelerator_from_config(yaml.safe_load((CONFIG_DIR / "accelerator/pragmaticw_bfs0.yaml").read_text()))
    bfs0 = own[own["accelerator"] == "PragmaticW-bfs0"].set_index("layer")
    for layer in trace.layers:
        assert bfs0.at[layer.name, "cycles_per_image"] == simulate_layer(layer, accel.arch, accel.params, samples=1)
    # an activation-serial one looks at the activations: the mean over 3 images is not the first image's
    first = [simulate_layer(layer, "BitPragmatic", samples=1) for layer in trace.layers]
    mean = [simulate_layer(layer, "BitPragmatic", samples=3) / 3 for layer in trace.layers]
    assert first != pytest.approx(mean)


@pytest.mark.parametrize("overrides, match", [
    ([], "outputs/train/model.ckpt does not exist"),
    (["samples=0"], "samples: got 0"),
    (["baseline=nope"], "baseline: got 'nope'"),
    (["accelerators.stripes.arch=Nope"], "accelerators.stripes: simulator arch='Nope'"),
    (["+accelerators.stripes.lanez=4"], r"unknown key\(s\) \['lanez'\]"),
    (["accelerators.laconic.name=Stripes"], "used more than once"),
    (["bits.activations=17"], "bits.activations"),
])
def test_bad_configs_fail_before_work(compose, overrides, match):
    cfg = compose("simulate", ["data=digits", "logger=none", *overrides])
    with pytest.raises(ConfigError, match=match):
        simulate(cfg)


def test_accelerator_group_serves_prune_bits():
    """Every conf/accelerator file parses; pragmaticw_bfs0 carries the keys the bit-pruning stage reads."""
    from bitpruner.sim.accelerators import accelerator_from_config
    from bitpruner.sim.designs import ARCHS

    conf = CONFIG_DIR / "accelerator"

    names = set()
    for path in sorted(conf.glob("*.yaml")):
        accel = accelerator_from_config(yaml.safe_load(path.read_text()), path.name)
        names.add(accel.arch)
        assert accel.params.lanes == 16 and accel.params.tiles == 16
    assert names == set(ARCHS)  # every architecture the simulator knows
    target = yaml.safe_load((conf / "pragmaticw_bfs0.yaml").read_text())
    assert {"name", "arch", "lanes", "columns", "rows", "tiles", "pe_width", "bits_first_stage",
            "column_registers", "booth"} <= set(target)
    assert target["bits_first_stage"] == 0 and target["arch"] == "PragmaticW"


def test_compare_cli_rebuilds_against_another_reference(default_run, tmp_path, monkeypatch, capsys):
    import bitpruner.cli

    monkeypatch.setattr(bitpruner.cli, "SUBCOMMAND_MODULES", ("bitpruner.reports.cli",))
    out, _, _ = default_run
    assert bitpruner.cli.main(["compare", str(out), "--baseline", "weight-pruned", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "geometric mean" in printed
    # one reference now, given once: no column repeats (the second reference was the same variant)
    for header in (line for line in printed.splitlines() if line.startswith("| accelerator")):
        cells = [c.strip() for c in header.strip("|").split("|")]
        assert len(cells) == len(set(cells)), cells
    again = pd.read_csv(tmp_path / "comparison.csv").set_index(["variant", "accelerator"])
    assert again["speedup_vs_weightpruned"].isna().all()
    first = pd.read_csv(out / "comparison.csv").set_index(["variant", "accelerator"])
    # the weight-pruned model is now the baseline: its speedups became the new "vs non-pruned" column
    assert np.allclose(again["speedup_vs_nonpruned"], first["speedup_vs_weightpruned"])
    assert bitpruner.cli.main(["compare", str(out), "--baseline", "nope"]) == 1
    assert "--baseline 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("change, match", [
    (lambda c: c["variants"][3]["project"].update(N=9), r"variants\[3\]\.project\.N: got 9"),
    (lambda c: c["variants"][3]["project"].update(method="bitflop"), "project.method: got 'bitflop'"),
    (lambda c: c["variants"][4].update(acc_key="test_acc"), "expected metrics and acc_key null"),
    (lambda c: c["bits"].update(weights=6), r"bits.weights=6: the `project` of variant\(s\)"),
])
def test_bad_project_variants_fail_before_work(compose, change, match):
    from bitpruner.simulate.config import validate_simulate

    cfg = compose("simulate", ["data=digits", "logger=none"])
    assert cfg["variants"][3]["name"] == "bit-flip (BitWave)"
    change(cfg)
    with pytest.raises(ConfigError, match=match):
        validate_simulate(cfg)


def test_project_variant_shape_errors_name_the_variant(compose, tmp_path):
    write_three_checkpoints(tmp_path)
    cfg = compose("simulate", ["data=digits", "logger=none", "progress=false", "traced_accuracy=false"])
    cfg["variants"] = [cfg["variants"][0], {**cfg["variants"][3], "project": {"method": "bitflip", "N": 3,
                                                                             "group": 5, "grouping": "flat"}}]
    # fc1 [16, 32]: 512 weights are no multiple of 5
    with pytest.raises(ConfigError, match=r"variants\['bit-flip \(BitWave\)'\]\.project: layer 'fc1'"):
        simulate(cfg)
