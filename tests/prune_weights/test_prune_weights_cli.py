"""`bitpruner sensitivity` on an untrained LeNet-5 and `digits`."""

import pandas as pd
import pytest
import yaml

from bitpruner import cli
from bitpruner.cli import main
from helpers.models import save_digits_lenet


@pytest.fixture(autouse=True)
def only_this_subcommand(monkeypatch):
    """Other areas' subcommands may be half-built while this one is tested."""
    monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", ("bitpruner.prune_weights.cli",))


def test_sensitivity_subcommand_writes_csv_and_png(compose, tmp_path, capsys):
    stage_dir = tmp_path / "outputs" / "train"
    save_digits_lenet(stage_dir / "model.ckpt")
    (stage_dir / "config.yaml").write_text(yaml.safe_dump(compose("train", ["data=digits", "data.batch_size=512"])))
    out = tmp_path / "sens"
    code = main(["sensitivity", "--model", str(stage_dir / "model.ckpt"), "--sparsities", "0.5,0.9",
                 "--layers", "conv1,fc3", "--out", str(out)])
    assert code == 0
    table = pd.read_csv(out / "sensitivity.csv")
    assert list(table["layer"]) == ["conv1", "conv1", "fc3", "fc3"]
    assert list(table["sparsity"]) == [0.5, 0.9, 0.5, 0.9]
    assert (out / "sensitivity.png").read_bytes()[:4] == b"\x89PNG"
    assert "baseline val accuracy" in capsys.readouterr().out


def test_bad_arguments_are_one_line_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default --model must not exist, whatever the repository's outputs/ holds
    assert main(["sensitivity", "--model", str(tmp_path / "none.ckpt")]) == 1
    assert "model checkpoint not found" in capsys.readouterr().err
    assert main(["sensitivity", "--sparsities", "0.5,1.2"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "bitpruner sensitivity: error: --sparsities '0.5,1.2': expected comma-separated numbers in [0, 1)"
