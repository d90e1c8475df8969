"""Data-parallel training under torchrun, on the CPU with 2 gloo processes (the NCCL path is the same
code with one GPU per process: tests/test_gpu.py on a GPU machine).

- The library loop under torchrun equals one process with the same global batch: every logged loss
  (and per-timestep loss) and the final weights, to float tolerance (only the summation order of
  the gradient average differs).
- The real `train` stage with ``train.processes: 2``, killed with SIGKILL mid-run, resumes from rank
  0's checkpoint and ends with the weights of an uninterrupted 2-process run, bit for bit; MLflow
  holds every logged step once (rank 0 alone logs), and nothing the processes open listens beyond
  127.0.0.1.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import ROOT, make_repo, mlflow_runs, sh, tiny_params
from test_faults import checkpoint_step

LOOPBACK = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1 in /proc/net/tcp and tcp6

# The library's training loop on fixed random images; run as a script, with or without torchrun.
TRAIN_SCRIPT = r'''
import sys, torch
from pathlib import Path
from ddpm_study import distributed, training
from ddpm_study.config import ModelConfig, TrainConfig
from ddpm_study.diffusion import GaussianDiffusion

out, device = Path(sys.argv[1]), torch.device(sys.argv[2])
images = torch.randint(0, 256, (256, 1, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
model = ModelConfig(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_heads=2, norm_groups=4,
                    dropout=0.0, num_classes=0, class_embedding="multiply", prediction="eps")
train = TrainConfig(steps=12, batch_size=16, lr=1e-3, weight_decay=0.0, warmup_steps=2, grad_clip=1.0, ema_decay=0.9,
                    log_every=2, checkpoint_every=4, loss_buckets=4, cond_drop_prob=0.1, processes=1, precision="fp32")
betas = torch.linspace(1e-4, 0.02, 100, dtype=torch.float64).numpy()
with distributed.process_group(device) as device:
    result = training.train(schedule="linear", diffusion=GaussianDiffusion(betas), images=images, model_cfg=model,
                            train_cfg=train, seed=0, lineage={"test": 1}, device=device,
                            checkpoint_path=out / "checkpoint.pt")
    cpu = lambda d: {k: v.cpu() for k, v in d.items()}
    torch.save({"history": result.history, "model": cpu(result.state["model"]), "ema": cpu(result.state["ema"]),
                "world": distributed.world_size()}, out / f"result{distributed.rank()}.pt")
'''


def torchrun(folder: Path, cpu: bool = True) -> tuple[list[str], dict]:
    """The stage's own torchrun command for 2 processes, running the library from this checkout."""
    from pipeline.stages.train import torchrun as stage_torchrun

    cmd, env = stage_torchrun(2, folder, cpu=cpu)
    return cmd, {**env, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}


def compare_one_and_two_processes(tmp_path, device: str, rtol: float, atol: float) -> None:
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    cmd, env = torchrun(tmp_path, cpu=device == "cpu")
    subprocess.run([sys.executable, str(script), str(one), device], env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
                   check=True, capture_output=True)
    out = subprocess.run([*cmd, str(script), str(two), device], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    a, b, b1 = (torch.load(p, weights_only=True) for p in (one / "result0.pt", two / "result0.pt", two / "result1.pt"))
    assert (a["world"], b["world"]) == (1, 2)
    assert [r["step"] for r in a["history"]] == [r["step"] for r in b["history"]] == list(range(2, 13, 2))
    for ra, rb in zip(a["history"], b["history"]):
        for key, value in ra.items():
            if key not in ("images_per_s", "step", "lr") and value is not None:
                assert rb[key] == pytest.approx(value, rel=rtol, abs=atol), (ra["step"], key)
    for key in ("model", "ema"):
        for name, tensor in a[key].items():
            torch.testing.assert_close(b[key][name], tensor, rtol=10 * rtol, atol=10 * atol, msg=f"{key}.{name}")
            assert torch.equal(b[key][name], b1[key][name]), f"ranks disagree on {key}.{name}"
    # Both ranks log the global batch's loss (all-reduced), not their own half's.
    assert [r["loss"] for r in b1["history"]] == [r["loss"] for r in b["history"]]


@pytest.mark.slow  # two torchrun launches (~30 s)
def test_two_gloo_processes_equal_one_process_with_the_same_global_batch(tmp_path):
    compare_one_and_two_processes(tmp_path, "cpu", rtol=1e-5, atol=1e-6)


@pytest.mark.gpu
def test_two_nccl_processes_equal_one_process_with_the_same_global_batch(tmp_path):
    if torch.cuda.device_count() < 2:
        pytest.skip(f"needs 2 CUDA GPUs (this machine has {torch.cuda.device_count()})")
    # cuDNN's convolution algorithms differ from run to run more than the CPU's summation order.
    compare_one_and_two_processes(tmp_path, "cuda", rtol=1e-3, atol=1e-4)


def listening(pids: set[int]) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp* writes them) on which processes ``pids`` listen."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:  # the process ended meanwhile
            continue
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A = LISTEN
                found.add(fields[1].split(":")[0])
    return found


def process_tree(root: int) -> set[int]:
    pids, children = {root}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            pids.add(child)
            todo.append(child)
    return pids


@pytest.mark.slow  # three 2-process `dvc repro` runs of a tiny model (~2 min)
def test_killed_two_process_training_resumes_to_the_same_weights(tmp_path, torch_home, fashion_mnist_dir):
    import signal

    params = tiny_params()
    params["schedule"] = ["linear"]
    params["train"].update(steps=160, log_every=10, checkpoint_every=20, processes=2)
    killed, env = make_repo(tmp_path / "killed", params, torch_home)
    env["MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"] = "0.5"  # MLflow's system metrics, sampled during training
    log = open(killed / "repro.log", "w")
    proc = subprocess.Popen(["dvc", "repro", "train"], cwd=killed, env=env, start_new_session=True, stdout=log, stderr=log)
    ckpt, seen = killed / "models/linear/checkpoint.pt", set()
    deadline = time.time() + 600
    try:
        while checkpoint_step(ckpt) < 40:
            assert proc.poll() is None, (killed / "repro.log").read_text()[-3000:]
            assert time.time() < deadline, "checkpoint 40 not reached"
            seen |= listening(process_tree(proc.pid))
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    first = checkpoint_step(ckpt)
    assert 40 <= first < 160
    assert seen and seen <= LOOPBACK, f"the processes listened on {seen}, not only on 127.0.0.1"
    out = sh("dvc repro train", killed, env)
    assert "launching 2 processes" in out.stdout + out.stderr
    assert f"linear: resumed from step {first}" in out.stdout + out.stderr

    clean, env2 = make_repo(tmp_path / "clean", params, torch_home)
    sh("dvc repro train", clean, env2)
    a = torch.load(killed / "models/linear/checkpoint.pt", weights_only=True)
    b = torch.load(clean / "models/linear/checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 160
    for key in ("model", "ema"):
        for name in b[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name} differs after the kill"
    timeless = lambda rows: [{k: v for k, v in r.items() if k != "images_per_s"} for r in rows]  # noqa: E731
    assert timeless(a["history"]) == timeless(b["history"])
    # Rank 0 alone logged: one training run, every logged step once.
    client, runs = mlflow_runs(killed)
    (run,) = [r for r in runs if r.info.run_name == "linear"]
    logged = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
    assert sorted(logged) == list(range(10, 161, 10))
    assert run.data.params["train.processes"] == "2"
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= set(run.data.metrics)
