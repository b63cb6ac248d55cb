"""Moved to tests/helpers/simulate.py: this re-export keeps `from simulate_helpers import ...` working."""

from helpers.simulate import DIGITS_GEOMETRY, bit_prune, top_bit_only, write_three_checkpoints, zero_smallest  # noqa: F401
from helpers.simulate import LENET_SMALL_CFG as LENET_CFG  # noqa: F401
