"""The `prune_bits` stage: progressive bit pruning + fine-tuning of the weight-pruned (or baseline) model.

One Lightning `fit` (the bit-pruning callback sets k and the projected groups at epoch starts) resumes
from its own `last.ckpt`. Outputs in `outputs/prune_bits/`:

- `model.ckpt` (`save_model_checkpoint` format): nothing latent. The state dict holds the dequantized
  projected weights `scale * q`, so `load_model_checkpoint` evaluates the bit-pruned model as is, and
  `payload["meta"]["int_weights"]` = {layer: {"q": int8 (int16 beyond 8 bits), "scale": 0-d or [K] float32,
  "bits": b}} with `q == round(weight / scale)` exactly for the stored weights (checked when writing).
  Consumers that need the integers (traces, simulator) must take them from there: re-quantizing the
  stored weights with a fresh max-based scale would move them off the pruned bit patterns.
- `metrics.json`: accuracy, bit statistics (binary; plus `prune_bits.encoding`), cycle proxies, and the
  input model's 8-bit figures (`input_*`) and the non-pruned baseline's 8-bit accuracy (`baseline_*`).
- `layer_bits.csv`, `layer_bit_sparsity.png`, `bit_histogram.png`, `config.yaml`.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from torch import nn

from bitpruner.models.layers import prunable_layers
from bitpruner.prune_bits.bits import write_layer_bits_csv
from bitpruner.prune_bits.callback import BitPruningCallback
from bitpruner.prune_bits.config import PUBLISHED, BitPruneConfig
from bitpruner.prune_bits.projected_weight import int_weights_numpy, squash_projections
from bitpruner.prune_bits.report import bit_metrics, plot_bit_histogram, plot_layer_bit_sparsity
from bitpruner.quant.evaluate import quantized_accuracy
from bitpruner.quant.fixed_point import QuantConfig
from bitpruner.quant.model import quantize_model_weights
from bitpruner.skeleton.fit import FitContext, FitStage, load_for_fine_tuning, run_fit_stage
from bitpruner.skeleton.inputs import file_digest, load_input_model
from bitpruner.training.evaluate import split_metrics
from bitpruner.training.module import ClassifierModule
from bitpruner.utils.atomic import atomic_path


def reference_figures(model: nn.Module, quant: QuantConfig, datamodule, prefix: str) -> dict:
    """Val/test accuracy (%) of `model` with `quant` weights (the 8-bit reference), keys prefixed."""
    out = {}
    for split, loader in (("val", datamodule.val_dataloader()), ("test", datamodule.test_dataloader())):
        out[f"{prefix}{split}_acc"] = quantized_accuracy(model, loader, quant)["acc"]
    return out


def bit_reference(model: nn.Module, quant: QuantConfig, bp: BitPruneConfig, prefix: str, **kwargs) -> tuple:
    """Bit statistics of `model` quantized to `quant` (the figures the pruned model is compared with)."""
    q = quantize_model_weights(model, quant.bits, quant.per_channel, quant.power_of_two)
    return bit_metrics(q, quant.bits, bp.lanes, prefix=prefix, **kwargs)


class PruneBitsStage(FitStage):
    name = "prune_bits"
    artifacts = ("layer_bits.csv", "layer_bit_sparsity.png", "bit_histogram.png")
    headline = ("test_acc", "val_acc", "input_test_acc", "baseline_test_acc", "test_acc_drop_vs_baseline",
                "bit_sparsity", "mean_bits_per_weight", "column_proxy_speedup_vs_baseline", "epochs")

    def load(self, cfg: dict, datamodule) -> FitContext:
        return load_for_fine_tuning(cfg, datamodule)

    def prepare(self, ctx: FitContext) -> None:
        cfg = ctx.cfg
        bp = BitPruneConfig.from_mapping(cfg["prune_bits"])
        quant = QuantConfig.from_any(cfg.get("quant"))
        bp.check_quant(quant)  # the published mode: 8-bit, one scale per layer
        targets = bp.layer_k(list(prunable_layers(ctx.model)), quant.bits)  # bad k, plan files, patterns fail here
        bp.check_fits(cfg["trainer"]["max_epochs"], targets)
        if bp.plan_file:
            ctx.inputs["plan_sha"] = file_digest(bp.plan_file)
        ctx.state.update(bp=bp, quant=quant, targets=targets)
        # The published mode's exported scales are powers of two whatever quant.power_of_two says.
        ctx.meta["quant"] = {"bits": quant.bits, "scale": quant.scale,
                             "power_of_two": quant.power_of_two or bp.mode == PUBLISHED}
        # The input model at b bits: the reference for accuracy and every bit figure.
        ctx.reference.update(reference_figures(ctx.model, quant, ctx.datamodule, "input_"))
        input_bits, input_rows, input_totals = bit_reference(ctx.model, quant, bp, "input_", encoding=bp.encoding)
        ctx.reference.update(input_bits)
        ctx.state.update(input_rows=input_rows, input_totals=input_totals)
        baseline_path = cfg.get("baseline_ckpt")
        if baseline_path and Path(baseline_path).is_file():
            baseline, _ = load_input_model(baseline_path, ctx.datamodule.name, key="baseline_ckpt")
            ctx.reference.update(reference_figures(baseline, quant, ctx.datamodule, "baseline_"))
            figures = bit_reference(baseline, quant, bp, "")[0]
            for key in ("bit_sparsity", "column_proxy_cycles", "lane_proxy_cycles"):
                ctx.reference[f"baseline_{key}"] = figures[key]

    def callbacks(self, ctx: FitContext) -> list:
        return [BitPruningCallback(ctx.state["bp"], ctx.state["quant"], ctx.state["targets"])]

    def parent_params(self, ctx: FitContext) -> dict:
        ks = ",".join(f"{name}={k}" for name, k in ctx.state["targets"].items())
        return {"prune_bits.mode": ctx.state["bp"].mode, "prune_bits.k": ks,
                "prune_bits.epochs": ctx.cfg["trainer"]["max_epochs"]}

    def result(self, ctx: FitContext, module: ClassifierModule, trainer: L.Trainer) -> tuple[nn.Module, dict]:
        bp, quant, targets = ctx.state["bp"], ctx.state["quant"], ctx.state["targets"]
        # The last epoch's model, exactly projected at every layer's target (the schedule ends there).
        network = module.model
        int_weights = squash_projections(network, targets)
        ctx.meta["int_weights"] = int_weights
        metrics = split_metrics(network, ctx.datamodule)
        bits_out, rows, totals = bit_metrics(int_weights_numpy(int_weights), quant.bits, bp.lanes, bp.encoding,
                                             k=targets)
        ctx.state.update(rows=rows, totals=totals)
        metrics.update(bits_out)
        metrics.update(comparisons({**metrics, **ctx.reference}))
        metrics.update({"bit_encoding": bp.encoding, "lanes": bp.lanes, "mode": bp.mode, "k": dict(targets)})
        return network, metrics

    def write_outputs(self, ctx: FitContext, network: nn.Module, metrics: dict) -> None:
        bp, state = ctx.state["bp"], ctx.state
        with atomic_path(ctx.out_dir / "layer_bits.csv") as tmp:
            write_layer_bits_csv(tmp, state["rows"], state["totals"])
        title = f"bit sparsity per layer ({bp.mode}, lanes={bp.lanes})"
        plot_layer_bit_sparsity(state["input_rows"], state["rows"], ctx.out_dir / "layer_bit_sparsity.png", title)
        plot_bit_histogram(state["input_totals"]["histogram"], state["totals"]["histogram"],
                           ctx.out_dir / "bit_histogram.png")

    def summary(self, ctx: FitContext, metrics: dict) -> None:
        print_summary(metrics)


def prune_bits(cfg: dict) -> dict:
    """Run the stage on a resolved config; returns the metrics written to `metrics.json`."""
    return run_fit_stage(PruneBitsStage(), cfg)


def comparisons(m: dict) -> dict:
    """Accuracy drops and cycle-proxy speedups against the input and the baseline (when known)."""
    out = {"test_acc_drop_vs_input": m["input_test_acc"] - m["test_acc"],
           "column_proxy_speedup_vs_input": m["input_column_proxy_cycles"] / max(m["column_proxy_cycles"], 1),
           "lane_proxy_speedup_vs_input": m["input_lane_proxy_cycles"] / max(m["lane_proxy_cycles"], 1)}
    if "baseline_test_acc" in m:
        out["test_acc_drop_vs_baseline"] = m["baseline_test_acc"] - m["test_acc"]
        out["column_proxy_speedup_vs_baseline"] = m["baseline_column_proxy_cycles"] / max(m["column_proxy_cycles"], 1)
        out["lane_proxy_speedup_vs_baseline"] = m["baseline_lane_proxy_cycles"] / max(m["lane_proxy_cycles"], 1)
    return out


def print_summary(m: dict) -> None:
    base = f", baseline 8-bit {m['baseline_test_acc']:.2f}" if "baseline_test_acc" in m else ""
    print(f"prune_bits: test acc {m['test_acc']:.2f} (input 8-bit {m['input_test_acc']:.2f}{base}); "
          f"bit sparsity {100 * m['bit_sparsity']:.2f}% (input {100 * m['input_bit_sparsity']:.2f}%); "
          f"bit-column proxy speedup x{m['column_proxy_speedup_vs_input']:.2f}, lane proxy "
          f"x{m['lane_proxy_speedup_vs_input']:.2f} vs input (estimates; `simulate` reports simulated cycles)")
