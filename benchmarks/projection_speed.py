"""Projection speed on a ResNet-18-sized weight set (11.2M weights): per_weight < 1 s, group_columns < 5 s.

Run: `python benchmarks/projection_speed.py [--threads 2] [--k 2] [--lanes 16]`. Times exclude the one-off
numba compilation (a warm-up call on a small tensor) and include the torch <-> numpy conversions.
"""

from __future__ import annotations

import argparse
import time

import numba
import torch

from bitpruner.prune_bits.projections import group_budget, group_columns, per_weight

TARGET_S = {"per_weight": 1.0, "group_columns": 5.0}

# ResNet-18 (ImageNet) conv + fc weight shapes: 11.17M weights.
RESNET18_SHAPES = (
    [(64, 3, 7, 7)]
    + [(64, 64, 3, 3)] * 4
    + [(128, 64, 3, 3), (128, 128, 3, 3), (128, 64, 1, 1), (128, 128, 3, 3), (128, 128, 3, 3)]
    + [(256, 128, 3, 3), (256, 256, 3, 3), (256, 128, 1, 1), (256, 256, 3, 3), (256, 256, 3, 3)]
    + [(512, 256, 3, 3), (512, 512, 3, 3), (512, 256, 1, 1), (512, 512, 3, 3), (512, 512, 3, 3)]
    + [(1000, 512)]
)


def make_weights(seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for shape in RESNET18_SHAPES:
        w = torch.randn(shape, generator=gen) * 0.05
        out.append((w, w.abs().max() / 127))
    return out


def time_projection(fn, weights, **params) -> float:
    start = time.perf_counter()
    for w, scale in weights:
        fn(w, scale=scale, **params)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--lanes", type=int, default=16)
    parser.add_argument("--budget", type=int, default=32, help="group_budget bits per lane group")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    torch.set_num_threads(args.threads)

    weights = make_weights()
    n = sum(w.numel() for w, _ in weights)
    small = [(torch.randn(8, 16, 3, 3), torch.tensor(0.01))]
    runs = {
        "per_weight": (per_weight, {"k": args.k}),
        "group_columns": (group_columns, {"k": args.k, "lanes": args.lanes}),
        "group_budget": (group_budget, {"budget": args.budget, "lanes": args.lanes}),
    }
    print(
        f"{n / 1e6:.2f}M weights in {len(weights)} tensors, {numba.get_num_threads()} numba threads, "
        f"k={args.k}, lanes={args.lanes}"
    )
    for name, (fn, params) in runs.items():
        time_projection(fn, small, **params)  # compile / load the numba cache
        best = min(time_projection(fn, weights, **params) for _ in range(args.repeats))
        target = TARGET_S.get(name)
        verdict = f"target {target:.1f} s, ratio {best / target:.2f}" if target else "no target"
        print(f"{name:14s} {best:7.3f} s  ({verdict})")


if __name__ == "__main__":
    main()
