"""Grouped and depthwise convolutions: DNNsim's grouped-layer tiling as a sequence of dense sub-layers.

DNNsim (isakedo/DNNsim 4748a60, ``OutputStationary::configure_layer`` and
``WindowFirstOutS::generate_execution_graph_grouped_layer`` / ``still_on_chip_data_conv_layer``) runs a grouped
layer group after group (groups outermost, then window sets, filter-set groups and buffer rows, as for a dense
layer), each group on the same tiling as a dense layer made of the group's filters and the group's channels:

- **grouped** (weights with ``C/g > 1`` channels): group ``j`` is the dense layer of filters
  ``j*K/g .. (j+1)*K/g - 1`` over activation channels ``j*C/g .. (j+1)*C/g - 1``; the geometry is unchanged
  (its filter-set groups never mix filters of two groups: activations are broadcast to every tile);
- **depthwise** (weights with one channel, ``C > 1``): lanes and rows both become ``D = min(lanes, rows)``;
  a group is ``D`` consecutive filters; filter ``m`` of a group holds its weight on lane ``m`` only (the other
  lanes are zero, and for BitTactical they are padding: their activation tuple is DNNsim's ``(0, 0)``), and the
  lanes carry the group's ``D`` channels, so each group is a dense ``D x D`` layer with a diagonal kernel;
  ``T = Kx * Ky`` buffer rows, one tile busy.

State that lives across a whole layer is carried from group to group, as in DNNsim: the column registers' ring
(`tiling.capture_rings`) and BitTactical's zero-row skip counters (:func:`chained_plans`); the layer's
signedness is decided on all its activations. Simulating a grouped layer is the sum of its groups' cycles
otherwise.

Where we differ from DNNsim (docs/simulator.md):

- DNNsim takes the grouped path only for ``g = 2`` and depthwise layers (``groups = act_channels /
  wgt_channels == 2 ? 2 : 1``); any other ``g`` runs as one dense layer over the *first* group's channels
  (every filter reads the wrong activations and filter sets of different groups share tiles). We apply the
  grouped rule to every ``g``.
- A depthwise layer with a channel multiplier (``K = m*C``, ``m > 1``): DNNsim pairs filter ``f`` with channel
  ``f``; we pair it with channel ``f // m``, as PyTorch does.
- BitTactical's end-of-set test reads ``wgt_end_time[filter_set + t]`` without the group's offset (group 0's
  sets for every group); we use each group's own sets.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from bitpruner.sim.tactical import window_set_steps

if TYPE_CHECKING:
    from bitpruner.sim.params import SimParams
    from bitpruner.sim.tactical import LayerSchedule
    from bitpruner.sim.traces import LayerTrace


@dataclass(frozen=True)
class GroupTiling:
    """How DNNsim tiles a grouped conv: `n_groups` dense sub-layers, each simulated with `params`.

    ``depthwise``: the sub-layers are D x D diagonal layers (D = params.lanes = params.rows).
    ``filters[j]``: the filters of sub-layer j; ``channels[j]``: the activation channel of each of its input
    channels (lanes), int64.
    """

    depthwise: bool
    params: SimParams
    filters: tuple[np.ndarray, ...]
    channels: tuple[np.ndarray, ...]

    @property
    def n_groups(self) -> int:
        return len(self.filters)


def is_depthwise(layer: LayerTrace) -> bool:
    """DNNsim's depthwise test: weights with one channel, activations with more than one."""
    return layer.type == "conv" and layer.weights.shape[1] == 1 and layer.activations.shape[1] != 1


