"""Sparsity schedules: AGP (Zhu & Gupta 2017, cubic) and one-shot, evaluated per epoch."""

from __future__ import annotations

from bitpruner.prune_weights.config import PruningConfig


def agp_sparsity(t: float, initial: float, final: float, start: float, end: float) -> float:
    """s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt))^3, with n * dt = end - start, clamped to [start, end]."""
    if t <= start:
        return initial
    if t >= end:
        return final
    progress = (t - start) / (end - start)
    return final + (initial - final) * (1.0 - progress) ** 3


def pruning_epochs(cfg: PruningConfig) -> list[int]:
    """Epochs at whose start masks are recomputed: start, start+dt, ..., and always the end epoch."""
    if cfg.schedule == "oneshot":
        return [cfg.start_epoch]
    epochs = list(range(cfg.start_epoch, cfg.end_epoch + 1, cfg.frequency))
    if epochs[-1] != cfg.end_epoch:
        epochs.append(cfg.end_epoch)
    return epochs


def target_sparsity(cfg: PruningConfig, epoch: int, final: float | None = None) -> float:
    """The schedule's sparsity at `epoch` for a layer whose final target is `final` (default: the config's).

    Between pruning epochs the last step's value holds; before the start nothing is pruned.
    Layers with an override follow the same cubic shape from min(initial, final) to their own final.
    """
    final = cfg.final_sparsity if final is None else final
    initial = min(cfg.initial_sparsity, final)
    if epoch < cfg.start_epoch:
        return 0.0
    if cfg.schedule == "oneshot":
        return final
    last_step = max(e for e in pruning_epochs(cfg) if e <= epoch)
    return agp_sparsity(last_step, initial, final, cfg.start_epoch, cfg.end_epoch)
