"""DVC stage `plan`: thin Hydra entry point; the work is in `bitpruner.plan.stage`."""

import hydra
from omegaconf import DictConfig

from bitpruner.entry import run_stage, set_project_root

set_project_root(__file__)


@hydra.main(version_base="1.3", config_path="../conf", config_name="plan")
def main(cfg: DictConfig) -> float:
    from bitpruner.config import to_container
    from bitpruner.plan.stage import plan

    metrics = run_stage(plan, to_container(cfg))
    return metrics["predicted_speedup"]  # the value a Hydra sweeper optimizes


if __name__ == "__main__":
    main()
