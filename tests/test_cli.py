"""The CLI on bad parameters and on the stages' expected failures (bad data, bad or stale checkpoints,
non-finite samples, a missing GPU): exit 1, one line naming the cause and what is allowed."""

import copy
import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from conftest import ROOT, default_params, mlflow_runs, tiny_params
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


def test_every_stage_and_tool_is_a_command_with_help():
    """The CLI's table is the stages of both dvc.yaml files and the tools, each module named as its command."""
    from pipeline import stage_graph
    from pipeline.cli import COMMANDS

    modules = {name: package for name, (package, _) in COMMANDS.items()} | {"generate": "tools"}  # generate: its own options
    assert set(modules) == set(stage_graph.dvc_stages()) | set(stage_graph.TOOLS)
    assert {c.name for c in app.registered_commands} == {name.replace("_", "-") for name in modules}
    for name, package in modules.items():
        assert (ROOT / "pipeline" / package / f"{name}.py").is_file(), name
        command = name.replace("_", "-")
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


@pytest.mark.parametrize("uri", ["ftp://host/runs", "s3://bucket/mlflow", "gopher:x"])
def test_a_tracking_uri_mlflow_has_no_store_for_fails_at_the_gate(tmp_path, monkeypatch, uri):
    """MLflow itself fails only when the first run opens, minutes into `train`; the gate names the key now."""
    monkeypatch.chdir(tmp_path)
    p = default_params(extended=True)
    p["tracking"]["uri"] = uri
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    result = CliRunner().invoke(app, ["check"])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert f"tracking.uri: invalid value '{uri}'" in lines[0] and "sqlite:" in lines[0] and "http:" in lines[0]
    assert not (tmp_path / "data/params.ok").exists()


@pytest.mark.parametrize("uri", ["", "sqlite:///x.db", "http://127.0.0.1:5050", "postgresql+psycopg://u@h/db",
                                 "./mlruns", "file:///tmp/mlruns", "databricks"])
def test_tracking_uris_mlflow_has_a_store_for_pass(uri):
    from pipeline.params import check_tracking_uri

    check_tracking_uri(uri, "tracking.uri")


# --- the stages' expected failures, through the CLI: exit 1, one `error:` line naming the cause ----
@pytest.fixture(scope="module")
def trained(tmp_path_factory, fashion_mnist_dir):
    """A project folder where the real `prepare` and `train` stages ran the tiny configuration (linear only)."""
    folder = tmp_path_factory.mktemp("trained")
    p = tiny_params()
    p["schedule"] = ["linear"]
    (folder / "params.yaml").write_text(yaml.safe_dump(p))
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        for stage in ("prepare", "train"):
            result = CliRunner().invoke(app, [stage])
            assert result.exit_code == 0, result.output
    finally:
        os.chdir(cwd)
    return folder


@pytest.fixture
def project(trained, tmp_path, monkeypatch):
    """A private copy of ``trained`` as the working folder."""
    shutil.copytree(trained, tmp_path / "p")
    monkeypatch.chdir(tmp_path / "p")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    return tmp_path / "p"


def edit_params(**changes):
    p = yaml.safe_load(Path("params.yaml").read_text())
    for key, value in changes.items():
        _set(p, key.replace("__", "."), value)
    Path("params.yaml").write_text(yaml.safe_dump(p))


def fails_with(command: str, *words: str) -> str:
    """Run ``command``: exit code 1 and one `error:` line, the last one printed, holding ``words``."""
    result = CliRunner().invoke(app, [command])
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert result.exit_code == 1 and errors == lines[-1:], result.output
    for w in words:
        assert w in errors[0], errors[0]
    return errors[0]


def test_bad_data_file_names_the_file(project, fashion_mnist_dir):
    source = project / "official"
    shutil.copytree(fashion_mnist_dir, source)
    victim = source / "train-images-idx3-ubyte.gz"
    victim.write_bytes(victim.read_bytes()[:1000])
    shutil.rmtree("data")
    edit_params(data__source_dir=str(source))
    fails_with("prepare", "train-images-idx3-ubyte.gz", "truncated or corrupt")
    assert not Path("data/prepared").exists()


