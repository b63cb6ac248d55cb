"""The stage-to-stage model file: a plain torch dict that rebuilds the model with no training code.

`model.ckpt` holds the model's Hydra config (its `_target_` and arguments), the data-set geometry
the model was built for, the state dict, and free-form metadata. Any stage (or a user) rebuilds it
with `load_model_checkpoint(path)`: the one loader every stage and command goes through. It reads with
`torch.load(weights_only=True)` (the payload is plain types and tensors, so a pickle naming any other
Python object is refused, never run) and answers every damaged or foreign file with one `ConfigError`
line naming the file and what is wrong: missing, a directory, empty, text, truncated or corrupted zip,
another pickle, a plain state dict, a Lightning checkpoint, an unknown `format`, a state dict that does
not fit the model its config describes (missing/extra entries, shapes), non-finite weights.
"""

from __future__ import annotations

import importlib
import re
import sys
import warnings
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import torch
from torch import nn

from bitpruner.errors import ConfigError
from bitpruner.utils.atomic import torch_save
from bitpruner.utils.messages import one_line, quoted, shown

FORMAT = "bitpruner.model/1"
FORMAT_FAMILY = "bitpruner.model/"
GEOMETRY_KEYS = ("in_channels", "image_size", "num_classes")
PAYLOAD_KEYS = ("model_cfg", "geometry", "state_dict")
# A Lightning checkpoint names its writer here (what tells best.ckpt / last.ckpt from a stage's model.ckpt).
LIGHTNING_KEY = "pytorch-lightning_version"
# The only builders a checkpoint may name besides nn.Module classes: a `_target_` is called with the file's
# arguments, so anything else (os.system, ...) is refused.
SAFE_BUILDER_PACKAGE = "bitpruner.models"
ZIP_MAGIC = b"PK\x03\x04"
GZIP_MAGIC = b"\x1f\x8b"
LFS_POINTER = b"version https://git-lfs"
SNIFF_BYTES = 512  # bytes read to tell text from binary
QUOTE_CHARS = 40  # characters of a text file quoted in a message
LISTED_NAMES = 3  # entries named in a message before "+N more"


def _listed(names: list[str]) -> str:
    text = ", ".join(names[:LISTED_NAMES])
    return text + (f" (+{len(names) - LISTED_NAMES} more)" if len(names) > LISTED_NAMES else "")


def _plain(value: Any, where: str) -> Any:
    """`value` as types `torch.load(weights_only=True)` accepts; numpy and paths converted, others refused."""
    if isinstance(value, Mapping):
        return {k: _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, PurePath):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str | bytes | torch.Tensor):
        return value
    raise TypeError(f"model checkpoint {where}: a {type(value).__name__} cannot be stored "
                    "(plain types, numpy arrays and tensors only, so that weights_only loading accepts the file)")


def save_model_checkpoint(path: str | Path, model: nn.Module, model_cfg: dict, geometry: dict,
                          meta: dict[str, Any] | None = None) -> Path:
    """Write atomically; `geometry` holds in_channels, image_size and num_classes.

    Numpy scalars and arrays and paths inside `model_cfg`, `geometry` and `meta` are stored as python
    numbers, tensors and strings; any other object raises TypeError (it would make the file unreadable
    with `weights_only=True`).
    """
    missing = [k for k in GEOMETRY_KEYS if k not in geometry]
    if missing:
        raise ValueError(f"geometry lacks {missing}")
    payload = {
        "format": FORMAT,
        "model_cfg": _plain(dict(model_cfg), "model_cfg"),
        "geometry": _plain({k: (list(v) if isinstance(v, tuple) else v) for k, v in geometry.items()}, "geometry"),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": _plain(dict(meta or {}), "meta"),
    }
    return torch_save(path, payload)


def build_from_config(model_cfg: dict, geometry: dict) -> nn.Module:
    """The model `model_cfg` describes (Hydra `_target_` + arguments) for the data `geometry`
    (in_channels, image_size [h, w], num_classes); its weights are freshly initialized from torch's RNG."""
    from hydra.utils import instantiate

    kwargs = {k: (tuple(v) if k == "image_size" else v) for k, v in geometry.items() if k in GEOMETRY_KEYS}
    # `name` labels the model in tags and tables; it is not a constructor argument.
    ctor = {k: v for k, v in dict(model_cfg).items() if k != "name"}
    return instantiate(ctor, **kwargs, _convert_="all")


# -- reading any torch file -------------------------------------------------------------------------------


