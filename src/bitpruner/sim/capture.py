"""Trace capture: the integer weights and input activations of every conv/fc layer of a PyTorch model.

Weights: symmetric narrow-range `wgt_bits` integers with a per-layer scale (`quantize_weight`), or, for a
bit-pruned checkpoint, exactly the integers it stores in ``payload["meta"]["int_weights"]``
(``{layer: {"q", "scale", "bits"}}``). Activations: each layer's input, quantized per layer to `act_bits`
(unsigned when every calibration input was >= 0, else signed; `calibrate_activations` on training batches).

The captured network is the *quantized* one: a copy of the model whose weights are ``q * scale`` and whose
layer inputs are fake-quantized, so layer l+1 sees what an integer accelerator computing layer l would
feed it, and ``conv(A_int, W_int) * s_a * s_w + bias`` is exactly the copy's layer output.

Non-finite numbers never become integers: a NaN/inf weight, calibration input or captured input raises
QuantizationError (one line naming the layer, the value and its index) before anything is returned, and every
captured integer is checked against the precision its trace declares (`LayerTrace.check_widths`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from bitpruner.errors import TraceError
from bitpruner.models.layers import prunable_layers
from bitpruner.quant.activations import ActivationQuant, calibrate_activations, quantize_activation
from bitpruner.quant.fixed_point import (
    QuantConfig,
    QuantizedWeight,
    broadcast_scale,
    check_finite,
    qmax,
    quantize_weight,
)
from bitpruner.sim.params import MAX_PE_WIDTH
from bitpruner.sim.traces import LayerTrace, NetworkTrace, from_torch_layout

INT_WEIGHTS_KEY = "int_weights"  # where a bit-pruned checkpoint keeps its exact integer weights (meta)


def _pair(value, what: str, layer: str) -> int:
    """A conv attribute that must be the same along y and x (the simulator has one stride and one pad)."""
    if isinstance(value, str):
        raise TraceError(f"layer {layer!r}: {what}={value!r}; the simulator needs explicit integer padding")
    values = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(set(values)) != 1:
        raise TraceError(f"layer {layer!r}: {what}={values}; the simulator needs the same {what} along x and y")
    return int(values[0])


def layer_geometry(name: str, module: nn.Module) -> tuple[str, int, int]:
    """(type, stride, pad) of a conv/fc layer; dilated convolutions are not simulated (grouped ones are: the
    trace records ``module.groups``, see `layer_groups`)."""
    if isinstance(module, nn.Linear):
        return "fc", 1, 0
    if not isinstance(module, nn.Conv2d):
        raise TraceError(f"layer {name!r}: {type(module).__name__} is neither Conv2d nor Linear")
    if _pair(module.dilation, "dilation", name) != 1:
        raise TraceError(f"layer {name!r}: dilation={module.dilation}; the simulator models dilation 1 only")
    if module.padding_mode != "zeros":
        raise TraceError(f"layer {name!r}: padding_mode={module.padding_mode!r}; the simulator pads with zeros")
    return "conv", _pair(module.stride, "stride", name), _pair(module.padding, "padding", name)


def layer_groups(module: nn.Module) -> int:
    """PyTorch's ``groups`` of a Conv2d (weights ``[K, C/groups, kh, kw]``; depthwise: groups = C); 1 for Linear."""
    return int(getattr(module, "groups", 1)) if isinstance(module, nn.Conv2d) else 1


def stored_int_weights(payload: Mapping | None) -> dict | None:
    """The checkpoint's exact integer weights (``meta.int_weights``), or None when it has none."""
    meta = (payload or {}).get("meta") or {}
    return meta.get(INT_WEIGHTS_KEY) or None


