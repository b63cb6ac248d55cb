"""The `prune_weights` stage: AGP magnitude pruning + fine-tuning of the `train` stage's model.

One Lightning `fit` does both (the pruning callback recomputes masks at epoch starts) and resumes from its
own `last.ckpt`. Writes the squashed `model.ckpt` (plain weights with zeros), `metrics.json`,
`layer_sparsity.csv`, `layer_sparsity.png` and `config.yaml`. The sequence is
`bitpruner.skeleton.fit.run_fit_stage`; only what is this stage's own lives here.
"""

from __future__ import annotations

import lightning as L
from torch import nn

from bitpruner.models.layers import prunable_layers
from bitpruner.prune_weights.callback import MagnitudePruningCallback
from bitpruner.prune_weights.config import PruningConfig, plan_layers
from bitpruner.prune_weights.masks import squash
from bitpruner.prune_weights.pruner import overall_sparsity, sparsity_by_layer
from bitpruner.prune_weights.report import layer_sparsity_table, plot_layer_sparsity, print_layer_sparsity
from bitpruner.skeleton.fit import FitContext, FitStage, load_for_fine_tuning, run_fit_stage
from bitpruner.training.evaluate import quantized_metrics, split_metrics
from bitpruner.training.module import ClassifierModule
from bitpruner.utils.atomic import write_csv

LAYER_KINDS = ("conv2d", "linear")


def sparsity_metrics(model: nn.Module, pruned: list[str]) -> dict:
    """Overall (all conv/linear weights), pruned layers only, by layer type, and per layer (fractions)."""
    layers = prunable_layers(model)
    out = {"sparsity": overall_sparsity(model), "sparsity_pruned_layers": overall_sparsity(model, pruned)}
    for kind in LAYER_KINDS:
        names = [n for n, m in layers.items() if type(m).__name__.lower() == kind]
        if names:
            out[f"sparsity_{kind}"] = overall_sparsity(model, names)
    out["sparsity_layer"] = sparsity_by_layer(model)
    return out


class PruneWeightsStage(FitStage):
    name = "prune_weights"
    artifacts = ("layer_sparsity.csv", "layer_sparsity.png")
    headline = ("test_acc", "test_acc_8bit", "val_acc", "test_acc_drop", "sparsity", "nonzero_weights", "epochs")

    def load(self, cfg: dict, datamodule) -> FitContext:
        return load_for_fine_tuning(cfg, datamodule)

    def prepare(self, ctx: FitContext) -> None:
        pruning = PruningConfig.from_mapping(ctx.cfg["prune_weights"])
        pruning.check_fits(ctx.cfg["trainer"]["max_epochs"])
        ctx.state["pruning"] = pruning
        ctx.state["plan"] = plan_layers(ctx.model, pruning)  # bad layer patterns fail here, before training
        baseline = ctx.state["payload"].get("meta", {}).get("metrics", {})
        if "test_acc" in baseline:
            ctx.reference["baseline_test_acc"] = baseline["test_acc"]

    def callbacks(self, ctx: FitContext) -> list:
        return [MagnitudePruningCallback(ctx.state["pruning"])]

    def parent_params(self, ctx: FitContext) -> dict:
        pruning = ctx.state["pruning"]
        return {"prune_weights.final_sparsity": pruning.final_sparsity, "prune_weights.scope": pruning.scope,
                "prune_weights.epochs": ctx.cfg["trainer"]["max_epochs"]}

    def result(self, ctx: FitContext, module: ClassifierModule, trainer: L.Trainer) -> tuple[nn.Module, dict]:
        # The last epoch's model, not the best-val one: earlier epochs are less sparse.
        network = squash(module.model)
        metrics = split_metrics(network, ctx.datamodule)
        if ctx.cfg.get("quant"):
            metrics.update(quantized_metrics(network, ctx.datamodule, ctx.cfg["quant"]))
        if "baseline_test_acc" in ctx.reference:
            metrics["test_acc_drop"] = ctx.reference["baseline_test_acc"] - metrics["test_acc"]
        metrics.update(sparsity_metrics(network, ctx.state["plan"].pruned))
        metrics["parameters"] = int(sum(p.numel() for p in network.parameters()))
        metrics["nonzero_weights"] = int(sum(int(m.weight.count_nonzero()) for m in prunable_layers(network).values()))
        return network, metrics

    def write_outputs(self, ctx: FitContext, network: nn.Module, metrics: dict) -> None:
        table = layer_sparsity_table(network)
        write_csv(ctx.out_dir / "layer_sparsity.csv", table)
        plot_layer_sparsity(table, ctx.out_dir / "layer_sparsity.png")
        ctx.state["table"] = table

    def summary(self, ctx: FitContext, metrics: dict) -> None:
        print_layer_sparsity(ctx.state["table"])


def prune_weights(cfg: dict) -> dict:
    """Run the stage on a resolved config; returns the metrics written to `metrics.json`."""
    return run_fit_stage(PruneWeightsStage(), cfg)
