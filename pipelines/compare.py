"""DVC stage `compare`: thin Hydra entry point; the work is in `bitpruner.compare.stage`."""

import hydra
from omegaconf import DictConfig

from bitpruner.entry import run_stage, set_project_root

set_project_root(__file__)


@hydra.main(version_base="1.3", config_path="../conf", config_name="compare")
def main(cfg: DictConfig) -> float:
    from bitpruner.compare.stage import compare
    from bitpruner.config import to_container

    metrics = run_stage(compare, to_container(cfg))
    return metrics.get("speedup_vs_nonpruned/geomean", float("nan"))  # the value a Hydra sweeper optimizes


if __name__ == "__main__":
    main()
