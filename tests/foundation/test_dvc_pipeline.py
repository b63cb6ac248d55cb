"""dvc.yaml is correct by construction: every stage depends on all the code and configs it runs, its
params agree with conf/ (one default per knob), caches are ignored, and a code change makes exactly the
stages that import it stale."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers.dvc_stages import expanded, template

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
CONF = REPO / "conf"
DVC_YAML = yaml.safe_load((REPO / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
STAGES = DVC_YAML["stages"]
# Config groups whose choice cannot change a stage's outputs (tracking, Hydra's own settings, presets that the
# pipeline's commands never select).
RESULT_NEUTRAL_GROUPS = {"hydra", "logger", "experiment", "debug"}
OVERRIDE = re.compile(r"(?P<key>[\w.@+~]+)=(?P<value>\S+)")


def module_file(module: str) -> Path | None:
    path = SRC / Path(*module.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def bitpruner_imports(path: Path) -> set[str]:
    """Every `bitpruner.*` module a file imports, at module level or inside functions (lazy imports)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {m for m in found if m.split(".")[0] == "bitpruner"}


def config_groups(stage: str) -> set[str]:
    """The config groups a stage's primary config selects in its defaults list."""
    defaults = yaml.safe_load((CONF / f"{stage}.yaml").read_text())["defaults"]
    groups = set()
    for item in defaults:
        if isinstance(item, dict):
            groups |= {key.split("@")[0] for key in item}
    return groups - RESULT_NEUTRAL_GROUPS - {"_self_"}


def hydra_targets(paths: list[Path]) -> set[str]:
    """`_target_` modules named in config files (code that Hydra imports by name)."""
    modules = set()
    for path in paths:
        for text in re.findall(r"_target_:\s*(bitpruner\.[\w.]+)", path.read_text()):
            modules.add(text.rsplit(".", 1)[0])
    return modules


def code_of(stage: str | None, entry: Path | None = None) -> set[Path]:
    """Files of the bitpruner package that a stage's entry point (`pipelines/<stage>.py`, or `entry`) can run:
    its import closure, lazy imports and the Hydra targets of its configs included."""
    conf_files = [] if stage is None else [CONF / f"{stage}.yaml"] + [
        p for g in config_groups(stage) for p in (CONF / g).glob("*.yaml")]
    todo = [entry or REPO / "pipelines" / f"{stage}.py"]
    pending_modules = hydra_targets(conf_files)
    files: set[Path] = set()
    while todo or pending_modules:
        if todo:
            pending_modules |= bitpruner_imports(todo.pop())
        for module in list(pending_modules):
            pending_modules.discard(module)
            parts = module.split(".")
            for i in range(1, len(parts) + 1):  # a module's packages run their __init__ too
                path = module_file(".".join(parts[:i]))
                if path is not None and path not in files:
                    files.add(path)
                    todo.append(path)
    return files


def covered(path: Path, deps: list[str]) -> bool:
    rel = path.relative_to(REPO).as_posix()
    return any(rel == d or rel.startswith(d.rstrip("/") + "/") for d in deps)


def deps_of(stage: str) -> list[str]:
    return [d if isinstance(d, str) else next(iter(d)) for d in template(STAGES[stage])["deps"]]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_cover_every_module_it_runs(stage):
    deps = deps_of(stage)
    missing = sorted(p.relative_to(REPO).as_posix() for p in code_of(stage) if not covered(p, deps))
    assert not missing, f"dvc.yaml stage {stage} runs code it does not depend on: {missing}"
    assert f"pipelines/{stage}.py" in deps


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_cover_its_configs(stage):
    deps = deps_of(stage)
    wanted = [f"conf/{stage}.yaml", *(f"conf/{g}" for g in sorted(config_groups(stage)))]
    assert [w for w in wanted if w not in deps] == []


def cmd_overrides(stage: str) -> dict[str, str]:
    """Hydra overrides in a stage's command whose value is a params.yaml reference, key -> template (the
    foreach item, a seed or its folder, is not one)."""
    cmd = template(STAGES[stage])["cmd"]
    return {m["key"]: m["value"] for m in OVERRIDE.finditer(cmd) if "${" in m["value"] and "${item}" not in m["value"]}