def _from_stored(name: str, layer: nn.Module, entry) -> QuantizedWeight:
    try:
        q, scale, bits = entry["q"], entry["scale"], int(entry["bits"])
    except (KeyError, TypeError, ValueError):
        raise TraceError(f"meta.{INT_WEIGHTS_KEY}[{name!r}]: expected a mapping with q, scale and bits") from None
    q = torch.as_tensor(q)
    scale = torch.as_tensor(scale, dtype=torch.float32)
    check_finite(layer.weight, f"layer {name!r} weight")
    if q.is_floating_point() and not bool(torch.isfinite(q).all()):
        raise TraceError(f"meta.{INT_WEIGHTS_KEY}[{name!r}]: q holds NaN or inf")
    if scale.numel() == 0 or not bool(torch.all(torch.isfinite(scale) & (scale > 0))):
        raise TraceError(f"meta.{INT_WEIGHTS_KEY}[{name!r}]: scale must be finite and > 0, got {scale.tolist()}")
    if tuple(q.shape) != tuple(layer.weight.shape):
        raise TraceError(f"meta.{INT_WEIGHTS_KEY}[{name!r}]: q has shape {tuple(q.shape)}, "
                         f"the layer's weight {tuple(layer.weight.shape)}")
    if q.is_floating_point() and not torch.equal(q, torch.round(q)):
        raise TraceError(f"meta.{INT_WEIGHTS_KEY}[{name!r}]: q holds non-integer values")
    q = q.to(torch.int32)
    top = qmax(bits)
    if int(q.abs().max()) > top:
        raise TraceError(f"meta.{INT_WEIGHTS_KEY}[{name!r}]: |q| up to {int(q.abs().max())} exceeds "
                         f"{top} for bits={bits}")
    # The contract: q == round(w / scale) of the stored weights; a mismatch means meta and weights disagree.
    w = layer.weight.detach().to(torch.float32)
    mismatch = int((torch.round(w / broadcast_scale(scale, w)) != q).sum())
    if mismatch:
        raise TraceError(f"meta.{INT_WEIGHTS_KEY}[{name!r}]: {mismatch} integer weights differ from "
                         f"round(weight / scale) of the stored state dict")
    return QuantizedWeight(q=q, scale=scale, bits=bits)


def integer_weights(model: nn.Module, payload: Mapping | None = None, bits: int = 8) -> tuple[dict, str]:
    """Integer weights per prunable layer and where they came from ('meta.int_weights' or 'quantize_weight')."""
    layers = prunable_layers(model)
    stored = stored_int_weights(payload)
    if stored is None:
        cfg = QuantConfig(bits=bits, scale="layer")
        return {name: quantize_weight(layer.weight, cfg, name) for name, layer in layers.items()}, "quantize_weight"
    names = set(stored)
    if names != set(layers):
        raise TraceError(f"meta.{INT_WEIGHTS_KEY}: layers {sorted(names ^ set(layers))} are missing on one side "
                         f"(model layers: {list(layers)})")
    return {name: _from_stored(name, layer, stored[name]) for name, layer in layers.items()}, f"meta.{INT_WEIGHTS_KEY}"


class _InputQuantizer:
    """Forward pre-hook: fake-quantize a layer's input and, while `record` is a list, keep its integers."""

    def __init__(self, aq: ActivationQuant, name: str | None = None):
        self.aq = aq
        self.name = name
        self.record: list[torch.Tensor] | None = None

    def __call__(self, _module, inputs):
        q = quantize_activation(inputs[0], self.aq, self.name)  # refuses NaN/inf, checks [qmin, qmax]
        if self.record is not None:
            self.record.append(q.detach().cpu())
        return (q.to(inputs[0].dtype) * self.aq.scale, *inputs[1:])