def _sniff_text(head: bytes) -> str | None:
    """The first line of `head` when it looks like text (UTF-8, no NUL bytes), else None."""
    if not head or b"\x00" in head:
        return None
    for cut in range(4):  # the sniffed block may end inside a multi-byte character
        try:
            text = head[: len(head) - cut].decode("utf-8")
            break
        except UnicodeDecodeError:
            continue
    else:
        return None
    if any(not (ch.isprintable() or ch in "\t\r\n\f") for ch in text):
        return None
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first[:QUOTE_CHARS] + ("..." if len(first) > QUOTE_CHARS else "")


def _check_file(path: Path, what: str) -> bytes:
    """The first bytes of `path` after the checks that need no parsing (exists, a file, readable, not empty)."""
    if not path.exists():
        raise ConfigError(f"{shown(path)}: {what} not found")
    if path.is_dir():
        raise ConfigError(f"{shown(path)}: is a directory, expected a {what} file")
    try:
        with open(path, "rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError as exc:
        raise ConfigError(f"{shown(path)}: cannot read the {what} ({one_line(exc.strerror or exc)})") from None
    if not head:
        raise ConfigError(f"{shown(path)}: empty file (0 bytes), expected a {what}")
    return head


def _check_zip(path: Path, what: str) -> set[int]:
    """A torch zip archive must be complete and pass every member's CRC (torch itself checks neither);
    returns the CRCs of its tensor records (`<archive>/data/<key>`)."""
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            bad = archive.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, RuntimeError,
            NotImplementedError) as exc:
        raise ConfigError(f"{shown(path)}: truncated or damaged zip archive ({size} bytes: {one_line(exc)}); "
                          f"expected a complete {what} written by torch.save") from None
    if bad is not None:
        raise ConfigError(f"{shown(path)}: damaged {what}: zip member {quoted(bad)} fails its CRC check "
                          "(corrupted bytes)")
    names = [info.filename for info in infos]
    if not any(name == "data.pkl" or name.endswith("/data.pkl") for name in names):
        raise ConfigError(f"{shown(path)}: a zip archive without data.pkl (holds {_listed([quoted(n) for n in names])}), "
                          f"not a {what} written by torch.save")
    return {info.CRC for info in infos if "/data/" in info.filename}


def _storages(obj: Any, found: dict[int, torch.UntypedStorage]) -> None:
    """Every tensor storage inside `obj` (nested dicts, lists, tuples), keyed by its address."""
    if isinstance(obj, torch.Tensor):
        storage = obj.untyped_storage()
        found[storage.data_ptr()] = storage
    elif isinstance(obj, Mapping):
        for value in obj.values():
            _storages(value, found)
    elif isinstance(obj, list | tuple):
        for value in obj:
            _storages(value, found)


def _check_storages(path: Path, what: str, payload: Any, record_crcs: set[int]) -> None:
    """Every tensor torch read must hold the bytes of one of the archive's records: torch's zip reader can be
    fooled by a damaged header into returning a tensor of uninitialized memory without an error."""
    found: dict[int, torch.UntypedStorage] = {}
    _storages(payload, found)
    for storage in found.values():
        raw = torch.empty(0, dtype=torch.uint8).set_(storage).numpy()
        if zlib.crc32(raw) not in record_crcs:
            raise ConfigError(f"{shown(path)}: damaged {what}: a tensor read from it matches none of the archive's "
                              "records (corrupted zip headers)")


def _refused_pickle(path: Path, what: str, exc: BaseException) -> ConfigError:
    text = str(exc)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        detail = f"it names {found.group(1)}"
    else:
        unsupported = re.search(r"Unsupported[^\n]*", text)
        detail = one_line(unsupported.group(0) if unsupported else text.splitlines()[0], 80)
    return ConfigError(f"{shown(path)}: refused by torch's weights-only loader ({detail}): the {what} pickles "
                       "something beyond plain types and tensors; nothing in it was run")


