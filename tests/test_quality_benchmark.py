"""The equal-wall-time quality benchmark (benchmarks/quality.py) runs end to end with both peers.

Its FIDs are not asserted (they live in the committed benchmarks/quality.json); this checks that every
recipe trains, samples and is scored the project's way, and that bad arguments stop it before any work."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_benchmark(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "benchmarks/quality.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_a_run_faster_than_the_predicted_set_up_does_not_ask_for_a_million_steps(monkeypatch):
    """train_for on a scripted clock: calibration says 0.45 s of set-up, then the first run takes 0.1 s in all."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import quality

    clock, asked = iter([0.50, 0.55, 0.10, 0.60]), []
    monkeypatch.setattr(quality, "timed", lambda fn, device: (fn(), next(clock)))
    _, attempts = quality.train_for(lambda steps: asked.append(steps) or steps, budget_s=0.6, calibration_steps=1,
                                    tolerance=0, max_attempts=2, device=None)
    assert asked[:3] == [1, 2, 3]  # step 0.055 s (a fifth of the 2-step run's mean), set-up 0.445 s
    # The retry: at least a fifth of the 0.1-s run is its 3 steps (0.0067 s each), so 23 steps, not 0.155 / 3e-7.
    assert asked[3] == 23 and [a["steps"] for a in attempts] == [3, 23]


@pytest.mark.slow
def test_quality_benchmark_trains_samples_and_scores_every_recipe(tmp_path, torch_home):
    out, grids = tmp_path / "quality.json", tmp_path / "grids"
    run = run_benchmark("--out", str(out), "--grids", str(grids), "--minutes", "0.05", "--images", "20", "--calls", "2",
                        "--calibration-steps", "1", "--tolerance", "0", "--max-attempts", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert list(result["contenders"]) == ["ours", "ours-peer", "diffusers", "ddp"]
    assert result["setting"]["images"] == 20 and result["setting"]["calls"] == 2
    floor = result["floor"]
    for name, row in result["contenders"].items():
        assert row["steps"] >= 1 and row["train_s"] > 0 and row["sample_s"] > 0, name
        assert row["images_seen"] == row["steps"] * result["setting"]["batch"]
        # Tolerance 0: every contender is trained twice, and the run kept (last) is the one closer to the budget.
        budget, (first, kept) = result["setting"]["budget_s"], row["attempts"]
        assert (kept["steps"], kept["train_s"]) == (row["steps"], row["train_s"])
        assert abs(kept["train_s"] - budget) <= abs(first["train_s"] - budget)
        assert math.isfinite(row["fid"]) and row["fid_std"] > 0, name
        # A few steps of training make noise-like samples: far above two real splits' FID (a broken
        # sampler returning real or blank images would not be).
        assert row["fid"] > floor["fid"] + 3 * (row["fid_std"] + floor["fid_std"]), name
        assert (grids / f"{name}.png").is_file()
        assert ("minus_ours" in row) == (name != "ours")
    for name in ("ours-peer", "diffusers", "ddp"):
        diff = result["contenders"][name]["minus_ours"]
        assert diff["diff"] == pytest.approx(result["contenders"][name]["fid"] - result["contenders"]["ours"]["fid"])
    assert "| ours | " in run.stdout and "| ddp | " in run.stdout


@pytest.mark.parametrize("args, names", [
    (["--contenders", "ours,imagen"], ["--contenders", "'imagen'", "ours, ours-peer, diffusers, ddp"]),
    (["--calls", "0"], ["--calls", "1..1000"]),
    (["--images", "40000"], ["--images", "10..30000"]),
])
def test_quality_benchmark_refuses_bad_arguments_before_any_work(tmp_path, args, names):
    out = tmp_path / "quality.json"
    run = run_benchmark("--out", str(out), "--grids", str(tmp_path / "grids"), *args, timeout=120)
    assert run.returncode != 0
    message = " ".join(run.stderr.replace("│", " ").split())  # rich wraps the message in a box
    assert all(name in message for name in names), message
    assert not out.exists() and not (tmp_path / "grids").exists()
