import math

import pytest
import torch
from rich.console import Console
from torch import nn

from bitpruner.prune_weights.config import PruningConfig
from bitpruner.prune_weights.pruner import MagnitudePruner
from bitpruner.prune_weights.report import layer_sparsity_table, plot_layer_sparsity, print_layer_sparsity
from helpers.tiny import tiny_net


def hand_model():
    """conv [4, 3, 2, 2]: filter 0 and input channel 1 all zero, plus kernel (2, 0); linear [5, 6]: row 2, col 3."""
    model = nn.Sequential(nn.Conv2d(3, 4, 2, bias=False), nn.Flatten(), nn.Linear(6, 5, bias=False))
    with torch.no_grad():
        model[0].weight.fill_(2.0)
        model[0].weight[0] = 0
        model[0].weight[:, 1] = 0
        model[0].weight[2, 0] = 0
        model[2].weight.fill_(-1.0)
        model[2].weight[2, :] = 0
        model[2].weight[:, 3] = 0
    return model


def test_table_counts_zero_structures_by_the_documented_definitions():
    table = layer_sparsity_table(hand_model()).set_index("layer")
    conv, lin, total = table.loc["0"], table.loc["2"], table.loc["total"]
    # conv: zero kernels = filter 0 (3) + channel 1 in filters 1..3 (3) + (2, 0) = 7 of 12
    assert conv["shape"] == "4x3x2x2" and conv["weights"] == 48 and conv["nonzeros"] == 20
    assert conv["sparsity"] == pytest.approx(28 / 48)
    assert conv["zero_rows_pct"] == pytest.approx(25.0)  # 1 of 4 filters
    assert conv["zero_cols_pct"] == pytest.approx(100 / 3)  # 1 of 3 input channels
    assert conv["zero_kernels_pct"] == pytest.approx(100 * 7 / 12)
    assert conv["mean_abs"] == pytest.approx(2.0 * 20 / 48)
    assert conv["mean_abs_nonzero"] == pytest.approx(2.0)
    # linear: row 2 and column 3 zero -> 4 * 5 = 20 non-zeros
    assert lin["nonzeros"] == 20 and lin["zero_rows_pct"] == pytest.approx(20.0)
    assert lin["zero_cols_pct"] == pytest.approx(100 / 6) and math.isnan(lin["zero_kernels_pct"])
    assert lin["std_abs"] == pytest.approx(torch.tensor([1.0] * 20 + [0.0] * 10).std(unbiased=False).item())
    # total: pooled counts
    assert total["weights"] == 78 and total["nonzeros"] == 40
    assert total["zero_rows_pct"] == pytest.approx(100 * 2 / 9)
    assert total["zero_cols_pct"] == pytest.approx(100 * 2 / 9)
    assert total["zero_kernels_pct"] == pytest.approx(100 * 7 / 12)


def test_table_reads_masked_models_through_their_masks():
    model = tiny_net()
    MagnitudePruner(model, PruningConfig(schedule="oneshot", final_sparsity=0.6, end_epoch=0)).step(0)
    table = layer_sparsity_table(model)
    n = table["weights"].iloc[-1]
    assert table["nonzeros"].iloc[-1] == n - round(0.6 * n)
    assert list(table["layer"]) == ["0", "2", "5", "7", "total"]


def test_printer_and_png(tmp_path):
    table = layer_sparsity_table(hand_model())
    console = Console(record=True, width=200)
    print_layer_sparsity(table, console=console)
    text = console.export_text()
    assert "58.33%" in text and "total" in text and "4x3x2x2" in text
    path = plot_layer_sparsity(table, tmp_path / "plots" / "sparsity.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