def read_torch_file(path: str | Path, what: str = "model checkpoint") -> Any:
    """The object in a `torch.save` file, read with `weights_only=True` on the CPU.

    Raises ConfigError, one line naming `path` and what is wrong (what: the kind of file, for messages):
    missing, a directory, unreadable, empty, text (a Git LFS pointer is named as such), gzip-compressed,
    a truncated or corrupted zip (member CRCs are checked), a zip that is not a torch file, a pickle of
    objects beyond plain types and tensors (never unpickled), tensors whose bytes match no record of the
    archive (torch's reader misled by damaged headers), or anything else torch fails on.
    """
    path = Path(path)
    head = _check_file(path, what)
    if head.startswith(LFS_POINTER):
        raise ConfigError(f"{shown(path)}: a Git LFS pointer, not the {what} itself (fetch it with `git lfs pull`)")
    if head.startswith(GZIP_MAGIC):
        raise ConfigError(f"{shown(path)}: a gzip-compressed file; decompress it (gunzip) to get the {what}")
    record_crcs = None
    if head.startswith(ZIP_MAGIC):
        record_crcs = _check_zip(path, what)
    else:
        text = _sniff_text(head)
        if text is not None:
            raise ConfigError(f"{shown(path)}: a text file (starts with {text!r}), not a {what} written by torch.save")
    try:
        with warnings.catch_warnings():
            # "Detected pickle protocol N": a pickle torch did not write; the error below says what it holds.
            warnings.simplefilter("ignore", UserWarning)
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch fails on foreign bytes with any type (OSError, KeyError, ...)
        if "Weights only load failed" in str(exc):
            raise _refused_pickle(path, what, exc) from None
        raise ConfigError(f"{shown(path)}: unreadable {what} ({type(exc).__name__}: {one_line(exc)})") from None
    if record_crcs is not None:
        _check_storages(path, what, payload, record_crcs)
    return payload


# -- the model checkpoint ---------------------------------------------------------------------------------


def _describe_foreign(path: Path, payload: Any) -> str | None:
    """Why `payload` is not a bitpruner model checkpoint, or None when its `format` says it is one."""
    expected = f"expected a dict with format {FORMAT!r} (what save_model_checkpoint writes)"
    if not isinstance(payload, dict):
        return f"{shown(path)}: holds a {type(payload).__name__}, not a bitpruner model checkpoint; {expected}"
    if LIGHTNING_KEY in payload:
        return (f"{shown(path)}: a Lightning training checkpoint (Lightning {quoted(payload.get(LIGHTNING_KEY))}), not a stage's "
                "model.ckpt; use outputs/<stage>/model.ckpt (resume state stays under checkpoints/)")
    if payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        return (f"{shown(path)}: a plain state dict ({len(payload)} tensors) without the model config and geometry; "
                "save it with bitpruner.models.checkpoint.save_model_checkpoint")
    fmt = payload.get("format")
    if fmt is None:
        return f"{shown(path)}: no 'format' key (keys: {_listed([quoted(k) for k in payload])}); {expected}"
    if isinstance(fmt, str) and fmt.startswith(FORMAT_FAMILY) and fmt != FORMAT:
        return f"{shown(path)}: unknown checkpoint format {fmt!r}; this bitpruner reads {FORMAT!r}"
    if fmt != FORMAT:
        return f"{shown(path)}: unknown format {fmt!r}; {expected}"
    return None


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_payload(path: Path, payload: dict) -> None:
    """The keys and types of a payload whose `format` is FORMAT."""
    missing = [key for key in PAYLOAD_KEYS if key not in payload]
    if missing:
        raise ConfigError(f"{shown(path)}: checkpoint lacks key(s) {', '.join(missing)} (format {FORMAT} has "
                          f"{', '.join(PAYLOAD_KEYS)} and meta)")
    model_cfg, geometry, state = payload["model_cfg"], payload["geometry"], payload["state_dict"]
    if not isinstance(model_cfg, dict) or not isinstance(model_cfg.get("_target_"), str):
        raise ConfigError(f"{shown(path)}: model_cfg is {type(model_cfg).__name__} {quoted(model_cfg)}, "
                          "expected a mapping with a string _target_")
    if not isinstance(geometry, dict):
        raise ConfigError(f"{shown(path)}: geometry is a {type(geometry).__name__}, expected a mapping of "
                          f"{', '.join(GEOMETRY_KEYS)}")
    for key in ("in_channels", "num_classes"):
        if not _positive_int(geometry.get(key)):
            raise ConfigError(f"{shown(path)}: geometry.{key}={quoted(geometry.get(key))}, expected a positive integer")
    size = geometry.get("image_size")
    if not (_positive_int(size) or (isinstance(size, list | tuple) and len(size) == 2
                                    and all(_positive_int(s) for s in size))):
        raise ConfigError(f"{shown(path)}: geometry.image_size={quoted(size)}, expected [height, width] of positive integers")
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise ConfigError(f"{shown(path)}: state_dict is not a mapping of parameter names to tensors")
    if not isinstance(payload.get("meta", {}), dict):
        raise ConfigError(f"{shown(path)}: meta is a {type(payload['meta']).__name__}, expected a mapping")


