"""The `bitpruner` console script."""

import argparse
import importlib
import re
import subprocess
import sys

import pytest

from bitpruner import cli

# The subcommands, in the order `bitpruner --help` lists them (one module of SUBCOMMAND_MODULES may add several).
SUBCOMMANDS = ["sim", "sensitivity", "compare", "report", "plan", "project"]


def subcommands(parser: argparse.ArgumentParser) -> list[str]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return list(action.choices)


def test_help_lists_exactly_the_subcommands(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert subcommands(cli.build_parser()) == SUBCOMMANDS
    # The help text names each of them on its own line, in that order.
    listed = re.findall(r"^    (\w+)\b", out, flags=re.MULTILINE)
    assert listed == SUBCOMMANDS


@pytest.mark.parametrize("name", cli.SUBCOMMAND_MODULES)
def test_every_listed_module_imports_and_registers(name):
    module = importlib.import_module(name)
    parser = argparse.ArgumentParser()
    module.register(parser.add_subparsers())
    assert subcommands(parser)  # it adds at least one subcommand


def test_a_module_that_fails_to_import_is_an_error_not_skipped(monkeypatch):
    monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", (*cli.SUBCOMMAND_MODULES, "bitpruner.no_such_area.cli"))
    with pytest.raises(ModuleNotFoundError, match="no_such_area"):
        cli.build_parser()


def test_no_command_prints_help_and_fails(capsys):
    assert cli.main([]) == 2
    assert "usage: bitpruner" in capsys.readouterr().out


def test_help_does_not_load_numpy_numba_or_torch():
    # `bitpruner --help` builds every subparser; the heavy imports belong inside the commands.
    code = ("import sys; from bitpruner import cli; cli.build_parser(); "
            "print(sorted(m for m in ('numpy', 'numba', 'torch', 'pydantic') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


# Bad arguments of every subcommand: one line naming the argument, status 1, no usage block (argparse's own
# answer is a usage block and status 2, and a subcommand's unknown flag is reported by the top-level parser).
@pytest.mark.parametrize("argv, names", [
    (["sim", "--traces", "t", "--network", "n", "--arch", "Stripes", "--bogus"], "--bogus"),
    (["sim", "--bogus"], "--traces"),  # required ones are named first
    (["sensitivity", "--bogus"], "--bogus"),
    (["compare", "somewhere", "--bogus"], "--bogus"),
    (["report", "--out", "o", "--bogus"], "--bogus"),
    (["plan", "--bogus"], "--bogus"),
    (["project", "--method", "bitflip", "--N", "3", "--group", "32", "--bogus"], "--bogus"),
    (["project", "--method", "bitflip", "--group", "abc"], "--group"),
    (["project", "--method", "bitflip", "--group", "32"], "--N"),
    (["sim", "--lanes", "x"], "--lanes"),
    (["nonsense"], "nonsense"),
])
def test_bad_arguments_are_one_line_with_status_1(argv, names, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and names in err and "usage:" not in err


def test_an_output_path_the_file_system_refuses_is_one_line(tmp_path, capsys):
    from helpers.models import save_digits_lenet

    tiny_checkpoint = tmp_path / "tiny.ckpt"
    save_digits_lenet(tiny_checkpoint)
    folder = tmp_path / "a_folder"
    folder.mkdir()
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for out, says in [(folder, "is a folder"), (blocker / "m.ckpt", "Not a directory")]:
        code = cli.main(["project", "--method", "bitflip", "--N", "3", "--group", "4", "--model",
                         str(tiny_checkpoint), "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 1 and err.count("\n") == 1 and says in err and str(out) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "a_folder", "tiny.ckpt"]  # nothing half-written
    assert not any(folder.iterdir())


REQUIRED = {"project": ["--method", "bitflip", "--N", "4", "--group", "32"]}


@pytest.mark.parametrize(("command", "stage"), [("plan", "prune_weights"), ("sensitivity", "train"),
                                                ("project", "train")])
def test_default_model_falls_back_to_the_first_seed_of_make_repro(command, stage, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    required = REQUIRED.get(command, [])
    args = cli.build_parser().parse_args([command, *required])
    cli.first_seed_model(args)  # no checkpoint anywhere: left to the command, which reports it after its arguments
    assert args.model == f"outputs/{stage}/model.ckpt" and capsys.readouterr().err == ""
    for seed in ("43", "142", "notaseed"):  # numeric order: 43 before 142; other folders are not seeds
        (tmp_path / "outputs" / "seeds" / seed / stage).mkdir(parents=True)
        (tmp_path / "outputs" / "seeds" / seed / stage / "model.ckpt").write_bytes(b"x")
    cli.first_seed_model(args)
    assert args.model == f"outputs/seeds/43/{stage}/model.ckpt"
    out = capsys.readouterr()
    assert f"--model outputs/seeds/43/{stage}/model.ckpt (the first seed" in out.out and out.err == ""
    # an explicit --model is never replaced, and the hand-run default wins when it exists
    args = cli.build_parser().parse_args([command, *required, "--model", "elsewhere.ckpt"])
    cli.first_seed_model(args)
    assert args.model == "elsewhere.ckpt"
    (tmp_path / "outputs" / stage).mkdir()
    (tmp_path / "outputs" / stage / "model.ckpt").write_bytes(b"x")
    args = cli.build_parser().parse_args([command, *required])
    cli.first_seed_model(args)
    assert args.model == f"outputs/{stage}/model.ckpt"