def param_value(template: str):
    """A `${a.b}` template (possibly inside other text, e.g. `[${plan.candidates}]`) with params.yaml filled in,
    parsed as Hydra would parse the override value."""
    def lookup(match):
        node = PARAMS
        for part in match.group(1).split("."):
            node = node[part]
        return str(node)

    return yaml.safe_load(re.sub(r"\$\{([\w.]+)\}", lookup, template))


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_params_agree_with_conf_defaults(compose, stage):
    """A knob lives in one place: the value params.yaml passes equals the stage config's own default, so
    `python pipelines/<stage>.py` and `dvc repro` run the same thing."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = hydra_compose(stage, return_hydra_config=True)
    choices = cfg.hydra.runtime.choices
    resolved = compose(stage)
    disagree = []
    for key, value in cmd_overrides(stage).items():
        want = param_value(value)
        if key in choices:  # a config group: the default option
            have = choices[key]
        else:
            node = resolved
            for part in key.split("."):
                node = node[part]
            have = node
        if have != want:
            disagree.append(f"{key}: conf {have!r} vs params.yaml {want!r}")
    assert not disagree, f"stage {stage}: " + "; ".join(disagree)


def test_dvcignore_ignores_caches_beside_the_sources():
    patterns = (REPO / ".dvcignore").read_text().split()
    assert {"__pycache__/", "*.pyc", "*.nbi", "*.nbc"} <= set(patterns)


def dvc(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("dvc")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    return subprocess.run([str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def stale_stages(cwd: Path) -> set[str]:
    proc = dvc(["status", "--json"], cwd)
    assert proc.returncode == 0, proc.stderr
    status = yaml.safe_load(proc.stdout or "{}") or {}
    return {name for name, changes in status.items()
            if any(isinstance(c, dict) and "changed deps" in c for c in changes)}


def stage_names(names: set[str]) -> set[str]:
    """`train@42` -> `train`: the stage names of dvc.yaml."""
    return {n.split("@")[0] for n in names}


def committed_project(tmp_path: Path) -> Path:
    """A copy of the pipeline whose lock records the current code (`dvc commit` over placeholder outputs): the
    state right after `make repro`. The sweep subproject (pipelines/sweep, with its own .dvc/) comes along."""
    project = tmp_path / "project"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "tmp")  # tmp: a subproject's .dvc/tmp
    for name in ("src", "conf", "pipelines"):
        shutil.copytree(REPO / name, project / name, ignore=skip)
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy(REPO / name, project / name)
    assert dvc(["init", "--no-scm", "-q"], project).returncode == 0
    for stage in expanded(STAGES, PARAMS).values():
        for out in [*stage.get("outs", []), *stage.get("metrics", []), *stage.get("plots", [])]:
            path = project / (out if isinstance(out, str) else next(iter(out)))
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.suffix:
                path.write_text("{}\n" if path.suffix == ".json" else "placeholder\n")
            else:
                path.mkdir(exist_ok=True)
                (path / "placeholder").write_text("x\n")
    proc = dvc(["commit", "-f"], project)
    assert proc.returncode == 0, proc.stderr
    return project


def test_bare_dvc_status_is_clean_after_a_repro_with_the_sweep_never_run(tmp_path):
    """A bare `dvc status` (no target) reads the default pipeline only: the optional sweep grid, a DVC project of
    its own in pipelines/sweep, is not listed as never run. The check can fail: the same dvc.yaml outside a
    project of its own is collected, and its stages are listed."""
    project = committed_project(tmp_path)
    proc = dvc(["status"], project)
    assert proc.returncode == 0 and proc.stdout.strip() == "Data and pipelines are up to date.", proc.stdout
    shutil.rmtree(project / "pipelines" / "sweep" / ".dvc")  # the old layout: one project, two dvc.yaml files
    proc = dvc(["status"], project)
    assert "prune_bits@" in proc.stdout and "collect" in proc.stdout, proc.stdout


def test_a_change_in_an_imported_module_makes_exactly_its_stages_stale(tmp_path):
    """In a copy of the pipeline whose lock records the current code, touching a module makes stale the stages
    that run it (per the import closure) and no other."""
    project = committed_project(tmp_path)
    assert stale_stages(project) == set()

    probes = ["src/bitpruner/sim/kernels.py", "src/bitpruner/training/module.py", "src/bitpruner/reports/plots.py"]
    for probe in probes:
        path = project / probe
        original = path.read_text()
        path.write_text(original + "\n# changed\n")
        expected = {s for s in STAGES if (REPO / probe) in code_of(s)}
        assert expected, f"{probe} is run by no stage: pick another probe"
        stale = stale_stages(project)
        assert stage_names(stale) == expected, probe
        # a seed's stage goes stale for every seed
        assert all(f"{s}@{seed}" in stale for s in expected if "foreach" in STAGES[s] for seed in PARAMS["seeds"])
        path.write_text(original)


SWEEP = REPO / "pipelines" / "sweep"


def sweep_deps(stage: str) -> list[str]:
    """A stage's deps in pipelines/sweep/dvc.yaml as paths from the repository root (they are written relative to
    pipelines/sweep, a DVC project of its own)."""
    deps = yaml.safe_load((SWEEP / "dvc.yaml").read_text())["stages"][stage]["deps"]
    return [os.path.relpath(SWEEP / (d if isinstance(d, str) else next(iter(d))), REPO) for d in deps]


def test_sweep_is_a_dvc_project_of_its_own():
    """pipelines/sweep has its own .dvc/ (the root does not collect it) sharing the root's cache."""
    config = (SWEEP / ".dvc" / "config").read_text()
    cache = re.search(r"^\s*dir\s*=\s*(\S+)", config, flags=re.MULTILINE)
    assert cache and (SWEEP / ".dvc" / cache.group(1)).resolve() == (REPO / ".dvc" / "cache").resolve()


