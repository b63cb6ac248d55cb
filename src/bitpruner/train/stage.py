"""The `train` stage: train the baseline, write `model.ckpt`, `metrics.json`, `config.yaml`."""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import torch
import yaml

from bitpruner.config import fingerprint, validate_training
from bitpruner.models.checkpoint import save_model_checkpoint
from bitpruner.quant.evaluate import quantized_accuracy
from bitpruner.tracking import stage_run
from bitpruner.training.builders import (
    best_checkpoint,
    build_datamodule,
    build_model,
    build_trainer,
    geometry_of,
)
from bitpruner.training.evaluate import evaluate
from bitpruner.training.module import ClassifierModule
from bitpruner.training.resume import clear_checkpoint_dir, prepare_checkpoint_dir
from bitpruner.utils.atomic import write_json, write_text
from bitpruner.utils.dist import is_rank_zero

STAGE = "train"


def run_tags(cfg: dict, datamodule) -> dict:
    return {"model": cfg["model"].get("name", cfg["model"]["_target_"]), "dataset": datamodule.name}


def write_config(path: Path, cfg: dict) -> Path:
    return write_text(path, yaml.safe_dump(cfg, sort_keys=False))


def final_metrics(model, datamodule) -> dict:
    """Val and test figures of `model` with the plain evaluation loop (the same one a reload uses)."""
    val = evaluate(model, datamodule.val_dataloader())
    test = evaluate(model, datamodule.test_dataloader())
    out = {f"val_{k}": v for k, v in val.items() if k != "samples"}
    out.update({f"test_{k}": v for k, v in test.items() if k != "samples"})
    return out


def quantized_metrics(model, datamodule, quant: dict) -> dict:
    """Accuracy with fixed-point weights (`quant`, 8-bit by default): the fair non-pruned reference."""
    bits = quant["bits"]
    val = quantized_accuracy(model, datamodule.val_dataloader(), quant)
    test = quantized_accuracy(model, datamodule.test_dataloader(), quant)
    return {f"val_acc_{bits}bit": val["acc"], f"test_acc_{bits}bit": test["acc"],
            f"test_loss_{bits}bit": test["loss"]}


def train(cfg: dict) -> dict:
    """Run the stage on a resolved config; returns the metrics written to `metrics.json`."""
    validate_training(cfg)
    start = time.perf_counter()
    L.seed_everything(cfg["seed"], workers=True)
    out_dir = Path(cfg["paths"]["output_dir"])
    ckpt_dir = Path(cfg["paths"]["ckpt_dir"])
    datamodule = build_datamodule(cfg)
    geometry = geometry_of(datamodule)
    model = build_model(cfg, geometry)
    module = ClassifierModule(model, cfg["optimizer"], cfg.get("scheduler"), geometry["num_classes"])
    rank_zero = is_rank_zero()
    resume_from = prepare_checkpoint_dir(ckpt_dir, fingerprint(cfg), bool(cfg.get("resume", True)),
                                         clean=rank_zero)
    # Under DDP the other ranks train but neither track nor write outputs.
    logger_cfg = cfg.get("logger", {}).get("mlflow") if rank_zero else None

    with stage_run(STAGE, cfg, logger_cfg, cfg["paths"]["root_dir"], tags=run_tags(cfg, datamodule)) as run:
        trainer = build_trainer(cfg, ckpt_dir, run.logger)
        fit_start = time.perf_counter()
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume_from) if resume_from else None)
        fit_time = time.perf_counter() - fit_start
        if not trainer.is_global_zero:
            return {}
        best = best_checkpoint(trainer)
        if cfg.get("export", "last") == "best" and best:
            state = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
            module.load_state_dict(state)
        metrics = final_metrics(module.model, datamodule)
        if cfg.get("quant"):
            metrics.update(quantized_metrics(module.model, datamodule, cfg["quant"]))
        metrics.update({
            "epochs": int(trainer.current_epoch),
            "train_time_s": round(fit_time, 2),
            "wall_time_s": round(time.perf_counter() - start, 2),
            "parameters": int(sum(p.numel() for p in module.model.parameters())),
        })
        save_model_checkpoint(out_dir / "model.ckpt", module.model, cfg["model"], geometry,
                              meta={"stage": STAGE, "dataset": datamodule.name, "metrics": metrics,
                                    "mean": datamodule.mean.tolist(), "std": datamodule.std.tolist()})
        write_json(out_dir / "metrics.json", metrics)
        write_config(out_dir / "config.yaml", cfg)
        run.log_metrics({f"final/{k}": v for k, v in metrics.items()})
        for name in ("metrics.json", "config.yaml"):
            run.log_artifact(out_dir / name)
    clear_checkpoint_dir(ckpt_dir)
    return metrics