def _locate(target: str) -> Any:
    """The object a dotted `_target_` names (the longest importable module prefix, then attributes), or None.

    Imports nothing outside bitpruner that is not imported already: importing a module can run its code.
    """
    parts = target.split(".")
    if not all(part.isidentifier() for part in parts):
        return None
    for cut in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:cut])
        if module not in sys.modules and parts[0] != SAFE_BUILDER_PACKAGE.split(".")[0]:
            continue
        try:
            obj = importlib.import_module(module)
        except ImportError:
            continue
        try:
            for name in parts[cut:]:
                obj = getattr(obj, name)
        except AttributeError:
            return None
        return obj
    return None


def _nested_targets(value: Any, where: str) -> list[str]:
    if isinstance(value, Mapping):
        found = [where] if "_target_" in value and where else []
        return found + [n for k, v in value.items() for n in _nested_targets(v, f"{where}.{k}".lstrip("."))]
    if isinstance(value, list | tuple):
        return [n for i, v in enumerate(value) for n in _nested_targets(v, f"{where}[{i}]")]
    return []


def _check_target(path: Path, model_cfg: dict) -> None:
    """Refuse a `_target_` that is neither an nn.Module class nor a bitpruner.models builder: instantiating
    the file's config calls it with the file's arguments."""
    target = model_cfg["_target_"]
    nested = _nested_targets({k: v for k, v in model_cfg.items() if k != "_target_"}, "")
    if nested:
        raise ConfigError(f"{shown(path)}: model_cfg.{shown(nested[0])} holds a nested _target_; refused (a checkpoint names "
                          "one model class or builder)")
    obj = _locate(target)
    if obj is None:
        raise ConfigError(f"{shown(path)}: model_cfg._target_ {quoted(target)} names nothing importable here "
                          f"(expected a {SAFE_BUILDER_PACKAGE} class or builder, or a class of an imported package)")
    is_module_class = isinstance(obj, type) and issubclass(obj, nn.Module)
    module_name = getattr(obj, "__module__", "") or ""
    is_builder = callable(obj) and (module_name == SAFE_BUILDER_PACKAGE
                                    or module_name.startswith(SAFE_BUILDER_PACKAGE + "."))
    if not (is_module_class or is_builder):
        raise ConfigError(f"{shown(path)}: model_cfg._target_ {target!r} is neither an nn.Module class nor a "
                          f"{SAFE_BUILDER_PACKAGE} builder; refused")


def _build(path: Path, model_cfg: dict, geometry: dict, device: str | None = None) -> nn.Module:
    target = model_cfg["_target_"]
    try:
        if device is None:
            model = build_from_config(model_cfg, geometry)
        else:
            with torch.device(device):
                model = build_from_config(model_cfg, geometry)
    except Exception as exc:  # noqa: BLE001 - Hydra wraps any constructor error; its text says what failed
        lines = [line for line in str(exc).splitlines() if line.strip() and not line.startswith("full_key")]
        raise ConfigError(f"{shown(path)}: cannot rebuild the model {shown(target)} from the file's model_cfg and geometry "
                          f"({one_line(' '.join(lines[-2:]) if lines else exc)})") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{shown(path)}: model_cfg._target_ {target!r} returned a {type(model).__name__}, "
                          "expected an nn.Module")
    return model


def _shape(tensor: torch.Tensor) -> list[int]:
    return list(tensor.shape)


