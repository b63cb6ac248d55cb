"""Import and export of DNNsim's trace layout.

``models/<net>/model.csv`` (``name,conv|fc,stride,pad`` per line, no header), optional
``models/<net>/precision.txt`` (one ignored line, then ';'-separated per-layer act magnitude, act fraction,
weight magnitude, weight fraction; precision = magnitude + fraction), ``net_traces/<net>/wgt-<layer>.npy``
and ``net_traces/<net>/act-<layer>-0.npy`` (float32 holding integers, x-first axis order, C order: DNNsim
reads ``.npy`` data row-major whatever the header says).

Reading is defensive: text files may carry a UTF-8 byte-order mark and CRLF line ends; every ``.npy`` header
is read and checked against the file's size before any array is allocated (an empty, truncated or padded
file, a pickle, a non-numeric dtype is one TraceError naming the file); Fortran-ordered arrays are accepted
(numpy reads them correctly) and stored C-ordered.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from math import prod
from pathlib import Path

import numpy as np

from bitpruner.errors import TraceError
from bitpruner.sim.traces import LayerTrace, NetworkTrace, one_line

_PRECISION_HEADER = "magnitude (+1 of the sign), fraction, wgt_magnitude, wgt_fraction"
_PRECISION_LINES = 4  # act magnitude, act fraction, weight magnitude, weight fraction
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NPY_MAGIC = b"\x93NUMPY"
_NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
# First bytes of files that are often mistaken for a .npy, and what they are.
_FOREIGN_MAGIC = {b"\x1f\x8b": "gzip-compressed (decompress it first)", b"PK\x03\x04": "a zip/.npz archive",
                  b"\x80": "a Python pickle"}
_HEAD_BYTES = 8  # bytes of an unrecognised file quoted in the error


def _paths(root: Path, net: str) -> tuple[Path, Path]:
    return root / "models" / net, root / "net_traces" / net


def _read_text(path: Path, what: str) -> str:
    """The UTF-8 text of `path` (a byte-order mark dropped); TraceError naming the file otherwise."""
    if not path.exists():
        raise TraceError(f"{what} {path} does not exist")
    if not path.is_file():
        raise TraceError(f"{what} {path} is not a regular file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TraceError(f"{what} {path}: unreadable ({one_line(exc)})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TraceError(f"{what} {path}: not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start})") from None
    if "\x00" in text:
        raise TraceError(f"{what} {path}: holds a NUL byte at offset {text.index(chr(0))}; expected text")
    return text


def _check_name(name: str, where: str) -> None:
    if not name:
        raise TraceError(f"{where}: empty layer name")
    odd = [ch for ch in name if unicodedata.category(ch)[0] in "CZ" and ch != " "]
    if odd:
        raise TraceError(f"{where}: layer name {name!r} holds the character {odd[0]!r}; expected printable text")


def _read_model_csv(path: Path) -> list[tuple[str, str, int, int]]:
    text = _read_text(path, "model file")
    rows, seen = [], {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        words = [w.strip() for w in line.split(",")]
        if len(words) < 4 or words[1] not in ("conv", "fc"):
            raise TraceError(f"{where}: expected 'name,conv|fc,stride,pad', got {one_line(line)[:200]!r}")
        if not (_INTEGER.fullmatch(words[2]) and _INTEGER.fullmatch(words[3])):
            raise TraceError(f"{where}: stride/pad {words[2][:40]!r},{words[3][:40]!r} are not integers")
        # DNNsim replaces '/' in layer names when it looks for their files.
        name = words[0].replace("/", "-")
        _check_name(name, where)
        if name in seen:
            raise TraceError(f"{where}: layer {name!r} is listed twice (first on line {seen[name]})")
        seen[name] = lineno
        rows.append((name, words[1], int(words[2]), int(words[3])))
    if not rows:
        raise TraceError(f"model file {path} lists no layers")
    return rows


def _read_precisions(path: Path, n_layers: int) -> list[tuple[int, int]] | None:
    if not path.exists():
        return None
    lines = _read_text(path, "precision file").splitlines()
    if len(lines) < 1 + _PRECISION_LINES:
        raise TraceError(f"{path}: expected a header line and {_PRECISION_LINES} lines of ';'-separated integers, "
                         f"got {len(lines)} lines")
    cols = []
    for lineno, line in enumerate(lines[1 : 1 + _PRECISION_LINES], start=2):
        values = [v.strip() for v in line.split(";") if v.strip()]
        for v in values:
            if not _INTEGER.fullmatch(v):
                raise TraceError(f"{path}:{lineno}: {v[:40]!r} is not an integer")
            if int(v) < 0:
                raise TraceError(f"{path}:{lineno}: {v} bits; magnitudes and fractions must be >= 0")
        cols.append([int(v) for v in values])
    if any(len(c) < n_layers for c in cols):
        raise TraceError(f"{path}: needs {n_layers} values per line (one per layer of model.csv), "
                         f"got {[len(c) for c in cols]}")
    # LayerTrace refuses a precision of 0 bits (magnitude + fraction == 0), naming the layer.
    return [(cols[0][i] + cols[1][i], cols[2][i] + cols[3][i]) for i in range(n_layers)]


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from a .npy header, after checking that the file holds exactly that many bytes."""
    size = path.stat().st_size
    if size == 0:
        raise TraceError(f"trace file {path} is empty (0 bytes); expected a .npy array")
    with path.open("rb") as f:
        head = f.read(len(_NPY_MAGIC))
        if head != _NPY_MAGIC:
            f.seek(0)
            head = f.read(_HEAD_BYTES)
            known = next((what for magic, what in _FOREIGN_MAGIC.items() if head.startswith(magic)), None)
            found = known or f"starts with {head!r}"
            raise TraceError(f"trace file {path}: not a .npy file ({found}); expected numpy's .npy format")
        f.seek(0)
        try:
            version = np.lib.format.read_magic(f)
            reader = _NPY_HEADER_READERS.get(version)
            if reader is None:
                raise TraceError(f"trace file {path}: .npy format version {version}; expected 1.0 or 2.0")
            shape, _fortran, dtype = reader(f)
        except TraceError:
            raise
        except Exception as exc:  # numpy's header parser raises ValueError, TokenError, SyntaxError, ...
            raise TraceError(f"trace file {path}: bad .npy header ({type(exc).__name__}: {one_line(exc)[:200]})") from None
        offset = f.tell()
    if dtype.hasobject:
        raise TraceError(f"trace file {path}: holds Python objects (a pickle); expected a numeric array")
    if dtype.kind not in "iuf" or dtype.subdtype is not None:
        raise TraceError(f"trace file {path}: dtype {dtype}; expected integers or floats holding integers "
                         f"(DNNsim writes float32)")
    if any(d < 0 for d in shape):
        raise TraceError(f"trace file {path}: bad .npy header (shape {shape})")
    want = prod(shape) * dtype.itemsize
    have = size - offset
    if have != want:
        state = "truncated" if have < want else f"{have - want} bytes after the array"
        raise TraceError(f"trace file {path}: {state}: the header says {dtype} {shape} = {want} bytes of data, "
                         f"the file holds {have}")
    return shape, dtype


