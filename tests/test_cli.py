"""The CLI on bad parameters: exit 1, one line naming key, value and what is allowed, no work done."""

import copy

import pytest
import yaml
from typer.testing import CliRunner

from conftest import ROOT, default_params
from pipeline.cli import app
from test_config import BAD, _set


@pytest.mark.parametrize("key,value,words", BAD, ids=[f"{k}={v!r}"[:40] for k, v, _ in BAD])
def test_train_refuses_bad_params_before_any_work(tmp_path, monkeypatch, key, value, words):
    monkeypatch.chdir(tmp_path)
    p = copy.deepcopy(default_params())
    _set(p, key, value)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "train.json").write_text('{"earlier": 1}')
    result = CliRunner().invoke(app, ["train"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for w in words:
        assert w in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics", "params.yaml"]
    assert (tmp_path / "metrics" / "train.json").read_text() == '{"earlier": 1}'


def test_missing_params_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["sample"])
    assert result.exit_code == 1 and "params.yaml: file not found" in result.output


def test_every_command_has_help():
    for command in ("prepare", "train", "reference", "sample", "evaluate", "sweep", "score-sweep", "report", "check"):
        result = CliRunner().invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "--params" in result.output


def test_params_read_as_dvc_writes_them(tmp_path, monkeypatch):
    """`dvc exp run -S train.lr=0.00005` writes `lr: 5e-05` (YAML 1.2); it must load as a number."""
    from pipeline.params import load

    text = (ROOT / "params.yaml").read_text().replace("  lr: 1.0e-3", "  lr: 5e-05")
    assert "lr: 5e-05" in text
    (tmp_path / "params.yaml").write_text(text)
    assert load(tmp_path / "params.yaml").train.lr == 5e-05


def test_invalid_yaml_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("schedule: [linear\nseed: 0\n")
    result = CliRunner().invoke(app, ["check"])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and "params.yaml: not valid YAML" in lines[0], result.output