@dataclass
class QuantizedModel:
    """A copy of a model with integer weights (``q * scale``) and fake-quantized layer inputs."""

    model: nn.Module
    weights: dict[str, QuantizedWeight]
    act_quant: dict[str, ActivationQuant]
    weight_source: str
    name: str = "network"
    model_name: str | None = None
    _hooks: dict[str, _InputQuantizer] = field(default_factory=dict, repr=False)

    @torch.no_grad()
    def capture(self, inputs: torch.Tensor) -> NetworkTrace:
        """Run `inputs` [N, ...] and return every layer's integer trace in DNNsim's x-first order."""
        for hook in self._hooks.values():
            hook.record = []
        try:
            self.model(inputs)
            recorded = {name: torch.cat(hook.record) for name, hook in self._hooks.items()}
        finally:
            for hook in self._hooks.values():
                hook.record = None
        layers = []
        for name, module in prunable_layers(self.model).items():
            kind, stride, pad = layer_geometry(name, module)
            acts = recorded.get(name)
            if acts is None or acts.shape[0] == 0:
                raise TraceError(f"layer {name!r}: not reached by the forward pass; cannot capture its input")
            if acts.shape[0] != inputs.shape[0]:
                raise TraceError(f"layer {name!r}: called {acts.shape[0] // inputs.shape[0]} times per forward "
                                 f"pass; shared layers cannot be traced")
            if kind == "fc" and acts.dim() != 2:
                raise TraceError(f"layer {name!r}: fc input of shape {tuple(acts.shape)}; expected [N, C]")
            qw = self.weights[name]
            # PyTorch [.., H, W] = [.., y, x] -> DNNsim [.., x, y]: from_torch_layout swaps the last two axes.
            w, a = from_torch_layout(qw.q.numpy(), acts.numpy())
            aq = self.act_quant[name]
            layer = LayerTrace(
                name=name, type=kind, weights=w, activations=a, stride=stride, pad=pad, groups=layer_groups(module),
                act_prec=aq.bits, wgt_prec=qw.bits, act_scale=float(aq.scale),
                wgt_scale=float(qw.scale) if qw.scale.dim() == 0 else None,
                act_bits=aq.bits, wgt_bits=qw.bits,
            )
            layer.check_widths(MAX_PE_WIDTH)  # every integer fits the precision the trace declares
            layers.append(layer)
        return NetworkTrace(name=self.name, layers=layers, model=self.model_name)


@torch.no_grad()
def quantize_model(
    model: nn.Module,
    calibration: Iterable,
    payload: Mapping | None = None,
    act_bits: int = 8,
    wgt_bits: int = 8,
    name: str = "network",
) -> QuantizedModel:
    """Integer weights (stored or quantized), activation scales calibrated on `calibration` batches."""
    layers = prunable_layers(model)
    if not layers:
        raise TraceError(f"network {name!r}: the model has no Conv2d/Linear layers to trace")
    for lname, module in layers.items():
        layer_geometry(lname, module)  # unsupported layers fail before any work
    weights, source = integer_weights(model, payload, wgt_bits)
    qmodel = copy.deepcopy(model).eval()
    for lname, module in prunable_layers(qmodel).items():
        qw = weights[lname]
        # Plain tensors: any parametrization (masks, fake-quant) of the source model is baked away.
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
        module.weight.copy_(qw.q.to(module.weight.dtype) * broadcast_scale(qw.scale, qw.q))
    # Calibrate on the integer-weight model with float activations, then quantize the inputs.
    act_quant = calibrate_activations(qmodel, calibration, bits=act_bits)
    hooks = {}
    for lname, module in prunable_layers(qmodel).items():
        hooks[lname] = _InputQuantizer(act_quant[lname], lname)
        module.register_forward_pre_hook(hooks[lname])
    model_cfg = (payload or {}).get("model_cfg") or {}
    return QuantizedModel(model=qmodel, weights=weights, act_quant=act_quant, weight_source=source, name=name,
                          model_name=model_cfg.get("name"), _hooks=hooks)


def first_samples(dataset, n: int) -> torch.Tensor:
    """The first `n` inputs of a dataset of (input, target) pairs, in file order, as one batch."""
    if n < 1:
        raise TraceError(f"samples={n}: expected at least 1 sample to capture")
    if len(dataset) < n:
        raise TraceError(f"samples={n}: the split holds only {len(dataset)} samples")
    return torch.stack([dataset[i][0] for i in range(n)])


def trace_summary(trace: NetworkTrace) -> list[dict]:
    """One row per layer: shapes (x-first), stride, pad, precisions, value ranges (for logs and tests)."""
    rows = []
    for layer in trace.layers:
        rows.append({
            "name": layer.name, "type": layer.type, "weights": "x".join(map(str, layer.weights.shape)),
            "activations": "x".join(map(str, layer.activations.shape)), "stride": layer.stride, "pad": layer.pad,
            "groups": layer.groups,
            "act_prec": layer.act_prec, "wgt_prec": layer.wgt_prec,
            "act_min": int(np.min(layer.activations)), "act_max": int(np.max(layer.activations)),
            "wgt_absmax": int(np.max(np.abs(layer.weights))),
        })
    return rows