@pytest.mark.parametrize("stage", ["prune_bits", "collect"])
def test_sweep_code_deps_are_files(stage):
    """Outside its project DVC applies no .dvcignore: a folder of src/ as a dep would count its __pycache__."""
    folders = [d for d in sweep_deps(stage) if d.startswith("src/") and (REPO / d).is_dir()]
    assert not folders, f"pipelines/sweep/dvc.yaml {stage}: list the files of {folders}"


def uncovered(code: set[Path], deps: list[str]) -> list[str]:
    """Files of `code` no dep covers; empty ones excepted (the sweep leaves them out: DVC warns about an empty dep)."""
    return sorted(p.relative_to(REPO).as_posix() for p in code if not covered(p, deps) and p.stat().st_size > 0)


def test_sweep_cells_have_the_root_prune_bits_deps():
    """The cells read what the root's prune_bits reads, less its plan file: each folder of src/ there is listed here
    file by file (non-empty .py files; a module added to such a folder must be added here too)."""
    wanted = set()
    for dep in deps_of("prune_bits"):
        if dep.startswith("src/") and (REPO / dep).is_dir():
            wanted |= {p.relative_to(REPO).as_posix() for p in (REPO / dep).rglob("*.py")
                       if "__pycache__" not in p.parts and p.stat().st_size > 0}
        elif dep != "outputs/seeds/${item}/plan/plan.yaml":
            wanted.add(dep.replace("${item}", "${seed}"))  # the sweep reads one seed's models (its `seed` param)
    have = set(sweep_deps("prune_bits"))
    assert not wanted - have, f"pipelines/sweep/dvc.yaml prune_bits lacks deps: {sorted(wanted - have)}"
    assert not have - wanted, f"pipelines/sweep/dvc.yaml prune_bits has deps the root's lacks: {sorted(have - wanted)}"


def test_sweep_pipeline_cells_depend_on_the_prune_bits_code():
    missing = uncovered(code_of("prune_bits"), sweep_deps("prune_bits"))
    assert not missing, f"pipelines/sweep/dvc.yaml prune_bits runs code it does not depend on: {missing}"


def test_sweep_collect_depends_on_its_code():
    collect = yaml.safe_load((SWEEP / "dvc.yaml").read_text())["stages"]["collect"]
    module = collect["cmd"].split("-m ")[1].split()[0]
    code = code_of(None, entry=module_file(module))
    missing = uncovered(code, sweep_deps("collect"))
    assert not missing, f"pipelines/sweep/dvc.yaml collect runs code it does not depend on: {missing}"


def test_the_seed_fan_out_follows_params_yaml(tmp_path):
    """`seeds` in params.yaml decides the stages DVC runs: one chain per seed, one `compare` over them."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "dvc.yaml", project / "dvc.yaml")
    (project / "params.yaml").write_text(yaml.safe_dump({**PARAMS, "seeds": [7, 11]}))
    assert dvc(["init", "--no-scm", "-q"], project).returncode == 0
    proc = dvc(["stage", "list", "--name-only"], project)
    assert proc.returncode == 0, proc.stderr
    chain = [s for s in STAGES if s != "compare"]
    assert set(proc.stdout.split()) == {f"{s}@{seed}" for s in chain for seed in (7, 11)} | {"compare"}
    assert all("foreach" in STAGES[s] for s in chain) and "foreach" not in STAGES["compare"]


RESULTS = REPO / "results"


def test_results_pipeline_is_generated_from_the_root_one():
    """results/dvc.yaml is pipelines/results_dvc.py's output for the current root dvc.yaml, results/params.yaml and
    code: the make-results stages cannot drift from the default pipeline's (regenerate it when this fails)."""
    sys.path.insert(0, str(REPO / "pipelines"))
    try:
        import results_dvc
    finally:
        sys.path.pop(0)
    assert (RESULTS / "dvc.yaml").read_text() == results_dvc.generate(), "run: python pipelines/results_dvc.py"


