"""Per-layer bit budgets on disk: `layers: {name: k}` in YAML (the plan stage writes it, this stage reads it)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from bitpruner.errors import ConfigError
from bitpruner.utils.atomic import write_text

WHERE = "prune_bits.plan_file"
# A plan lists one line per layer; anything this large is not a plan file (and would take long to parse).
MAX_PLAN_BYTES = 1 << 20


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key that appears twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base class names it
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return " ".join(f"{where}{problem}".split())


def read_plan_file(path: Path) -> dict[str, int]:
    """{layer name: k} from a plan file (`layers: {name: k}` plus any other top-level keys).

    Raises ConfigError, one line naming the file: missing, a directory, unreadable, too large, not UTF-8
    text, not valid YAML (line and column given; a key twice in one mapping counts), not a mapping, without
    a non-empty `layers` mapping, or a k that is not an integer. The range of k and the layer names are
    checked by `BitPruneConfig.layer_k`, which knows the weight width and the model.
    """
    path = Path(path)
    prefix = f"{WHERE} {path}"
    if not path.exists():
        raise ConfigError(f"{prefix}: file not found (run the plan stage first, or set it to null)")
    if path.is_dir():
        raise ConfigError(f"{prefix}: is a directory, expected a plan.yaml file")
    try:
        size = path.stat().st_size
        if size > MAX_PLAN_BYTES:
            raise ConfigError(f"{prefix}: {size} bytes, expected a plan file of at most {MAX_PLAN_BYTES} bytes")
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{prefix}: cannot read it ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{prefix}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                          "expected YAML `layers: {name: k}`") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{prefix}: not valid YAML ({_yaml_problem(exc)})") from None
    except RecursionError:
        raise ConfigError(f"{prefix}: nested too deeply to be a plan file") from None
    expected = "expected a non-empty mapping `layers: {name: k}`"
    if not isinstance(data, Mapping):
        found = "an empty file" if data is None else f"a YAML {type(data).__name__}"
        raise ConfigError(f"{prefix}: holds {found}; {expected}")
    if "layers" not in data:
        keys = ", ".join(str(k) for k in list(data)[:5])
        raise ConfigError(f"{prefix}: no `layers` key (keys: {keys}); {expected}")
    layers = data["layers"]
    if not isinstance(layers, Mapping) or not layers:
        raise ConfigError(f"{prefix}: layers is {layers!r}; {expected}")
    out = {}
    for name, k in layers.items():
        if isinstance(k, bool) or not isinstance(k, int):
            raise ConfigError(f"{prefix}: layers.{name}={k!r}, expected an integer k (bits kept per weight)")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{prefix}: layer name {name!r}, expected a layer's name as a non-empty string")
        out[name] = k
    return out


def write_plan_file(path: Path, layers: Mapping[str, int], **extra) -> Path:
    """Write `layers: {name: k}` (plus any extra top-level keys, e.g. the predicted drop)."""
    body = {"layers": {str(n): int(k) for n, k in layers.items()}, **extra}
    return write_text(path, yaml.safe_dump(body, sort_keys=False))
