"""The sequence the training stages share (train, prune_weights, prune_bits), written once.

`run_fit_stage(stage, cfg)` does, in order: config checks, seeding, the data module, the model (the stage's
`load`), the stage's own preparation (its checks and reference figures, before any training), the resume
decision (`last.ckpt` of the same config and inputs), one Lightning `fit` with the stage's callbacks, the
exported network and its metrics (the stage's `result`), `model.ckpt`, the stage's own outputs, and the shared
tail (`metrics.json`, `config.yaml`, final metrics and artifacts in MLflow). A stage module subclasses
`FitStage` and fills in only what is its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
from torch import nn

from bitpruner.config import fingerprint, validate_training
from bitpruner.models.checkpoint import save_model_checkpoint
from bitpruner.skeleton.outputs import headline_of, log_outputs, portable, write_stage_files
from bitpruner.skeleton.resume_state import ResumeStateCallback
from bitpruner.skeleton.session import StageSession, stage_session
from bitpruner.tracking import stage_run
from bitpruner.training.builders import build_datamodule, build_optimizers, build_trainer, geometry_of
from bitpruner.training.module import ClassifierModule
from bitpruner.training.resume import clear_checkpoint_dir, prepare_checkpoint_dir
from bitpruner.utils.dist import is_rank_zero


@dataclass
class FitContext:
    """What one run of a training stage works on; `FitStage` hooks read and fill it."""

    cfg: dict
    datamodule: Any
    model: nn.Module
    model_cfg: dict
    geometry: dict
    # What, besides the config, decides the result (input checkpoint hash, plan file hash): part of the
    # resume fingerprint and of the run's tags.
    inputs: dict[str, str] = field(default_factory=dict)
    # Extra entries of model.ckpt's `meta` (source checkpoint, integer weights, ...).
    meta: dict[str, Any] = field(default_factory=dict)
    # Figures measured before training (the input model's), merged into the final metrics.
    reference: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)  # stage-private values shared between its hooks
    session: StageSession | None = None

    @property
    def out_dir(self) -> Path:
        """Where outputs are written now: the staging folder while the output set is written."""
        if self.session is not None and self.session.staging is not None:
            return self.session.staging
        return Path(self.cfg["paths"]["output_dir"])

    @property
    def ckpt_dir(self) -> Path:
        return Path(self.cfg["paths"]["ckpt_dir"])

    @property
    def tags(self) -> dict[str, str]:
        from bitpruner.skeleton.inputs import model_name

        return {"model": model_name(self.model_cfg), "dataset": self.datamodule.name, **self.inputs}


class FitStage:
    """A training stage: its name, its outputs, and the hooks `run_fit_stage` calls."""

    name: str = ""
    artifacts: tuple[str, ...] = ()  # files in the output folder logged to MLflow (besides metrics/config)
    keep_best: bool = False  # also checkpoint the lowest-val-loss epoch (`export: best` needs it)
    headline: tuple[str, ...] = ()  # the metrics.json keys (DVC's metrics); details.json holds every metric

    def load(self, cfg: dict, datamodule) -> FitContext:
        """Build or load the model to fit (raise ConfigError on bad inputs)."""
        raise NotImplementedError

    def prepare(self, ctx: FitContext) -> None:
        """Stage-specific checks and reference figures, before any training (optional)."""

    def callbacks(self, ctx: FitContext) -> list:
        """Lightning callbacks that do the stage's work during `fit` (pruning masks, bit projections)."""
        return []

    def result(self, ctx: FitContext, module: ClassifierModule, trainer: L.Trainer) -> tuple[nn.Module, dict]:
        """The network to export and the stage's metrics."""
        raise NotImplementedError

    def write_outputs(self, ctx: FitContext, network: nn.Module, metrics: dict) -> None:
        """The stage's own output files (CSVs, PNGs) beside model.ckpt (optional)."""

    def summary(self, ctx: FitContext, metrics: dict) -> None:
        """What the console shows at the end (optional)."""

    def parent_params(self, ctx: FitContext) -> dict[str, Any]:
        """The stage's key settings, shown on the pipeline's parent run beside its headline metrics."""
        return {}