def _check_state_dict(path: Path, expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor],
                      target: str) -> None:
    """Names and shapes of `state` against the model's own (`expected`), then finiteness of every float entry."""
    fits = f"the {shown(target)} its model_cfg and geometry describe"
    missing = [name for name in expected if name not in state]
    if missing:
        raise ConfigError(f"{shown(path)}: state_dict lacks {_listed(missing)} ({len(missing)} of {len(expected)} "
                          f"entries of {fits})")
    extra = [name for name in state if name not in expected]
    if extra:
        raise ConfigError(f"{shown(path)}: state_dict has unexpected entr{'y' if len(extra) == 1 else 'ies'} "
                          f"{_listed([quoted(name) for name in extra])} (not in {fits})")
    for name, tensor in state.items():
        if _shape(tensor) != _shape(expected[name]):
            raise ConfigError(f"{shown(path)}: parameter {name} has shape {_shape(tensor)} in the file, but "
                              f"{fits} expects {_shape(expected[name])} (saved for another geometry or model?)")
        # load_state_dict would cast silently: integers into float weights lose every fraction.
        if tensor.is_floating_point() != expected[name].is_floating_point() or tensor.is_complex():
            raise ConfigError(f"{shown(path)}: parameter {name} is {str(tensor.dtype).removeprefix('torch.')} in "
                              f"the file, but {fits} expects {str(expected[name].dtype).removeprefix('torch.')}")
    for name, tensor in state.items():
        if tensor.is_floating_point() or tensor.is_complex():
            bad = ~torch.isfinite(tensor)
            count = int(bad.sum())
            if count:
                value = tensor[bad].flatten()[0].item()
                raise ConfigError(f"{shown(path)}: parameter {name} holds {count} non-finite value(s) (e.g. {value}) "
                                  f"of {tensor.numel()}; expected finite weights")


def load_model_checkpoint(path: str | Path) -> tuple[nn.Module, dict]:
    """Rebuild the model and load its weights; returns (model in eval mode, the whole payload).

    The payload is {"format", "model_cfg", "geometry", "state_dict", "meta"} as `save_model_checkpoint`
    wrote it. Raises ConfigError (one line naming `path`) for every damaged or foreign file: see
    `read_torch_file` for what is checked before unpickling and the module docstring for the rest. The
    model is checked on the meta device first, so a config asking for a huge model fails before allocating.
    """
    path = Path(path)
    payload = read_torch_file(path, "model checkpoint")
    problem = _describe_foreign(path, payload)
    if problem:
        raise ConfigError(problem)
    _check_payload(path, payload)
    payload.setdefault("meta", {})
    model_cfg = dict(payload["model_cfg"])
    if model_cfg.get("weights_path") is not None:
        # Pretrained weights a torchvision model started from: the state dict below replaces them, and the
        # file they came from need not exist where the checkpoint is read.
        model_cfg["weights_path"] = None
    _check_target(path, model_cfg)
    target = model_cfg["_target_"]
    try:
        skeleton = _build(path, model_cfg, payload["geometry"], device="meta")
    except ConfigError:
        skeleton = None  # a constructor the meta device cannot run: check against the real model instead
    model = None
    if skeleton is None:
        model = _build(path, model_cfg, payload["geometry"])
        skeleton = model
    _check_state_dict(path, skeleton.state_dict(), payload["state_dict"], target)
    if model is None:
        model = _build(path, model_cfg, payload["geometry"])
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ConfigError(f"{shown(path)}: state_dict does not load into {shown(target)} ({one_line(exc)})") from None
    model.eval()
    return model, payload


def load_lightning_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The `state_dict` of a Lightning checkpoint (e.g. the train stage's best.ckpt), read weights-only.

    Raises ConfigError, one line naming the file, when it is damaged or is not a Lightning checkpoint.
    """
    path = Path(path)
    payload = read_torch_file(path, "Lightning checkpoint")
    state = payload.get("state_dict") if isinstance(payload, dict) else None
    if not isinstance(payload, dict) or LIGHTNING_KEY not in payload or not isinstance(state, dict):
        kind = type(payload).__name__ if not isinstance(payload, dict) else f"dict without {LIGHTNING_KEY}/state_dict"
        raise ConfigError(f"{shown(path)}: holds a {kind}, expected a Lightning checkpoint")
    return state



def load_state_dict_file(model: nn.Module, path: str | Path, key: str = "model.weights_path") -> nn.Module:
    """Load a plain state dict file (e.g. torchvision's pretrained weights) into `model`, weights-only.

    Raises ConfigError, one line starting with `key` and naming the file, when it is damaged or foreign, is not
    a mapping of names to tensors, or does not fit `model` (missing/extra entries, shapes, non-finite values).
    """
    path = Path(path)
    try:
        state = read_torch_file(path, "state dict")
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]  # a training checkpoint that wraps its weights
        if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                  for k, v in state.items()):
            raise ConfigError(f"{shown(path)}: holds a {type(state).__name__}, expected a state dict (names -> tensors)")
        _check_state_dict(path, model.state_dict(), state, type(model).__name__)
        model.load_state_dict(state)
    except ConfigError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ConfigError(f"{key}: {shown(path)}: does not load into {type(model).__name__} ({one_line(exc)})") from None
    return model
