"""Import and export of DNNsim's trace layout.

``models/<net>/model.csv`` (``name,conv|fc,stride,pad`` per line, no header), optional
``models/<net>/precision.txt`` (one ignored line, then ';'-separated per-layer act magnitude, act fraction,
weight magnitude, weight fraction; precision = magnitude + fraction), ``net_traces/<net>/wgt-<layer>.npy``
and ``net_traces/<net>/act-<layer>-0.npy`` (float32 holding integers, x-first axis order).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bitpruner.errors import TraceError
from bitpruner.sim.traces import LayerTrace, NetworkTrace

_PRECISION_HEADER = "magnitude (+1 of the sign), fraction, wgt_magnitude, wgt_fraction"


def _paths(root: Path, net: str) -> tuple[Path, Path]:
    return root / "models" / net, root / "net_traces" / net


def _read_model_csv(path: Path) -> list[tuple[str, str, int, int]]:
    if not path.is_file():
        raise TraceError(f"model file {path} does not exist")
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        words = [w.strip() for w in line.split(",")]
        if len(words) < 4 or words[1] not in ("conv", "fc"):
            raise TraceError(f"{path}:{lineno}: expected 'name,conv|fc,stride,pad', got {line!r}")
        try:
            stride, pad = int(words[2]), int(words[3])
        except ValueError:
            raise TraceError(f"{path}:{lineno}: stride/pad {words[2]!r},{words[3]!r} are not integers") from None
        # DNNsim replaces '/' in layer names when it looks for their files.
        rows.append((words[0].replace("/", "-"), words[1], stride, pad))
    if not rows:
        raise TraceError(f"model file {path} lists no layers")
    return rows


def _read_precisions(path: Path, n_layers: int) -> list[tuple[int, int]] | None:
    if not path.is_file():
        return None
    lines = path.read_text().splitlines()
    if len(lines) < 5:
        raise TraceError(f"{path}: expected a header line and 4 lines of ';'-separated integers")
    try:
        cols = [[int(v) for v in line.split(";") if v.strip()] for line in lines[1:5]]
    except ValueError as exc:
        raise TraceError(f"{path}: {exc}") from None
    if any(len(c) < n_layers for c in cols):
        raise TraceError(f"{path}: needs {n_layers} values per line, got {[len(c) for c in cols]}")
    return [(cols[0][i] + cols[1][i], cols[2][i] + cols[3][i]) for i in range(n_layers)]


def _load_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise TraceError(f"trace file {path} does not exist")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise TraceError(f"trace file {path}: unreadable ({exc})") from None


def load_dnnsim(root: str | Path, net: str, batch: int = 0) -> NetworkTrace:
    """Read a network in DNNsim's layout under `root` (the folder holding models/ and net_traces/)."""
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
                       act_prec=act_prec, wgt_prec=wgt_prec)
        )
    return NetworkTrace(name=net, layers=layers)


def save_dnnsim(trace: NetworkTrace, root: str | Path, pe_width: int = 16) -> Path:
    """Write `trace` in DNNsim's layout under `root`; precision.txt only when a layer sets one."""
    models, traces = _paths(Path(root), trace.name)
    models.mkdir(parents=True, exist_ok=True)
    traces.mkdir(parents=True, exist_ok=True)
    lines = []
    for layer in trace.layers:
        if "," in layer.name or "/" in layer.name:
            raise TraceError(f"layer {layer.name!r}: DNNsim layer names cannot hold ',' or '/'")
        lines.append(f"{layer.name},{layer.type},{layer.stride},{layer.pad}")
        np.save(traces / f"wgt-{layer.name}.npy", layer.weights.astype(np.float32))
        np.save(traces / f"act-{layer.name}-0.npy", layer.activations.astype(np.float32))
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
