"""DVC stage `simulate`: thin Hydra entry point; the work is in `bitpruner.simulate.stage`."""

import hydra
from omegaconf import DictConfig

from bitpruner.entry import run_stage, set_project_root

set_project_root(__file__)


@hydra.main(version_base="1.3", config_path="../conf", config_name="simulate")
def main(cfg: DictConfig) -> float:
    from bitpruner.config import to_container
    from bitpruner.simulate.stage import simulate

    metrics = run_stage(simulate, to_container(cfg))
    # The value a Hydra sweeper optimizes: the headline variant's geometric-mean speedup.
    return metrics.get("speedup_vs_nonpruned/geomean", float("nan"))


if __name__ == "__main__":
    main()
