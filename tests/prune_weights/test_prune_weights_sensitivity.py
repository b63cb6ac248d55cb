import pytest
import torch

from bitpruner.errors import ConfigError
from bitpruner.prune_weights.config import PruningConfig
from bitpruner.prune_weights.pruner import MagnitudePruner
from bitpruner.prune_weights.sensitivity import layer_sensitivity, magnitude_prune_weight, plot_sensitivity
from helpers.tiny import tiny_data, tiny_net


def accuracy_on(data):
    x, y = data.tensors

    @torch.no_grad()
    def evaluate(model):
        return 100.0 * float((model(x).argmax(1) == y).float().mean())

    return evaluate


def test_one_row_per_layer_and_level_with_weights_restored_exactly(tmp_path):
    model = tiny_net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    evaluate = accuracy_on(tiny_data(200))
    seen = []

    def spy(m):
        seen.append({k: v.clone() for k, v in m.state_dict().items()})
        return evaluate(m)

    table = layer_sensitivity(model, spy, [0.0, 0.5, 0.99])
    assert list(table.columns) == ["layer", "sparsity", "val_acc", "drop"]
    assert len(table) == 4 * 3
    baseline = table.attrs["baseline"]
    assert baseline == evaluate(model)
    assert (table[table["sparsity"] == 0.0]["drop"] == 0).all()
    assert table["drop"].tolist() == pytest.approx((baseline - table["val_acc"]).tolist())
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])
    # during the probe of layer "5" at 0.99, only that layer was pruned: round(0.99 * 960) zeros
    probe = seen[1 + 2 * 3 + 2]
    assert int((probe["5.weight"] == 0).sum()) == round(0.99 * 960)
    assert torch.equal(probe["0.weight"], before["0.weight"])
    assert plot_sensitivity(table, tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def test_custom_perturbation_and_level_name():
    model = tiny_net()
    calls = []

    def keep_sign_only(module, level):
        calls.append(level)
        with torch.no_grad():
            module.weight.copy_(module.weight.sign() * level)

    table = layer_sensitivity(model, accuracy_on(tiny_data()), [1, 2], layers=["2"], perturb=keep_sign_only,
                              level_name="bits")
    assert calls == [1.0, 2.0] and list(table["bits"]) == [1.0, 2.0] and set(table["layer"]) == {"2"}


def test_magnitude_prune_weight_is_exact():
    layer = torch.nn.Linear(7, 3)
    magnitude_prune_weight(layer, 0.5)
    assert int((layer.weight == 0).sum()) == round(0.5 * 21)


def test_rejects_masked_models_and_unknown_layers():
    model = tiny_net()
    with pytest.raises(ConfigError, match="no prunable layer named fc9"):
        layer_sensitivity(model, accuracy_on(tiny_data()), [0.5], layers=["fc9"])
    MagnitudePruner(model, PruningConfig(schedule="oneshot", end_epoch=0)).attach()
    with pytest.raises(ConfigError, match="squash it first"):
        layer_sensitivity(model, accuracy_on(tiny_data()), [0.5])
