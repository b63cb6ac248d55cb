import pytest

from bitpruner.prune_weights.config import PruningConfig
from bitpruner.prune_weights.schedule import agp_sparsity, pruning_epochs, target_sparsity
from helpers.naive import agp_formula


@pytest.mark.parametrize("t", [2, 3, 5, 7, 11, 12])
def test_agp_matches_the_cubic_formula(t):
    # t0 = 2, n = 5 steps of dt = 2 -> end = 12
    assert agp_sparsity(t, 0.1, 0.9, 2, 12) == pytest.approx(agp_formula(t, 0.1, 0.9, 2, 5, 2), abs=1e-12)


def test_agp_hand_values_and_clamping():
    assert agp_sparsity(7, 0.0, 0.9, 2, 12) == pytest.approx(0.9 - 0.9 * 0.5**3)
    assert agp_sparsity(0, 0.2, 0.9, 2, 12) == 0.2
    assert agp_sparsity(40, 0.2, 0.9, 2, 12) == 0.9


def test_prune_weights_epochs_always_end_on_the_end_epoch():
    assert pruning_epochs(PruningConfig(start_epoch=0, end_epoch=10, frequency=3)) == [0, 3, 6, 9, 10]
    assert pruning_epochs(PruningConfig(start_epoch=1, end_epoch=5, frequency=2)) == [1, 3, 5]
    assert pruning_epochs(PruningConfig(schedule="oneshot", start_epoch=2, end_epoch=2)) == [2]


def test_target_holds_between_steps_and_is_zero_before_start():
    cfg = PruningConfig(initial_sparsity=0.0, final_sparsity=0.8, start_epoch=1, end_epoch=7, frequency=3)
    assert target_sparsity(cfg, 0) == 0.0
    assert target_sparsity(cfg, 4) == pytest.approx(agp_formula(4, 0.0, 0.8, 1, 2, 3))
    assert target_sparsity(cfg, 5) == target_sparsity(cfg, 4)  # no step at 5
    assert target_sparsity(cfg, 7) == 0.8
    assert target_sparsity(cfg, 99) == 0.8


def test_override_layers_follow_the_same_shape_to_their_own_target():
    cfg = PruningConfig(initial_sparsity=0.0, final_sparsity=0.9, start_epoch=0, end_epoch=4)
    assert target_sparsity(cfg, 2, final=0.5) == pytest.approx(agp_formula(2, 0.0, 0.5, 0, 4, 1))
    # initial above a mild override is capped at the override
    cfg = PruningConfig(initial_sparsity=0.6, final_sparsity=0.9, start_epoch=0, end_epoch=4)
    assert target_sparsity(cfg, 0, final=0.3) == 0.3


def test_oneshot_jumps_at_start():
    cfg = PruningConfig(schedule="oneshot", final_sparsity=0.7, start_epoch=2, end_epoch=2)
    assert [target_sparsity(cfg, e) for e in range(4)] == [0.0, 0.0, 0.7, 0.7]
