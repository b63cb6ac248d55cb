"""Where the repository and its Hydra configs are, for tests that read them."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "conf"
# Values produced by the BitSim / BBS-MICRO reference code (tests/fixtures/bitsim/README.md).
BITSIM_FIXTURES = REPO_ROOT / "tests" / "fixtures" / "bitsim"