def _load_npy(path: Path) -> np.ndarray:
    if not path.exists():
        raise TraceError(f"trace file {path} does not exist")
    if not path.is_file():
        raise TraceError(f"trace file {path} is not a regular file")
    try:
        _npy_header(path)
        return np.load(path, allow_pickle=False)
    except TraceError:
        raise
    except OSError as exc:
        raise TraceError(f"trace file {path}: unreadable ({one_line(exc)})") from None
    except ValueError as exc:  # only reachable when the file changed between the header check and the load
        raise TraceError(f"trace file {path}: unreadable ({one_line(exc)})") from None


def load_dnnsim(root: str | Path, net: str, batch: int = 0) -> NetworkTrace:
    """Read a network in DNNsim's layout under `root` (the folder holding models/ and net_traces/).

    Returns int32 C-ordered traces; an fc weight stored ``[K, C, 1, 1]`` is read as ``[K, C]`` (DNNsim does
    the same); a conv whose weights have fewer channels than its activations is grouped, with
    ``groups = C_act / C_wgt`` (DNNsim's own inference). Raises TraceError, one line naming the file (and line) at fault, for anything it cannot read
    or that is inconsistent (see the module docstring and :class:`LayerTrace`).
    """
    models, traces = _paths(Path(root), net)
    rows = _read_model_csv(models / "model.csv")
    precisions = _read_precisions(models / "precision.txt", len(rows))
    layers = []
    for i, (name, ltype, stride, pad) in enumerate(rows):
        w = _load_npy(traces / f"wgt-{name}.npy")
        a = _load_npy(traces / f"act-{name}-{batch}.npy")
        if ltype == "fc" and w.ndim == 4 and w.shape[2:] == (1, 1):
            w = w.reshape(w.shape[:2])  # DNNsim treats [K,C,1,1] as 2-D
        act_prec, wgt_prec = precisions[i] if precisions else (None, None)
        layers.append(
            LayerTrace(name=name, type=ltype, weights=w, activations=a, stride=stride, pad=pad,
                       act_prec=act_prec, wgt_prec=wgt_prec, groups=_groups_of(ltype, w, a))
        )
    return NetworkTrace(name=net, layers=layers)


