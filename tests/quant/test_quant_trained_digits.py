"""Training learns: the real Lightning module on `digits` beats chance by far, and 8-bit weights keep its accuracy.

Measured (LeNet-5, Adam lr 1e-2, batch 64, 6 epochs = 120 steps, seeds 0-4): float test accuracy 93.0-97.5%,
8-bit weights within 0.3 points of it; the fit takes about 2 s on one thread.
"""

from functools import partial

import pytest
import torch

from bitpruner.data import DigitsDataModule
from bitpruner.quant.evaluate import quantized_accuracy
from bitpruner.training.evaluate import evaluate
from bitpruner.training.module import ClassifierModule
from helpers.lightning import quiet_trainer
from helpers.models import DIGITS_GEOMETRY, digits_lenet

EPOCHS = 6
LEARNING_RATE = 1e-2
BATCH_SIZE = 64
MIN_ACCURACY = 85.0  # percent; chance is 10, the worst measured seed 93.0
MAX_8BIT_LOSS = 1.0  # percentage points (one test image is 0.28)
WEIGHT_BITS = 8


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(network, data module, Lightning's test accuracy in %) after EPOCHS epochs of `ClassifierModule`."""
    # One intra-op thread: this model is too small to gain from more, and on 2 shared cores competing
    # threads made the fit 20x slower (1.9 s vs 38 s, measured).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(tmp_path_factory.mktemp("digits"))
    finally:
        torch.set_num_threads(threads)


def _train(root):
    dm = DigitsDataModule(batch_size=BATCH_SIZE, seed=0)
    model = digits_lenet(seed=0)
    # The optimizer is built here with torch.optim, independent of how the configs describe it.
    module = ClassifierModule(model, optimizer=partial(torch.optim.Adam, lr=LEARNING_RATE), scheduler=None,
                              num_classes=DIGITS_GEOMETRY["num_classes"])
    trainer = quiet_trainer(root, max_epochs=EPOCHS, enable_checkpointing=False, num_sanity_val_steps=0)
    trainer.fit(module, datamodule=dm)
    lightning_acc = 100.0 * trainer.test(module, datamodule=dm, verbose=False)[0]["test/acc"]
    return model, dm, lightning_acc


def test_training_reaches_well_above_chance(trained):
    model, dm, lightning_acc = trained
    float_acc = evaluate(model, dm.test_dataloader())["acc"]
    assert float_acc > MIN_ACCURACY
    # Two implementations of test accuracy: torchmetrics inside Lightning and the plain loop.
    assert lightning_acc == pytest.approx(float_acc, abs=1e-3)


def test_8_bit_weights_keep_the_float_accuracy(trained):
    model, dm, _ = trained
    float_acc = evaluate(model, dm.test_dataloader())["acc"]
    quantized_acc = quantized_accuracy(model, dm.test_dataloader(), WEIGHT_BITS)["acc"]
    assert abs(quantized_acc - float_acc) <= MAX_8BIT_LOSS
    # The quantized copy did change the weights (else this would compare the float model with itself).
    assert quantized_accuracy(model, dm.test_dataloader(), 2)["acc"] != float_acc
