import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from bitpruner.models.layers import prunable_layers
from bitpruner.prune_weights.callback import MagnitudePruningCallback
from bitpruner.prune_weights.config import PruningConfig
from bitpruner.prune_weights.masks import effective_weight
from bitpruner.prune_weights.pruner import overall_sparsity
from bitpruner.prune_weights.schedule import target_sparsity
from helpers.tiny import TinyModule, loader, tiny_data, tiny_net, trainer

CFG = PruningConfig(scope="global", final_sparsity=0.8, start_epoch=0, end_epoch=3, frequency=1)


class RecordSparsity(Callback):
    """Sparsity and masks seen at the end of each training epoch (after that epoch's fine-tuning)."""

    def __init__(self):
        self.sparsity, self.masks = {}, {}

    def on_train_epoch_end(self, trainer, pl_module):
        e = trainer.current_epoch
        self.sparsity[e] = overall_sparsity(pl_module.model)
        self.masks[e] = {n: m.weight_mask.clone() for n, m in prunable_layers(pl_module.model).items()}


def n_weights(model):
    return sum(effective_weight(m).numel() for m in prunable_layers(model).values())


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_fit_follows_the_schedule_exactly_and_keeps_zeros_through_fine_tuning(tmp_path, optimizer):
    module = TinyModule(tiny_net(), optimizer=optimizer)
    record = RecordSparsity()
    callback = MagnitudePruningCallback(CFG)
    trainer(tmp_path, 5, [callback, record]).fit(module, loader(tiny_data()), loader(tiny_data(32, seed=2)))
    n = n_weights(module.model)
    for epoch in range(5):
        # after a whole epoch of SGD-momentum/AdamW with weight decay, exactly round(s * n) zeros remain
        assert record.sparsity[epoch] * n == pytest.approx(round(target_sparsity(CFG, epoch) * n), abs=1e-6)
    assert overall_sparsity(module.model) == pytest.approx(round(0.8 * n) / n, abs=1e-12)
    assert callback.last_pruned_epoch == 3


def test_resume_mid_schedule_keeps_masks_and_step(tmp_path):
    data, val = loader(tiny_data()), loader(tiny_data(32, seed=2))

    straight = TinyModule(tiny_net())
    trainer(tmp_path / "a", 5, [MagnitudePruningCallback(CFG)]).fit(straight, data, val)

    ckpt_dir = tmp_path / "b"
    first = TinyModule(tiny_net())
    record = RecordSparsity()
    ckpt = ModelCheckpoint(dirpath=ckpt_dir, save_last=True, save_top_k=0)
    trainer(tmp_path / "b", 2, [MagnitudePruningCallback(CFG), ckpt, record]).fit(first, data, val)
    saved = torch.load(ckpt_dir / "last.ckpt", weights_only=False)
    assert any(k.endswith("weight_mask") for k in saved["state_dict"])
    state = next(v for k, v in saved["callbacks"].items() if "MagnitudePruningCallback" in k)
    assert state["last_pruned_epoch"] == 1

    # a fresh network (different init) and a fresh callback resume from last.ckpt
    resumed = TinyModule(tiny_net(seed=5))
    callback = MagnitudePruningCallback(CFG)
    record2 = RecordSparsity()
    trainer(tmp_path / "b", 5, [callback, record2]).fit(resumed, data, val, ckpt_path=ckpt_dir / "last.ckpt")
    assert sorted(record2.masks) == [2, 3, 4]
    for name, mask in record.masks[1].items():
        assert torch.all(record2.masks[2][name] <= mask)  # epoch-1 zeros survived the reload
    assert callback.last_pruned_epoch == 3
    # interrupted + resumed == uninterrupted, weight for weight
    for key, value in straight.model.state_dict().items():
        assert torch.allclose(value, resumed.model.state_dict()[key], atol=1e-6), key


def test_mid_epoch_checkpoint_does_not_prune_twice():
    callback = MagnitudePruningCallback(CFG)
    callback.load_state_dict({"last_pruned_epoch": 2, "last_targets": {}})

    class FakeTrainer:
        current_epoch = 2

    module = TinyModule(tiny_net())
    callback.setup(FakeTrainer(), module, "fit")
    module.log = lambda *a, **k: None
    callback.on_train_epoch_start(FakeTrainer(), module)
    assert overall_sparsity(module.model) == 0.0  # masks untouched: epoch 2 was already pruned
