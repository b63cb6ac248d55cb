"""Calibrate when the simulator's kernels take their numba form: numba's start-up against numpy's speed.

Run: ``python benchmarks/sim_jit_calibration.py [--repeats N]``. It measures (CPU seconds, best of N):

- numba's start-up in a fresh process: importing it and loading the first cached kernel (warm on-disk cache);
- each kernel's numpy and numba forms per unit of work (numba warm): the partial-reach shifter per lane value,
  the column-register recurrence per (step x column), BitTacticalE/P's pattern costs per gathered lane value
  (shifter reach 0 and partial), BitTactical's scheduler per buffer row and per weight slot (a least-squares
  fit over layer shapes);

and prints them next to the constants in ``bitpruner.sim.vectorized`` / ``bitpruner.utils.jit`` (the engine
runs numba when the seconds it would save over a run reach the start-up). Re-run it after changing a kernel.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np
from sim_workloads import conv2x_fc, lenet5, resnet18

from bitpruner.sim import vectorized
from bitpruner.sim.costs import tactical_blocks
from bitpruner.sim.designs import design_of
from bitpruner.sim.engine import LayerSimulator
from bitpruner.sim.params import SimParams
from bitpruner.sim.tactical import schedule_layer
from bitpruner.sim.tiling import Geometry, KernelMode, magnitudes, shifter_reach
from bitpruner.utils import jit

STARTUP_SNIPPET = (
    "import time, numpy as np; import bitpruner.sim.engine; c = time.process_time();"
    "from bitpruner.sim import kernels;"
    "kernels.ring_cycles(np.ones((1, 1, 2, 3), np.int64), np.array([2]), 1, np.zeros(3, np.int64),"
    " np.zeros(2, np.int64));"
    "print(time.process_time() - c)"
)
PARTIAL_BFS = 2  # bits_first_stage of the partial-reach measurements (reach 3)


def cpu(fn, repeats: int) -> float:
    """Best CPU seconds of `repeats` calls (CPU time: the machine may be busy; all threads count)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def both_forms(fn, repeats: int) -> tuple[float, float]:
    """CPU seconds of `fn` with the numpy forms forced, then with the numba forms (after one untimed call)."""
    times = []
    for mode in ("never", "always"):
        os.environ[jit.JIT_ENV] = mode
        try:
            fn()
            times.append(cpu(fn, repeats))
        finally:
            os.environ.pop(jit.JIT_ENV)
    return times[0], times[1]


def report(what: str, times: tuple[float, float], units: float, name: str) -> None:
    current = getattr(vectorized, name)
    print(f"{what}: numpy {times[0] / units:.2e}, numba {times[1] / units:.2e} s per unit "
          f"({name} = ({current[0]:.2e}, {current[1]:.2e}))")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    starts = [float(subprocess.run([sys.executable, "-c", STARTUP_SNIPPET], capture_output=True, text=True,
                                   check=True).stdout) for _ in range(args.repeats)]
    print(f"numba start-up (import + first cached kernel): {min(starts):.3f} s "
          f"(NUMBA_STARTUP_S = {jit.NUMBA_STARTUP_S})")

    reach = shifter_reach(PARTIAL_BFS)
    shape = (1 << 17, 16)
    vals = np.abs(rng.normal(0, 30, shape)).clip(0, 127).astype(np.int64) * (rng.random(shape) < 0.5)
    report("shifter, partial reach, per lane value", both_forms(lambda: vectorized.shifter_rows(vals, reach),
                                                               args.repeats), vals.size, "SHIFTER_S_PER_VALUE")

    cost = rng.integers(0, 9, (200, 1, 36, 16))
    steps = np.array([36])
    report("column registers, per step x column", both_forms(lambda: vectorized.ring_cycles(cost, steps, 1, 2),
                                                             args.repeats), cost.size, "RING_S_PER_VALUE")

    layer = conv2x_fc().layers[0]
    for bfs, name in ((0, "PATTERN_S_PER_VALUE"), (PARTIAL_BFS, "PATTERN_SHIFTER_S_PER_VALUE")):
        sim = LayerSimulator(layer, design_of("BitTacticalE"), SimParams(bits_first_stage=bfs))
        plans, _ = sim.plans()
        blocks = tactical_blocks(sim, plans, KernelMode.PRAGMATIC)
        g = sim.g
        mags = magnitudes(g.act_values(layer, 0), 16, False)

        def run(sim=sim, blocks=blocks, g=g, mags=mags):
            vectorized.pattern_costs(mags, g.x0, g.y0, g.row_x, g.row_y, g.row_ch, *blocks, g.cols,
                                     KernelMode.PRAGMATIC, sim.reach)

        report(f"pattern costs, bfs {bfs}, per gathered lane value", both_forms(run, 1), g.n_win * blocks[3].size,
               name)

    rows, slots, numpy_t, numba_t = [], [], [], []
    # Layers of every size: the numpy form pays per row (a pass per filled lane) and per slot; the two grow
    # together in one network, so mix networks to separate them.
    for layer in resnet18().layers[::3] + conv2x_fc().layers + lenet5().layers:
        g = Geometry(layer, SimParams())
        wrows = g.weight_rows(layer.weights)
        t = both_forms(lambda wrows=wrows, g=g: schedule_layer(wrows, 16, n_channels=g.C), 1)
        rows.append(g.T)
        slots.append(wrows.size)
        numpy_t.append(t[0])
        numba_t.append(t[1])
    design = np.array([rows, slots], float).T
    (np_row, np_slot), *_ = np.linalg.lstsq(design, np.array(numpy_t), rcond=None)
    (nb_row, nb_slot), *_ = np.linalg.lstsq(design, np.array(numba_t), rcond=None)
    print(f"scheduler: numpy {np_row:.2e} s per buffer row + {np_slot:.2e} s per weight slot, numba "
          f"{nb_row:.2e} + {nb_slot:.2e} (SCHEDULE_S_PER_ROW = {vectorized.SCHEDULE_S_PER_ROW}, "
          f"SCHEDULE_S_PER_SLOT = {vectorized.SCHEDULE_S_PER_SLOT})")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus")


if __name__ == "__main__":
    main()
