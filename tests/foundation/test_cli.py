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
