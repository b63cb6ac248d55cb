"""Plain evaluation loop (no Lightning): the figures that go into `metrics.json`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bitpruner.training.module import TOP5_MIN_CLASSES


@torch.no_grad()
def evaluate(model: nn.Module, loader) -> dict[str, float]:
    """Top-1 accuracy (%), mean cross-entropy, top-5 accuracy (%) when there are enough classes."""
    was_training = model.training
    model.eval()
    correct = correct5 = total = 0
    loss_sum = 0.0
    for x, y in loader:
        logits = model(x)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        if logits.shape[1] >= TOP5_MIN_CLASSES:
            top5 = logits.topk(5, dim=1).indices
            correct5 += (top5 == y[:, None]).any(1).sum().item()
        total += y.numel()
    model.train(was_training)
    out = {"acc": 100.0 * correct / max(total, 1), "loss": loss_sum / max(total, 1), "samples": total}
    if correct5:
        out["acc_top5"] = 100.0 * correct5 / total
    return out
