"""Layer traces for the simulator: integer weights and activations in DNNsim's x-first axis order.

Axis order: kernels ``W[k, c, x, y]`` and images ``A[n, c, x, y]`` (DNNsim's). PyTorch tensors are
``[.., H, W] = [.., y, x]``. The layout helpers (:func:`from_torch_layout`, :func:`to_torch_layout`,
:attr:`LayerTrace.fc_activations`) keep every conv and fc product ``A x W`` equal to the model layer's.
Every array is stored C-ordered (row-major), as DNNsim reads ``.npy`` files.
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
# Largest stride or pad: the engine indexes positions in int64, and no real layer comes near 2**31.
MAX_GEOMETRY = (1 << 31) - 1
# Numeric dtype kinds a trace array may arrive in: signed, unsigned, float (DNNsim's float32 holding integers).
_NUMERIC_KINDS = "iuf"


def one_line(text: object) -> str:
    """`text` with every run of whitespace (newlines included) collapsed to one space: for error messages."""
    return " ".join(str(text).split())


def _to_numpy(x) -> np.ndarray:
    # PyTorch tensors (on any device, with or without grad) and array-likes.
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def from_torch_layout(w, a) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch layout -> the trace's: the arrays a :class:`LayerTrace` takes, with the same products.

    - conv (``w`` 4-D ``[K, C, H, W]``): swaps the last two axes of ``w`` and of a 4-D ``a`` ``[N, C, H, W]``,
      giving ``W[k, c, x, y]`` and ``A[n, c, x, y]``.
    - fc (``w`` 2-D ``[K, F]``): ``w`` is unchanged; a 4-D ``a`` ``[N, C, H, W]`` (a conv output feeding the fc
      layer through ``torch.flatten``) becomes ``[N, C*H*W]`` flattened in PyTorch's own ``(c, y, x)`` order,
      the order of the fc weight's columns. (Swapping its axes first would pair activations with the wrong
      weights: the trace's ``A x W`` would no longer be the model's output.)
    - any other ``a`` (2-D fc input, or an empty placeholder when only weights are converted) is unchanged.

    Accepts numpy arrays and PyTorch tensors; returns C-ordered numpy arrays. Raises TraceError when ``w`` is
    neither 2-D nor 4-D.
    """
    w, a = _to_numpy(w), _to_numpy(a)
    if w.ndim == 4:
        w = np.swapaxes(w, -1, -2)
        a = np.swapaxes(a, -1, -2) if a.ndim == 4 else a
    elif w.ndim == 2:
        a = a.reshape(a.shape[0], -1) if a.ndim == 4 else a
    else:
        raise TraceError(f"from_torch_layout: weights of shape {w.shape}; expected [K, C, H, W] (conv) or [K, F] (fc)")
    return np.ascontiguousarray(w), np.ascontiguousarray(a)


def to_torch_layout(w, a) -> tuple[np.ndarray, np.ndarray]:
    """The trace's layout -> PyTorch's (inverse of :func:`from_torch_layout` for conv layers).

    conv (``w`` 4-D): swaps the last two axes of ``w`` and of a 4-D ``a`` back to ``[.., H, W]``. fc (``w``
    2-D): ``w`` unchanged and ``a`` as :attr:`LayerTrace.fc_activations` reads it (``[N, F]``, a 4-D
    ``A[n, c, x, y]`` flattened in ``(c, x, y)`` order, as DNNsim does). Returns C-ordered numpy arrays.
    """
    w, a = _to_numpy(w), _to_numpy(a)
    if w.ndim == 4:
        return np.ascontiguousarray(np.swapaxes(w, -1, -2)), np.ascontiguousarray(
            np.swapaxes(a, -1, -2) if a.ndim == 4 else a)
    if w.ndim == 2:
        return np.ascontiguousarray(w), np.ascontiguousarray(a.reshape(a.shape[0], -1) if a.ndim > 2 else a)
    raise TraceError(f"to_torch_layout: weights of shape {w.shape}; expected [K, C, X, Y] (conv) or [K, F] (fc)")


