"""`bitpruner project`: a published bit-level pruning method (bit-flip, BBS) applied post-training to a model.

Reads a `model.ckpt`, takes its 8-bit integer weights as the `simulate` stage does (`meta.int_weights` when the
checkpoint stores them, else per-layer symmetric narrow-range quantisation), projects every conv/fc layer with
`bitlevel.py` and writes a `model.ckpt` whose state dict holds `q' * scale` and whose `meta.int_weights` holds the
exact projected integers (the prune_bits stage's format: trace capture and `simulate` use them as stored).
`project_model` is the same step for code (the `simulate` stage's `project:` variants).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "outputs/train/model.ckpt"
DEFAULT_OUT = "outputs/project/{method}/model.ckpt"


def project_model(model, payload: dict | None, spec, bits: int = 8) -> tuple[dict, str]:
    """Project `model`'s 8-bit integer weights in place with `spec` (a `BitLevelSpec`).

    Returns ({layer: QuantizedWeight} of the projected integers with the original scales, where the integers came
    from: 'meta.int_weights' or 'quantize_weight'); every prunable layer's weight becomes `q' * scale`, with
    `round(weight / scale) == q'` checked. Raises ConfigError (one line) when `bits` is not 8 or a layer's shape
    does not fit the grouping.
    """
    import torch
    from torch.nn.utils import parametrize

    from bitpruner.errors import ConfigError
    from bitpruner.models.layers import prunable_layers
    from bitpruner.prune_bits.bitlevel import BITLEVEL, WBITS
    from bitpruner.quant.fixed_point import QuantizedWeight, broadcast_scale
    from bitpruner.sim.capture import integer_weights

    if bits != WBITS:
        raise ConfigError(f"bits={bits}: {spec.method} is defined for {WBITS}-bit weights only")
    weights, source = integer_weights(model, payload, bits)
    out = {}
    with torch.no_grad():
        for name, layer in prunable_layers(model).items():
            qw = weights[name]
            try:
                q = BITLEVEL[spec.method](qw.q, **spec.params()).to(torch.int32)
            except ConfigError as exc:
                raise ConfigError(f"layer {name!r}: {exc}") from None
            if parametrize.is_parametrized(layer, "weight"):
                parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
            scale = qw.scale.to(torch.float32)
            weight = q.to(torch.float32) * broadcast_scale(scale, q)
            layer.weight.copy_(weight.to(layer.weight.dtype))
            layer.weight.masked_fill_(layer.weight == 0, 0.0)  # no -0.0 in the saved model
            recovered = torch.round(layer.weight.to(torch.float32) / broadcast_scale(scale, q)).to(torch.int32)
            if not torch.equal(recovered, q):  # the contract of meta.int_weights (see prune_bits/stage.py)
                raise AssertionError(f"layer {name}: round(weight / scale) differs from the projected integers")
            out[name] = QuantizedWeight(q=q, scale=scale, bits=bits)
    return out, source


def int_weights_meta(weights: dict) -> dict[str, dict[str, Any]]:
    """`meta.int_weights` of a checkpoint: {layer: {"q": int8, "scale": float32, "bits": 8}}."""
    import torch

    return {n: {"q": w.q.to(torch.int8).cpu(), "scale": w.scale.detach().cpu().clone(), "bits": w.bits}
            for n, w in weights.items()}


def register(subparsers) -> None:
    # No numpy here (`bitpruner --help` stays light): method, grouping and ranges are checked by BitLevelSpec.
    parser = subparsers.add_parser(
        "project", help="prune a model's 8-bit weights post-training with bit-flip (BitWave) or BBS (BitVert)",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"a stage's model.ckpt (default {DEFAULT_MODEL})")
    parser.add_argument("--method", required=True, help="bitflip | bbs_average | bbs_zero_point")
    parser.add_argument("--N", dest="n", type=int, required=True, help="pruned bit columns per group, 0..7")
    parser.add_argument("--group", type=int, required=True, help="weights per group (published: 32)")
    parser.add_argument("--const-bits", type=int, default=None,
                        help="bbs_zero_point: bits of the shift constant c (default 5)")
    parser.add_argument("--grouping", default=None,
                        help="lanes (default): channels of one filter and kernel position, as the accelerators' lane "
                             "groups; flat: the reference code's chunks of the flattened [K, kh, kw, C] tensor")
    parser.add_argument("--out", default=None, help=f"output model.ckpt (default {DEFAULT_OUT})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bitpruner.models.checkpoint import load_model_checkpoint, save_model_checkpoint
    from bitpruner.prune_bits.bits import model_bit_stats
    from bitpruner.prune_bits.config import BitLevelSpec
    from bitpruner.sim.capture import integer_weights

    given = {"const_bits": args.const_bits, "grouping": args.grouping}
    spec = BitLevelSpec(method=args.method, N=args.n, group=args.group,
                        **{k: v for k, v in given.items() if v is not None})
    model, payload = load_model_checkpoint(args.model)
    before, _ = integer_weights(model, payload, 8)
    _, old = model_bit_stats(before, bits=8)
    weights, source = project_model(model, payload, spec)
    _, new = model_bit_stats(weights, bits=8)
    out = Path(args.out or DEFAULT_OUT.format(method=spec.method))
    meta = dict(payload.get("meta") or {})
    meta.pop("metrics", None)  # the source stage's accuracy is not this model's
    meta.update({"stage": "project", "source_ckpt": str(args.model), "projection": spec.model_dump(),
                 "weights_from": source, "int_weights": int_weights_meta(weights),
                 "bit_sparsity": new["bit_sparsity"], "weight_sparsity": new["weight_sparsity"]})
    save_model_checkpoint(out, model, payload["model_cfg"], payload["geometry"], meta=meta)
    print(f"project: {spec.describe()} on {args.model} ({source}): bit sparsity "
          f"{100 * old['bit_sparsity']:.2f}% -> {100 * new['bit_sparsity']:.2f}%, weight sparsity "
          f"{100 * old['weight_sparsity']:.2f}% -> {100 * new['weight_sparsity']:.2f}% (binary essential bits, "
          f"8-bit weights); wrote {out}")
    return 0
