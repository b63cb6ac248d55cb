"""How the simulator's time and memory grow with the number of images and with the network.

Run: ``python benchmarks/sim_scaling.py [--images 1 8 32] [--workloads conv2x_fc resnet18] [--designs ...]``.
For each workload of ``sim_workloads.py`` (one ResNet-18 conv2_x layer + fc 512 x 1000, a full ResNet-18-shaped
network) and image count it simulates every sample in one process (``simulate_network(..., samples=N)``) and
prints wall and CPU seconds, seconds per image, and the peak of numpy's allocations during the run
(tracemalloc; numba's own buffers are not traced). The first image's time includes the once-per-layer work
(BitTactical's schedule, lane patterns) and any kernel loading; a warm-up run on one image loads numba's cache
first. Samples after the first run on ``NUMBA_NUM_THREADS`` threads (default: every CPU).
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc

from sim_workloads import WORKLOADS

from bitpruner.sim.designs import design_of, params_for
from bitpruner.sim.engine import simulate_network
from bitpruner.sim.params import SimParams
from bitpruner.utils.jit import threads

DESIGNS = {
    "DaDianNao": SimParams(), "Stripes": SimParams(), "Laconic": SimParams(), "BitPragmatic": SimParams(),
    "BitPragmatic bfs2+CR2+Booth": SimParams(bits_first_stage=2, column_registers=2, booth_encoding=True),
    "ShapeShifter": SimParams(), "Loom": SimParams(), "BitTactical": SimParams(), "BitTacticalE": SimParams(),
    "BitTacticalP": SimParams(),
}
MIB = 1 << 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--workloads", nargs="+", default=["conv2x_fc", "resnet18"], choices=list(WORKLOADS))
    parser.add_argument("--designs", nargs="+", default=list(DESIGNS), choices=list(DESIGNS), metavar="DESIGN")
    parser.add_argument("--no-memory", action="store_true", help="skip tracemalloc (it slows Python loops)")
    args = parser.parse_args()
    print(f"load: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1/5/15 min), cpus: {os.cpu_count()}, "
          f"threads: {threads()}")
    print("| workload | design | images | wall (s) | CPU (s) | wall per image (s) | numpy peak (MiB) |")
    print("|---|---|---|---|---|---|---|")
    for name in args.workloads:
        traces = {n: WORKLOADS[name](images=n) for n in sorted(set(args.images))}
        for label in args.designs:
            arch = label.split()[0]
            params = params_for(design_of(arch), DESIGNS[label])
            simulate_network(traces[min(traces)], arch, params)  # warm-up: numba's cache, numpy's first calls
            for n, trace in traces.items():
                if not args.no_memory:
                    tracemalloc.start()
                start, cpu = time.perf_counter(), time.process_time()
                simulate_network(trace, arch, params, samples=n)
                wall, cpu = time.perf_counter() - start, time.process_time() - cpu
                peak = "-"
                if not args.no_memory:
                    peak = f"{tracemalloc.get_traced_memory()[1] / MIB:.0f}"
                    tracemalloc.stop()
                print(f"| {name} | {label} | {n} | {wall:.3f} | {cpu:.3f} | {wall / n:.4f} | {peak} |", flush=True)


if __name__ == "__main__":
    main()