def representable_range(bits: int, signed: bool) -> tuple[int, int]:
    """[low, high] of a `bits`-bit integer: two's complement when `signed`, else unsigned."""
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def _as_int_array(values, what: str) -> np.ndarray:
    """C-ordered int32 copy of `values` (any integer dtype, or floats holding integers), within 16-bit."""
    try:
        arr = _to_numpy(values)
    except (TypeError, ValueError) as exc:
        raise TraceError(f"{what}: not a numeric array ({one_line(exc)})") from None
    if arr.dtype.kind not in _NUMERIC_KINDS:
        raise TraceError(f"{what}: dtype {arr.dtype}; expected integers (any int dtype, or floats holding integers)")
    if arr.size == 0:
        return np.ascontiguousarray(arr.astype(np.int32))
    if arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        if not finite.all():
            index = tuple(int(i) for i in np.argwhere(~finite)[0])
            raise TraceError(f"{what}: non-finite value {float(arr[index])} at {list(index)} "
                             f"({int((~finite).sum())} of {arr.size}); traces must hold integers")
        fraction = arr != np.round(arr)
        if fraction.any():
            index = tuple(int(i) for i in np.argwhere(fraction)[0])
            raise TraceError(f"{what}: non-integer value {float(arr[index])!r} at {list(index)}; "
                             f"traces must hold integers")
    # Python ints: comparing uint64 or huge floats with negative bounds in numpy can wrap or lose precision.
    low, high = int(arr.min()), int(arr.max())
    if low < INT16_MIN or high > INT16_MAX:
        bad = low if low < INT16_MIN else high
        raise TraceError(f"{what}: value {bad} outside 16-bit two's complement [{INT16_MIN}, {INT16_MAX}]")
    return np.ascontiguousarray(arr.astype(np.int32))


def _as_int(value, what: str, low: int, high: int = MAX_GEOMETRY) -> int:
    """`value` as an int in [low, high] (ints, integral floats or integer strings; not bools)."""
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value) if isinstance(value, (float, np.floating)) else None
        result = int(value)
        if number is not None and number != result:
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise TraceError(f"{what}={value!r}: expected an integer") from None
    if not low <= result <= high:
        raise TraceError(f"{what}={result}: expected an integer in [{low}, {high}]")
    return result


