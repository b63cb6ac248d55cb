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


def split_metrics(model: nn.Module, datamodule) -> dict[str, float]:
    """`val_*` and `test_*` figures of `model` (float weights) with the plain loop a reload also uses."""
    out = {}
    for split, loader in (("val", datamodule.val_dataloader()), ("test", datamodule.test_dataloader())):
        out.update({f"{split}_{k}": v for k, v in evaluate(model, loader).items() if k != "samples"})
    return out


def quantized_metrics(model: nn.Module, datamodule, quant: dict) -> dict[str, float]:
    """Accuracy with `quant.bits`-bit fixed-point weights (activations float): the fair non-pruned reference.

    Keys: `val_acc_<b>bit`, `test_acc_<b>bit`, `test_loss_<b>bit` (percent, percent, mean cross-entropy).
    """
    from bitpruner.quant.evaluate import quantized_accuracy

    bits = quant["bits"]
    val = quantized_accuracy(model, datamodule.val_dataloader(), quant)
    test = quantized_accuracy(model, datamodule.test_dataloader(), quant)
    return {f"val_acc_{bits}bit": val["acc"], f"test_acc_{bits}bit": test["acc"],
            f"test_loss_{bits}bit": test["loss"]}
