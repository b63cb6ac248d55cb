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

import hashlib
import time
from pathlib import Path

import lightning as L

from bitpruner.prune_bits.bits import write_layer_bits_csv
from bitpruner.prune_bits.callback import BitPruningCallback
from bitpruner.prune_bits.config import BitPruneConfig
from bitpruner.prune_bits.projected_weight import int_weights_numpy, squash_projections
from bitpruner.prune_bits.report import bit_metrics, plot_bit_histogram, plot_layer_bit_sparsity
from bitpruner.config import fingerprint, validate_training
from bitpruner.models.checkpoint import load_model_checkpoint, save_model_checkpoint
from bitpruner.models.layers import prunable_layers
from bitpruner.prune_weights.stage import build_pruning_trainer, file_digest, load_input_model
from bitpruner.quant.evaluate import quantized_accuracy
from bitpruner.quant.fixed_point import QuantConfig
from bitpruner.quant.model import quantize_model_weights
from bitpruner.tracking import stage_run
from bitpruner.training.builders import build_datamodule
from bitpruner.training.module import ClassifierModule
from bitpruner.training.resume import clear_checkpoint_dir, prepare_checkpoint_dir
from bitpruner.train.stage import final_metrics, run_tags, write_config
from bitpruner.utils.atomic import atomic_path, write_json

STAGE = "prune_bits"
ARTIFACTS = ("metrics.json", "config.yaml", "layer_bits.csv", "layer_bit_sparsity.png", "bit_histogram.png")


def reference_figures(model, quant: QuantConfig, datamodule, prefix: str) -> dict:
    """Val/test accuracy of `model` with `quant` weights (the 8-bit reference), prefixed."""
    out = {}
    for split, loader in (("val", datamodule.val_dataloader()), ("test", datamodule.test_dataloader())):
        result = quantized_accuracy(model, loader, quant)
        out[f"{prefix}{split}_acc"] = result["acc"]
    return out


def input_fingerprint(cfg: dict, bp: BitPruneConfig) -> dict:
    """What, besides the config, decides the result: the input model and the plan file's content."""
    extra = {"input_ckpt_sha": file_digest(Path(cfg["input_ckpt"]))}
    if bp.plan_file:
        extra["plan_sha"] = hashlib.sha256(Path(bp.plan_file).read_bytes()).hexdigest()[:16]
    return extra


