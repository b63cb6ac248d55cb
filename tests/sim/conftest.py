import numpy as np
import pytest

from bitpruner.sim.traces import LayerTrace
from bitpruner.utils.jit import JIT_ENV


def random_values(rng, shape, signed=True, sparsity=0.4, max_mag=255):
    mag = rng.integers(0, max_mag + 1, shape)
    values = np.where(rng.random(shape) < sparsity, 0, mag)
    return values * rng.choice([-1, 1], shape) if signed else values


def random_layer(rng, kind="conv", signed_acts=False, max_mag=255, sparsity=0.4, **shape):
    """A small random layer (a `sparsity` fraction of zeros); shape keys: K, C, k, X, stride, pad (conv) or K, C (fc)."""
    K, C = shape.get("K", int(rng.integers(1, 7))), shape.get("C", int(rng.integers(1, 11)))
    if kind == "fc":
        w = random_values(rng, (K, C), sparsity=sparsity, max_mag=max_mag)
        a = random_values(rng, (1, C), signed=signed_acts, sparsity=sparsity, max_mag=max_mag)
        return LayerTrace("fc", "fc", w, a)
    k = shape.get("k", int(rng.integers(1, 4)))
    X = shape.get("X", int(rng.integers(k, k + 4)))
    w = random_values(rng, (K, C, k, k), sparsity=sparsity, max_mag=max_mag)
    a = random_values(rng, (1, C, X, X), signed=signed_acts, sparsity=sparsity, max_mag=max_mag)
    return LayerTrace("conv", "conv", w, a, stride=shape.get("stride", 1), pad=shape.get("pad", 0))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(params=["never", "always"])
def jit_mode(request, monkeypatch):
    """Run the test with the kernels' numpy forms, then with their numba forms (``BITPRUNER_JIT``)."""
    monkeypatch.setenv(JIT_ENV, request.param)
    return request.param
