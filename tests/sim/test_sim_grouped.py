"""Grouped and depthwise convolutions: traces, DNNsim's grouped tiling (golden numbers from DNNsim itself), the
brute-force reference, capture of PyTorch models and `bitpruner sim` on their traces.

DNNsim (isakedo/DNNsim 4748a60) numbers: tests/sim/golden/grouped/README.md says how they were produced.
"""

import json

import numpy as np
import pytest
import torch
from torch import nn

import bitpruner.cli
from bitpruner.errors import TraceError
from bitpruner.models import GroupedCNN
from bitpruner.sim.capture import quantize_model
from bitpruner.sim.designs import design_of, params_for
from bitpruner.sim.dnnsim_io import load_dnnsim, save_dnnsim, split_groups
from bitpruner.sim.engine import GroupedSimulator, simulate_layer, simulate_network
from bitpruner.sim.grouped import group_tiling, sub_layers
from bitpruner.sim.params import SimParams
from bitpruner.sim.reference import reference_cycles
from bitpruner.sim.traces import LayerTrace, NetworkTrace, from_torch_layout

DNNSIM_DESIGNS = ("DaDianNao", "Stripes", "BitPragmatic", "Laconic", "ShapeShifter", "Loom", "BitTactical",
                  "BitTacticalE", "BitTacticalP")
CONFIGS = {
    "small": SimParams(lanes=4, columns=3, rows=4, tiles=2, bits_first_stage=2, column_registers=2,
                       booth_encoding=True),
    "default": SimParams(),
}
LAYERS = ("dw1", "dw2", "g2a", "g2b", "g4")
# compute_cycles DNNsim printed, per config and design, for the layers of grouped_golden_layers() (in LAYERS
# order). g4 (4 groups) is what DNNsim printed for its 4 groups written as dense layers (`split_groups`): DNNsim
# runs only 2 groups and depthwise layers as grouped.
DNNSIM = {
    "small": {
        "DaDianNao": (216, 270, 216, 36, 324), "Stripes": (3456, 4320, 3456, 576, 5184),
        "BitPragmatic": (911, 935, 826, 133, 1046), "Laconic": (2995, 2705, 3755, 579, 3854),
        "ShapeShifter": (1849, 2127, 1716, 302, 2199), "Loom": (31040, 38960, 30864, 5728, 43984),
        "BitTactical": (72, 90, 144, 18, 144), "BitTacticalE": (343, 342, 658, 87, 563),
        "BitTacticalP": (642, 756, 1267, 193, 1159),
    },
    "default": {
        "DaDianNao": (27, 18, 54, 4, 72), "Stripes": (432, 288, 864, 64, 1152), "BitPragmatic": (241, 178, 443, 40, 617),
        "Laconic": (826, 593, 1949, 160, 2022), "ShapeShifter": (243, 198, 486, 44, 720),
        "Loom": (3888, 3168, 7776, 704, 11520), "BitTactical": (9, 6, 24, 4, 24), "BitTacticalE": (77, 58, 216, 40, 233),
        "BitTacticalP": (81, 66, 222, 44, 240),
    },
}
# Our g4 with column registers: one ring over the 4 groups (as DNNsim's grouped path runs it for 2 groups),
# where DNNsim's split layers start a fresh ring each.
OURS_G4_SMALL = {"BitPragmatic": 1040, "ShapeShifter": 2193, "BitTacticalE": 559, "BitTacticalP": 1157}


