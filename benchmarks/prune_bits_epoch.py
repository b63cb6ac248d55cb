"""A bit-pruning fine-tuning epoch vs a plain fake-quant epoch of the same model (target: ratio <= 1.5).

Run: `python benchmarks/prune_bits_epoch.py [--mode group_columns] [--k 2] [--lanes 16] [--images 3500]`.
LeNet-5 at MNIST size (28x28, 3,500 training images = MNIST-5k's train split, random pixels: the time does
not depend on them), Adam, batch 64, CPU. Both epochs run the same loop; the only difference is the weight
parametrization: `FakeQuantWeight` (round to b bits) vs `BitProjectedWeight` (round, then project every
lane group, straight-through). Each variant runs a warm-up epoch first (numba loading, allocator); the
figure is the best of `--repeats` timed epochs, the two variants alternating.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from bitpruner.models.lenet import LeNet5  # noqa: E402
from bitpruner.prune_bits.projected_weight import attach_projections  # noqa: E402
from bitpruner.quant.fixed_point import QuantConfig  # noqa: E402
from bitpruner.quant.model import fake_quant_model  # noqa: E402

TARGET_RATIO = 1.5


def make_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return LeNet5(in_channels=1, image_size=(28, 28), num_classes=10)


def run_epoch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, lr: float) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    start = time.perf_counter()
    for i in range(0, x.shape[0], batch_size):
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x[i:i + batch_size]), y[i:i + batch_size])
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def best_epochs(models: list[nn.Module], x, y, args) -> list[float]:
    """Best epoch time of each model; the models alternate so that a load spike hits both alike."""
    for model in models:
        run_epoch(model, x, y, args.batch_size, args.lr)  # warm-up
    times = [[] for _ in models]
    for _ in range(args.repeats):
        for model, t in zip(models, times, strict=True):
            t.append(run_epoch(model, x, y, args.batch_size, args.lr))
    return [min(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="group_columns", choices=("per_weight", "group_columns", "group_budget"))
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--lanes", type=int, default=16)
    parser.add_argument("--bits", type=int, default=8)
    parser.add_argument("--images", type=int, default=3500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.images, 1, 28, 28, generator=gen)
    y = torch.randint(0, 10, (args.images,), generator=gen)
    quant = QuantConfig(bits=args.bits)

    plain = fake_quant_model(make_model(0), quant)
    pruned = make_model(0)
    for proj in attach_projections(pruned, quant, args.mode, args.lanes).values():
        proj.k.fill_(args.k)
        proj.group_selected.fill_(True)

    t_plain, t_pruned = best_epochs([plain, pruned], x, y, args)
    ratio = t_pruned / t_plain
    verdict = "OK" if ratio <= TARGET_RATIO else f"ABOVE the {TARGET_RATIO}x target"
    print(f"fake-quant epoch {t_plain:.2f} s | bit-pruning epoch ({args.mode}, k={args.k}, lanes={args.lanes}) "
          f"{t_pruned:.2f} s | ratio {ratio:.2f}x ({verdict}); {args.images} images, batch {args.batch_size}, "
          f"torch threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
