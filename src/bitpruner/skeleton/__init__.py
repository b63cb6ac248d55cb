"""The stage skeleton: the sequence every stage shares, written once.

- `fit.run_fit_stage(stage, cfg)`: seed -> data -> model -> resume check -> Lightning fit -> export ->
  metrics -> outputs -> MLflow, for the training stages (train, prune_weights, prune_bits); each fills in a
  `fit.FitStage` with what is its own.
- `inputs`: the input checkpoint a stage reads (model, its data set, its content hash).
- `outputs`: the tail every stage shares (plan and simulate too): `config.yaml`, `metrics.json`, final
  metrics logged to MLflow one way, artifacts.
"""
