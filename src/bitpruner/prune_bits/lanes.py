"""Lane groups: the weights a bit-serial accelerator processes in lock-step, tiled as the simulator does.

conv W[K, C, kh, kw] (PyTorch order, = [k, c, y, x]): a group is `lanes` consecutive input channels of one
filter at one kernel position. Groups are numbered filter-major, then by the simulator's row
t = (ky * kw + kx) * nch + chunk with nch = ceil(C / lanes); channels past C are zero padding.
fc W[K, C]: a group is `lanes` consecutive inputs of one output, t = chunk.
"""

from __future__ import annotations

import math

import numpy as np

from bitpruner.errors import ConfigError


def check_lanes(lanes) -> int:
    if isinstance(lanes, bool) or not isinstance(lanes, (int, np.integer)) or lanes <= 0:
        raise ConfigError(f"lanes (group size G)={lanes!r}: expected a positive integer")
    return int(lanes)


def _as_kyxc(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    if len(shape) == 4:
        k, c, kh, kw = shape
        return k, kh, kw, c
    if len(shape) == 2:
        k, c = shape
        return k, 1, 1, c
    raise ConfigError(f"weight shape {tuple(shape)}: expected conv [K, C, kh, kw] or fc [K, C]")


def groups_per_filter(shape: tuple[int, ...], lanes: int) -> int:
    """Rows T of one filter: kh * kw * ceil(C / lanes)."""
    _, kh, kw, c = _as_kyxc(tuple(shape))
    return kh * kw * math.ceil(c / check_lanes(lanes))


def to_lane_groups(x: np.ndarray, lanes: int) -> np.ndarray:
    """[n_groups, lanes] copy of a conv/fc weight array, zero-padded channels; n_groups = K * T."""
    lanes = check_lanes(lanes)
    k, kh, kw, c = _as_kyxc(x.shape)
    kyxc = x.transpose(0, 2, 3, 1) if x.ndim == 4 else x.reshape(k, 1, 1, c)
    nch = math.ceil(c / lanes)
    padded = np.zeros((k, kh, kw, nch * lanes), dtype=x.dtype)
    padded[..., :c] = kyxc
    return padded.reshape(k * kh * kw * nch, lanes)


def from_lane_groups(groups: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of `to_lane_groups`: drop the padding and restore the weight layout `shape`."""
    shape = tuple(shape)
    k, kh, kw, c = _as_kyxc(shape)
    lanes = groups.shape[1]
    nch = math.ceil(c / lanes)
    kyxc = groups.reshape(k, kh, kw, nch * lanes)[..., :c]
    if len(shape) == 4:
        return np.ascontiguousarray(kyxc.transpose(0, 3, 1, 2))
    return np.ascontiguousarray(kyxc.reshape(k, c))


def weight_group_ids(shape: tuple[int, ...], lanes: int) -> np.ndarray:
    """For every weight, the index of its lane group (e.g. to project only selected groups)."""
    n = _as_kyxc(tuple(shape))[0] * groups_per_filter(shape, lanes)
    ids = np.repeat(np.arange(n, dtype=np.int64), lanes).reshape(n, lanes)
    return from_lane_groups(ids, shape)


def group_filters(shape: tuple[int, ...], lanes: int) -> np.ndarray:
    """Output channel (filter) of every lane group, to look up per-channel scales."""
    k = _as_kyxc(tuple(shape))[0]
    return np.repeat(np.arange(k, dtype=np.int64), groups_per_filter(shape, lanes))
