"""Mask reparametrization through `torch.nn.utils.prune`: `weight = weight_orig * weight_mask`.

The mask is a buffer (saved in the state dict); `weight_orig` is the original Parameter object, so
optimizers built before or after attaching keep working. Masked entries of the effective weight are
exactly zero whatever the optimizer does to `weight_orig` (its gradient there is zero too).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn
from torch.nn.utils import prune

from bitpruner.errors import ConfigError
from bitpruner.models.layers import prunable_layers

MASK_SUFFIX = "weight_mask"
ORIG_SUFFIX = "weight_orig"


def is_masked(module: nn.Module) -> bool:
    return hasattr(module, MASK_SUFFIX) and hasattr(module, ORIG_SUFFIX)


def attach_masks(model: nn.Module, names: Iterable[str] | None = None) -> list[str]:
    """Give the named prunable layers (default: all) an all-ones mask; layers already masked are left alone."""
    layers = prunable_layers(model)
    names = list(layers) if names is None else list(names)
    missing = [n for n in names if n not in layers]
    if missing:
        raise ConfigError(f"attach_masks: no prunable layer named {', '.join(missing)}; layers: {', '.join(layers)}")
    for name in names:
        if not is_masked(layers[name]):
            prune.identity(layers[name], "weight")
    return names


def attach_masks_for_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], prefix: str = "") -> list[str]:
    """Re-apply the reparametrization that a masked state dict expects, so `load_state_dict` accepts it.

    `prefix` is what the state dict puts in front of the model's own names (e.g. "model." for a
    LightningModule's checkpoint when `model` is the bare network).
    """
    layers = prunable_layers(model)
    names = []
    for key in state_dict:
        if key.startswith(prefix) and key.endswith("." + MASK_SUFFIX):
            name = key[len(prefix) : -len("." + MASK_SUFFIX)]
            if name in layers:
                names.append(name)
    return attach_masks(model, names)


def effective_weight(module: nn.Module) -> torch.Tensor:
    """The weight the forward pass uses (mask applied), detached."""
    if is_masked(module):
        return (getattr(module, ORIG_SUFFIX) * getattr(module, MASK_SUFFIX)).detach()
    return module.weight.detach()


@torch.no_grad()
def set_mask(module: nn.Module, mask: torch.Tensor) -> None:
    """Overwrite a masked layer's mask in place and refresh `module.weight` before the next forward."""
    getattr(module, MASK_SUFFIX).copy_(mask)
    module.weight = getattr(module, ORIG_SUFFIX) * getattr(module, MASK_SUFFIX)


def _ranking_scores(module: nn.Module) -> torch.Tensor:
    """|w| flattened, with already-masked entries first (-1) so masks only grow as targets rise."""
    orig = getattr(module, ORIG_SUFFIX).detach().abs().flatten()
    mask = getattr(module, MASK_SUFFIX).flatten()
    return torch.where(mask == 0, torch.full_like(orig, -1.0), orig)


def _masks_from_scores(scores: torch.Tensor, n_pruned: int) -> torch.Tensor:
    """A flat 0/1 mask zeroing exactly the `n_pruned` lowest scores; ties go to the lower index (stable sort)."""
    order = torch.sort(scores, stable=True).indices
    mask = torch.ones_like(scores)
    mask[order[:n_pruned]] = 0.0
    return mask


def n_to_prune(sparsity: float, n_weights: int) -> int:
    """k = round(s * n): the exact number of weights a target sparsity zeroes (Python rounds half to even)."""
    return min(n_weights, round(sparsity * n_weights))


@torch.no_grad()
def prune_layers_separately(model: nn.Module, targets: Mapping[str, float]) -> None:
    """Each named (masked) layer gets exactly round(s * n) of its weights zeroed."""
    layers = prunable_layers(model)
    for name, sparsity in targets.items():
        module = layers[name]
        scores = _ranking_scores(module)
        mask = _masks_from_scores(scores, n_to_prune(sparsity, scores.numel()))
        set_mask(module, mask.view_as(getattr(module, MASK_SUFFIX)))


@torch.no_grad()
def prune_layers_globally(model: nn.Module, names: list[str], sparsity: float) -> None:
    """One threshold across `names`: exactly round(s * N) of their pooled weights zeroed.

    Ties are broken by layer order, then by index within the layer.
    """
    if not names:
        return
    layers = prunable_layers(model)
    scores = [_ranking_scores(layers[n]) for n in names]
    pooled = torch.cat(scores)
    mask = _masks_from_scores(pooled, n_to_prune(sparsity, pooled.numel()))
    for name, part in zip(names, torch.split(mask, [s.numel() for s in scores]), strict=True):
        module = layers[name]
        set_mask(module, part.view_as(getattr(module, MASK_SUFFIX)))


def squash(model: nn.Module) -> nn.Module:
    """Remove every mask reparametrization: plain `weight` Parameters holding exact zeros (in place)."""
    for module in model.modules():
        if is_masked(module):
            prune.remove(module, "weight")
            with torch.no_grad():
                # orig * 0 is -0.0 for negative orig; store a plain +0.0.
                module.weight.masked_fill_(module.weight == 0, 0.0)
    return model


def squashed_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict a squashed copy of `model` would have, without modifying `model`."""
    full = model.state_dict()
    state = {}
    for key, value in full.items():
        if key.endswith("." + MASK_SUFFIX):
            continue
        if key.endswith("." + ORIG_SUFFIX):
            base = key[: -len(ORIG_SUFFIX)]
            state[base + "weight"] = torch.where(full[base + MASK_SUFFIX] == 0, 0.0, value)
        else:
            state[key] = value
    return state
