"""The `prune_weights` stage: AGP magnitude pruning + fine-tuning of the `train` stage's model.

One Lightning `fit` does both (the pruning callback recomputes masks at epoch starts) and resumes
from its own `last.ckpt`. Writes the squashed `model.ckpt` (plain weights with zeros),
`metrics.json`, `layer_sparsity.csv`, `layer_sparsity.png` and `config.yaml`.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint

from bitpruner.config import fingerprint, validate_training
from bitpruner.errors import ConfigError
from bitpruner.models.checkpoint import load_model_checkpoint, save_model_checkpoint
from bitpruner.models.layers import prunable_layers
from bitpruner.prune_weights.callback import MagnitudePruningCallback
from bitpruner.prune_weights.config import PruningConfig, plan_layers
from bitpruner.prune_weights.masks import squash
from bitpruner.prune_weights.pruner import overall_sparsity, sparsity_by_layer
from bitpruner.prune_weights.report import layer_sparsity_table, plot_layer_sparsity, print_layer_sparsity
from bitpruner.tracking import stage_run
from bitpruner.training.builders import build_datamodule
from bitpruner.training.module import ClassifierModule
from bitpruner.training.resume import clear_checkpoint_dir, prepare_checkpoint_dir
from bitpruner.train.stage import final_metrics, quantized_metrics, run_tags, write_config
from bitpruner.utils.atomic import write_csv, write_json

STAGE = "prune_weights"
HASH_CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    """Short content hash: a retrained input model must not resume an old pruning run."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def load_input_model(cfg: dict, datamodule):
    """The model to prune and its checkpoint payload; the data set must be the one it was trained on."""
    path = Path(cfg["input_ckpt"])
    model, payload = load_model_checkpoint(path)
    trained_on = payload.get("meta", {}).get("dataset")
    if trained_on and trained_on != datamodule.name:
        raise ConfigError(f"input_ckpt {path}: trained on {trained_on!r}, but data={datamodule.name!r}")
    return model, payload


def build_pruning_trainer(cfg: dict, ckpt_dir: Path, logger, callbacks: list) -> L.Trainer:
    """The configured Trainer, writing `last.ckpt` at every epoch end.

    Lightning 2.6 refreshes `save_last` only in epochs whose monitored metric improved; while
    pruning, val accuracy falls as sparsity rises, so a monitored `last.ckpt` would lag behind.
    """
    last = ModelCheckpoint(dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1,
                           enable_version_counter=False)
    return instantiate(dict(cfg["trainer"]), logger=logger if logger is not None else False,
                       callbacks=[last, *callbacks], _convert_="all")


def sparsity_metrics(model, pruned: list[str]) -> dict:
    """Overall (all conv/linear weights), pruned layers only, by layer type, and per layer."""
    layers = prunable_layers(model)
    by_kind = {kind: [n for n, m in layers.items() if type(m).__name__.lower() == kind] for kind in ("conv2d", "linear")}
    out = {"sparsity": overall_sparsity(model), "sparsity_pruned_layers": overall_sparsity(model, pruned)}
    for kind, names in by_kind.items():
        if names:
            out[f"sparsity_{kind}"] = overall_sparsity(model, names)
    out["sparsity_layer"] = sparsity_by_layer(model)
    return out


def prune_weights(cfg: dict) -> dict:
    """Run the stage on a resolved config; returns the metrics written to `metrics.json`."""
    validate_training(cfg)
    pruning = PruningConfig.from_mapping(cfg["prune_weights"])
    pruning.check_fits(cfg["trainer"]["max_epochs"])
    start = time.perf_counter()
    L.seed_everything(cfg["seed"], workers=True)
    out_dir = Path(cfg["paths"]["output_dir"])
    ckpt_dir = Path(cfg["paths"]["ckpt_dir"])
    datamodule = build_datamodule(cfg)
    model, payload = load_input_model(cfg, datamodule)
    model.train()  # loaded in eval mode; Lightning 2.6 keeps a module's mode at the start of fit
    plan = plan_layers(model, pruning)  # bad layer patterns fail here, before any training
    geometry = payload["geometry"]
    module = ClassifierModule(model, cfg["optimizer"], cfg.get("scheduler"), geometry["num_classes"])
    input_fp = file_digest(Path(cfg["input_ckpt"]))
    resume_from = prepare_checkpoint_dir(ckpt_dir, fingerprint({**cfg, "input_ckpt_sha": input_fp}),
                                         bool(cfg.get("resume", True)))
    model_cfg = payload["model_cfg"]
    tags = {**run_tags({**cfg, "model": model_cfg}, datamodule), "input_ckpt_sha": input_fp}

    with stage_run(STAGE, cfg, cfg.get("logger", {}).get("mlflow"), cfg["paths"]["root_dir"], tags=tags) as run:
        trainer = build_pruning_trainer(cfg, ckpt_dir, run.logger, [MagnitudePruningCallback(pruning)])
        fit_start = time.perf_counter()
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume_from) if resume_from else None)
        fit_time = time.perf_counter() - fit_start
        # The last epoch's model, not the best-val one: earlier epochs are less sparse.
        network = squash(module.model)
        metrics = final_metrics(network, datamodule)
        if cfg.get("quant"):
            metrics.update(quantized_metrics(network, datamodule, cfg["quant"]))
        baseline = payload.get("meta", {}).get("metrics", {})
        if "test_acc" in baseline:
            metrics["baseline_test_acc"] = baseline["test_acc"]
            metrics["test_acc_drop"] = baseline["test_acc"] - metrics["test_acc"]
        metrics.update(sparsity_metrics(network, plan.pruned))
        metrics.update({
            "epochs": int(trainer.current_epoch),
            "train_time_s": round(fit_time, 2),
            "wall_time_s": round(time.perf_counter() - start, 2),
            "parameters": int(sum(p.numel() for p in network.parameters())),
            "nonzero_weights": int(sum(int(m.weight.count_nonzero()) for m in prunable_layers(network).values())),
        })
        save_model_checkpoint(out_dir / "model.ckpt", network, model_cfg, geometry,
                              meta={"stage": STAGE, "dataset": datamodule.name, "metrics": metrics,
                                    "mean": datamodule.mean.tolist(), "std": datamodule.std.tolist(),
                                    "source": str(cfg["input_ckpt"]), "source_sha": input_fp})
        table = layer_sparsity_table(network)
        write_csv(out_dir / "layer_sparsity.csv", table)
        plot_layer_sparsity(table, out_dir / "layer_sparsity.png")
        write_json(out_dir / "metrics.json", metrics)
        write_config(out_dir / "config.yaml", cfg)
        print_layer_sparsity(table)
        flat = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
        flat.update({f"sparsity_layer/{k}": v for k, v in metrics["sparsity_layer"].items()})
        run.log_metrics({f"final/{k}": v for k, v in flat.items()})
        for name in ("metrics.json", "config.yaml", "layer_sparsity.csv", "layer_sparsity.png"):
            run.log_artifact(out_dir / name)
    clear_checkpoint_dir(ckpt_dir)
    return metrics
