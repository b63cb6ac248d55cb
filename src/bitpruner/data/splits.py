"""Seeded, stratified index splits shared by every in-memory data set."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from bitpruner.errors import ConfigError


def split_count(size: int | float, total: int, field: str) -> int:
    """Resolve a split size given as a count (int) or a fraction of `total` (float in (0, 1))."""
    if isinstance(size, bool):
        raise ConfigError(f"{field}={size!r}: expected a count (int >= 0) or a fraction in (0, 1)")
    if isinstance(size, float) and not size.is_integer():
        if not 0.0 < size < 1.0:
            raise ConfigError(f"{field}={size}: a fractional size must lie in (0, 1)")
        return int(round(size * total))
    count = int(size)
    if count < 0 or count >= total:
        raise ConfigError(f"{field}={count}: expected a count in [0, {total}) for {total} samples")
    return count


def stratified_split(
    labels: np.ndarray, holdout: int, seed: int, field: str = "holdout"
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices of `labels` into (kept, held out) with `holdout` samples, preserving class shares.

    Returns sorted index arrays, so the order of a split depends only on the data and the seed.
    """
    indices = np.arange(len(labels))
    if holdout == 0:
        return indices, indices[:0]
    classes = np.unique(labels)
    if holdout < len(classes) or len(labels) - holdout < len(classes):
        raise ConfigError(
            f"{field}={holdout}: a stratified split of {len(labels)} samples over {len(classes)} classes "
            f"needs at least {len(classes)} samples on each side"
        )
    kept, held = train_test_split(indices, test_size=holdout, stratify=labels, random_state=seed)
    return np.sort(kept), np.sort(held)


def stratified_three_way(
    labels: np.ndarray, val_size: int | float, test_size: int | float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) index arrays; sizes are counts or fractions of the whole set."""
    total = len(labels)
    n_test = split_count(test_size, total, "test_size")
    n_val = split_count(val_size, total, "val_size")
    rest, test = stratified_split(labels, n_test, seed, "test_size")
    # Second split on the remainder: `val` indices are positions within `rest`.
    train_pos, val_pos = stratified_split(labels[rest], n_val, seed, "val_size")
    return rest[train_pos], rest[val_pos], test
