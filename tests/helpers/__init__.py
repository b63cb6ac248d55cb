"""Helpers shared by the test folders, importable as `helpers.*` (pytest's `pythonpath = ["tests"]`).

- `helpers.paths`: the repository root and its Hydra config folder.
- `helpers.models`: model configs, data geometries and tiny networks several folders build.
- `helpers.overrides`: Hydra override lists that make a stage run fast on `digits`.
- `helpers.lightning`: a quiet CPU `Trainer` and a linear classifier module.
- `helpers.tiny`: a tiny conv+linear network, random data and its Lightning plumbing (pruning tests).
- `helpers.data`: writers of tiny fake data sets in their real on-disk formats.
- `helpers.mlflow_store`: an MLflow store populated with sweep / prune_bits / simulate runs.
- `helpers.simulate`: stand-in weight- and bit-pruned checkpoints for the simulate stage.
- `helpers.naive`: plain, slow reference implementations ("naive twins") of the fast kernels.
"""
