"""The `train` stage: train the baseline (float) model; writes `model.ckpt`, `metrics.json`, `config.yaml`.

Only what is the stage's own lives here; the sequence is `bitpruner.skeleton.fit.run_fit_stage`.
"""

from __future__ import annotations

import lightning as L
from torch import nn

from bitpruner.models.checkpoint import load_lightning_state_dict
from bitpruner.skeleton.fit import FitContext, FitStage, build_new_model, run_fit_stage
from bitpruner.training.builders import best_checkpoint
from bitpruner.training.evaluate import quantized_metrics, split_metrics
from bitpruner.training.module import ClassifierModule


class TrainStage(FitStage):
    name = "train"
    keep_best = True  # `export: best` picks the lowest-val-loss epoch
    headline = ("test_acc", "test_acc_8bit", "val_acc", "test_loss", "val_loss", "epochs", "parameters")

    def load(self, cfg: dict, datamodule) -> FitContext:
        return build_new_model(cfg, datamodule)

    def parent_params(self, ctx: FitContext) -> dict:
        return {**ctx.tags, "seed": ctx.cfg["seed"], "train.epochs": ctx.cfg["trainer"]["max_epochs"]}

    def result(self, ctx: FitContext, module: ClassifierModule, trainer: L.Trainer) -> tuple[nn.Module, dict]:
        best = best_checkpoint(trainer)
        if ctx.cfg.get("export", "last") == "best" and best:
            module.load_state_dict(load_lightning_state_dict(best))
        metrics = split_metrics(module.model, ctx.datamodule)
        if ctx.cfg.get("quant"):
            metrics.update(quantized_metrics(module.model, ctx.datamodule, ctx.cfg["quant"]))
        metrics["parameters"] = int(sum(p.numel() for p in module.model.parameters()))
        return module.model, metrics


def train(cfg: dict) -> dict:
    """Run the stage on a resolved config; returns the metrics written to `metrics.json`."""
    return run_fit_stage(TrainStage(), cfg)
