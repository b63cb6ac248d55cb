"""DVC stage `prune_weights`: thin Hydra entry point; the work is in `bitpruner.prune_weights.stage`."""

import hydra
from omegaconf import DictConfig

from bitpruner.entry import run_stage, set_project_root

set_project_root(__file__)


@hydra.main(version_base="1.3", config_path="../conf", config_name="prune_weights")
def main(cfg: DictConfig) -> float:
    from bitpruner.config import to_container
    from bitpruner.prune_weights.stage import prune_weights

    metrics = run_stage(prune_weights, to_container(cfg))
    return metrics["val_acc"]  # the value a Hydra sweeper optimizes


if __name__ == "__main__":
    main()