@dataclass
class LayerTrace:
    """One layer: integer W[K,C/g,Kx,Ky] (conv, `groups` g, default 1) or W[K,C] (fc) and A[N,C,X,Y] / A[N,C].

    A grouped conv (PyTorch's ``groups``) has ``C % g == 0``, ``K % g == 0`` and weights with ``C/g`` input
    channels; filter ``f`` reads channels ``(f // (K/g)) * C/g ..`` (depthwise: ``g = C``).

    Arrays may come in any integer dtype or as floats holding integers, in C or Fortran order; they are
    stored as C-ordered int32. Raises TraceError (one line naming the layer) for a bad type, stride, pad,
    precision, dtype, non-finite or non-integer value, value outside 16-bit, empty axis or inconsistent shapes.
    """

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
    groups: int = 1  # conv groups g: weights W[K, C/g, Kx, Ky]; g = C is depthwise (see sim/grouped.py)

    def __post_init__(self) -> None:
        where = f"layer {self.name!r}"
        if self.type not in LAYER_TYPES:
            raise TraceError(f"{where}: type {self.type!r}, expected one of {LAYER_TYPES}")
        self.weights = _as_int_array(self.weights, f"{where} weights")
        self.activations = _as_int_array(self.activations, f"{where} activations")
        self.stride = _as_int(self.stride, f"{where}: stride", 1)
        self.pad = _as_int(self.pad, f"{where}: pad", 0)
        self.groups = _as_int(self.groups, f"{where}: groups", 1)
        for name in ("act_prec", "wgt_prec"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, _as_int(value, f"{where}: {name}", 1))
        self._check_shapes(where)

    def _check_shapes(self, where: str) -> None:
        w, a = self.weights, self.activations
        if self.type == "conv":
            if w.ndim != 4 or a.ndim != 4:
                raise TraceError(f"{where}: conv expects W[K,C,Kx,Ky] and A[N,C,X,Y], got {w.shape} and {a.shape}")
        elif w.ndim != 2 or a.ndim not in (2, 4):
            raise TraceError(f"{where}: fc expects W[K,C] and A[N,C] (or A[N,C,X,Y]), got {w.shape} and {a.shape}")
        if 0 in w.shape or 0 in a.shape:
            raise TraceError(f"{where}: empty weights or activations ({w.shape}, {a.shape}); every axis needs >= 1")
        if self.type == "conv":
            g, k, c = self.groups, w.shape[0], a.shape[1]
            if c % g or k % g or w.shape[1] != c // g:
                hint = (f" (a grouped convolution? set groups={c // w.shape[1]})"
                        if g == 1 and c % w.shape[1] == 0 and k % (c // w.shape[1]) == 0 else "")
                raise TraceError(f"{where}: weights have {w.shape[1]} channels, activations {c}, groups={g}; expected "
                                 f"C % groups == 0, K % groups == 0 and C/groups weight channels{hint}")
            for axis, name in ((2, "x"), (3, "y")):
                if a.shape[axis] + 2 * self.pad < w.shape[axis]:
                    raise TraceError(
                        f"{where}: kernel {name}-size {w.shape[axis]} exceeds padded input {a.shape[axis] + 2 * self.pad}"
                    )
        else:
            if self.groups != 1:
                raise TraceError(f"{where}: groups={self.groups} on an fc layer; expected 1")
            channels = int(np.prod(a.shape[1:]))
            if w.shape[1] != channels:
                raise TraceError(f"{where}: weights have {w.shape[1]} channels, activations {channels}")

    @property
    def fc_activations(self) -> np.ndarray:
        """A[N, C] with a 4-D fc input A[n, c, x, y] flattened in (c, x, y) order, as DNNsim does.

        The fc weights' columns must be in that order; :func:`from_torch_layout` avoids the question by
        flattening a PyTorch input in PyTorch's own order before it reaches the trace.
        """
        return self.activations.reshape(self.activations.shape[0], -1)

    def precisions(self, pe_width: int) -> tuple[int, int]:
        """(act_prec, wgt_prec), defaulting to pe_width; more than pe_width is an error."""
        act = pe_width if self.act_prec is None else int(self.act_prec)
        wgt = pe_width if self.wgt_prec is None else int(self.wgt_prec)
        for name, value in (("act_prec", act), ("wgt_prec", wgt)):
            if value > pe_width:
                raise TraceError(f"layer {self.name!r}: {name}={value} exceeds pe_width={pe_width}")
        return act, wgt

    def check_widths(self, pe_width: int) -> None:
        """Raise TraceError unless every value fits its precision (act_prec / wgt_prec, default pe_width).

        An operand with a negative value must fit `bits`-bit two's complement, an all-non-negative one
        `bits`-bit unsigned. The engine itself cuts wider values to their low pe_width bits (as DNNsim does);
        user-facing entry points (`bitpruner sim`, trace capture) call this first so that nothing is cut silently.
        """
        act, wgt = self.precisions(pe_width)
        for side, bits, name in (("activations", act, "act_prec"), ("weights", wgt, "wgt_prec")):
            values = getattr(self, side)
            low, high = int(values.min()), int(values.max())
            signed = low < 0
            lo, hi = representable_range(bits, signed)
            if low < lo or high > hi:
                source = f"{name}={bits}" if getattr(self, name) is not None else f"pe_width={pe_width}"
                kind = "signed" if signed else "unsigned"
                raise TraceError(
                    f"layer {self.name!r}: {side} hold {low if low < lo else high}, which {source} bits cannot "
                    f"represent ({kind} range [{lo}, {hi}]); raise the precision or re-quantize the layer"
                )

    def meta(self) -> dict:
        """The layer's scalar fields by name (everything but the arrays), as :meth:`NetworkTrace.save` writes them."""
        keys = ("name", "type", "stride", "pad", "act_prec", "wgt_prec", "act_scale", "wgt_scale", "act_bits", "wgt_bits",
                "groups")
        return {k: getattr(self, k) for k in keys}


_META_KEYS = frozenset(LayerTrace.__dataclass_fields__) - {"weights", "activations"}


@dataclass
class NetworkTrace:
    """A network's layer traces, in execution order."""

    name: str
    layers: list[LayerTrace] = field(default_factory=list)
    model: str | None = None  # the model (architecture) name, when known

    def layer(self, name: str) -> LayerTrace:
        """The layer called `name`; TraceError when there is none."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise TraceError(f"network {self.name!r}: no layer named {name!r}")

    def check_widths(self, pe_width: int) -> None:
        """:meth:`LayerTrace.check_widths` for every layer, in order (the first bad layer raises)."""
        for layer in self.layers:
            layer.check_widths(pe_width)

    def save(self, directory: str | Path) -> Path:
        """Write one ``layer_NNN.npz`` per layer (C-ordered int32 arrays) and a ``network.json`` index."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        entries = []
        for i, layer in enumerate(self.layers):
            fname = f"layer_{i:03d}.npz"
            np.savez_compressed(out / fname, weights=np.ascontiguousarray(layer.weights),
                                activations=np.ascontiguousarray(layer.activations))
            entries.append({**layer.meta(), "file": fname})
        doc = {"format": FORMAT_VERSION, "name": self.name, "model": self.model, "layers": entries}
        (out / NETWORK_FILE).write_text(json.dumps(doc, indent=2))
        return out

    @classmethod
    def load(cls, directory: str | Path) -> NetworkTrace:
        """Read what :meth:`save` wrote; TraceError (one line naming the file) for anything malformed."""
        import zipfile  # here: `bitpruner sim` reads .npy files and need not import it (issue 14: start-up)

        root = Path(directory)
        index = root / NETWORK_FILE
        if not index.is_file():
            raise TraceError(f"trace index {index} does not exist")
        try:
            doc = json.loads(index.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TraceError(f"trace index {index}: unreadable ({one_line(exc)})") from None
        entries = doc.get("layers") if isinstance(doc, dict) else None
        if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("file"), str)
                                                     for e in entries):
            raise TraceError(f"trace index {index}: expected {{'layers': [{{'file': ..., 'name': ...}}, ...]}}")
        if doc.get("format", FORMAT_VERSION) != FORMAT_VERSION:
            raise TraceError(f"trace index {index}: format {doc.get('format')!r}, expected {FORMAT_VERSION}")
        layers = []
        for entry in entries:
            path = root / entry["file"]
            unknown = sorted(set(entry) - _META_KEYS - {"file"})
            if unknown:
                raise TraceError(f"trace index {index}: layer entry {entry['file']!r} has unknown keys {unknown}")
            if not path.is_file():
                raise TraceError(f"layer file {path} does not exist")
            try:
                with np.load(path, allow_pickle=False) as data:
                    w, a = data["weights"], data["activations"]
            except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
                raise TraceError(f"layer file {path}: unreadable ({one_line(exc)})") from None
            meta = {k: v for k, v in entry.items() if k != "file"}
            try:
                layers.append(LayerTrace(weights=w, activations=a, **meta))
            except TypeError as exc:  # a required key (name, type) is missing
                raise TraceError(f"trace index {index}: layer entry {entry['file']!r}: {one_line(exc)}") from None
        return cls(name=str(doc.get("name", root.name)), layers=layers, model=doc.get("model"))
