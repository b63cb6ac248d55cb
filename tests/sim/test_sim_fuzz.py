"""Fuzz test of `bitpruner sim` (issue 11): seeded random corruptions of a valid trace folder.

The property, for every case: exit 0 with the clean trace's result where the input means the same (Fortran
order, another integer dtype with the same values, a byte-order mark, explicit default flags, ...); otherwise
exit 1 with exactly one line on stderr and no traceback; a corruption whose meaning the test cannot predict (a
flipped byte) may give either, but nothing else; and every case ends within CASE_SECONDS. Most cases call
`bitpruner.cli.main` in-process; a few run the installed console script. The default suite runs FAST_CASES, the
`slow` variant SLOW_CASES.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import bitpruner.cli
from bitpruner.sim.dnnsim_io import save_dnnsim
from bitpruner.sim.traces import LayerTrace, NetworkTrace

NET = "fuzz"
SEED = 20240611
FAST_CASES, FAST_SCRIPT_CASES = 80, 2
SLOW_CASES, SLOW_SCRIPT_CASES = 800, 12
CASE_SECONDS = 15.0  # one in-process case (numba is compiled before the clock starts)
SCRIPT_SECONDS = 60.0  # one console-script case: a fresh interpreter imports numpy and numba first
ARCHS = ("DaDianNao", "Stripes", "BitPragmatic", "Laconic", "ShapeShifter", "Loom", "PragmaticW", "BitTactical",
         "BitTacticalE", "BitTacticalP")
TACTICAL = ("BitTactical", "BitTacticalE", "BitTacticalP")
SAME, ERROR, EITHER = "same", "error", "either"
ERROR_PREFIX = "bitpruner sim: error: "


class Deadline(BaseException):
    """Raised by `time_limit`: a BaseException, so no `except Exception` inside the CLI can swallow it."""


@contextlib.contextmanager
def time_limit(seconds: float):
    def expire(_signum, _frame):
        raise Deadline(f"took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def clean_layers() -> list[LayerTrace]:
    """conv (padded, non-square) -> conv (strided) -> fc, 8-bit values as trace capture writes them."""
    rng = np.random.default_rng(7)

    def sparse(shape, low, high):
        return rng.integers(low, high + 1, shape) * (rng.random(shape) < 0.6)

    return [
        LayerTrace("conv1", "conv", sparse((6, 5, 3, 3), -127, 127), sparse((2, 5, 7, 6), 0, 255), pad=1,
                   act_prec=8, wgt_prec=8),
        LayerTrace("conv2", "conv", sparse((4, 6, 3, 3), -127, 127), sparse((2, 6, 7, 6), 0, 255), stride=2,
                   act_prec=8, wgt_prec=8),
        LayerTrace("fc3", "fc", sparse((5, 24), -127, 127), sparse((2, 24), -127, 127), act_prec=8, wgt_prec=8),
    ]


@dataclass
class Case:
    """One corrupted folder: what was done, what the property expects, and the command line."""

    index: int
    what: str
    expect: str
    arch: str
    flags: list[str] = field(default_factory=list)

    def argv(self, root: Path) -> list[str]:
        return ["sim", "--traces", str(root), "--network", NET, "--arch", self.arch, *self.flags, "--json"]


# ------------------------------------------------------------------ corruptions: each edits `root`, returns a Case


def npy_files(root: Path) -> list[Path]:
    return sorted((root / "net_traces" / NET).glob("*.npy"))


def text_file(root: Path, rng) -> Path:
    names = ["model.csv", "precision.txt"]
    return root / "models" / NET / names[int(rng.integers(len(names)))]


def pick(rng, items):
    return items[int(rng.integers(len(items)))]


def c_fortran(root, rng):
    for path in npy_files(root):
        np.save(path, np.asfortranarray(np.load(path)))
    return "every .npy Fortran-ordered", SAME


def c_same_dtype(root, rng):
    path = pick(rng, npy_files(root))
    x = np.load(path)
    choices = [np.int16, np.int32, np.int64, np.float64, np.float16, ">f4", "<i2"]
    if x.min() >= 0:
        choices += [np.uint8, np.uint16, np.uint64]
    dtype = pick(rng, choices)
    np.save(path, x.astype(dtype))
    return f"{path.name} as {np.dtype(dtype)} (same values)", SAME


def c_fc_weight_4d(root, rng):
    path = root / "net_traces" / NET / "wgt-fc3.npy"
    np.save(path, np.load(path)[:, :, None, None])
    return "fc weight stored [K, C, 1, 1]", SAME


def c_text_encoding(root, rng):
    path = text_file(root, rng)
    text = path.read_text()
    how = pick(rng, ["bom", "crlf", "blank lines", "spaces", "all"])
    if how in ("crlf", "all"):
        text = text.replace("\n", "\r\n")
    if how in ("blank lines", "all") and path.name == "model.csv":
        text = "\n" + text.replace("\n", "\n\n")
    if how in ("spaces", "all"):
        sep = "," if path.name == "model.csv" else ";"
        lines = text.splitlines(keepends=True)
        text = lines[0] + "".join(line.replace(sep, f" {sep} ") for line in lines[1:])
    data = text.encode()
    if how in ("bom", "all"):
        data = b"\xef\xbb\xbf" + data
    path.write_bytes(data)
    return f"{path.name}: {how}", SAME


def c_default_flags(root, rng):
    flag, value = pick(rng, [("--lanes", "16"), ("--columns", "16"), ("--rows", "16"), ("--tiles", "16"),
                             ("--pe-width", "16"), ("--samples", "1"), ("--lanes", "016"), ("--tiles", "+16"),
                             ("--memory-limit", "8")])
    return f"explicit default {flag} {value}", SAME, [flag, value]


def c_bad_dtype(root, rng):
    path = pick(rng, npy_files(root))
    x = np.load(path)
    how = pick(rng, ["complex", "bool", "str", "object", "datetime"])
    if how == "complex":
        np.save(path, x.astype(np.complex64))
    elif how == "bool":
        np.save(path, x != 0)
    elif how == "str":
        np.save(path, x.astype(str))
    elif how == "object":
        np.save(path, x.astype(object), allow_pickle=True)
    else:
        np.save(path, np.zeros(x.shape, "datetime64[s]"))
    return f"{path.name} as {how}", ERROR


def c_bad_value(root, rng):
    path = pick(rng, npy_files(root))
    x = np.load(path).astype(np.float64)
    index = tuple(int(rng.integers(n)) for n in x.shape)
    how = pick(rng, ["nan", "inf", "-inf", "fraction", "int16", "precision", "wrapped uint64"])
    if how == "wrapped uint64":
        x = x.astype(np.int64)
        x[index] = -1
        np.save(path, x.astype(np.uint64))
        return f"{path.name}: -1 stored as uint64", ERROR
    # Beyond 8 bits either way: 300 (unsigned) or -200 (signed) with precision 8.
    value = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "fraction": x[index] + 0.5, "int16": 40000.0,
             "precision": 300.0 if x.min() >= 0 else -200.0}[how]
    x[index] = value
    np.save(path, x)
    return f"{path.name}[{index}] = {value}", ERROR


def c_bad_shape(root, rng):
    path = pick(rng, npy_files(root))
    x = np.load(path)
    how = pick(rng, ["drop channel", "extra axis", "drop axis", "empty axis", "transpose", "scalar"])
    if how == "drop channel":
        x = x[:, :-1]
    elif how == "extra axis":
        x = x[..., None, None] if x.ndim == 4 else x[..., None]
    elif how == "drop axis":
        x = x.reshape(x.shape[0], -1)[:, :, None] if x.ndim == 4 else x.reshape(-1)
    elif how == "empty axis":
        x = x[:, :0]
    elif how == "transpose":
        x = np.ascontiguousarray(x.T)
    else:
        x = np.array(x.ravel()[0])
    np.save(path, x)
    # A transposed fc weight [C, K] or 4-D array can still be consistent only by accident; the shapes here never are.
    return f"{path.name}: {how} -> {x.shape}", ERROR


def c_broken_file(root, rng):
    path = pick(rng, npy_files(root))
    data = path.read_bytes()
    how = pick(rng, ["empty", "truncate", "header only", "append", "text", "gzip", "zeros"])
    if how == "empty":
        data = b""
    elif how == "truncate":
        data = data[: int(rng.integers(1, len(data)))]
    elif how == "header only":
        data = data[: data.index(b"\n") + 1]
    elif how == "append":
        data = data + rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    elif how == "text":
        data = b"1 2 3\n4 5 6\n"
    elif how == "gzip":
        data = gzip.compress(data)
    else:
        data = bytes(len(data))
    path.write_bytes(data)
    return f"{path.name}: {how}", ERROR


def c_missing(root, rng):
    path = pick(rng, [*npy_files(root), root / "models" / NET / "model.csv"])
    how = pick(rng, ["delete", "directory"])
    path.unlink()
    if how == "directory":
        path.mkdir()
    return f"{path.name}: {how}", ERROR


def c_model_csv(root, rng):
    path = root / "models" / NET / "model.csv"
    lines = path.read_text().splitlines()
    i = int(rng.integers(len(lines)))
    name, kind, stride, pad = lines[i].split(",")
    how = pick(rng, ["non-utf8", "nul", "control", "duplicate", "type", "stride float", "negative pad",
                     "pad 100000", "huge stride", "missing field", "empty", "zero stride"])
    line = {
        "non-utf8": None, "nul": f"{name}\x00,{kind},{stride},{pad}", "control": f"{name}\x1b,{kind},{stride},{pad}",
        "duplicate": None, "type": f"{name},pool,{stride},{pad}", "stride float": f"{name},{kind},{stride}.0,{pad}",
        "negative pad": f"{name},{kind},{stride},-1", "pad 100000": f"{name},{kind},{stride},100000",
        "huge stride": f"{name},{kind},{10**30},{pad}", "missing field": f"{name},{kind},{stride}", "empty": None,
        "zero stride": f"{name},{kind},0,{pad}",
    }[how]
    if how == "pad 100000" and kind == "fc":
        line = f"{name},conv,{stride},100000"  # an fc layer ignores pad; as conv its weights' ndim is wrong anyway
    if how == "non-utf8":
        path.write_bytes(path.read_bytes().replace(name.encode(), name.encode() + b"\xff", 1))
    elif how == "duplicate":
        path.write_text("\n".join(lines + [lines[i]]) + "\n")
    elif how == "empty":
        path.write_text("")
    else:
        lines[i] = line
        path.write_text("\n".join(lines) + "\n")
    return f"model.csv line {i + 1}: {how}", ERROR


def c_precision(root, rng):
    path = root / "models" / NET / "precision.txt"
    lines = path.read_text().splitlines()
    row = int(rng.integers(1, 5))
    values = lines[row].split(";")
    how = pick(rng, ["negative", "non-int", "too few", "zero", "beyond pe_width", "non-utf8", "lines missing"])
    if how == "negative":
        values[0] = "-3"
    elif how == "non-int":
        values[0] = "8.5"
    elif how == "too few":
        values = values[:-1]
    elif how == "zero":  # magnitude 0 and fraction 0: precision 0
        lines[1 if row in (1, 2) else 3] = ";".join(["0"] + lines[1 if row in (1, 2) else 3].split(";")[1:])
        lines[2 if row in (1, 2) else 4] = ";".join(["0"] + lines[2 if row in (1, 2) else 4].split(";")[1:])
        path.write_text("\n".join(lines) + "\n")
        return "precision 0", ERROR
    elif how == "beyond pe_width":
        values[0] = "17"
    elif how == "non-utf8":
        path.write_bytes(path.read_bytes() + b"\xff\xfe")
        return "precision.txt: non-UTF-8 bytes", ERROR
    else:
        path.write_text("\n".join(lines[:3]) + "\n")
        return "precision.txt: lines missing", ERROR
    lines[row] = ";".join(values)
    path.write_text("\n".join(lines) + "\n")
    return f"precision.txt line {row + 1}: {how}", ERROR


def c_bad_flags(root, rng):
    flags, arch = pick(rng, [
        (["--tiles", "1000000000"], "BitTacticalE"), (["--rows", "1000000000"], "BitTactical"),
        (["--lanes", "0"], None), (["--lanes", "-3"], None), (["--columns", "1000000000000"], None),
        (["--lanes", "2147483648"], None), (["--pe-width", "17"], None), (["--pe-width", "0"], None),
        (["--pe-width", "4"], None), (["--samples", "0"], None), (["--samples", "3"], None),
        (["--bits-first-stage", "1000000"], "BitPragmatic"), (["--lookahead", "1000000000"], "BitTactical"),
        (["--lookaside", "100"], "BitTacticalP"), (["--memory-limit", "-1"], None), (["--lanes", "xyz"], None),
        (["--column-registers", "3"], "Stripes"), (["--group-size", "1000000000", "--column-registers", "1"],
                                                   "ShapeShifter"),
        (["--memory-limit", "0.0000001"], None), (["--arch-typo"], None),
    ])
    return f"flags {' '.join(flags)}", ERROR, flags, arch


def c_flip_bytes(root, rng):
    path = pick(rng, [*npy_files(root), text_file(root, rng)])
    data = bytearray(path.read_bytes())
    for _ in range(int(rng.integers(1, 4))):
        data[int(rng.integers(len(data)))] = int(rng.integers(256))
    path.write_bytes(bytes(data))
    return f"{path.name}: bytes flipped", EITHER


def c_new_values(root, rng):
    path = pick(rng, npy_files(root))
    x = np.load(path)
    low, high = (0, 255) if x.min() >= 0 else (-127, 127)
    np.save(path, rng.integers(low, high + 1, x.shape).astype(x.dtype))
    return f"{path.name}: other in-range values", EITHER  # valid; its cycles may or may not differ


CORRUPTIONS: tuple[Callable, ...] = (
    c_fortran, c_same_dtype, c_fc_weight_4d, c_text_encoding, c_default_flags, c_bad_dtype, c_bad_value, c_bad_shape,
    c_broken_file, c_missing, c_model_csv, c_precision, c_bad_flags, c_flip_bytes, c_new_values,
)


def make_case(index: int, template: Path, root: Path, rng) -> Case:
    """Copy the clean folder to `root` and apply one seeded corruption to it."""
    shutil.copytree(template, root)
    corruption = CORRUPTIONS[index % len(CORRUPTIONS)]
    what, expect, *rest = corruption(root, rng)
    flags = rest[0] if rest else []
    arch = (rest[1] if len(rest) > 1 else None) or pick(rng, ARCHS)
    return Case(index, what, expect, arch, flags)


# ------------------------------------------------------------------ running and checking


def run_in_process(case: Case, root: Path, capsys) -> tuple[int, str, str, float]:
    start = time.perf_counter()
    with time_limit(CASE_SECONDS):
        try:
            code = bitpruner.cli.main(case.argv(root))
        except SystemExit as exc:  # argparse's errors
            code = exc.code
    elapsed = time.perf_counter() - start
    out = capsys.readouterr()
    return code, out.out, out.err, elapsed


def run_script(case: Case, root: Path) -> tuple[int, str, str, float]:
    script = Path(sys.executable).with_name("bitpruner")
    start = time.perf_counter()
    proc = subprocess.run([str(script), *case.argv(root)], capture_output=True, text=True, timeout=SCRIPT_SECONDS,
                          env={**os.environ, "COLUMNS": "200"})
    return proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - start


def result_of(stdout: str) -> dict:
    doc = json.loads(stdout)
    return {"layers": doc["layers"], "total": doc["total_compute_cycles"], "arch": doc["arch"]}


def check(case: Case, code: int, out: str, err: str, elapsed: float, clean: dict, limit: float) -> None:
    label = f"case {case.index} ({case.what}; --arch {case.arch} {' '.join(case.flags)})"
    assert elapsed <= limit, f"{label}: took {elapsed:.1f} s"
    assert "Traceback" not in err, f"{label}: traceback\n{err}"
    if code == 0:
        assert case.expect != ERROR, f"{label}: accepted a bad input: {out[:300]}"
        got = result_of(out)
        if case.expect == SAME:
            assert got == clean[case.arch], f"{label}: result differs from the clean trace's"
        return
    lines = err.strip().splitlines()
    assert case.expect != SAME, f"{label}: refused an equivalent input: {err.strip()}"
    assert code == 1 and out == "", f"{label}: exit {code}, stdout {out[:200]!r}"
    assert len(lines) == 1 and lines[0].startswith(ERROR_PREFIX), f"{label}: stderr is not one error line:\n{err}"


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    save_dnnsim(NetworkTrace(NET, clean_layers()), root)
    return root


@pytest.fixture(scope="module")
def clean(template):
    """The clean trace's result on every architecture (compiles numba's kernels before any case is timed)."""
    results = {}
    for arch in ARCHS:
        argv = ["sim", "--traces", str(template), "--network", NET, "--arch", arch, "--json"]
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert bitpruner.cli.main(argv) == 0
        results[arch] = result_of(buf.getvalue())
    return results


def fuzz(template: Path, clean: dict, tmp_path: Path, capsys, n_cases: int, n_script: int) -> dict[str, int]:
    rng = np.random.default_rng(SEED)
    seen = {SAME: 0, ERROR: 0, EITHER: 0, "refused": 0, "accepted": 0}
    script_every = max(1, n_cases // max(n_script, 1))
    for index in range(n_cases):
        root = tmp_path / f"case{index}"
        case = make_case(index, template, root, rng)
        code, out, err, elapsed = run_in_process(case, root, capsys)
        check(case, code, out, err, elapsed, clean, CASE_SECONDS)
        if n_script and index % script_every == script_every - 1 and index // script_every < n_script:
            check(case, *run_script(case, root), clean, SCRIPT_SECONDS)
        seen[case.expect] += 1
        seen["accepted" if code == 0 else "refused"] += 1
        shutil.rmtree(root)
    return seen


def test_fuzz_sim_fast(template, clean, tmp_path, capsys):
    seen = fuzz(template, clean, tmp_path, capsys, FAST_CASES, FAST_SCRIPT_CASES)
    # Every corruption kind ran at least once, and both outcomes occurred.
    assert FAST_CASES >= len(CORRUPTIONS) and seen[SAME] and seen[ERROR] and seen[EITHER]
    assert seen["accepted"] >= seen[SAME] and seen["refused"] >= seen[ERROR]


@pytest.mark.slow
def test_fuzz_sim_slow(template, clean, tmp_path, capsys):
    seen = fuzz(template, clean, tmp_path, capsys, SLOW_CASES, SLOW_SCRIPT_CASES)
    assert seen["refused"] >= seen[ERROR] and seen["accepted"] >= seen[SAME]


def test_the_property_check_catches_what_it_should():
    """The checker itself: a traceback, two lines, exit 2, a changed result or an accepted bad input all fail."""
    clean = {"Stripes": {"layers": [], "total": 5, "arch": "Stripes"}}
    good = json.dumps({"layers": [], "total_compute_cycles": 5, "arch": "Stripes"})
    other = json.dumps({"layers": [], "total_compute_cycles": 6, "arch": "Stripes"})
    same, bad = Case(0, "t", SAME, "Stripes"), Case(0, "t", ERROR, "Stripes")
    check(same, 0, good, "", 0.1, clean, 1.0)
    check(bad, 1, "", ERROR_PREFIX + "x\n", 0.1, clean, 1.0)
    failing = [
        (same, 0, other, "", 0.1), (bad, 0, good, "", 0.1), (same, 1, "", ERROR_PREFIX + "x", 0.1),
        (bad, 1, "", "Traceback (most recent call last):\n", 0.1), (bad, 1, "", ERROR_PREFIX + "a\nb\n", 0.1),
        (bad, 2, "", ERROR_PREFIX + "x", 0.1), (bad, 1, "", ERROR_PREFIX + "x", 5.0),
    ]
    for case, code, out, err, elapsed in failing:
        with pytest.raises(AssertionError):
            check(case, code, out, err, elapsed, clean, 1.0)
