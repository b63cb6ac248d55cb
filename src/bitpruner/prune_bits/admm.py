"""ADMM for bit pruning: min loss(W) + rho/2 ||W - Z + U||^2 with Z constrained to the projection's set.

Every `update_every` optimizer steps: Z = scale * Proj_k(W + U), U += W - Z, rho *= growth. The penalty
enters as its gradient rho * (W - Z + U), added to the latent weights' gradients just before the optimizer
step (the same update as adding the term to the loss, without touching the LightningModule).
"""

from __future__ import annotations

from typing import Any

import torch

from bitpruner.prune_bits.config import AdmmConfig
from bitpruner.prune_bits.projected_weight import BitProjectedWeight, project_int
from bitpruner.quant.fixed_point import broadcast_scale, qmax


class AdmmState:
    """Z, U and rho for the named layers; `targets` is each layer's final k."""

    def __init__(self, cfg: AdmmConfig, targets: dict[str, int]) -> None:
        self.cfg = cfg
        self.targets = dict(targets)
        self.rho = float(cfg.rho)
        self.steps = 0
        self.z: dict[str, torch.Tensor] = {}
        self.u: dict[str, torch.Tensor] = {}

    @property
    def started(self) -> bool:
        return bool(self.z)

    @torch.no_grad()
    def _project(self, proj: BitProjectedWeight, w: torch.Tensor, name: str) -> torch.Tensor:
        # The scale of W itself: Z must be representable where the hard projection will put the weights.
        scale = proj.scale(w)
        q, _ = _project_at(proj, w, scale, self.targets[name])
        return q * broadcast_scale(scale, q)

    @torch.no_grad()
    def start(self, layers: dict[str, tuple[BitProjectedWeight, torch.Tensor]]) -> None:
        """Z = Proj(W), U = 0."""
        for name, (proj, w) in layers.items():
            wm = w * proj.mask
            self.z[name] = self._project(proj, wm, name)
            self.u[name] = torch.zeros_like(wm)

    @torch.no_grad()
    def add_penalty_grad(self, layers: dict[str, tuple[BitProjectedWeight, torch.Tensor]]) -> None:
        for name, (proj, w) in layers.items():
            if w.grad is None:
                continue
            w.grad.add_(self.rho * (w * proj.mask - self.z[name] + self.u[name]) * proj.mask)

    def penalty(self, layers: dict[str, tuple[BitProjectedWeight, torch.Tensor]]) -> float:
        """rho/2 * sum ||W - Z + U||^2 (for logging)."""
        with torch.no_grad():
            total = sum(float(((w * p.mask - self.z[n] + self.u[n]) ** 2).sum()) for n, (p, w) in layers.items())
        return 0.5 * self.rho * total

    @torch.no_grad()
    def step(self, layers: dict[str, tuple[BitProjectedWeight, torch.Tensor]]) -> bool:
        """Count one optimizer step; every `update_every` steps update Z, U and rho. True when it updated."""
        self.steps += 1
        if self.steps % self.cfg.update_every:
            return False
        for name, (proj, w) in layers.items():
            wm = w * proj.mask
            self.z[name] = self._project(proj, wm + self.u[name], name)
            self.u[name] += wm - self.z[name]
        self.rho *= self.cfg.rho_growth
        return True

    def to(self, device: torch.device) -> AdmmState:
        """Move Z and U next to the weights (a resumed state loads on the CPU)."""
        self.z = {n: t.to(device) for n, t in self.z.items()}
        self.u = {n: t.to(device) for n, t in self.u.items()}
        return self

    def state_dict(self) -> dict[str, Any]:
        return {"rho": self.rho, "steps": self.steps,
                "z": {n: t.cpu() for n, t in self.z.items()}, "u": {n: t.cpu() for n, t in self.u.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rho = float(state.get("rho", self.cfg.rho))
        self.steps = int(state.get("steps", 0))
        self.z = dict(state.get("z", {}))
        self.u = dict(state.get("u", {}))


def _project_at(proj: BitProjectedWeight, w: torch.Tensor, scale: torch.Tensor, k: int):
    """Project `w` (already masked) with a given scale at k on every group; returns (q as float, scale)."""
    top = qmax(proj.quant.bits)
    if k >= proj.quant.bits - 1:
        return torch.clamp(torch.round(w / broadcast_scale(scale, w)), -top, top), scale
    q = project_int(proj.mode, w, scale, k, proj.lanes, proj.quant.bits, proj.encoding)
    return q.to(w.dtype), scale