def prune_bits(cfg: dict) -> dict:
    """Run the stage on a resolved config; returns the metrics written to `metrics.json`."""
    validate_training(cfg)
    bp = BitPruneConfig.from_mapping(cfg["prune_bits"])
    quant = QuantConfig.from_any(cfg.get("quant"))
    start = time.perf_counter()
    L.seed_everything(cfg["seed"], workers=True)
    out_dir = Path(cfg["paths"]["output_dir"])
    ckpt_dir = Path(cfg["paths"]["ckpt_dir"])
    datamodule = build_datamodule(cfg)
    model, payload = load_input_model(cfg, datamodule)
    names = list(prunable_layers(model))
    targets = bp.layer_k(names, quant.bits)  # bad k, plan files and layer patterns fail here
    bp.check_fits(cfg["trainer"]["max_epochs"], targets)
    extra = input_fingerprint(cfg, bp)
    model.train()  # loaded in eval mode; Lightning 2.6 keeps a module's mode at the start of fit

    # The input model at b bits: the reference for accuracy and every bit figure.
    input_q = quantize_model_weights(model, quant.bits, quant.per_channel, quant.power_of_two)
    reference = reference_figures(model, quant, datamodule, "input_")
    input_bits, input_rows, input_totals = bit_metrics(input_q, quant.bits, bp.lanes, bp.encoding, prefix="input_")
    reference.update(input_bits)
    baseline_path = cfg.get("baseline_ckpt")
    if baseline_path and Path(baseline_path).is_file():
        baseline, _ = load_model_checkpoint(baseline_path)
        reference.update(reference_figures(baseline, quant, datamodule, "baseline_"))
        base_q = quantize_model_weights(baseline, quant.bits, quant.per_channel, quant.power_of_two)
        reference["baseline_bit_sparsity"] = bit_metrics(base_q, quant.bits, bp.lanes)[0]["bit_sparsity"]
        reference["baseline_column_cycles"] = bit_metrics(base_q, quant.bits, bp.lanes)[0]["column_cycles"]
        reference["baseline_lane_cycles"] = bit_metrics(base_q, quant.bits, bp.lanes)[0]["lane_cycles"]

    geometry = payload["geometry"]
    module = ClassifierModule(model, cfg["optimizer"], cfg.get("scheduler"), geometry["num_classes"])
    resume_from = prepare_checkpoint_dir(ckpt_dir, fingerprint({**cfg, **extra}), bool(cfg.get("resume", True)))
    model_cfg = payload["model_cfg"]
    tags = {**run_tags({**cfg, "model": model_cfg}, datamodule), **extra}

    with stage_run(STAGE, cfg, cfg.get("logger", {}).get("mlflow"), cfg["paths"]["root_dir"], tags=tags) as run:
        callback = BitPruningCallback(bp, quant, targets)
        trainer = build_pruning_trainer(cfg, ckpt_dir, run.logger, [callback])
        fit_start = time.perf_counter()
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume_from) if resume_from else None)
        fit_time = time.perf_counter() - fit_start
        # The last epoch's model, exactly projected at every layer's target (the schedule ends there).
        network = module.model
        int_weights = squash_projections(network, targets)
        metrics = final_metrics(network, datamodule)
        bits_out, rows, totals = bit_metrics(int_weights_numpy(int_weights), quant.bits, bp.lanes, bp.encoding,
                                             k=targets)
        metrics.update(bits_out)
        metrics.update(reference)
        metrics.update(comparisons(metrics))
        metrics.update({
            "bit_encoding": bp.encoding,
            "lanes": bp.lanes,
            "mode": bp.mode,
            "k": dict(targets),
            "epochs": int(trainer.current_epoch),
            "train_time_s": round(fit_time, 2),
            "wall_time_s": round(time.perf_counter() - start, 2),
        })
        save_model_checkpoint(out_dir / "model.ckpt", network, model_cfg, geometry,
                              meta={"stage": STAGE, "dataset": datamodule.name, "metrics": metrics,
                                    "mean": datamodule.mean.tolist(), "std": datamodule.std.tolist(),
                                    "source": str(cfg["input_ckpt"]), "source_sha": extra["input_ckpt_sha"],
                                    "quant": {"bits": quant.bits, "scale": quant.scale,
                                              "power_of_two": quant.power_of_two},
                                    "int_weights": int_weights})
        with atomic_path(out_dir / "layer_bits.csv") as tmp:
            write_layer_bits_csv(tmp, rows, totals)
        title = f"{bp.mode}, lanes={bp.lanes}"
        plot_layer_bit_sparsity(input_rows, rows, out_dir / "layer_bit_sparsity.png", f"bit sparsity per layer ({title})")
        plot_bit_histogram(input_totals["histogram"], totals["histogram"], out_dir / "bit_histogram.png")
        write_json(out_dir / "metrics.json", metrics)
        write_config(out_dir / "config.yaml", cfg)
        print_summary(metrics)
        run.log_metrics({f"final/{k}": v for k, v in flat_metrics(metrics).items()})
        for name in ARTIFACTS:
            run.log_artifact(out_dir / name)
    clear_checkpoint_dir(ckpt_dir)
    return metrics


def comparisons(m: dict) -> dict:
    """Accuracy drops and cycle-proxy speedups against the input and the baseline (when known)."""
    out = {"test_acc_drop_vs_input": m["input_test_acc"] - m["test_acc"],
           "column_speedup_vs_input": m["input_column_cycles"] / max(m["column_cycles"], 1),
           "lane_speedup_vs_input": m["input_lane_cycles"] / max(m["lane_cycles"], 1)}
    if "baseline_test_acc" in m:
        out["test_acc_drop_vs_baseline"] = m["baseline_test_acc"] - m["test_acc"]
        out["column_speedup_vs_baseline"] = m["baseline_column_cycles"] / max(m["column_cycles"], 1)
        out["lane_speedup_vs_baseline"] = m["baseline_lane_cycles"] / max(m["lane_cycles"], 1)
    return out


def flat_metrics(metrics: dict) -> dict:
    """Numbers only; per-layer dicts become `key/layer`."""
    flat = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            flat.update({f"{key}/{n}": v for n, v in value.items() if isinstance(v, (int, float))})
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[key] = value
    return flat


def print_summary(m: dict) -> None:
    base = f", baseline 8-bit {m['baseline_test_acc']:.2f}" if "baseline_test_acc" in m else ""
    print(f"prune_bits: test acc {m['test_acc']:.2f} (input 8-bit {m['input_test_acc']:.2f}{base}); "
          f"bit sparsity {100 * m['bit_sparsity']:.2f}% (input {100 * m['input_bit_sparsity']:.2f}%); "
          f"column speedup x{m['column_speedup_vs_input']:.2f}, lane x{m['lane_speedup_vs_input']:.2f} vs input")
