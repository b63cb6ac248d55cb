"""Progressive schedules: the k of a layer at an epoch (step), the projected fraction of its lane groups (agp)."""

from __future__ import annotations

from bitpruner.prune_bits.config import BitPruneConfig


def step_k(cfg: BitPruneConfig, epoch: int, target: int) -> int:
    """k at `epoch`: start_k, start_k - 1, ... (each for `epochs_per_step` epochs), never below `target`."""
    return max(target, cfg.start_k - epoch // cfg.epochs_per_step)


def agp_update_epochs(cfg: BitPruneConfig) -> list[int]:
    """Epochs whose start re-selects the projected groups: start, start + frequency, ..., and always end."""
    epochs = list(range(cfg.start_epoch, cfg.end_epoch, cfg.frequency))
    return [*epochs, cfg.end_epoch]


def agp_fraction(cfg: BitPruneConfig, epoch: int) -> float:
    """Fraction of lane groups projected at `epoch`: f_i + (1 - f_i) * (1 - (1 - (t - t0) / (end - t0))^3).

    Piecewise constant between update epochs (the value of the latest update); 0 before start_epoch.
    """
    if epoch < cfg.start_epoch:
        return 0.0
    t = max(e for e in agp_update_epochs(cfg) if e <= epoch)
    progress = min(1.0, (t - cfg.start_epoch) / (cfg.end_epoch - cfg.start_epoch))
    return cfg.initial_fraction + (1.0 - cfg.initial_fraction) * (1.0 - (1.0 - progress) ** 3)


def layer_state(cfg: BitPruneConfig, epoch: int, target: int, bits: int) -> tuple[int, float]:
    """(k, fraction of lane groups projected) of a layer with `target` k at `epoch`.

    k = bits - 1 means no bit constraint (plain fake-quant), as in the ADMM phase.
    """
    if cfg.admm.enabled:
        return (bits - 1, 0.0) if epoch < cfg.admm.epochs else (target, 1.0)
    if cfg.schedule == "agp":
        return target, agp_fraction(cfg, epoch)
    return step_k(cfg, epoch, target), 1.0
