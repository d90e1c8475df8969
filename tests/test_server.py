"""The team tracking server, for real: `scripts/server.sh` starts Debian's PostgreSQL and `mlflow server`
(proxied artifacts), both on 127.0.0.1 only; the pipeline, run as two parallel queued experiments,
logs there; `stop` ends both and a second `start` finds the runs again."""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import ROOT, make_repo, run_queue, sh, tiny_params
from test_faults import free_port, listening_addresses

SERVER = ROOT / "scripts/server.sh"


@pytest.fixture
def server_dir():
    """A state folder PostgreSQL's system user can reach (pytest's own temporary folders are private
    to root when the tests run as root)."""
    folder = Path(tempfile.mkdtemp(prefix="ddpm-server-"))
    folder.chmod(0o755)
    yield folder / "state"
    shutil.rmtree(folder, ignore_errors=True)


def server(command: str, env: dict) -> subprocess.CompletedProcess:
    out = subprocess.run(["bash", str(SERVER), command], env=env, capture_output=True, text=True, timeout=600)
    if command != "status":
        assert out.returncode == 0, f"server.sh {command} failed:\n{out.stdout}\n{out.stderr}"
    return out


@pytest.mark.slow  # a PostgreSQL cluster, an MLflow server, two queued experiments (~3 min)
def test_queued_experiments_log_to_the_postgres_tracking_server(tmp_path, server_dir, torch_home, fashion_mnist_dir):
    pg_port, ml_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PG"))}
    env.update(SERVER_DIR=str(server_dir), PGPORT=str(pg_port), MLFLOW_PORT=str(ml_port))
    started = server("start", env)
    try:
        uri = f"http://127.0.0.1:{ml_port}"
        assert started.stdout.strip() == f"export MLFLOW_TRACKING_URI={uri}"
        assert listening_addresses(pg_port) == {"0100007F"} and listening_addresses(ml_port) == {"0100007F"}
        assert server("status", env).returncode == 0
        credentials = server_dir / "credentials"
        assert credentials.stat().st_mode & 0o077 == 0, "the generated password file is readable by others"
        assert credentials.read_text().strip() not in started.stdout + started.stderr

        repo, repo_env = make_repo(tmp_path / "team", tiny_params(), torch_home)
        repo_env["MLFLOW_TRACKING_URI"] = uri
        sh("dvc repro prepare", repo, repo_env)
        sh("git add -A && git commit -qm prepared", repo, repo_env)
        sh("dvc exp run --queue -n t-linear -S schedule=linear", repo, repo_env)
        sh("dvc exp run --queue -n t-cosine -S schedule=cosine", repo, repo_env)
        status = run_queue(repo, repo_env, jobs=2)
        assert status.count("Success") == 2, status + sh("dvc queue logs t-linear", repo, repo_env, check=False).stdout[-3000:]
        assert not (repo / "mlflow.db").exists(), "a stage wrote to the local sqlite store instead of the server"

        def check_runs():
            from mlflow.tracking import MlflowClient

            client = MlflowClient(uri)
            exp = client.get_experiment_by_name("ddpm-schedules")
            runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id], max_results=100)}
            for name in ("t-linear-linear", "t-cosine-cosine"):
                run = runs[name]
                assert run.info.status == "FINISHED" and "fid" in run.data.metrics, name
                assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri  # proxied
                local = client.download_artifacts(run.info.run_id, "samples/grid.png", str(tmp_path / name))
                assert Path(local).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            return runs

        runs = check_runs()
        # The artifacts went through the server into its own store, not to a path the client chose.
        assert list((server_dir / "artifacts").rglob("grid.png"))
        history = json.loads(sh("dvc exp show --json", repo, repo_env).stdout)
        assert "t-linear" in json.dumps(history) and len(runs) >= 3  # two schedule runs and their parents
    finally:
        server("stop", env)
    assert not listening_addresses(pg_port) and not listening_addresses(ml_port)
    assert server("status", env).returncode != 0
    # A restart serves the same runs from the same cluster.
    server("start", env)
    try:
        check_runs()
    finally:
        server("stop", env)