def group_tiling(layer: LayerTrace, params: SimParams) -> GroupTiling:
    """DNNsim's grouping of a conv layer with ``layer.groups > 1`` (module docstring).

    Returns the filters and activation channels of every sub-layer and the parameters they run with
    (depthwise: lanes = rows = min(lanes, rows), DNNsim's ``MIN_DIM``).
    """
    k, c = layer.weights.shape[0], layer.activations.shape[1]
    if is_depthwise(layer):
        d = min(params.lanes, params.rows)
        mult = k // c  # filters per channel (PyTorch's channel multiplier)
        filters = tuple(np.arange(s, min(k, s + d), dtype=np.int64) for s in range(0, k, d))
        channels = tuple(f // mult for f in filters)
        return GroupTiling(True, params.model_copy(update={"lanes": d, "rows": d}), filters, channels)
    g = layer.groups
    kg, cg = k // g, c // g
    filters = tuple(np.arange(j * kg, (j + 1) * kg, dtype=np.int64) for j in range(g))
    channels = tuple(np.arange(j * cg, (j + 1) * cg, dtype=np.int64) for j in range(g))
    return GroupTiling(False, params, filters, channels)


def sub_layers(layer: LayerTrace, tiling: GroupTiling) -> list[LayerTrace]:
    """The dense sub-layer of every group (x-first arrays; precisions, stride and pad of the layer).

    Depthwise: weights [n, n, Kx, Ky] with filter m's kernel on channel m (zero elsewhere) and activations
    [N, n, X, Y] of the n channels the group's filters read.
    """
    out = []
    for j, (filt, chans) in enumerate(zip(tiling.filters, tiling.channels, strict=True)):
        if tiling.depthwise:
            n = filt.size
            w = np.zeros((n, n) + layer.weights.shape[2:], np.int32)
            w[np.arange(n), np.arange(n)] = layer.weights[filt, 0]
        else:
            w = layer.weights[filt]
        sub = replace(layer, name=f"{layer.name}[group {j}]", weights=w, activations=layer.activations[:, chans],
                      groups=1)
        out.append(sub)
    return out


def diagonal_schedule(sch: LayerSchedule) -> LayerSchedule:
    """A depthwise group's BitTactical schedule with DNNsim's tuples: `sch` must come from scheduling the
    diagonal sub-layer with every lane real (``n_channels=None``), so that each slot's tuple names the slot its
    weight started in. In DNNsim only filter m's lane m holds a real tuple; every other slot starts as
    ``(0, 0)`` and carries it when promotion swaps it: map the tuples accordingly."""
    own = np.arange(sch.tuple_lane.shape[1])[None, :, None, None]  # [1, filter, 1, 1]: the filter's own lane
    real = sch.tuple_lane == own
    return replace(sch, tuple_row=np.where(real, sch.tuple_row, 0).astype(np.int32),
                   tuple_lane=np.where(real, sch.tuple_lane, 0).astype(np.int32))


def chained_plans(schedules: list[LayerSchedule], tiles: int, n_window_sets: int, lookahead: int
                  ) -> list[tuple[list[np.ndarray], int]]:
    """BitTactical step plans of a grouped layer's sub-layers, run one after the other.

    Transcribes DNNsim's tile loop (`tactical._step_plan`) with its skip counters carried from group to group
    (DNNsim resets them only when a filter-set group ends through ``tiles_done``). Per sub-layer: the plans
    (one int64 [steps, tiles] array per (window set, filter-set group), window sets outer) and how many window
    sets they cover (1: every window set runs the same plans), as `LayerSimulator.plans` returns them.
    """
    skip = [0] * tiles
    out = []
    for sch in schedules:
        zero_row, end_row = sch.zero_row, sch.end_row
        per_ws: list[list[np.ndarray]] = []
        starts: list[tuple[int, ...]] = []
        for _ in range(n_window_sets):
            start = tuple(skip)
            if starts and start == starts[-1]:
                # Same counters as the previous window set: every later window set repeats its plans.
                per_ws.extend([per_ws[-1]] * (n_window_sets - len(per_ws)))
                break
            starts.append(start)
            plans, skip = window_set_steps(zero_row, end_row, tiles, lookahead, skip)
            per_ws.append(plans)
        if all(p is per_ws[0] or _same(p, per_ws[0]) for p in per_ws[1:]):
            out.append((per_ws[0], 1))
        else:
            out.append(([plan for plans in per_ws for plan in plans], n_window_sets))
    return out


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))

