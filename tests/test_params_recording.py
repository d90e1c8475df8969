"""The recorder behind tests/test_params_coverage.py: which reads count as a stage's dependencies."""

import json

from conftest import ROOT
from pipeline import lineage, params


def test_reads_after_validation_are_recorded_and_unrecorded_ones_are_not(tmp_path, monkeypatch):
    monkeypatch.setenv(params.READ_ENV, str(tmp_path))
    with params.recording("stage"):
        cfg = params.load(ROOT / "params.yaml")  # validation reads every field: none of it counts
        cfg.train.steps, cfg.seed, cfg.schedules
        with params.unrecorded():
            cfg.sample.steps
    assert json.loads((tmp_path / "stage.json").read_text()) == ["schedules", "seed", "train.steps"]
    with params.recording("stage"):  # a second run adds to the first
        params.load(ROOT / "params.yaml").device
    assert "device" in json.loads((tmp_path / "stage.json").read_text())


def test_the_training_lineage_counts_as_exactly_its_keys(tmp_path, monkeypatch):
    monkeypatch.setenv(params.READ_ENV, str(tmp_path))
    with params.recording("train"):
        d = lineage.training(params.load(ROOT / "params.yaml"), "cosine")
    read = set(json.loads((tmp_path / "train.json").read_text()))
    assert "train.precision" in read and "data.dataset" in read and "schedules" in read
    assert not any(k.startswith(("sample.", "sweep.", "evaluate.", "tracking.")) for k in read)
    assert "data.source_dir" not in read and "code" not in read and "code" in d


def test_nothing_is_recorded_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(params.READ_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    with params.recording("stage"):
        params.load(ROOT / "params.yaml").seed
    assert not list(tmp_path.iterdir())
