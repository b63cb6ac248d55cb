"""Simulator speed: numba engine vs the plain reference, a ResNet-18 conv2_x layer, a LeNet-5 trace, the
BitTactical scheduler, JIT warm-up.

Run: ``python benchmarks/sim_speed.py [--repeats N] [--skip-reference]``. Targets (2 cores, after JIT):
the conv2_x layer under 1 s per architecture, its BitTactical schedule under 0.5 s, warm-up from numba's
on-disk cache under 3 s. Each design runs with the options it takes (``designs.params_for``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

from bitpruner.sim.designs import ARCHS, design_of, params_for
from bitpruner.sim.engine import simulate_layer, simulate_network
from bitpruner.sim.params import SimParams
from bitpruner.sim.reference import reference_cycles
from bitpruner.sim.tactical import schedule_layer
from bitpruner.sim.tiling import Geometry
from bitpruner.sim.traces import LayerTrace, NetworkTrace

RELU_SPARSITY = 0.5  # fraction of zero activations after ReLU
WEIGHT_SPARSITY = 0.3
VALUE_SCALE = 30.0  # |N(0, 30)| clipped to 8-bit magnitudes
WARMUP_SNIPPET = (
    "import time; t = time.perf_counter(); import numpy as np;"
    "from bitpruner.sim.engine import simulate_layer; from bitpruner.sim.traces import LayerTrace;"
    "from bitpruner.sim.params import SimParams;"
    "layer = LayerTrace('x', 'conv', np.ones((2, 3, 2, 2), int), np.ones((1, 3, 3, 3), int));"
    "[simulate_layer(layer, a, SimParams(column_registers=1)) for a in "
    "('BitPragmatic', 'BitTacticalE', 'BitTacticalP', 'PragmaticW')];"
    "print(time.perf_counter() - t)"
)


def values(rng, shape, sparsity, signed):
    v = np.round(np.abs(rng.normal(0.0, VALUE_SCALE, shape))).clip(0, 127).astype(np.int64)
    v[rng.random(shape) < sparsity] = 0
    return v * rng.choice([-1, 1], shape) if signed else v


def conv(rng, name, K, C, k, X, stride=1, pad=0):
    return LayerTrace(name, "conv", values(rng, (K, C, k, k), WEIGHT_SPARSITY, True),
                      values(rng, (1, C, X, X), RELU_SPARSITY, False), stride=stride, pad=pad)


def fc(rng, name, K, C):
    return LayerTrace(name, "fc", values(rng, (K, C), WEIGHT_SPARSITY, True), values(rng, (1, C), RELU_SPARSITY, False))


def lenet5(rng) -> NetworkTrace:
    return NetworkTrace("lenet5", [conv(rng, "conv1", 6, 1, 5, 32), conv(rng, "conv2", 16, 6, 5, 14),
                                   fc(rng, "fc1", 120, 400), fc(rng, "fc2", 84, 120), fc(rng, "fc3", 10, 84)])


def best_time(fn, repeats):
    """Best wall time over repeats (the CPU time of that run is kept in CPU_TIMES)."""
    best = (float("inf"), 0.0)
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - t, time.process_time() - c))
    CPU_TIMES.append(best[1])
    return best[0]


CPU_TIMES: list[float] = []  # CPU seconds (all threads) of each best run, to read timings on a busy machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    small = [conv(rng, "small_conv", 6, 10, 3, 6, pad=1), fc(rng, "small_fc", 9, 40)]
    small_params = SimParams(lanes=4, columns=4, rows=2, tiles=2)
    resnet = conv(rng, "conv2_x", 64, 64, 3, 56, pad=1)
    net = lenet5(rng)
    configs = {"defaults": SimParams(), "bfs2+CR2+booth": SimParams(bits_first_stage=2, column_registers=2,
                                                                        booth_encoding=True)}
    for arch in ARCHS:  # JIT (or cache load) outside the timings
        simulate_layer(small[0], arch, small_params)

    print(f"numba threads: {os.environ.get('NUMBA_NUM_THREADS', 'default')}, cpus: {os.cpu_count()}")
    header = f"{'arch':14s} {'engine small':>13s} {'reference':>10s} {'ratio':>8s}"
    header += "".join(f" {'conv2_x ' + name:>23s}" for name in configs) + f" {'lenet5':>9s}"
    print(header)
    for arch in ARCHS:
        eng = best_time(lambda a=arch: [simulate_layer(layer, a, small_params) for layer in small], args.repeats)
        if args.skip_reference:
            ref_text, ratio_text = "-", "-"
        else:
            ref = best_time(lambda a=arch: [reference_cycles(layer, a, small_params) for layer in small], 1)
            ref_text, ratio_text = f"{ref:9.3f}s", f"{ref / eng:7.0f}x"
        row = f"{arch:14s} {eng:12.4f}s {ref_text:>10s} {ratio_text:>8s}"
        for params in configs.values():
            params = params_for(design_of(arch), params)
            wall = best_time(lambda p=params, a=arch: simulate_layer(resnet, a, p), args.repeats)
            row += f" {wall:10.3f}s (cpu {CPU_TIMES[-1]:6.3f}s)"
        row += f" {best_time(lambda a=arch: simulate_network(net, a), args.repeats):8.3f}s"
        print(row, flush=True)
    wrows = Geometry(resnet, SimParams()).weight_rows(resnet.weights)  # [64 filters, 36 rows, 16 lanes]
    schedule_layer(wrows[:16], 16)  # compile / load the numba cache
    sched = best_time(lambda: schedule_layer(wrows, 16), args.repeats)
    print(f"BitTactical schedule of conv2_x (64 filters x 36 rows x 16 lanes): {sched:.3f}s "
          f"(cpu {CPU_TIMES[-1]:.3f}s; target < 0.5 s)")
    warm = subprocess.run([sys.executable, "-c", WARMUP_SNIPPET], capture_output=True, text=True, check=True)
    print(f"warm-up from the numba cache (fresh process: import + first calls): {float(warm.stdout):.2f}s")


if __name__ == "__main__":
    main()