def _groups_of(ltype: str, w: np.ndarray, a: np.ndarray) -> int:
    """A conv's groups as DNNsim infers them: activation channels / weight channels (1 when they do not divide;
    LayerTrace then names the mismatch)."""
    if ltype != "conv" or w.ndim != 4 or a.ndim != 4 or w.shape[1] == 0 or a.shape[1] == w.shape[1]:
        return 1
    return a.shape[1] // w.shape[1] if a.shape[1] % w.shape[1] == 0 else 1


def split_groups(trace: NetworkTrace) -> NetworkTrace:
    """`trace` with every grouped conv that DNNsim runs as dense (``groups`` neither 2 nor depthwise) replaced by
    its groups as dense layers ``<name>.group<j>`` (filters and channels of group j).

    DNNsim 4748a60 takes its grouped path only for 2 groups and depthwise layers and runs any other grouped
    layer as one dense layer over the first group's channels (docs/simulator.md). Its cycles for the split
    layers add up to ours for the grouped layer when nothing carries over between groups: no column registers
    and no BitTactical (whose skip counters DNNsim carries across groups only within a layer).
    """
    from bitpruner.sim.grouped import group_tiling, is_depthwise, sub_layers
    from bitpruner.sim.params import SimParams

    layers = []
    for layer in trace.layers:
        if layer.groups in (1, 2) or is_depthwise(layer):
            layers.append(layer)
            continue
        for j, sub in enumerate(sub_layers(layer, group_tiling(layer, SimParams()))):
            layers.append(dataclasses.replace(sub, name=f"{layer.name}.group{j}"))
    return NetworkTrace(name=trace.name, layers=layers, model=trace.model)


def save_dnnsim(trace: NetworkTrace, root: str | Path, pe_width: int = 16) -> Path:
    """Write `trace` in DNNsim's layout under `root`; precision.txt only when a layer sets one.

    Every ``.npy`` is float32 in C order (``fortran_order: False``): DNNsim reads the data row-major and would
    see other values in a Fortran-ordered file. Raises TraceError for a layer name DNNsim cannot use.
    A grouped conv is written as it is, weights ``[K, C/g, Kx, Ky]`` beside activations ``[N, C, X, Y]``: DNNsim
    (and `load_dnnsim`) infer the groups from the two channel counts. DNNsim runs only 2 groups and depthwise
    layers as grouped; write the others through :func:`split_groups` to compare with it.
    """
    models, traces = _paths(Path(root), trace.name)
    names = [layer.name for layer in trace.layers]
    for name in names:
        if "," in name or "/" in name:
            raise TraceError(f"layer {name!r}: DNNsim layer names cannot hold ',' or '/'")
        _check_name(name, f"network {trace.name!r}")
        if names.count(name) > 1:
            raise TraceError(f"network {trace.name!r}: layer name {name!r} is used twice")
    models.mkdir(parents=True, exist_ok=True)
    traces.mkdir(parents=True, exist_ok=True)
    lines = []
    for layer in trace.layers:
        lines.append(f"{layer.name},{layer.type},{layer.stride},{layer.pad}")
        np.save(traces / f"wgt-{layer.name}.npy", np.ascontiguousarray(layer.weights, dtype=np.float32))
        np.save(traces / f"act-{layer.name}-0.npy", np.ascontiguousarray(layer.activations, dtype=np.float32))
    (models / "model.csv").write_text("\n".join(lines) + "\n")
    precision = models / "precision.txt"
    if any(layer.act_prec is not None or layer.wgt_prec is not None for layer in trace.layers):
        act = [layer.act_prec or pe_width for layer in trace.layers]
        wgt = [layer.wgt_prec or pe_width for layer in trace.layers]
        zeros = ["0"] * len(trace.layers)
        body = [_PRECISION_HEADER, ";".join(map(str, act)), ";".join(zeros), ";".join(map(str, wgt)), ";".join(zeros)]
        precision.write_text("\n".join(body) + "\n")
    elif precision.exists():
        precision.unlink()
    return Path(root)