def test_truncated_checkpoint_names_the_file(project):
    ckpt = Path("models/linear/checkpoint.pt")
    ckpt.write_bytes(ckpt.read_bytes()[:5000])
    fails_with("sample", "models/linear/checkpoint.pt: not a loadable checkpoint")
    assert not Path("samples").exists()


@pytest.mark.parametrize("change", ["other_params", "unfinished"])
def test_stale_or_unfinished_checkpoint_is_refused_by_sample(project, change):
    if change == "other_params":
        edit_params(train__lr=5e-4)  # the checkpoint was trained with 1e-3
    else:
        state = torch.load("models/linear/checkpoint.pt", weights_only=True)
        torch.save({**state, "step": 4}, "models/linear/checkpoint.pt")  # as a kill after step 4 leaves it
    fails_with("sample", "models/linear/checkpoint.pt: trained with other parameters or code, or unfinished")
    assert not Path("samples").exists()


def test_non_finite_samples_are_refused(project):
    state = torch.load("models/linear/checkpoint.pt", weights_only=True)
    state["ema"] = {k: (torch.full_like(v, float("nan")) if v.is_floating_point() else v) for k, v in state["ema"].items()}
    torch.save(state, "models/linear/checkpoint.pt")
    fails_with("sample", "sampling produced non-finite values in batch 0")
    assert not Path("samples/linear/images.npy").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: device: cuda is valid here")
def test_cuda_without_a_gpu_is_a_clear_error(project):
    edit_params(device="cuda")
    fails_with("train", "device: invalid value 'cuda': no CUDA GPU is available; expected auto or cpu")


def test_batch_larger_than_the_training_subset(project):
    edit_params(train__batch_size=600)  # data.train_subset is 512
    fails_with("train", "train.batch_size: invalid value 600; expected at most the 512 training images")


# --- `ddpm-study generate`: a finished model sampled outside DVC -------------------------------------
def generate(*args: str):
    return CliRunner().invoke(app, ["generate", *args])


def test_generate_draws_the_sample_stages_images_and_any_other_setting(project):
    """With the `sample` stage's settings (the defaults) it draws that stage's images bit for bit; other
    samplers, step counts and seeds give other images; the checkpoint file alone is enough to sample it."""
    import numpy as np

    assert CliRunner().invoke(app, ["sample"]).exit_code == 0
    result = generate("--schedule", "linear", "--out", "out/images.npy")
    assert result.exit_code == 0, result.output
    staged = np.load("samples/linear/images.npy")
    assert np.array_equal(np.load("out/images.npy"), staged)
    same = generate("--checkpoint", "models/linear/checkpoint.pt", "--out", "out/from_file.npy")
    assert same.exit_code == 0 and np.array_equal(np.load("out/from_file.npy"), staged), same.output
    other = generate("--schedule", "linear", "--sampler", "ddim", "--steps", "3", "--num-images", "5", "--seed", "7",
                     "--out", "out/ddim.npy")
    assert other.exit_code == 0, other.output
    ddim = np.load("out/ddim.npy")
    assert ddim.shape == (5, *staged.shape[1:]) and ddim.dtype == np.uint8 and not np.array_equal(ddim, staged[:5])
    bounded = generate("--schedule", "linear", "--num-images", "5", "--sigma-max", "80", "--out", "out/bounded.npy")
    assert bounded.exit_code == 0 and not np.array_equal(np.load("out/bounded.npy"), staged[:5]), bounded.output
    grid = generate("--schedule", "linear", "--num-images", "4", "--out", "out/grid.png")
    assert grid.exit_code == 0 and Path("out/grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, words", [
    (["--schedule", "linear", "--out", "x.jpg"], ["--out: invalid value 'x.jpg'", ".png or .npy"]),
    (["--schedule", "linear", "--sampler", "euler", "--out", "x.npy"], ["--sampler: invalid value 'euler'", "ddim"]),
    (["--schedule", "linear", "--steps", "0", "--out", "x.npy"], ["--steps: invalid value 0", "[1, 1000]"]),
    (["--schedule", "linear", "--class", "3", "--out", "x.npy"], ["--class: invalid value 3", "unconditional"]),
    (["--schedule", "linear", "--sigma-max", "-1", "--out", "x.npy"], ["--sigma-max: invalid value -1", ">= 0"]),
    (["--schedule", "linear", "--sigma-max", "0.001", "--out", "x.npy"], ["--sigma-max: invalid value 0.001",
                                                                          "no timestep is left"]),
    (["--schedule", "nonsense", "--out", "x.npy"], ["--schedule: invalid value 'nonsense'", "cosine"]),
    (["--out", "x.npy"], ["--schedule, --checkpoint or --model"]),
    (["--checkpoint", "missing.pt", "--out", "x.npy"], ["missing.pt"]),
])
def test_generate_refuses_bad_options_in_one_line(project, args, words):
    result = generate(*args)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and lines[-1].startswith("error: "), result.output
    assert all(w in lines[-1] for w in words), lines[-1]
    assert not Path("x.npy").exists()


