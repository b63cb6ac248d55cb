"""The cycle model: one tiling/step engine (spec: simulator.md); the per-design costs come from the registry.

`LayerSimulator` holds what every design's cost reads (geometry, precisions, signedness, shifter reach,
column registers, Booth flag, BitTactical schedule); `LayerSimulator.cycles` calls the design's cost
(``designs.py`` -> ``costs.py``). `simulate_layer` / `simulate_network` are the public entry points.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

import numpy as np

from bitpruner.errors import TraceError
from bitpruner.sim.booth import BOOTH_LIMIT
from bitpruner.sim.costs import jit_saving
from bitpruner.sim.designs import Design, check_options, design_of
from bitpruner.sim.params import WHERE, SimParams
from bitpruner.sim.tiling import Geometry, shifter_reach
from bitpruner.sim.traces import LayerTrace, NetworkTrace
from bitpruner.utils.jit import prefer_jit, threads, use_jit

__all__ = ["Geometry", "GroupedSimulator", "LayerResult", "LayerSimulator", "make_simulator", "simulate_layer",
           "simulate_network"]


@dataclass(frozen=True)
class LayerResult:
    name: str
    type: str
    compute_cycles: int


class LayerSimulator:
    """Simulates one layer for one design; weight-side work is done once, activation-side work per sample."""

    def __init__(self, layer: LayerTrace, design: Design, params: SimParams, signed: bool | None = None,
                 diagonal: bool = False):
        """`signed` overrides the layer's signedness (a grouped layer's sub-layers take the whole layer's);
        `diagonal`: a depthwise group's sub-layer (BitTactical tuples as DNNsim sets them, `grouped.py`)."""
        if layer.groups != 1:
            raise TraceError(f"layer {layer.name!r}: groups={layer.groups}; use GroupedSimulator (make_simulator)")
        self.layer, self.design, self.p = layer, design, params
        self.g = Geometry(layer, params)
        self.act_prec, self.wgt_prec = layer.precisions(params.pe_width)
        self.signed = bool(layer.activations.min() < 0) if signed is None else signed
        self.diagonal = diagonal
        self.reach = shifter_reach(params.bits_first_stage)
        self.registers = params.column_registers if (design.takes("column_registers") and not self.g.fc) else 0
        self.booth = params.booth_encoding and design.takes("booth_encoding")
        if self.booth:
            self._check_booth()
        self._schedule = None
        self._plans: tuple[list[np.ndarray], int] | None = None
        self.memo: dict = {}  # sample-independent results a design's cost keeps between samples

    def _check_booth(self) -> None:
        for side in self.design.serial.operands:
            values = getattr(self.layer, side)
            if values.size and np.abs(values).max() >= BOOTH_LIMIT:
                raise TraceError(
                    f"layer {self.layer.name!r}: {side} hold |v| = {int(np.abs(values).max())} >= {BOOTH_LIMIT}, "
                    f"beyond DNNsim's Booth table"
                )

    def schedule(self):
        """The layer's BitTactical weight schedule (computed once; `tactical.LayerSchedule`)."""
        if self._schedule is None:
            from bitpruner.sim.tactical import schedule_layer

            wrows = self.g.weight_rows(self.layer.weights)
            if self.diagonal:
                from bitpruner.sim.grouped import diagonal_schedule

                sch = schedule_layer(wrows, self.p.rows, self.p.lookahead, self.p.lookaside, n_channels=None)
                self._schedule = diagonal_schedule(sch)
            else:
                self._schedule = schedule_layer(wrows, self.p.rows, self.p.lookahead, self.p.lookaside,
                                                n_channels=self.g.C)
        return self._schedule

    def plans(self) -> tuple[list[np.ndarray], int]:
        """BitTactical step plans: one [steps, tiles] array of buffer rows (-1: idle tile) per
        (window set, group), and how many window sets they cover (1 when every window set repeats
        the same plan, the usual case; DNNsim's carried skip counters can make them differ). Computed once."""
        if self._plans is None:
            sch = self.schedule()
            n_ws = 1 if self.g.fc else self.g.WS
            plan = sch.step_plan(self.p.tiles, 1)
            if n_ws > 1 and any(step.shape[0] == 0 for step in plan):
                self._plans = sch.step_plan(self.p.tiles, n_ws), n_ws
            else:
                self._plans = plan, 1
        return self._plans

    def cycles(self, sample: int) -> int:
        """compute_cycles of one sample: the design's cost."""
        return int(self.design.cost(self, sample))

    def parts(self) -> list[LayerSimulator]:
        """The dense simulators whose kernels run (itself)."""
        return [self]

    def release(self) -> None:
        """Drop what was kept between samples (schedule, plans, memo): a network keeps one layer's at a time."""
        self._schedule, self._plans = None, None
        self.memo.clear()


