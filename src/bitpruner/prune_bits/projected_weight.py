"""The retraining parametrization: mask -> fake-quant to b bits -> bit projection, straight-through to the latent weight.

`BitProjectedWeight` is registered on each Conv2d/Linear `weight` with `torch.nn.utils.parametrize`:
the forward pass sees `scale * q'` where q' is the projection (at the layer's current `k`, on the selected
lane groups; plain rounding elsewhere) of round(w * mask / scale); the backward pass hands the gradient
to the latent float weight unchanged where the mask is 1 and not at all where it is 0. The mask holds the
input model's zero weights, so weight-pruning zeros stay zero whatever momentum or weight decay do to the
latent values. `k`, the group selection and the mask are buffers: they travel in Lightning's `last.ckpt`.

Mode `published` (BitPruner as published, LLSQ; published.py) ignores k and the groups: the forward pass sees
2^-radix * code book(round(w * mask * 2^radix)), radix fixed per layer when the fit starts (`init_published`);
`published_step` applies LLSQ's revert rule after an optimizer step. Its state (radix, stored integers, previous
floats, s0, target) is held in buffers, so a resume from `last.ckpt` continues exactly.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from bitpruner.models.layers import prunable_layers
from bitpruner.prune_bits.bitlevel import BITLEVEL, project_bitlevel
from bitpruner.prune_bits.config import PUBLISHED, PublishedConfig
from bitpruner.prune_bits.lanes import weight_group_ids
from bitpruner.prune_bits.projections import group_budget, group_columns, group_error, per_weight
from bitpruner.prune_bits.published import (
    layer_bit_sparsity,
    pow2_scale,
    published_int,
    radix_position,
    revert_update,
    target_bit_sparsity,
)
from bitpruner.quant.fixed_point import QuantConfig, broadcast_scale, qmax, weight_scale


def project_int(mode: str, w: torch.Tensor, scale: torch.Tensor, k: int, lanes: int, bits: int,
                encoding: str = "binary") -> torch.Tensor:
    """Integer projection of float weights `w` (scale units) at budget `k` per weight.

    group_budget gets k * lanes bits per lane group: the same mean budget as the other modes.
    """
    w = w.detach()
    if mode in BITLEVEL:  # the published BitWave / BBS methods: N = bits - 1 - k pruned columns, groups of `lanes`
        return project_bitlevel(mode, w, scale, k, lanes, bits)
    if mode == "per_weight":
        return per_weight(w, k, bits=bits, scale=scale, encoding=encoding)
    if mode == "group_columns":
        return group_columns(w, k, lanes, bits=bits, scale=scale)
    return group_budget(w, k * lanes, lanes, bits=bits, scale=scale)


class BitProjectedWeight(nn.Module):
    """Parametrization of one layer's weight; see the module docstring."""

    def __init__(self, weight: torch.Tensor, quant: QuantConfig, mode: str, lanes: int,
                 encoding: str = "binary", published: PublishedConfig | None = None) -> None:
        super().__init__()
        self.quant = quant
        self.mode = mode
        self.lanes = lanes
        self.encoding = encoding
        self.published = (published or PublishedConfig()) if mode == PUBLISHED else None
        ids = torch.from_numpy(weight_group_ids(tuple(weight.shape), lanes))
        n_groups = int(ids.max()) + 1 if ids.numel() else 0
        self.register_buffer("mask", (weight.detach() != 0).to(weight.dtype))
        # No constraint (b - 1 bits) until the schedule says otherwise.
        self.register_buffer("k", torch.tensor(quant.bits - 1, dtype=torch.long))
        self.register_buffer("group_selected", torch.zeros(n_groups, dtype=torch.bool))
        self.register_buffer("group_ids", ids.to(weight.device), persistent=False)
        if self.published is not None:
            # LLSQ's per-layer state (radix_position, weight_int, weight_old, expected_bit_sparsity), as buffers.
            self.register_buffer("published_ready", torch.tensor(False))
            self.register_buffer("radix", torch.tensor(0, dtype=torch.long))
            self.register_buffer("stored_int", torch.zeros(weight.shape, dtype=torch.int8, device=weight.device))
            self.register_buffer("previous_weight", torch.zeros_like(weight.detach()))
            self.register_buffer("initial_sparsity", torch.tensor(0.0, dtype=torch.float64))
            self.register_buffer("target_sparsity", torch.tensor(0.0, dtype=torch.float64))

    @property
    def unconstrained(self) -> bool:
        return int(self.k) >= self.quant.bits - 1 or not bool(self.group_selected.any())

    def scale(self, w: torch.Tensor) -> torch.Tensor:
        return weight_scale(w * self.mask, self.quant.bits, self.quant.per_channel, self.quant.power_of_two)

    def _published_radix(self, wm: torch.Tensor) -> int:
        return int(self.radix) if bool(self.published_ready) else radix_position(wm, self.quant.bits)

    def _published_int(self, wm: torch.Tensor, radix: int) -> torch.Tensor:
        cap = self.published.max_bits if self.published.codebook else None
        return published_int(wm, radix, self.quant.bits, cap)

    def project(self, w: torch.Tensor, k: int | None = None, all_groups: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(integer weights as float, scale) of the latent `w` at `k` (default: the current one).

        Mode published: k and the groups are ignored; the scale is the layer's 0-d power of two."""
        wm = (w * self.mask).detach()
        if self.published is not None:
            radix = self._published_radix(wm)
            return self._published_int(wm, radix).to(wm.dtype), pow2_scale(radix).to(wm.device)
        scale = self.scale(wm)
        top = qmax(self.quant.bits)
        q = torch.clamp(torch.round(wm / broadcast_scale(scale, wm)), -top, top)
        k = int(self.k) if k is None else k
        if k >= self.quant.bits - 1:
            return q, scale
        selected = torch.ones_like(self.group_selected) if all_groups else self.group_selected
        if not bool(selected.any()):
            return q, scale
        qp = project_int(self.mode, wm, scale, k, self.lanes, self.quant.bits, self.encoding).to(q)
        return torch.where(selected[self.group_ids], qp, q), scale

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        wm = w * self.mask
        q, scale = self.project(w)
        # Straight-through: the value of scale * q, the gradient of wm.
        return wm + (q * broadcast_scale(scale, wm) - wm).detach()

    @torch.no_grad()
    def init_published(self, w: torch.Tensor, factor: float) -> None:
        """Fix the layer's radix from the latent `w`, store its integers and floats, s0 and the target
        s0 + (1 - s0) * factor; once only (a resumed fit keeps the restored state). LLSQ: Conv2dBP init_state."""
        if bool(self.published_ready):
            return
        wm = (w * self.mask).detach()
        radix = radix_position(wm, self.quant.bits)
        q = self._published_int(wm, radix)
        s0 = layer_bit_sparsity(q, self.quant.bits)
        self.radix.fill_(radix)
        self.stored_int.copy_(q.to(self.stored_int.dtype))
        self.previous_weight.copy_(w.detach())
        self.initial_sparsity.fill_(s0)
        self.target_sparsity.fill_(target_bit_sparsity(s0, factor))
        self.published_ready.fill_(True)

    @torch.no_grad()
    def published_step(self, w: torch.Tensor) -> int:
        """LLSQ's revert rule on the latent `w` (in place) after an optimizer step; returns how many weights
        were reverted. The stored integers and floats become the accepted ones (published.revert_update)."""
        wm = (w * self.mask).detach()
        new_int = self._published_int(wm, int(self.radix))
        sparsity = layer_bit_sparsity(self.stored_int, self.quant.bits)
        accepted_w, accepted_int = revert_update(self.stored_int, new_int, self.previous_weight, w.detach(),
                                                 sparsity, float(self.target_sparsity), self.quant.bits)
        reverted = int((accepted_int != new_int).sum())
        w.copy_(accepted_w)
        self.stored_int.copy_(accepted_int.to(self.stored_int.dtype))
        self.previous_weight.copy_(accepted_w)
        return reverted

    @torch.no_grad()
    def select_groups(self, w: torch.Tensor, target: int, fraction: float) -> int:
        """Grow the selection to round(fraction * groups), adding the lowest-error groups at `target` first."""
        n = self.group_selected.numel()
        want = min(n, round(fraction * n))
        have = int(self.group_selected.sum())
        if want <= have:
            return have
        wm = (w * self.mask).detach()
        scale = self.scale(wm)
        qp = project_int(self.mode, wm, scale, target, self.lanes, self.quant.bits, self.encoding)
        err = torch.from_numpy(group_error(wm, qp, self.lanes, scale=scale, bits=self.quant.bits)).to(wm.device)
        # Already selected groups rank first, so a selection only grows.
        score = torch.where(self.group_selected, torch.full_like(err, -1.0), err)
        order = torch.sort(score, stable=True).indices
        self.group_selected[order[:want]] = True
        return want

    def extra_repr(self) -> str:
        if self.published is not None:
            return f"mode={self.mode}, radix={int(self.radix)}, bits={self.quant.bits}"
        return f"mode={self.mode}, k={int(self.k)}, lanes={self.lanes}, bits={self.quant.bits}"


def projection_of(layer: nn.Module) -> BitProjectedWeight | None:
    if not parametrize.is_parametrized(layer, "weight"):
        return None
    found = [p for p in layer.parametrizations.weight if isinstance(p, BitProjectedWeight)]
    return found[0] if found else None


def latent_weight(layer: nn.Module) -> torch.Tensor:
    return layer.parametrizations.weight.original


def attach_projections(model: nn.Module, quant: QuantConfig, mode: str, lanes: int,
                       encoding: str = "binary", published: PublishedConfig | None = None) -> dict[str, BitProjectedWeight]:
    """Register the parametrization on every prunable layer (idempotent); returns it by layer name.
    `published`: the options of mode published (ignored by the other modes)."""
    out = {}
    for name, layer in prunable_layers(model).items():
        existing = projection_of(layer)
        if existing is None:
            existing = BitProjectedWeight(layer.weight, quant, mode, lanes, encoding, published)
            parametrize.register_parametrization(layer, "weight", existing)
        out[name] = existing
    return out


@torch.no_grad()
def squash_projections(model: nn.Module, targets: dict[str, int]) -> dict[str, dict]:
    """Replace every parametrization by the plain weight `scale * q` (q projected at the layer's target on all
    groups); returns {layer: {"q": int8/int16, "scale": tensor, "bits": b}} with q == round(weight / scale)."""
    int_weights = {}
    for name, layer in prunable_layers(model).items():
        proj = projection_of(layer)
        if proj is None:
            continue
        q, scale = proj.project(latent_weight(layer), k=targets[name], all_groups=True)
        parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)
        weight = q * broadcast_scale(scale, q)
        layer.weight.copy_(weight.to(layer.weight.dtype))
        layer.weight.masked_fill_(layer.weight == 0, 0.0)  # no -0.0 in the saved model
        dtype = torch.int8 if proj.quant.bits <= 8 else torch.int16
        q_int = q.to(torch.int64)
        # The contract of the exported model: the integers are recoverable from the stored floats.
        recovered = torch.round(layer.weight / broadcast_scale(scale, layer.weight)).to(torch.int64)
        if not torch.equal(recovered, q_int):
            raise AssertionError(f"layer {name}: round(weight / scale) differs from the projected integers")
        int_weights[name] = {"q": q_int.to(dtype).cpu(), "scale": scale.detach().cpu().clone(), "bits": proj.quant.bits}
    return int_weights


def int_weights_numpy(int_weights: dict[str, dict]) -> dict[str, np.ndarray]:
    return {n: v["q"].numpy().astype(np.int32) for n, v in int_weights.items()}
