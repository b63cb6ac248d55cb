"""Build the pieces a training stage needs from the resolved config (a plain dict)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint

from bitpruner.models.checkpoint import build_from_config


def build_datamodule(cfg: dict):
    return instantiate(cfg["data"], _convert_="all")


def geometry_of(datamodule) -> dict:
    return {
        "in_channels": datamodule.in_channels,
        "image_size": list(datamodule.image_size),
        "num_classes": datamodule.num_classes,
    }


def build_model(cfg: dict, geometry: dict):
    return build_from_config(cfg["model"], geometry)


def build_optimizers(cfg: dict) -> tuple[Callable, Callable | None]:
    """The `optimizer` and `scheduler` config groups as partials (`_partial_: true`): the training module
    calls them with its parameters / optimizer. An absent or empty `scheduler` node means none."""
    optimizer = instantiate(cfg["optimizer"], _convert_="all")
    scheduler = instantiate(cfg["scheduler"], _convert_="all") if cfg.get("scheduler") else None
    return optimizer, scheduler


def build_trainer(cfg: dict, ckpt_dir: Path, logger, callbacks: list | None = None,
                  keep_best: bool = False) -> L.Trainer:
    """The configured Trainer, writing `last.ckpt` in `ckpt_dir` at every epoch end (what a crashed run resumes
    from), and with `keep_best` also `best.ckpt` (lowest val loss).

    `last.ckpt` has its own unmonitored callback: Lightning 2.6 refreshes a monitored `save_last` only in
    epochs whose metric improved, and while pruning val accuracy falls as sparsity rises.
    """
    last = ModelCheckpoint(dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1,
                           enable_version_counter=False)
    checkpoints = [last]
    if keep_best:
        checkpoints.insert(0, ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val/loss", mode="min",
                                              auto_insert_metric_name=False))
    return instantiate(dict(cfg["trainer"]), logger=logger if logger is not None else False,
                       callbacks=[*checkpoints, *(callbacks or [])], _convert_="all")


def best_checkpoint(trainer: L.Trainer) -> str | None:
    for cb in trainer.callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.monitor and cb.best_model_path:
            return cb.best_model_path
    return None
