"""Faults injected for real: kill -9, crashes mid-write, divergence, bad params, an unreachable
tracking server, parallel queued experiments, and the documented MLflow UI's listening address.
(Tracking outages in the middle of a run: test_tracking.py.) Tests that run `dvc repro` are `slow`."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import pytest
import torch
import yaml

from conftest import ROOT, make_repo, mlflow_runs, run_queue, sh, tiny_params
from ddpm_study.files import atomic_path, write_text

def long_tiny_params(**train) -> dict:
    p = tiny_params()
    p["schedule"] = ["linear"]
    p["train"].update(steps=300, log_every=10, checkpoint_every=20, **train)
    return p


def checkpoint_step(path: Path) -> int:
    try:
        return torch.load(path, weights_only=True)["step"] if path.exists() else 0
    except Exception:
        return 0


def run_until_checkpoint(repo, env, at_least: int, timeout_s: float = 900) -> None:
    """Start `dvc repro`, SIGKILL its whole process group once the checkpoint reaches ``at_least``
    (or when this fails: a run left going would finish the study behind the test's back)."""
    log = open(repo / "repro.log", "w")
    proc = subprocess.Popen(["dvc", "repro"], cwd=repo, env=env, start_new_session=True, stdout=log, stderr=log)
    ckpt = repo / "models/linear/checkpoint.pt"
    deadline = time.time() + timeout_s  # generous: a CPU shared with other work trains several times slower
    try:
        while checkpoint_step(ckpt) < at_least:
            assert proc.poll() is None, f"dvc repro ended before the kill point:\n{(repo / 'repro.log').read_text()[-2000:]}"
            assert time.time() < deadline, f"checkpoint {at_least} not reached in {timeout_s:.0f} s"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.slow
def test_kill_9_twice_then_resume_is_bit_exact(tmp_path, torch_home, fashion_mnist_dir):
    params = long_tiny_params()
    killed, env = make_repo(tmp_path / "killed", params, torch_home)
    run_until_checkpoint(killed, env, 60)
    first = checkpoint_step(killed / "models/linear/checkpoint.pt")
    run_until_checkpoint(killed, env, first + 100)  # the second kill, at another point
    second = checkpoint_step(killed / "models/linear/checkpoint.pt")
    assert 0 < first < second < 300
    out = sh("dvc repro", killed, env)
    assert f"linear: resumed from step {second}" in out.stdout + out.stderr

    # The uninterrupted control needs only its training: equal weights make every later stage equal
    # (sampling and scoring are deterministic on one CPU; the e2e tests reproduce them).
    clean, env2 = make_repo(tmp_path / "clean", params, torch_home)
    sh("dvc repro train", clean, env2)
    a = torch.load(killed / "models/linear/checkpoint.pt", weights_only=True)
    b = torch.load(clean / "models/linear/checkpoint.pt", weights_only=True)
    for key in ("model", "ema"):
        for name in b[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name} differs after two kills"
    loss = lambda r: json.loads((r / "metrics/train.json").read_text())["linear"]["final_loss"]  # noqa: E731
    assert loss(killed) == loss(clean)
    # The MLflow run of the killed execution is the same run, complete and finished.
    _, runs = mlflow_runs(killed)
    run = next(r for r in runs if r.info.run_name == "linear")
    assert run.info.status == "FINISHED" and "fid" in run.data.metrics
    # Each resumed process replayed the checkpoint's history; every logged step is there once.
    client, _ = mlflow_runs(killed)
    logged = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
    assert sorted(logged) == list(range(10, 301, 10))


@pytest.mark.slow
def test_divergence_fails_the_stage_and_the_run(tmp_path, torch_home, fashion_mnist_dir):
    p = tiny_params()
    p["schedule"] = ["sigmoid"]
    p["train"].update(lr=1e4, warmup_steps=0, steps=40, checkpoint_every=2)
    repo, env = make_repo(tmp_path / "r", p, torch_home)
    out = sh("dvc repro", repo, env, check=False)
    assert out.returncode != 0
    assert re.search(r"training diverged: schedule 'sigmoid', step 3: (loss|gradient norm) is (nan|inf)", out.stdout + out.stderr)
    state = torch.load(repo / "models/sigmoid/checkpoint.pt", weights_only=True)
    assert state["step"] == 2 and all(torch.isfinite(t).all() for t in state["model"].values())
    assert not (repo / "samples").exists() and not (repo / "metrics/evaluate.json").exists()
    _, runs = mlflow_runs(repo)
    assert [r.info.status for r in runs if r.info.run_name == "sigmoid"] == ["FAILED"]


BAD_CLI = [
    ("schedule", "exponential", "schedule: invalid value 'exponential'"),
    ("train.batch_size", 0, "train.batch_size: invalid value 0; expected an integer > 0"),
    ("device", "tpu", "device: invalid value 'tpu'; expected one of auto, cpu, cuda"),
    ("data.dataset", "svhn", "data.dataset: invalid value 'svhn'; expected one of fashion_mnist, mnist, cifar10"),
]


@pytest.mark.parametrize("key,value,line", BAD_CLI)
def test_bad_param_exits_before_any_work_and_keeps_outputs(tmp_path, key, value, line):
    p = tiny_params()
    section, _, leaf = key.rpartition(".")
    (p[section] if section else p)[leaf] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics/train.json").write_text("{\"earlier\": 1}")
    start = time.time()
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "train"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 1
    lines = [s for s in out.stderr.splitlines() if s.strip()]
    assert len(lines) == 1 and line in lines[0], out.stderr
    assert time.time() - start < 30
    assert (tmp_path / "metrics/train.json").read_text() == "{\"earlier\": 1}"
    assert not (tmp_path / "data").exists() and not (tmp_path / "models").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_tracking_server_fails_within_seconds(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    uri = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    start = time.time()
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "train"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 1 and uri in out.stderr and "unreachable" in out.stderr
    assert time.time() - start < 30
    assert not (tmp_path / "models").exists()


def test_crash_mid_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "metrics.json"
    write_text(target, "good\n")
    with pytest.raises(ZeroDivisionError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            1 / 0
    assert target.read_text() == "good\n" and list(tmp_path.iterdir()) == [target]
    # A process killed by SIGKILL in the middle of a write.
    code = (
        "import sys, time; sys.path.insert(0, %r)\n"
        "from ddpm_study.files import atomic_path\n"
        "with atomic_path(%r) as tmp:\n"
        "    f = open(tmp, 'w'); f.write('partial'); f.flush(); print('writing', flush=True); time.sleep(60)\n"
    ) % (str(ROOT / "src"), str(target))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert target.read_text() == "good\n"


@pytest.mark.slow
def test_queued_experiments_run_in_parallel_into_one_store(tmp_path, torch_home, fashion_mnist_dir):
    repo, env = make_repo(tmp_path / "q", tiny_params(), torch_home)
    sh("dvc repro prepare", repo, env)
    sh("git add -A && git commit -qm prepared", repo, env)
    sh("dvc exp run --queue -n q-linear -S schedule=linear", repo, env)
    sh("dvc exp run --queue -n q-cosine -S schedule=cosine", repo, env)
    status = run_queue(repo, env, jobs=2)
    assert status.count("Success") == 2, status
    shown = json.dumps(json.loads(sh("dvc exp show --json", repo, env).stdout))
    assert "q-linear" in shown and "q-cosine" in shown
    _, runs = mlflow_runs(repo)
    finished = {r.info.run_name: r for r in runs if r.info.status == "FINISHED"}
    for name in ("q-linear-linear", "q-cosine-cosine"):
        assert name in finished and "fid" in finished[name].data.metrics, sorted(finished)
    assert not list((repo / ".dvc/tmp").rglob("mlflow.db")), "a queued run wrote to a store of its own"


def listening_addresses(port: int) -> set[str]:
    """Local addresses listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.split(":")
            if int(p, 16) == port and state == "0A":  # 0A = LISTEN
                found.add(addr)
    return found


def documented_ui_command() -> list[str]:
    """The `mlflow ui` command of the README's "What users do with it", as a user would copy it."""
    (command,) = re.findall(r"^3\. \*\*`(mlflow ui [^`]*)`\*\*", (ROOT / "README.md").read_text(), re.M)
    return command.split()


@contextmanager
def documented_ui(cwd: Path, env: Optional[dict] = None) -> Iterator[int]:
    """The README's `mlflow ui` command started in ``cwd`` on a free port; yields the port once it listens."""
    command = documented_ui_command()
    assert command[:2] == ["mlflow", "ui"] and "--host" in command and "0.0.0.0" not in command
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", *command, "--port", str(port)], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while not listening_addresses(port):
            assert proc.poll() is None and time.time() < deadline, "mlflow ui did not start"
            time.sleep(0.5)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.slow  # starts a server (~15 s)
def test_documented_mlflow_ui_binds_to_loopback_and_shows_the_runs(tmp_path, monkeypatch):
    """The README's command, run from a project root whose store the pipeline's own tracking code
    wrote: it listens on 127.0.0.1 only, and its REST API serves the study's experiment and run."""
    from ddpm_study.config import StudyConfig
    from pipeline import tracking

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    cfg = StudyConfig.from_dict(tiny_params())
    with tracking.schedule_run(cfg, "cosine") as run:
        run.log_metrics({"fid": 42.0})
    with documented_ui(tmp_path) as port:
        assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1 only
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search", method="POST",
                                         data=json.dumps({"experiment_ids": [run.client.get_experiment_by_name(
                                             cfg.tracking.experiment).experiment_id]}).encode(),
                                         headers={"Content-Type": "application/json"})
        served = json.loads(urllib.request.urlopen(request, timeout=30).read())["runs"]
        cosine = next(r for r in served if r["info"]["run_name"] == "cosine")
        assert {"key": "fid", "value": 42.0} in [{k: m[k] for k in ("key", "value")} for m in cosine["data"]["metrics"]]