def grouped_golden_layers() -> list[LayerTrace]:
    """The seeded layers DNNsim saw: depthwise (one and two groups of 16 at default geometry, stride 2, signed
    activations), 2 groups (3x3 and 1x1, signed) and 4 groups."""
    rng = np.random.default_rng(2025)

    def layer(name, k, c, g, size, kernel, stride, pad, signed=False, dens_w=0.6, dens_a=0.6):
        w = rng.integers(-300, 300, (k, c // g, kernel, kernel)) * (rng.random((k, c // g, kernel, kernel)) < dens_w)
        a = rng.integers(-500 if signed else 0, 1000, (1, c, size, size)) * (rng.random((1, c, size, size)) < dens_a)
        return LayerTrace(name, "conv", w, a, stride=stride, pad=pad, groups=g)

    return [
        layer("dw1", 8, 8, 8, 6, 3, 1, 1),
        layer("dw2", 20, 20, 20, 7, 3, 2, 1, signed=True, dens_w=0.4),
        layer("g2a", 6, 6, 2, 6, 3, 1, 1),
        layer("g2b", 4, 10, 2, 5, 1, 1, 0, signed=True),
        layer("g4", 8, 8, 4, 5, 3, 1, 1, dens_w=0.5),
    ]


@pytest.fixture(scope="module")
def golden():
    return {layer.name: layer for layer in grouped_golden_layers()}


# ------------------------------------------------------------------ traces


def test_groups_are_validated_in_one_line():
    w, a = np.ones((8, 2, 3, 3)), np.ones((1, 8, 5, 5))
    assert LayerTrace("g", "conv", w, a, groups=4).groups == 4
    for groups, weights, match in [
        (1, w, "weights have 2 channels, activations 8, groups=1; expected C % groups == 0, K % groups == 0 and "
               "C/groups weight channels (a grouped convolution? set groups=4)"),
        (3, w, "weights have 2 channels, activations 8, groups=3"),  # 8 % 3
        (4, np.ones((6, 2, 3, 3)), "groups=4"),  # 6 filters % 4
        (2, w, "weights have 2 channels, activations 8, groups=2"),  # C/g = 4 != 2
    ]:
        with pytest.raises(TraceError) as info:
            LayerTrace("g", "conv", weights, a, groups=groups)
        assert match in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(TraceError, match="groups=0: expected an integer in"):
        LayerTrace("g", "conv", w, a, groups=0)
    with pytest.raises(TraceError, match="groups=2 on an fc layer; expected 1"):
        LayerTrace("f", "fc", np.ones((3, 4)), np.ones((1, 4)), groups=2)


def test_groups_round_trip_through_both_formats(tmp_path, golden):
    trace = NetworkTrace("net", list(golden.values()))
    again = NetworkTrace.load(trace.save(tmp_path / "own"))
    assert [layer.groups for layer in again.layers] == [8, 20, 2, 2, 4]
    # DNNsim's layout has no groups column: they come back from the two channel counts, as DNNsim infers them.
    save_dnnsim(trace, tmp_path / "dnnsim")
    loaded = load_dnnsim(tmp_path / "dnnsim", "net")
    assert [layer.groups for layer in loaded.layers] == [8, 20, 2, 2, 4]
    for mine, back in zip(trace.layers, loaded.layers, strict=True):
        assert np.array_equal(mine.weights, back.weights) and np.array_equal(mine.activations, back.activations)


def test_split_groups_writes_what_dnnsim_cannot_run_grouped_as_dense_layers(golden):
    split = split_groups(NetworkTrace("net", list(golden.values())))
    names = [layer.name for layer in split.layers]
    assert names == ["dw1", "dw2", "g2a", "g2b", "g4.group0", "g4.group1", "g4.group2", "g4.group3"]
    g4 = golden["g4"]
    for j, layer in enumerate(split.layers[4:]):
        assert layer.groups == 1
        assert np.array_equal(layer.weights, g4.weights[2 * j : 2 * j + 2])
        assert np.array_equal(layer.activations, g4.activations[:, 2 * j : 2 * j + 2])


def test_depthwise_groups_are_diagonal_layers_of_min_lanes_rows():
    # DNNsim: lanes = rows = min(lanes, rows) = 3, groups of 3 consecutive filters, filter m on lane m.
    w = np.arange(1, 8).reshape(7, 1, 1, 1) * np.ones((7, 1, 2, 2), np.int64)
    a = np.arange(7).reshape(1, 7, 1, 1) * np.ones((1, 7, 3, 3), np.int64)
    layer = LayerTrace("dw", "conv", w, a, groups=7)
    tiling = group_tiling(layer, SimParams(lanes=4, rows=3))
    assert tiling.depthwise and (tiling.params.lanes, tiling.params.rows) == (3, 3)
    subs = sub_layers(layer, tiling)
    assert [sub.weights.shape for sub in subs] == [(3, 3, 2, 2), (3, 3, 2, 2), (1, 1, 2, 2)]
    assert subs[1].weights[:, :, 0, 0].tolist() == [[4, 0, 0], [0, 5, 0], [0, 0, 6]]
    assert subs[1].activations[0, :, 0, 0].tolist() == [3, 4, 5]
    # A channel multiplier of 2: filter f reads channel f // 2 (PyTorch's pairing, not DNNsim's f).
    mult = LayerTrace("dw2", "conv", np.ones((6, 1, 1, 1)), a[:, :3], groups=3)
    assert [sub.activations[0, :, 0, 0].tolist() for sub in sub_layers(mult, group_tiling(mult, SimParams()))] == [
        [0, 0, 1, 1, 2, 2]]


# ------------------------------------------------------------------ DNNsim's numbers


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("arch", DNNSIM_DESIGNS)
def test_matches_dnnsim(golden, config, arch):
    design = design_of(arch)
    params = params_for(design, CONFIGS[config])  # DNNsim ignores the options a design does not take
    want = dict(zip(LAYERS, DNNSIM[config][arch], strict=True))
    for name in ("dw1", "dw2", "g2a", "g2b"):
        assert simulate_layer(golden[name], design, params) == want[name], name
    split = split_groups(NetworkTrace("g4", [golden["g4"]]))
    assert sum(r.compute_cycles for r in simulate_network(split, design, params)) == want["g4"]
    grouped = simulate_layer(golden["g4"], design, params)
    if config == "small" and arch in OURS_G4_SMALL:
        assert grouped == OURS_G4_SMALL[arch] != want["g4"]
    else:
        assert grouped == want["g4"]


def test_column_registers_run_one_ring_across_the_groups(golden):
    # The ring is carried over: the sum of the groups simulated alone (a fresh ring each) differs, and DNNsim's
    # 2-group numbers above (g2a, g2b with 2 column registers) agree with the carried ring.
    params = CONFIGS["small"]
    layer = golden["g4"]
    alone = sum(simulate_layer(sub, "BitPragmatic", params) for sub in sub_layers(layer, group_tiling(layer, params)))
    assert alone == DNNSIM["small"]["BitPragmatic"][LAYERS.index("g4")] != simulate_layer(layer, "BitPragmatic", params)


# ------------------------------------------------------------------ brute force


def random_grouped(rng, kind: str) -> LayerTrace:
    if kind == "depthwise":
        c = int(rng.integers(2, 9))
        g, k = c, c * int(rng.choice([1, 2]))
    else:
        g = int(rng.choice([2, 3, 4]))
        c, k = g * int(rng.integers(1, 4)), g * int(rng.integers(1, 4))
    kernel = int(rng.integers(1, 4))
    size = int(rng.integers(kernel, 7))
    w = rng.integers(-60, 60, (k, c // g, kernel, kernel)) * (rng.random((k, c // g, kernel, kernel)) < 0.6)
    a = rng.integers(-20 if rng.random() < 0.3 else 0, 90, (1, c, size, size)) * (rng.random((1, c, size, size)) < 0.6)
    return LayerTrace("g", "conv", w, a, stride=int(rng.integers(1, 3)), pad=int(rng.integers(0, 2)), groups=g)


@pytest.mark.parametrize("arch", [*DNNSIM_DESIGNS, "PragmaticW"])
@pytest.mark.parametrize("kind", ["depthwise", "grouped"])
def test_engine_equals_reference(arch, kind):
    rng = np.random.default_rng(sum(map(ord, arch + kind)))
    design = design_of(arch)
    for _ in range(4):
        layer = random_grouped(rng, kind)
        params = params_for(design, SimParams(
            lanes=int(rng.choice([2, 4])), columns=int(rng.integers(2, 5)), rows=int(rng.choice([2, 3, 4])),
            tiles=int(rng.integers(1, 3)), bits_first_stage=int(rng.integers(0, 3)),
            column_registers=int(rng.integers(0, 3)), booth_encoding=bool(rng.random() < 0.3), lookaside=1))
        assert simulate_layer(layer, design, params) == reference_cycles(layer, design, params)


def test_groups_of_dense_layers_add_up_without_state_across_groups(golden):
    # DaDianNao and Stripes: every group costs what it costs alone.
    layer, params = golden["g2a"], SimParams(lanes=4, columns=3, rows=2, tiles=2)
    sim = GroupedSimulator(layer, design_of("Stripes"), params)
    assert len(sim.parts()) == 2
    steps = sum(sub.g.WS * sub.g.filter_groups * sub.g.T for sub in sim.parts())
    assert simulate_layer(layer, "DaDianNao", params) == steps
    assert simulate_layer(layer, "Stripes", params) == 16 * steps


# ------------------------------------------------------------------ models, capture, CLI


def grouped_trace(tmp_path=None):
    torch.manual_seed(0)
    model = GroupedCNN(in_channels=1, image_size=(12, 12), num_classes=3, channels=(4, 8, 8), strides=(1, 2), groups=2)
    batches = [torch.rand(2, 1, 12, 12)]
    return model, quantize_model(model, batches, name="gcnn").capture(batches[0][:1])


def test_grouped_model_captures_and_simulates_end_to_end(tmp_path, capsys):
    model, trace = grouped_trace()
    groups = {layer.name: layer.groups for layer in trace.layers}
    assert groups == {"stem": 1, "blocks.block1.dw": 4, "blocks.block1.pw": 1, "blocks.block2.dw": 8,
                      "blocks.block2.pw": 1, "grouped": 2, "fc": 1}
    # The trace's integer product is the captured model's: a grouped conv over the trace's arrays, in PyTorch's
    # layout, equals the quantized model's layer on its quantized input (scales aside).
    dw = trace.layer("blocks.block2.dw")
    w, a = from_torch_layout(dw.weights, dw.activations)  # the swap is its own inverse
    out = nn.functional.conv2d(torch.tensor(a, dtype=torch.float64), torch.tensor(w, dtype=torch.float64),
                               stride=dw.stride, padding=dw.pad, groups=dw.groups)
    assert out.shape[1] == 8 and torch.equal(out, torch.round(out))
    for arch in (*DNNSIM_DESIGNS, "PragmaticW"):
        results = simulate_network(trace, arch)
        assert len(results) == 7 and all(r.compute_cycles > 0 for r in results)
    # `bitpruner sim` on the trace in DNNsim's layout (groups come back from the channel counts).
    save_dnnsim(trace, tmp_path)
    assert bitpruner.cli.main(["sim", "--traces", str(tmp_path), "--network", "gcnn", "--arch", "BitPragmatic",
                               "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [layer["compute_cycles"] for layer in doc["layers"]] == [
        r.compute_cycles for r in simulate_network(trace, "BitPragmatic")]


def test_mobilenet_v2_captures_and_simulates():
    pytest.importorskip("torchvision")
    from bitpruner.models import torchvision_model

    model = torchvision_model("mobilenet_v2", image_size=(32, 32), num_classes=10).eval()
    batch = torch.rand(1, 3, 32, 32)
    trace = quantize_model(model, [batch], name="mnv2").capture(batch)
    assert any(layer.groups == layer.activations.shape[1] > 1 for layer in trace.layers)  # depthwise layers
    results = simulate_network(trace, "BitPragmatic")
    assert len(results) == len(trace.layers) and all(r.compute_cycles > 0 for r in results)


def test_chained_plans_of_one_layer_are_the_dense_step_plans():
    # grouped.chained_plans transcribes the same DNNsim tile loop as tactical's step plans, with the skip counters
    # carried across sub-layers: on one layer (all-zero rows and all-zero filter sets included) they must agree.
    from bitpruner.sim.grouped import chained_plans
    from bitpruner.sim.tactical import schedule_layer

    rng = np.random.default_rng(7)
    carried = 0
    for _ in range(30):
        k, t, lanes, rows, tiles, n_ws = (int(rng.integers(1, 9)), int(rng.integers(1, 5)), 4, int(rng.integers(1, 4)),
                                         int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        w = rng.integers(-3, 4, (k, t, lanes)) * (rng.random((k, t, 1)) < 0.4) * (rng.random((k, 1, 1)) < 0.7)
        sch = schedule_layer(w, rows, 2, 1)
        [(plans, covered)] = chained_plans([sch], tiles, n_ws, 2)
        full = plans * n_ws if covered == 1 else plans
        want = sch.step_plan(tiles, n_ws)
        assert len(full) == len(want) and all(np.array_equal(a, b) for a, b in zip(full, want, strict=True))
        carried += covered > 1
    assert carried  # some window sets started with skip counters carried over (their own plans)


def test_bittactical_uses_each_groups_own_end_rows():
    # DNNsim's end-of-set test reads group 0's wgt_end_time for every group: here group 0's second buffer row is
    # all zero (its sets end at row 0), so DNNsim stops group 1 after its first row and printed 4 / 40 / 40
    # (BitTactical / E / P, default geometry). We run every group to its own last row: its groups alone add up.
    rng = np.random.default_rng(4)
    w = rng.integers(1, 100, (32, 32, 1, 1))
    w[:16, 16:] = 0
    layer = LayerTrace("er", "conv", w, rng.integers(0, 1000, (1, 64, 5, 5)), groups=2)
    dnnsim = {"BitTactical": 4, "BitTacticalE": 40, "BitTacticalP": 40}
    for arch, theirs in dnnsim.items():
        ours = simulate_layer(layer, arch)
        alone = sum(simulate_layer(sub, arch) for sub in sub_layers(layer, group_tiling(layer, SimParams())))
        assert ours == alone == reference_cycles(layer, arch) > theirs
    assert simulate_layer(layer, "BitTactical") == 6  # group 0: 1 step, group 1: 2 steps, 2 window sets


def test_every_other_design_groups_the_same_way():
    # The designs DNNsim lacks (PragmaticW and the weight-serial ones of the registry) run grouped layers through
    # the same sub-layers (spec new_designs.md, decision 4): the engine equals the reference, 8-bit weights.
    from bitpruner.sim.designs import ARCHS

    rng = np.random.default_rng(11)
    others = [arch for arch in ARCHS if arch not in DNNSIM_DESIGNS]
    assert "PragmaticW" in others
    for kind in ("depthwise", "grouped"):
        layer = random_grouped(rng, kind)  # weights within [-60, 60]: every design's range
        for arch in others:
            design = design_of(arch)
            params = params_for(design, SimParams(lanes=4, columns=3, rows=4, tiles=2))
            assert simulate_layer(layer, design, params) == reference_cycles(layer, design, params), (arch, kind)
