"""Hydra multirun sweeps: one MLflow parent run per sweep, every job's stage run nested under it, a summary at the end."""
