"""`bitpruner sim` at its boundaries (issue 11, kinds 4 and 7): trace files, values its widths cannot represent,
impossible sizes and flags; each bad input is one line on stderr and exit status 1, checked before allocating."""

import gzip
import json
import pickle
import tracemalloc

import numpy as np
import pytest

import bitpruner.cli
from bitpruner.errors import TraceError
from bitpruner.sim.bounds import DEFAULT_MEMORY_LIMIT_GIB, GIB, check_memory, layer_bytes
from bitpruner.sim.designs import ARCHS, design_of, params_for
from bitpruner.sim.dnnsim_io import load_dnnsim, save_dnnsim
from bitpruner.sim.engine import simulate_layer
from bitpruner.sim.params import SimParams
from bitpruner.sim.traces import LayerTrace, NetworkTrace

NET = "tiny"


def tiny_layers():
    rng = np.random.default_rng(0)
    conv = LayerTrace("conv1", "conv", rng.integers(-20, 20, (6, 5, 3, 3)), rng.integers(0, 50, (1, 5, 7, 7)), pad=1)
    fc = LayerTrace("fc2", "fc", rng.integers(-20, 20, (4, 30)), rng.integers(-50, 50, (1, 30)))
    return [conv, fc]


@pytest.fixture
def root(tmp_path):
    save_dnnsim(NetworkTrace(NET, tiny_layers()), tmp_path)
    return tmp_path