def run_fit_stage(stage: FitStage, cfg: dict) -> dict:
    """Run a training stage on a resolved config (plain dict); returns the metrics written to `metrics.json`.

    Raises ConfigError / DataError on bad config or inputs, before any training where they can be known then;
    StageBusyError when another run holds the stage's checkpoint folder; StageInterrupted on SIGTERM/SIGINT
    (resume state kept). Under DDP every rank trains; only rank 0 tracks, writes outputs and returns metrics.
    """
    validate_training(cfg)
    with stage_session(stage.name, cfg) as session:
        datamodule = build_datamodule(cfg)
        ctx = stage.load(cfg, datamodule)
        ctx.session = session
        stage.prepare(ctx)
        optimizer, scheduler = build_optimizers(cfg)
        module = ClassifierModule(ctx.model, optimizer, scheduler, ctx.geometry["num_classes"])
        rank_zero = is_rank_zero()
        resume_from = prepare_checkpoint_dir(ctx.ckpt_dir, fingerprint({**cfg, **ctx.inputs}),
                                             bool(cfg.get("resume", True)), clean=rank_zero)
        logger_cfg = (cfg.get("logger") or {}).get("mlflow") if rank_zero else None
        resume_state = ResumeStateCallback()
        tags = {**ctx.tags, "torch_threads": session.runtime["threads"]}

        with stage_run(stage.name, cfg, logger_cfg, cfg["paths"]["root_dir"], tags=tags,
                       run_record=session.run_record if rank_zero else None,
                       resumed=resume_from is not None) as run:
            trainer = build_trainer(cfg, ctx.ckpt_dir, run.logger, [resume_state, *stage.callbacks(ctx)],
                                    keep_best=stage.keep_best)
            trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume_from) if resume_from else None)
            if not trainer.is_global_zero:
                return {}
            with session.outputs():
                network, metrics = stage.result(ctx, module, trainer)
                metrics.update(ctx.reference)
                metrics["epochs"] = int(trainer.current_epoch)
                root = cfg["paths"]["root_dir"]
                meta = {"stage": stage.name, "dataset": datamodule.name, "metrics": metrics,
                        "mean": datamodule.mean.tolist(), "std": datamodule.std.tolist(),
                        **portable(ctx.meta, root)}
                save_model_checkpoint(ctx.out_dir / "model.ckpt", network, ctx.model_cfg, ctx.geometry, meta=meta)
                stage.write_outputs(ctx, network, metrics)
                timing = {"train_time_s": resume_state.fit_seconds, "wall_time_s": session.elapsed()}
                write_stage_files(ctx.out_dir, cfg, metrics, timing, stage.headline)
            log_outputs(run, session.out_dir, metrics, timing, stage.artifacts)
            run.log_headline(stage.name, stage.parent_params(ctx), headline_of(metrics, stage.headline))
            stage.summary(ctx, metrics)
        clear_checkpoint_dir(ctx.ckpt_dir)
        session.run_record.unlink(missing_ok=True)
    return metrics


def load_for_fine_tuning(cfg: dict, datamodule) -> FitContext:
    """The `input_ckpt` model, in training mode, with its hash as an input (prune_weights, prune_bits)."""
    from bitpruner.skeleton.inputs import file_digest, load_input_model

    model, payload = load_input_model(cfg["input_ckpt"], datamodule.name)
    model.train()  # loaded in eval mode; Lightning 2.6 keeps a module's mode at the start of fit
    sha = file_digest(cfg["input_ckpt"])
    return FitContext(cfg=cfg, datamodule=datamodule, model=model, model_cfg=payload["model_cfg"],
                      geometry=payload["geometry"], inputs={"input_ckpt_sha": sha},
                      meta={"source": str(cfg["input_ckpt"]), "source_sha": sha},
                      state={"payload": payload})


def build_new_model(cfg: dict, datamodule) -> FitContext:
    """A freshly initialized `cfg.model` for the data set's geometry (train)."""
    from bitpruner.training.builders import build_model

    geometry = geometry_of(datamodule)
    return FitContext(cfg=cfg, datamodule=datamodule, model=build_model(cfg, geometry), model_cfg=cfg["model"],
                      geometry=geometry)
