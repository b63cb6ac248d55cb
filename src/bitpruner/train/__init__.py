"""The `train` stage: the baseline (float) model."""
