"""The speed benchmark (benchmarks/speed.py) runs end to end, peers included, and measures like for like.

Its numbers are not asserted here (speed targets live in the benchmark's committed results, not in
timed tests): this checks that the command works and that what it compares is comparable."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_speed_benchmark_runs_with_both_peers_and_compares_like_for_like(tmp_path, torch_home):
    out = tmp_path / "speed.json"
    run = subprocess.run([sys.executable, "benchmarks/speed.py", "--out", str(out), "--steps", "1", "--repeats", "2",
                          "--inception-images", "4"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    precisions = set(result["matmul_gflops"])
    assert {"fp32"} <= precisions and all(rate > 0 for rate in result["matmul_gflops"].values())
    names = {key.rsplit(" ", 1)[0] for key in result["models"]}
    assert names == {"ours-peer", "ours-default", "diffusers", "ddp"}
    assert {key.rsplit(" ", 1)[1] for key in result["models"]} == precisions
    peer, theirs = result["models"]["ours-peer fp32"], result["models"]["diffusers fp32"]
    # The same architecture at the same size: equal parameters, FLOPs within 1 % (attention counted in both).
    assert peer["params"] == theirs["params"]
    assert abs(peer["forward_gflop_per_image"] / theirs["forward_gflop_per_image"] - 1) < 0.01
    assert all(row["train_images_per_s"] > 0 and row["sample_images_steps_per_s"] > 0 for row in result["models"].values())
    for key, row in result["models"].items():
        # Every repeat timed every model; on the CPU, the profiled share of a training step in the
        # convolution kernels is a fraction (the rest: norms, activations, optimizer, EMA, Python).
        assert len(row["train_images_per_s_repeats"]) == len(row["sample_images_steps_per_s_repeats"]) == 2, key
        assert 0 < row["train_conv_share"] < 1 and 0 < row["sample_conv_share"] < 1 and row["conv_fraction_of_matmul"] > 0, key
    assert result["inception"]["max_rel_diff"] <= 1e-4
    assert "| ours-peer | fp32 |" in run.stdout and "Inception features" in run.stdout
