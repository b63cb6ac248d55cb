import numpy as np
import pytest

from bitpruner.data.splits import split_count, stratified_split, stratified_three_way
from bitpruner.errors import ConfigError


def test_split_count_accepts_counts_and_fractions():
    assert split_count(500, 5000, "val_size") == 500
    assert split_count(0.1, 1797, "val_size") == 180
    assert split_count(0.2, 1797, "test_size") == 359
    assert split_count(1000.0, 5000, "test_size") == 1000
    with pytest.raises(ConfigError, match="val_size=5000"):
        split_count(5000, 5000, "val_size")
    with pytest.raises(ConfigError, match="val_size=1.5"):
        split_count(1.5, 10, "val_size")


def test_three_way_split_is_disjoint_complete_and_stratified():
    labels = np.repeat(np.arange(5), [40, 30, 20, 60, 50])  # unbalanced on purpose
    train, val, test = stratified_three_way(labels, 20, 40, seed=3)
    assert (len(train), len(val), len(test)) == (140, 20, 40)
    assert np.array_equal(np.sort(np.concatenate([train, val, test])), np.arange(len(labels)))
    shares = np.bincount(labels) / len(labels)
    for part in (train, val, test):
        assert np.all(np.abs(np.bincount(labels[part], minlength=5) - shares * len(part)) <= 1)


def test_split_depends_on_seed_only():
    labels = np.arange(200) % 4
    first = stratified_three_way(labels, 20, 40, seed=0)
    again = stratified_three_way(labels, 20, 40, seed=0)
    other = stratified_three_way(labels, 20, 40, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[2], other[2])


def test_split_too_small_for_stratification_is_an_error():
    with pytest.raises(ConfigError, match="val_size=2.*4 classes"):
        stratified_split(np.arange(40) % 4, 2, seed=0, field="val_size")