class GroupedSimulator:
    """A grouped or depthwise conv (``layer.groups > 1``): DNNsim's grouped-layer tiling (`grouped.py`).

    The groups run one after the other as dense sub-layers (`grouped.group_tiling`); the column registers' ring
    and BitTactical's skip counters carry over from group to group, the layer's signedness is shared.
    Same interface as `LayerSimulator` (``layer``, ``design``, ``cycles``, ``parts``, ``release``).
    """

    def __init__(self, layer: LayerTrace, design: Design, params: SimParams):
        from bitpruner.sim.grouped import group_tiling, sub_layers

        self.layer, self.design, self.p = layer, design, params
        self.tiling = group_tiling(layer, params)
        signed = bool(layer.activations.min() < 0)
        self.subs = [LayerSimulator(sub, design, self.tiling.params, signed=signed, diagonal=self.tiling.depthwise)
                     for sub in sub_layers(layer, self.tiling)]
        self.registers = self.subs[0].registers
        self._chained = False

    def parts(self) -> list[LayerSimulator]:
        """The sub-layers' simulators, in execution order."""
        return self.subs

    def _chain_plans(self) -> None:
        """BitTactical: every sub-layer's plans with the skip counters carried across groups (once)."""
        if self._chained or not self.design.scheduled:
            return
        from bitpruner.sim.grouped import chained_plans

        first = self.subs[0]
        n_ws = 1 if first.g.fc else first.g.WS
        plans = chained_plans([sub.schedule() for sub in self.subs], self.tiling.params.tiles, n_ws,
                              self.tiling.params.lookahead)
        for sub, plan in zip(self.subs, plans, strict=True):
            sub._plans = plan
        self._chained = True

    def cycles(self, sample: int) -> int:
        """compute_cycles of one sample: the groups' cycles, one column-register ring over all of them."""
        from bitpruner.sim.tiling import capture_rings, chained_ring

        self._chain_plans()
        if not self.registers:
            return sum(sub.cycles(sample) for sub in self.subs)
        with capture_rings() as captured:
            rest = sum(sub.cycles(sample) for sub in self.subs)
        if rest:  # every column-register cost must go through tiling's ring (or this sum would be wrong)
            raise RuntimeError(f"layer {self.layer.name!r}: {self.design.name} returned {rest} cycles outside the "
                               f"column-register timing")
        return chained_ring(captured, self.registers)

    def release(self) -> None:
        """Drop the sub-layers' kept state."""
        for sub in self.subs:
            sub.release()
        self._chained = False


def make_simulator(layer: LayerTrace, design: Design, params: SimParams) -> LayerSimulator | GroupedSimulator:
    """The simulator of one layer: `LayerSimulator`, or `GroupedSimulator` for a grouped conv."""
    if layer.groups > 1:
        return GroupedSimulator(layer, design, params)
    return LayerSimulator(layer, design, params)


def simulate_layer(layer: LayerTrace, arch: str | Design, params: SimParams | None = None, samples: int = 1) -> int:
    """compute_cycles of one layer (summed over the first `samples` samples); a grouped or depthwise conv
    (``layer.groups > 1``) runs on DNNsim's grouped-layer tiling (`GroupedSimulator`, `grouped.py`).

    `arch`: a design name or alias (any case) or a registry `Design`. Raises ConfigError for an unknown
    design or an option it does not take (unless at its default), TraceError for a trace it cannot run.
    """
    params = params or SimParams()
    design = design_of(arch)
    check_options(design, params, WHERE)
    n = layer.activations.shape[0]
    if not 1 <= samples <= n:
        raise TraceError(f"layer {layer.name!r}: asked for {samples} samples, the trace holds {n}")
    sim = make_simulator(layer, design, params)
    with prefer_jit(_numba_pays([sim], samples)):
        return _layer_cycles(sim, samples)


def _layer_cycles(sim: LayerSimulator | GroupedSimulator, samples: int) -> int:
    """compute_cycles summed over the first `samples` samples; samples after the first run on `threads()`
    threads (numpy and the numba kernels release the GIL), after the first has filled the layer's
    sample-independent state (schedule, plans, lane patterns) that they share."""
    total = sim.cycles(0)
    n_threads = min(threads(), samples - 1)
    if n_threads <= 1:
        return total + sum(sim.cycles(s) for s in range(1, samples))
    from concurrent.futures import ThreadPoolExecutor  # here: it imports logging (~20 ms of every start-up)

    with ThreadPoolExecutor(n_threads) as pool:  # each task runs in a copy of this context (prefer_jit)
        jobs = [pool.submit(contextvars.copy_context().run, sim.cycles, s) for s in range(1, samples)]
        return total + sum(job.result() for job in jobs)


def _numba_pays(sims: list[LayerSimulator | GroupedSimulator], samples: int) -> bool:
    """Whether the seconds numba would save over the whole run pay for its start-up (`costs.jit_saving`): then
    every kernel of the run takes its numba form."""
    return use_jit(sum(jit_saving(part, samples) for sim in sims for part in sim.parts()))


def simulate_network(
    trace: NetworkTrace,
    arch: str | Design,
    params: SimParams | None = None,
    samples: int = 1,
    progress: bool = False,
    tactical: bool = False,
) -> list[LayerResult]:
    """Per-layer compute cycles of a whole network; `progress` shows a bar over the layers.

    `tactical` turns DaDianNao / BitPragmatic / ShapeShifter into BitTactical / E / P, like `--tactical`.
    Errors as `simulate_layer`.
    """
    params = params or SimParams()
    design = design_of(arch, tactical=tactical)
    check_options(design, params, WHERE)
    for layer in trace.layers:
        n = layer.activations.shape[0]
        if not 1 <= samples <= n:
            raise TraceError(f"layer {layer.name!r}: asked for {samples} samples, the trace holds {n}")
    sims = [make_simulator(layer, design, params) for layer in trace.layers]
    numba_pays = _numba_pays(sims, samples)
    if progress:
        from rich.progress import track

        sims = track(sims, description=f"simulating {trace.name} on {design.name}")
    results = []
    with prefer_jit(numba_pays):
        for sim in sims:
            cycles = _layer_cycles(sim, samples)
            sim.release()
            results.append(LayerResult(name=sim.layer.name, type=sim.layer.type, compute_cycles=int(cycles)))
    return results
