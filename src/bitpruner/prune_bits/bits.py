"""Essential-bit accounting of integer weights: per layer, per lane group and per model (layer_bits.csv)."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bitpruner.errors import ConfigError
from bitpruner.prune_bits.encodings import check_encoding, check_magnitudes, term_mask_table
from bitpruner.prune_bits.lanes import check_lanes, to_lane_groups
from bitpruner.quant.fixed_point import check_bits, qmax

# Spec columns of layer_bits.csv, then what the report needs to say how they were counted.
LAYER_BITS_COLUMNS = (
    "name",
    "shape",
    "weights",
    "weight_sparsity",
    "bit_sparsity",
    "mean_bits_per_weight",
    "mean_bits_per_nonzero",
    "max_bits",
    "lockstep_imbalance",
    "k",
    "encoding",
    "lanes",
    "lane_proxy_cycles",
    "column_proxy_cycles",
)


def _as_int_array(q) -> np.ndarray:
    # Accept torch tensors without importing torch here (the stats are numpy work).
    arr = q.detach().cpu().numpy() if hasattr(q, "detach") else np.asarray(q)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ConfigError(
            f"weights of dtype {arr.dtype}: bit accounting needs integer weights (quantize first)"
        )
    return arr


def term_masks(q, bits: int = 8, encoding: str = "binary") -> np.ndarray:
    """uint32 term mask of every weight (see encodings.py); validates the magnitudes."""
    check_encoding(encoding)
    top = qmax(bits)
    mag = np.abs(_as_int_array(q).astype(np.int64))
    check_magnitudes(mag, encoding, top)
    return term_mask_table(encoding, top)[mag]


def essential_bits(q, bits: int = 8, encoding: str = "binary") -> np.ndarray:
    """uint8 essential bits of every weight: popcount of its term mask."""
    return np.bitwise_count(term_masks(q, bits, encoding)).astype(np.uint8)


def bit_sparsity(q, bits: int = 8, encoding: str = "binary") -> float:
    """1 - sum(essential bits) / ((bits - 1) * number of weights); zero weights count as 0 bits."""
    eb = essential_bits(q, bits, encoding)
    return 1.0 - float(eb.sum(dtype=np.int64)) / ((check_bits(bits) - 1) * max(eb.size, 1))


def lane_group_costs(q, bits: int = 8, encoding: str = "binary", lanes: int = 16) -> dict[str, np.ndarray]:
    """Per lane group: `columns` = popcount(OR of masks) (bit-column engine cycles), `max` = max essential
    bits (per-lane shifter cycles), `mean` = mean essential bits over the group's lanes (padding included)."""
    lanes = check_lanes(lanes)
    groups = to_lane_groups(term_masks(q, bits, encoding), lanes)
    counts = np.bitwise_count(groups).astype(np.int64)
    return {
        "columns": np.bitwise_count(np.bitwise_or.reduce(groups, axis=1)).astype(np.int64),
        "max": counts.max(axis=1),
        "mean": counts.mean(axis=1),
    }


def layer_bit_stats(q, bits: int = 8, encoding: str = "binary", lanes: int = 16) -> dict[str, Any]:
    """Bit statistics of one layer's integer weights (keys as in LAYER_BITS_COLUMNS, plus `histogram`)."""
    arr = _as_int_array(q)
    eb = essential_bits(arr, bits, encoding).astype(np.int64)
    n = eb.size
    nonzero = int(np.count_nonzero(arr))
    total_bits = int(eb.sum())
    costs = lane_group_costs(arr, bits, encoding, lanes)
    return {
        "shape": tuple(int(s) for s in arr.shape),
        "weights": n,
        "weight_sparsity": 1.0 - nonzero / max(n, 1),
        "bit_sparsity": 1.0 - total_bits / ((bits - 1) * max(n, 1)),
        "mean_bits_per_weight": total_bits / max(n, 1),
        "mean_bits_per_nonzero": total_bits / nonzero if nonzero else 0.0,
        "max_bits": int(eb.max()) if n else 0,
        "lockstep_imbalance": float((costs["max"] - costs["mean"]).mean()) if costs["max"].size else 0.0,
        "encoding": encoding,
        "lanes": lanes,
        "lane_proxy_cycles": int(costs["max"].sum()),
        "column_proxy_cycles": int(costs["columns"].sum()),
        "groups": int(costs["max"].size),
        "nonzero": nonzero,
        "total_bits": total_bits,
        "histogram": np.bincount(eb.ravel(), minlength=bits).tolist(),
    }


def _unpack(weight) -> tuple[Any, int | None]:
    # A QuantizedWeight carries its own bit width; a bare integer tensor uses the caller's.
    if hasattr(weight, "q") and hasattr(weight, "bits"):
        return weight.q, int(weight.bits)
    return weight, None


def model_bit_stats(
    weights: Mapping[str, Any],
    bits: int = 8,
    encoding: str = "binary",
    lanes: int = 16,
    k: Mapping[str, Any] | int | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-layer rows (with `name` and `k`) and model totals weighted by weight count.

    `weights` maps layer names to QuantizedWeight or integer tensors; `k` is the bit budget per layer
    (a mapping, one value for all, or None -> empty) and is only recorded.
    """
    rows = []
    for name, weight in weights.items():
        q, own_bits = _unpack(weight)
        stats = layer_bit_stats(q, own_bits or bits, encoding, lanes)
        layer_k = k.get(name, "") if isinstance(k, Mapping) else ("" if k is None else k)
        rows.append({"name": name, **stats, "k": layer_k})
    n = sum(r["weights"] for r in rows)
    nonzero = sum(r["nonzero"] for r in rows)
    total_bits = sum(r["total_bits"] for r in rows)
    capacity = sum(r["weights"] * ((_unpack(weights[r["name"]])[1] or bits) - 1) for r in rows)
    hist_len = max((len(r["histogram"]) for r in rows), default=bits)
    histogram = np.zeros(hist_len, dtype=np.int64)
    for r in rows:
        histogram[: len(r["histogram"])] += r["histogram"]
    totals = {
        "name": "total",
        "weights": n,
        "weight_sparsity": 1.0 - nonzero / max(n, 1),
        "bit_sparsity": 1.0 - total_bits / max(capacity, 1),
        "mean_bits_per_weight": total_bits / max(n, 1),
        "mean_bits_per_nonzero": total_bits / nonzero if nonzero else 0.0,
        "max_bits": max((r["max_bits"] for r in rows), default=0),
        "lockstep_imbalance": sum(r["lockstep_imbalance"] * r["weights"] for r in rows) / max(n, 1),
        "encoding": encoding,
        "lanes": lanes,
        "lane_proxy_cycles": sum(r["lane_proxy_cycles"] for r in rows),
        "column_proxy_cycles": sum(r["column_proxy_cycles"] for r in rows),
        "histogram": histogram.tolist(),
    }
    return rows, totals


def write_layer_bits_csv(
    path: str | Path, rows: list[dict[str, Any]], totals: dict[str, Any] | None = None
) -> Path:
    """Write rows (and an optional `total` row) with LAYER_BITS_COLUMNS; shape as 'KxCxkhxkw'."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=LAYER_BITS_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows + ([totals] if totals else []):
            out = dict(row)
            out["shape"] = "x".join(str(s) for s in row.get("shape", ()))
            out.setdefault("k", "")
            writer.writerow(out)
    return path
