"""Layer traces for the simulator: integer weights and activations in DNNsim's x-first axis order.

Axis order: kernels ``W[k, c, x, y]`` and images ``A[n, c, x, y]`` (DNNsim's). PyTorch tensors are
``[.., H, W] = [.., y, x]``; :func:`from_torch_layout` swaps the last two axes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bitpruner.errors import TraceError

INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1
LAYER_TYPES = ("conv", "fc")
NETWORK_FILE = "network.json"
FORMAT_VERSION = 1


def from_torch_layout(w: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch [.., H, W] = [.., y, x] -> DNNsim [.., x, y]: swap the last two axes of 4-D arrays."""
    w, a = np.asarray(w), np.asarray(a)
    w = np.swapaxes(w, -1, -2) if w.ndim == 4 else w
    a = np.swapaxes(a, -1, -2) if a.ndim == 4 else a
    return np.ascontiguousarray(w), np.ascontiguousarray(a)


def _as_int_array(values, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            bad = arr[~(np.isfinite(arr) & (arr == np.round(arr)))].flat[0]
            raise TraceError(f"{what}: non-integer value {bad!r}; traces must hold integers")
    elif arr.dtype.kind not in "iub":
        raise TraceError(f"{what}: dtype {arr.dtype} is not numeric")
    if arr.size and (arr.min() < INT16_MIN or arr.max() > INT16_MAX):
        bad = arr.min() if arr.min() < INT16_MIN else arr.max()
        raise TraceError(
            f"{what}: value {int(bad)} outside 16-bit two's complement [{INT16_MIN}, {INT16_MAX}]"
        )
    return arr.astype(np.int32)


@dataclass
class LayerTrace:
    """One layer: integer W[K,C,Kx,Ky] (conv) or W[K,C] (fc) and A[N,C,X,Y] / A[N,C] (x-first)."""

    name: str
    type: str
    weights: np.ndarray
    activations: np.ndarray
    stride: int = 1
    pad: int = 0
    act_prec: int | None = None  # bits; None = the simulator's pe_width
    wgt_prec: int | None = None
    act_scale: float | None = None  # real value = integer * scale (informative only)
    wgt_scale: float | None = None
    act_bits: int | None = None  # bit width the values were quantized to (informative only)
    wgt_bits: int | None = None

    def __post_init__(self) -> None:
        where = f"layer {self.name!r}"
        if self.type not in LAYER_TYPES:
            raise TraceError(f"{where}: type {self.type!r}, expected one of {LAYER_TYPES}")
        self.weights = _as_int_array(self.weights, f"{where} weights")
        self.activations = _as_int_array(self.activations, f"{where} activations")
        self.stride, self.pad = int(self.stride), int(self.pad)
        if self.stride < 1 or self.pad < 0:
            raise TraceError(f"{where}: stride={self.stride}, pad={self.pad}; expected stride >= 1, pad >= 0")
        for name in ("act_prec", "wgt_prec"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise TraceError(f"{where}: {name}={value}, expected >= 1")
        self._check_shapes(where)

    def _check_shapes(self, where: str) -> None:
        w, a = self.weights, self.activations
        if self.type == "conv":
            if w.ndim != 4 or a.ndim != 4:
                raise TraceError(f"{where}: conv expects W[K,C,Kx,Ky] and A[N,C,X,Y], got {w.shape} and {a.shape}")
            if w.shape[1] != a.shape[1]:
                raise TraceError(f"{where}: weights have {w.shape[1]} channels, activations {a.shape[1]}")
            for axis, name in ((2, "x"), (3, "y")):
                if a.shape[axis] + 2 * self.pad < w.shape[axis]:
                    raise TraceError(
                        f"{where}: kernel {name}-size {w.shape[axis]} exceeds padded input {a.shape[axis] + 2 * self.pad}"
                    )
        else:
            if w.ndim != 2 or a.ndim not in (2, 4):
                raise TraceError(f"{where}: fc expects W[K,C] and A[N,C] (or A[N,C,X,Y]), got {w.shape} and {a.shape}")
            channels = int(np.prod(a.shape[1:]))
            if w.shape[1] != channels:
                raise TraceError(f"{where}: weights have {w.shape[1]} channels, activations {channels}")
        if a.shape[0] < 1 or w.shape[0] < 1:
            raise TraceError(f"{where}: empty weights or activations ({w.shape}, {a.shape})")

    @property
    def fc_activations(self) -> np.ndarray:
        """A[N, C] with a 4-D fc input flattened in (c, x, y) order, as DNNsim does."""
        return self.activations.reshape(self.activations.shape[0], -1)

    def precisions(self, pe_width: int) -> tuple[int, int]:
        """(act_prec, wgt_prec), defaulting to pe_width; more than pe_width is an error."""
        act = pe_width if self.act_prec is None else int(self.act_prec)
        wgt = pe_width if self.wgt_prec is None else int(self.wgt_prec)
        for name, value in (("act_prec", act), ("wgt_prec", wgt)):
            if value > pe_width:
                raise TraceError(f"layer {self.name!r}: {name}={value} exceeds pe_width={pe_width}")
        return act, wgt

    def meta(self) -> dict:
        keys = ("name", "type", "stride", "pad", "act_prec", "wgt_prec", "act_scale", "wgt_scale", "act_bits", "wgt_bits")
        return {k: getattr(self, k) for k in keys}


@dataclass
class NetworkTrace:
    """A network's layer traces, in execution order."""

    name: str
    layers: list[LayerTrace] = field(default_factory=list)
    model: str | None = None  # the model (architecture) name, when known

    def layer(self, name: str) -> LayerTrace:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise TraceError(f"network {self.name!r}: no layer named {name!r}")

    def save(self, directory: str | Path) -> Path:
        """Write one ``layer_NNN.npz`` per layer and a ``network.json`` index into `directory`."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        entries = []
        for i, layer in enumerate(self.layers):
            fname = f"layer_{i:03d}.npz"
            np.savez_compressed(out / fname, weights=layer.weights, activations=layer.activations)
            entries.append({**layer.meta(), "file": fname})
        doc = {"format": FORMAT_VERSION, "name": self.name, "model": self.model, "layers": entries}
        (out / NETWORK_FILE).write_text(json.dumps(doc, indent=2))
        return out

    @classmethod
    def load(cls, directory: str | Path) -> NetworkTrace:
        """Read what :meth:`save` wrote."""
        root = Path(directory)
        index = root / NETWORK_FILE
        if not index.is_file():
            raise TraceError(f"trace index {index} does not exist")
        try:
            doc = json.loads(index.read_text())
            entries = doc["layers"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise TraceError(f"trace index {index}: malformed ({exc})") from None
        layers = []
        for entry in entries:
            path = root / entry["file"]
            if not path.is_file():
                raise TraceError(f"layer file {path} does not exist")
            with np.load(path) as data:
                w, a = data["weights"], data["activations"]
            meta = {k: v for k, v in entry.items() if k != "file"}
            layers.append(LayerTrace(weights=w, activations=a, **meta))
        return cls(name=doc["name"], layers=layers, model=doc.get("model"))
