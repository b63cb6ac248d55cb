"""What a stage reads from an earlier stage: the input model checkpoint, and what identifies it."""

from __future__ import annotations

import hashlib
from pathlib import Path

from torch import nn

from bitpruner.errors import ConfigError
from bitpruner.models.checkpoint import load_model_checkpoint

HASH_CHUNK = 1 << 20
DIGEST_CHARS = 16


def file_digest(path: str | Path) -> str:
    """First 16 hex digits of the file's SHA-256: a retrained input must not resume an old run."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()[:DIGEST_CHARS]


def load_input_model(path: str | Path, dataset: str, key: str = "input_ckpt") -> tuple[nn.Module, dict]:
    """The model in `path` (eval mode) and its checkpoint payload (see `load_model_checkpoint`).

    Every stage reads its input checkpoint here. Raises ConfigError, one line starting with `key` and naming
    the file: for every damaged or foreign file (`load_model_checkpoint` says which), and when the model was
    trained on another data set than `dataset` (its geometry and normalization would not fit).
    """
    try:
        model, payload = load_model_checkpoint(path)
    except ConfigError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    trained_on = payload["meta"].get("dataset")
    if trained_on is not None and trained_on != dataset:
        raise ConfigError(f"{key} {path}: trained on {trained_on!r}, but data={dataset!r}")
    return model, payload


def model_name(model_cfg: dict) -> str:
    """The model's label in tags and tables: its config `name`, else its `_target_`."""
    return str(model_cfg.get("name") or model_cfg.get("_target_", "unknown"))


def read_stage_config(path: str | Path, root: str | Path | None = None) -> dict:
    """A stage's `config.yaml` (written with paths relative to the project root) as a dict whose `paths.*` and
    `data.data_dir` are absolute again, resolved against `root` (default: $BITPRUNER_ROOT, else the current folder).

    Raises ConfigError (one line naming the file) when it is missing, not YAML, or not a stage config.
    """
    import os

    import yaml

    from bitpruner.utils.messages import one_line, shown

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{shown(path)}: stage config not found (pass --config with the data set's stage config.yaml)")
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{shown(path)}: not a YAML stage config ({one_line(exc)})") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("data"), dict):
        raise ConfigError(f"{shown(path)}: no `data` node (expected a stage's config.yaml)")
    base = Path(root or os.environ.get("BITPRUNER_ROOT") or Path.cwd())

    def absolute(value):
        return str(base / value) if isinstance(value, str) and value and not Path(value).is_absolute() else value

    paths = cfg.get("paths")
    if isinstance(paths, dict):
        cfg["paths"] = {k: absolute(v) for k, v in paths.items()}
    if "data_dir" in cfg["data"]:
        cfg["data"] = {**cfg["data"], "data_dir": absolute(cfg["data"]["data_dir"])}
    return cfg
