"""DVC stage `train`: thin Hydra entry point; the work is in `bitpruner.train.stage`."""

import hydra
from omegaconf import DictConfig

from bitpruner.entry import run_stage, set_project_root

set_project_root(__file__)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    from bitpruner.config import to_container
    from bitpruner.train.stage import train

    metrics = run_stage(train, to_container(cfg))
    return metrics.get("val_acc")  # the value a Hydra sweeper optimizes (None on DDP ranks > 0)


if __name__ == "__main__":
    main()
