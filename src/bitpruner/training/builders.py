"""Build the pieces a training stage needs from the resolved config (a plain dict)."""

from __future__ import annotations

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


def build_trainer(cfg: dict, ckpt_dir: Path, logger, callbacks: list | None = None) -> L.Trainer:
    """The configured Trainer plus best/last checkpoints in `ckpt_dir` (best = lowest val loss).

    `last.ckpt` has its own unmonitored callback so that it is rewritten at every epoch end,
    whether or not the monitored metric improved (it is what a crashed run resumes from).
    """
    best = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val/loss", mode="min",
                           auto_insert_metric_name=False)
    last = ModelCheckpoint(dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1,
                           enable_version_counter=False)
    trainer_cfg = {k: v for k, v in cfg["trainer"].items()}
    return instantiate(trainer_cfg, logger=logger if logger is not None else False,
                       callbacks=[best, last, *(callbacks or [])], _convert_="all")


def best_checkpoint(trainer: L.Trainer) -> str | None:
    for cb in trainer.callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.monitor and cb.best_model_path:
            return cb.best_model_path
    return None