def sim(capsys, root, *argv):
    """(exit status, stdout, stderr) of `bitpruner sim` in-process, with --json (argument errors exit via SystemExit)."""
    try:
        code = bitpruner.cli.main(["sim", "--traces", str(root), "--network", NET, *argv, "--json"])
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_refused(capsys, root, *argv, match: str) -> str:
    code, out, err = sim(capsys, root, *argv)
    lines = err.strip().splitlines()
    assert code == 1 and out == "", (code, out, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert match in lines[0], lines[0]
    return lines[0]


def cycles(capsys, root, *argv) -> list[int]:
    code, out, err = sim(capsys, root, *argv)
    assert code == 0, err
    return [layer["compute_cycles"] for layer in json.loads(out)["layers"]]


def wgt(root, name="conv1"):
    return root / f"net_traces/{NET}/wgt-{name}.npy"


def act(root, name="conv1"):
    return root / f"net_traces/{NET}/act-{name}-0.npy"


def model_csv(root):
    return root / f"models/{NET}/model.csv"


def precision_txt(root):
    return root / f"models/{NET}/precision.txt"


# ------------------------------------------------------------------ .npy files


def npy_bytes(array) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


@pytest.mark.parametrize("make, match", [
    (lambda data: b"", "is empty (0 bytes)"),
    (lambda data: data[:len(data) - 7], "truncated: the header says float32 (6, 5, 3, 3) = 1080 bytes of data, "
                                        "the file holds 1073"),
    (lambda data: data[:60], "bad .npy header"),
    (lambda data: data + b"\x00" * 12, "12 bytes after the array"),
    (lambda data: b"1,2,3\n4,5,6\n", "not a .npy file (starts with b'1,2,3\\n4,')"),
    (lambda data: gzip.compress(data), "gzip-compressed"),
    (lambda data: pickle.dumps([1, 2]), "a Python pickle"),
    (lambda data: npy_bytes(np.array([1, "a"], dtype=object)), "holds Python objects"),
    (lambda data: npy_bytes(np.ones((6, 5, 3, 3), np.complex64)), "dtype complex64"),
    (lambda data: npy_bytes(np.array(["a", "b"])), "dtype <U1"),
    (lambda data: npy_bytes(np.ones((6, 5, 3, 3), bool)), "dtype bool"),
    (lambda data: data.replace(b"(6, 5, 3, 3)", b"(6,-5, 3, 3)"), "bad .npy header (shape (6, -5, 3, 3))"),
])
def test_bad_npy_files_are_one_line_naming_the_file(capsys, root, make, match):
    wgt(root).write_bytes(make(wgt(root).read_bytes()))
    line = assert_refused(capsys, root, "--arch", "Stripes", match=match)
    assert "wgt-conv1.npy" in line


def test_a_header_claiming_a_huge_array_is_refused_before_allocating(capsys, root):
    # 10**12 float32 values would be 3.6 TiB; the size check refuses it from the header alone.
    data = wgt(root).read_bytes().replace(b"(6, 5, 3, 3)", b"(1000000, 1000000)")
    wgt(root).write_bytes(data)
    tracemalloc.start()
    assert_refused(capsys, root, "--arch", "Stripes", match="truncated: the header says float32 (1000000, 1000000)")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 << 20


@pytest.mark.parametrize("convert", [
    np.asfortranarray,
    lambda x: x.astype(np.int16),
    lambda x: x.astype(np.int64),
    lambda x: np.asfortranarray(x.astype(np.float64)),
    lambda x: x.astype(">f4"),  # big-endian float32
])
def test_semantically_equal_arrays_give_the_same_cycles(capsys, root, convert):
    clean = cycles(capsys, root, "--arch", "BitPragmatic")
    for path in (wgt(root), act(root), act(root, "fc2")):
        np.save(path, convert(np.load(path)))
    assert cycles(capsys, root, "--arch", "BitPragmatic") == clean


def test_unsigned_and_fc_weights_stored_k_c_1_1_give_the_same_cycles(capsys, root):
    clean = cycles(capsys, root, "--arch", "Laconic")
    np.save(act(root), np.load(act(root)).astype(np.uint8))  # conv1's activations are all >= 0
    np.save(wgt(root, "fc2"), np.load(wgt(root, "fc2"))[:, :, None, None])
    assert cycles(capsys, root, "--arch", "Laconic") == clean


@pytest.mark.parametrize("value, match", [
    (np.nan, "non-finite value nan at [0, 1, 2, 0]"),
    (np.inf, "non-finite value inf"),
    (0.5, "non-integer value"),
    (40000.0, "value 40000 outside 16-bit"),
])
def test_bad_values_in_float_arrays(capsys, root, value, match):
    w = np.load(wgt(root))
    w[0, 1, 2, 0] = value
    np.save(wgt(root), w)
    assert_refused(capsys, root, "--arch", "Stripes", match=match)


def test_uint64_holding_a_wrapped_negative_is_refused(capsys, root):
    # -1 cast to uint64 is 18446744073709551615: numpy comparisons with negative bounds must not wrap it back.
    w = np.load(wgt(root)).astype(np.int64)
    w[0, 0, 0, 0] = -1
    np.save(wgt(root), w.astype(np.uint64))
    assert_refused(capsys, root, "--arch", "Stripes", match="value 18446744073709551615 outside 16-bit")


@pytest.mark.parametrize("shape, match", [
    ((6, 5, 3), "conv expects W[K,C,Kx,Ky]"),
    ((6, 5, 3, 3, 1), "conv expects"),
    ((6, 0, 3, 3), "empty weights or activations"),
    ((6, 4, 3, 3), "weights have 4 channels, activations 5"),
    ((6, 5, 11, 9), "kernel x-size 11 exceeds padded input 9"),
])
def test_bad_shapes(capsys, root, shape, match):
    np.save(wgt(root), np.ones(shape, np.float32))
    assert_refused(capsys, root, "--arch", "Stripes", match=match)


def test_channel_mismatch_of_an_impossible_grouped_convolution(capsys, root):
    # 10 activation channels over 5 weight channels read as groups=2 (tests/sim/test_sim_grouped.py); 7 filters
    # cannot split into 2 groups.
    np.save(act(root), np.ones((1, 10, 7, 7), np.float32))
    np.save(wgt(root), np.ones((7, 5, 3, 3), np.float32))
    assert_refused(capsys, root, "--arch", "Stripes",
                   match="weights have 5 channels, activations 10, groups=2; expected C % groups == 0, K % groups == 0")


# ------------------------------------------------------------------ model.csv and precision.txt


@pytest.mark.parametrize("text, match", [
    (b"conv1,conv,1,1\n\xff\xfefc2,fc,1,0\n", "not UTF-8 text (byte 0xff at offset 15)"),
    (b"conv1,conv,1,1\nfc2\x00,fc,1,0\n", "holds a NUL byte at offset 18"),
    (b"conv1,conv,1,1\nfc\x072,fc,1,0\n", "layer name 'fc\\x072' holds the character '\\x07'"),
    (b"conv1,conv,1,1\nconv1,conv,1,1\n", "model.csv:2: layer 'conv1' is listed twice (first on line 1)"),
    (b"conv1,conv,1.0,1\nfc2,fc,1,0\n", "model.csv:1: stride/pad '1.0','1' are not integers"),
    (b"conv1,conv,1_0,1\nfc2,fc,1,0\n", "stride/pad '1_0','1' are not integers"),
    (b"conv1,pool,1,1\n", "model.csv:1: expected 'name,conv|fc,stride,pad', got 'conv1,pool,1,1'"),
    (b"conv1,conv,1\n", "expected 'name,conv|fc,stride,pad'"),
    (b"\n\n", "lists no layers"),
    (b"conv1,conv,0,1\nfc2,fc,1,0\n", "layer 'conv1': stride=0: expected an integer in [1, 2147483647]"),
    (b"conv1,conv,1,-1\nfc2,fc,1,0\n", "layer 'conv1': pad=-1: expected an integer in [0, 2147483647]"),
    (b"conv1,conv,1000000000000000000000000000000,1\nfc2,fc,1,0\n",
     "stride=1000000000000000000000000000000: expected an integer in [1, 2147483647]"),
])
def test_bad_model_csv(capsys, root, text, match):
    model_csv(root).write_bytes(text)
    assert_refused(capsys, root, "--arch", "Stripes", match=match)


def test_bom_crlf_blank_lines_and_spaces_in_model_csv_mean_the_same(capsys, root):
    clean = cycles(capsys, root, "--arch", "ShapeShifter")
    model_csv(root).write_bytes(b"\xef\xbb\xbf conv1 , conv , 1 , 1\r\n\r\nfc2,fc,1,0\r\n")
    assert cycles(capsys, root, "--arch", "ShapeShifter") == clean


def test_padding_100000_is_refused_up_front_with_the_numbers(capsys, root):
    # The issue: a model.csv line with padding 100000 tried to allocate 298 GiB and died in ArrayMemoryError.
    model_csv(root).write_text("conv1,conv,1,100000\nfc2,fc,1,0\n")
    tracemalloc.start()
    line = assert_refused(capsys, root, "--arch", "Stripes", match="layer 'conv1': simulating it needs about")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "padded input 200007 x 200007 x 16 channels" in line and "pad 100000" in line
    assert f"beyond the {DEFAULT_MEMORY_LIMIT_GIB:g} GiB limit" in line and peak < 64 << 20


def test_huge_stride_is_fine_when_it_fits_and_refused_beyond_the_index_range(capsys, root):
    # A stride larger than the input is legal (one window); it must not overflow int64 position arithmetic.
    model_csv(root).write_text("conv1,conv,2000000000,1\nfc2,fc,1,0\n")
    first = cycles(capsys, root, "--arch", "BitPragmatic")[0]
    model_csv(root).write_text("conv1,conv,9,1\nfc2,fc,1,0\n")  # the same single window at (0, 0)
    assert cycles(capsys, root, "--arch", "BitPragmatic")[0] == first
    model_csv(root).write_text("conv1,conv,2147483648,1\nfc2,fc,1,0\n")
    assert_refused(capsys, root, "--arch", "Stripes", match="stride=2147483648")


@pytest.mark.parametrize("text, match", [
    (b"h\n8;8\n0;0\n8;8\n0;\xff\n", "not UTF-8 text"),
    (b"h\n8;-2\n0;0\n8;8\n0;0\n", "precision.txt:2: -2 bits; magnitudes and fractions must be >= 0"),
    (b"h\n8;8.5\n0;0\n8;8\n0;0\n", "precision.txt:2: '8.5' is not an integer"),
    (b"h\n8\n0\n8\n0\n", "needs 2 values per line (one per layer of model.csv), got [1, 1, 1, 1]"),
    (b"h\n8;8\n0;0\n", "expected a header line and 4 lines"),
    (b"h\n0;8\n0;0\n8;8\n0;0\n", "layer 'conv1': act_prec=0: expected an integer in [1,"),
    (b"h\n17;8\n0;0\n8;8\n0;0\n", "act_prec=17 exceeds pe_width=16"),
])
def test_bad_precision_txt(capsys, root, text, match):
    precision_txt(root).write_bytes(text)
    assert_refused(capsys, root, "--arch", "Stripes", match=match)


# ------------------------------------------------------------------ values the widths cannot represent


def test_values_beyond_the_trace_precision_are_refused(capsys, root):
    conv, fc = tiny_layers()
    assert conv.activations.min() >= 0 and conv.activations.max() == 49 and fc.activations.min() == -42
    assert np.abs(conv.weights).max() == 20 and np.abs(fc.weights).max() <= 20
    # act 0..63 unsigned (conv1), -64..63 signed (fc2); weights -32..31
    precision_txt(root).write_text("h\n6;7\n0;0\n6;6\n0;0\n")
    # Stripes by hand: conv1 has 4 window sets x 9 buffer rows at 6 cycles; fc2 two rows at 7 cycles in
    # columns 0 and 1 (the second starts a cycle later): max(7, 1 + 7).
    assert cycles(capsys, root, "--arch", "Stripes") == [4 * 9 * 6, 1 + 7]
    precision_txt(root).write_text("h\n5;7\n0;0\n6;6\n0;0\n")  # 5 bits unsigned: 0..31 < 49
    assert_refused(capsys, root, "--arch", "Stripes", match="layer 'conv1': activations hold 49, which act_prec=5 "
                                                           "bits cannot represent (unsigned range [0, 31])")
    precision_txt(root).write_text("h\n6;6\n0;0\n6;6\n0;0\n")  # 6 bits signed: -32..31 > -42
    assert_refused(capsys, root, "--arch", "Stripes", match="layer 'fc2': activations hold -42, which act_prec=6 "
                                                           "bits cannot represent (signed range [-32, 31])")
    precision_txt(root).write_text("h\n6;7\n0;0\n5;6\n0;0\n")
    assert_refused(capsys, root, "--arch", "Stripes", match="layer 'conv1': weights hold -20, which wgt_prec=5")


def test_values_beyond_pe_width_are_refused_when_no_precision_is_given(capsys, root):
    assert cycles(capsys, root, "--arch", "Stripes", "--pe-width", "7")  # -64..63 holds every value
    assert_refused(capsys, root, "--arch", "Stripes", "--pe-width", "6",
                   match="layer 'fc2': activations hold -42, which pe_width=6 bits cannot represent")


def test_the_width_rule_against_brute_force():
    rng = np.random.default_rng(4)
    for _ in range(200):
        bits = int(rng.integers(1, 17))
        values = rng.integers(-(1 << 15), 1 << 15, (1, 3)) >> int(rng.integers(0, 16))
        layer = LayerTrace("f", "fc", np.ones((1, 3)), values, act_prec=bits, wgt_prec=2)
        signed = values.min() < 0
        fits = all(-(1 << (bits - 1)) <= v < (1 << (bits - 1)) if signed else 0 <= v < (1 << bits)
                   for v in values.ravel().tolist())
        if fits:
            layer.check_widths(16)
        else:
            with pytest.raises(TraceError, match="cannot represent"):
                layer.check_widths(16)


# ------------------------------------------------------------------ impossible sizes and flags


@pytest.mark.parametrize("argv, match", [
    (["--arch", "BitTactical", "--tiles", "1000000000"], "1000000000 tiles"),
    (["--arch", "BitTacticalE", "--rows", "1000000000"], "filter sets x 1000000000 rows"),
    (["--arch", "Stripes", "--columns", "1000000000"], "1000000000 windows x 9 buffer rows"),
    (["--arch", "BitPragmatic", "--lanes", "1000000000"], "padded input 9 x 9 x 1000000000 channels"),
    (["--arch", "ShapeShifter", "--group-size", "1000000000", "--column-registers", "1"], "1000000000 columns"),
    (["--arch", "BitPragmatic", "--column-registers", "2000000000"], "2000000000 column registers"),
    (["--arch", "BitTactical", "--lookahead", "1000000000"], "search-map entries"),
])
def test_impossible_sizes_are_refused_with_the_numbers(capsys, root, argv, match):
    line = assert_refused(capsys, root, *argv, match="simulating it needs about")
    assert match in line and "GiB" in line


@pytest.mark.parametrize("argv, match", [
    (["--lanes", "100000000000000000000000"], "simulator.lanes: got 100000000000000000000000, expected an integer "
                                               "<= 2147483647"),
    (["--bits-first-stage", "65"], "simulator.bits_first_stage: got 65, expected an integer in [0, 64]"),
    (["--samples", "0"], "--samples: got 0, expected an integer in [1, 2147483647]"),
    (["--samples", "2"], "asked for 2 samples, the trace holds 1"),
    (["--memory-limit", "0"], "--memory-limit: got 0.0, expected a number of GiB > 0"),
    (["--memory-limit", "nan"], "--memory-limit: got nan"),
    (["--lanes", "abc"], "argument --lanes: invalid int value: 'abc'"),
    (["--lanes", "1.5"], "invalid int value: '1.5'"),
    (["--lanes", "-1"], "simulator.lanes: got -1, expected an integer >= 1"),
])
def test_bad_flags_are_one_line(capsys, root, argv, match):
    assert_refused(capsys, root, "--arch", "BitPragmatic", *argv, match=match)


def test_missing_required_flags_are_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        bitpruner.cli.main(["sim", "--arch", "Stripes"])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 1 and len(err) == 1 and "required: --traces, --network" in err[0]


def test_lookaside_beyond_the_lanes_is_refused_before_the_search_map_is_built(capsys, root):
    assert cycles(capsys, root, "--arch", "BitTacticalE", "--lanes", "4", "--lookaside", "8")
    assert_refused(capsys, root, "--arch", "BitTacticalE", "--lanes", "4", "--lookaside", "9",
                   match="simulator.lookaside: got 9, which reaches lane offset 5 > lanes=4; expected at most 8")


def test_sizes_that_change_nothing_give_the_same_cycles(capsys, root):
    """Geometry that does not matter for a layer is not refused: tiles beyond the filter sets, bfs beyond 4."""
    assert cycles(capsys, root, "--arch", "Stripes", "--tiles", "1000000000") == cycles(capsys, root, "--arch", "Stripes")
    assert (cycles(capsys, root, "--arch", "BitPragmatic", "--bits-first-stage", "64")
            == cycles(capsys, root, "--arch", "BitPragmatic", "--bits-first-stage", "4"))


def test_the_memory_limit_flag_moves_the_bound(capsys, root):
    need = layer_bytes(load_dnnsim(root, NET).layers[0], SimParams()).total_bytes / GIB
    assert_refused(capsys, root, "--arch", "Stripes", "--memory-limit", f"{need / 2}", match="layer 'conv1'")
    assert cycles(capsys, root, "--arch", "Stripes", "--memory-limit", f"{need * 2}")
    with pytest.raises(TraceError, match="beyond the 1e-06 GiB limit"):
        check_memory(load_dnnsim(root, NET), SimParams(), limit_gib=1e-6)


def estimate_layers():
    rng = np.random.default_rng(0)

    def conv(K, C, k, X, Y, pad=1, stride=1):
        w = rng.integers(-50, 50, (K, C, k, k)) * (rng.random((K, C, k, k)) < 0.5)
        a = rng.integers(0, 200, (1, C, X, Y)) * (rng.random((1, C, X, Y)) < 0.6)
        return LayerTrace("c", "conv", w, a, stride=stride, pad=pad)

    fc_w = rng.integers(-50, 50, (100, 700)) * (rng.random((100, 700)) < 0.5)
    return [conv(20, 40, 3, 12, 10), conv(32, 48, 3, 16, 20), LayerTrace("f", "fc", fc_w, rng.integers(0, 200, (1, 700))),
            conv(8, 3, 5, 60, 60, pad=20), conv(4, 4, 1, 30, 30, pad=30, stride=2)]


@pytest.mark.parametrize("params", [SimParams(), SimParams(lanes=4, columns=3, rows=2, tiles=3, column_registers=3,
                                                           bits_first_stage=2, group_size=2),
                                    SimParams(tiles=2000, columns=300)], ids=["default", "small", "wide"])
def test_the_estimate_bounds_what_the_engine_allocates(params):
    """tracemalloc's peak (numpy arrays and Python lists; numba's own arrays are not traced) <= the estimate."""
    for layer in estimate_layers():
        for arch in ARCHS:
            design = design_of(arch)
            p = params_for(design, params)
            estimate = layer_bytes(layer, p, design.scheduled).total_bytes
            simulate_layer(layer, design, p)  # numba compiles what this layer needs outside the measurement
            tracemalloc.start()
            simulate_layer(layer, design, p)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            assert peak <= estimate, (layer.weights.shape, arch, peak, estimate)


# ------------------------------------------------------------------ our own format (NetworkTrace.save / load)


@pytest.mark.parametrize("edit, match", [
    (lambda d, p: (p / "network.json").write_text("{not json"), "network.json: unreadable"),
    (lambda d, p: (p / "network.json").write_bytes(b"\xff\xfe{}"), "network.json: unreadable"),
    (lambda d, p: (p / "network.json").write_text(json.dumps({**d, "layers": {"a": 1}})), "expected {'layers'"),
    (lambda d, p: (p / "network.json").write_text(json.dumps({**d, "format": 99})), "format 99, expected 1"),
    (lambda d, p: (p / "network.json").write_text(json.dumps(
        {**d, "layers": [{**d["layers"][0], "colour": 1}]})), "unknown keys ['colour']"),
    (lambda d, p: (p / "network.json").write_text(json.dumps(
        {**d, "layers": [{k: v for k, v in d["layers"][0].items() if k != "type"}]})), "missing 1 required"),
    (lambda d, p: (p / "layer_000.npz").write_bytes(b"PK\x03\x04garbage"), "layer_000.npz: unreadable"),
    (lambda d, p: np.savez(p / "layer_000.npz", weights=np.ones((6, 5, 3, 3))), "layer_000.npz: unreadable"),
    (lambda d, p: (p / "network.json").write_text(json.dumps(
        {**d, "layers": [{**d["layers"][0], "stride": 1.5}]})), "stride=1.5: expected an integer"),
])
def test_our_own_format_refuses_malformed_files_with_one_line(tmp_path, edit, match):
    folder = NetworkTrace(NET, tiny_layers()).save(tmp_path / "t")
    doc = json.loads((folder / "network.json").read_text())
    edit(doc, folder)
    with pytest.raises(TraceError, match=match.replace("[", r"\[").replace("(", r"\(")) as info:
        NetworkTrace.load(folder)
    assert len(str(info.value).splitlines()) == 1


def test_our_own_format_stores_c_order(tmp_path):
    layers = tiny_layers()
    layers[0].weights = np.asfortranarray(layers[0].weights)
    folder = NetworkTrace(NET, layers).save(tmp_path / "t")
    with np.load(folder / "layer_000.npz") as data:
        assert data["weights"].flags.c_contiguous and np.array_equal(data["weights"], layers[0].weights)


def test_help_states_the_memory_limit_default(capsys):
    with pytest.raises(SystemExit):
        bitpruner.cli.main(["sim", "--help"])
    assert f"(default {DEFAULT_MEMORY_LIMIT_GIB:g} GiB)" in " ".join(capsys.readouterr().out.split())