def test_generate_refuses_a_stale_or_unfinished_model(project):
    edit_params(train__steps=6)  # the checkpoint was trained for 8: another configuration's model
    result = generate("--schedule", "linear", "--out", "x.npy")
    assert result.exit_code == 1 and "run `dvc repro` to retrain" in result.output
    import torch

    state = torch.load("models/linear/checkpoint.pt", weights_only=True)
    state["step"] = 4
    torch.save(state, "half.pt")
    result = generate("--checkpoint", "half.pt", "--out", "x.npy")
    assert result.exit_code == 1 and "unfinished (step 4 of 8)" in result.output


def test_train_logs_the_ema_model_as_an_mlflow_model_that_generate_samples(project):
    """The `train` stage (the fixture ran it) logged the EMA network as an MLflow 3 logged model linked to the
    schedule's run, with its training lineage as params and the final loss; it loads with
    `mlflow.pytorch.load_model` (pt2: no pickle), computes what the checkpoint's EMA network computes at any
    batch size, and `generate --model` samples it like the checkpoint. Recording again adds no second model."""
    import mlflow.pytorch
    import numpy as np
    import torch

    from ddpm_study import training
    from pipeline import records, tracking
    from pipeline.params import load

    client, runs = mlflow_runs(project)
    (run,) = [r for r in runs if r.info.run_name == "linear"]
    (logged,) = client.search_logged_models(experiment_ids=[run.info.experiment_id])
    assert logged.source_run_id == run.info.run_id and logged.status.name == "READY"
    assert logged.params["schedule"] == "linear" and logged.params["train.steps"] == "8"
    with tracking.fluent_store(f"sqlite:///{project / 'mlflow.db'}"):
        net = mlflow.pytorch.load_model(f"models:/{logged.model_id}")
    assert "MLFLOW_TRACKING_URI" not in os.environ  # neither log_model (the train stage) nor load_model leaked it
    ema = training.load_ema_model(training.load_checkpoint(Path("models/linear/checkpoint.pt")), torch.device("cpu"))
    x, t = torch.randn(5, 1, 28, 28, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 10, 100, 500, 999])
    assert torch.allclose(net(x, t), ema(x, t), atol=1e-5)

    result = generate("--model", f"models:/{logged.model_id}", "--num-images", "6", "--out", "out/mlflow.npy")
    assert result.exit_code == 0, result.output
    assert generate("--schedule", "linear", "--num-images", "6", "--out", "out/ckpt.npy").exit_code == 0
    a, b = np.load("out/mlflow.npy").astype(int), np.load("out/ckpt.npy").astype(int)
    assert np.abs(a - b).max() <= 1  # the exported graph's float round-off moves a pixel by at most one level

    with tracking.schedule_run(load(Path("params.yaml")), "linear") as again:
        records.record_train(again, "linear", fill=True)
    assert len(client.search_logged_models(experiment_ids=[run.info.experiment_id])) == 1