def test_results_is_a_dvc_project_of_its_own_sharing_the_cache():
    config = (RESULTS / ".dvc" / "config").read_text()
    cache = re.search(r"^\s*dir\s*=\s*(\S+)", config, flags=re.MULTILINE)
    assert cache and (RESULTS / ".dvc" / cache.group(1)).resolve() == (REPO / ".dvc" / "cache").resolve()


def test_results_simulate_variants_are_the_uniform_budgets_of_its_params():
    params = yaml.safe_load((RESULTS / "params.yaml").read_text())
    variants = yaml.safe_load((CONF / "experiment" / "results.yaml").read_text())["variants"]
    uniform = sorted(int(v["name"].removeprefix("uniform-k")) for v in variants if v["name"].startswith("uniform-k"))
    assert uniform == sorted(params["uniform_k"])
    assert {"non-pruned", "weight-pruned", "bit-pruned", "BitPruner as published"} <= {v["name"] for v in variants}


def test_results_stages_depend_on_the_code_they_run():
    stages = yaml.safe_load((RESULTS / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        body = template(stage)
        entry = re.search(r"python (pipelines/\w+\.py)", body["cmd"]).group(1)
        base = Path(entry).stem
        code = code_of(base if (CONF / f"{base}.yaml").is_file() else None, entry=REPO / entry)
        deps = [os.path.relpath(RESULTS / (d if isinstance(d, str) else next(iter(d))), REPO) for d in body["deps"]]
        missing = uncovered(code, deps)
        assert not missing, f"results/dvc.yaml {name} runs code it does not depend on: {missing}"
        folders = [d for d in deps if d.startswith("src/") and (REPO / d).is_dir()]
        assert not folders, f"results/dvc.yaml {name}: list the files of {folders}"


def test_results_commands_compose_for_cifar10(compose):
    """Every command of results/dvc.yaml composes; with `resnet20.data: cifar10` and `resnet20.data_dir: /datasets` in results/params.yaml: every ResNet-20
    stage's command composes into a config that reads CIFAR-10's python batches from that folder."""
    import shlex

    params = yaml.safe_load((RESULTS / "params.yaml").read_text())
    stages = yaml.safe_load((RESULTS / "dvc.yaml").read_text())["stages"]
    net = {**params["resnet20"], "data": "cifar10", "data_dir": "/datasets"}
    values = {**PARAMS, **params, "resnet20": net, "item": 42, "item.seed": 42, "item.k": 1}

    def lookup(match):
        node = values
        if match.group(1) in values:
            return str(values[match.group(1)])
        for part in match.group(1).split("."):
            node = node[part]
        return str(node)

    checked = 0
    for name, stage in stages.items():
        if name == "results":  # an argparse command, not a Hydra stage
            continue
        cmd = re.sub(r"\$\{([\w.]+)\}", lookup, template(stage)["cmd"])
        args = shlex.split(cmd.split("&&", 1)[1])
        entry, overrides = Path(args[1]).stem, args[2:]
        cfg = compose(entry, overrides)  # every generated command parses and composes
        if name.endswith("_compare"):
            net = name.removesuffix("_compare")
            assert cfg["simulate_dir"].endswith(f"results/runs/{net}/seeds/{{seed}}/simulate"), name
            assert cfg["paths"]["output_dir"].endswith(f"results/runs/{net}/compare"), name
        elif name.startswith("resnet20_"):
            assert cfg["data"]["_target_"].endswith("Cifar10DataModule"), name
            assert cfg["data"]["data_dir"] == "/datasets/cifar10", name
            checked += 1
    assert checked >= 7
    # DVC stores a stage's command in dvc.lock as a folded YAML scalar, which drops a run of spaces at a line end: a
    # command with two spaces in a row would read back changed and rerun on every `dvc repro`
    assert not [n for n, st in stages.items() if "  " in template(st)["cmd"]]
