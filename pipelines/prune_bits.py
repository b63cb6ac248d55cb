"""DVC stage `prune_bits`: thin Hydra entry point; the work is in `bitpruner.prune_bits.stage`."""

import hydra
from omegaconf import DictConfig

from bitpruner.entry import run_stage, set_project_root

set_project_root(__file__)


@hydra.main(version_base="1.3", config_path="../conf", config_name="prune_bits")
def main(cfg: DictConfig) -> float:
    from bitpruner.config import to_container
    from bitpruner.prune_bits.stage import prune_bits

    metrics = run_stage(prune_bits, to_container(cfg))
    return metrics["val_acc"]  # the value a Hydra sweeper optimizes


if __name__ == "__main__":
    main()
