"""The `compare` stage: the seeds' simulate outputs aggregated into one comparison (mean ± sd over seeds)."""
