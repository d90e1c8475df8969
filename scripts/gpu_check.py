"""What scripts/gpu_check.sh runs: each check in turn, whatever the others did, into one JSON.

checks: the machine (torch, CUDA, GPU name); ``pytest -m gpu`` (tests/test_gpu.py and the DDP GPU test), test
by test; ``benchmarks/speed.py --device cuda`` (its JSON kept: the measured rates the GPU configurations'
time estimates in docs/operations.md are to be replaced with); and, where ``dvc`` and ``mlflow`` import, the
quick study on two schedules (``dvc exp run`` in a scratch copy). ``passed`` is true when every check that
ran passed; a check that could not run says why (``skipped``) and counts as not passed.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["-S", "schedule=[linear,cosine]", "-S", "device=cuda", "-S", "train.steps=200", "-S", "train.log_every=20",
         "-S", "train.checkpoint_every=100", "-S", "sample.num_images=200", "-S", "sample.steps=20",
         "-S", "evaluate.kid_subset_size=100", "-S", "sweep.num_images=100", "-S", "sweep.batch_size=100",
         "-S", "sweep.nfe=[10,20]"]


def run(cmd: list[str], cwd: Path = ROOT, timeout: int = 1800) -> dict:
    start = time.time()
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
        return {"cmd": " ".join(cmd), "rc": p.returncode, "seconds": round(time.time() - start, 1),
                "tail": (p.stdout + p.stderr)[-3000:]}
    except subprocess.TimeoutExpired:
        return {"cmd": " ".join(cmd), "rc": 124, "seconds": round(time.time() - start, 1), "tail": "timed out"}


def machine() -> dict:
    import torch

    info = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info |= {"gpu": torch.cuda.get_device_name(0), "cuda": torch.version.cuda,
                 "cudnn": torch.backends.cudnn.version(), "bf16": torch.cuda.is_bf16_supported()}
    return info


def tests() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        result = run([sys.executable, "-m", "pytest", "-m", "gpu", "-p", "no:cacheprovider", "-q",
                      f"--junitxml={xml}", "tests/test_gpu.py", "tests/test_distributed.py"])
        cases = {}
        if xml.is_file():
            for case in ET.parse(xml).getroot().iter("testcase"):
                outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
                cases[f"{case.get('classname')}::{case.get('name')}"] = outcome
    ok = result["rc"] == 0 and bool(cases) and all(v == "passed" for v in cases.values())
    return {"passed": ok, "cases": cases, **result}


def speed() -> dict:
    missing = [m for m in ("typer", "torch_fidelity", "yaml") if importlib.util.find_spec(m) is None]
    if missing:
        return {"passed": False, "skipped": f"missing: {', '.join(missing)} (bash scripts/gpu_wheels.sh, carry wheels/)"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speed.json"
        result = run([sys.executable, "benchmarks/speed.py", "--device", "cuda", "--out", str(out)])
        measured = json.loads(out.read_text()) if out.is_file() else None
    return {"passed": result["rc"] == 0 and measured is not None, "measured": measured, **result}


def study() -> dict:
    missing = [m for m in ("dvc", "mlflow", "torch_fidelity") if importlib.util.find_spec(m) is None]
    if missing or shutil.which("git") is None:
        return {"passed": False, "skipped": f"missing: {', '.join(missing or ['git'])}: the quick study needs the "
                                            "project installed (pip install -e .)"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "project"
        shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(".venv", "wheels", "torch-home", ".git"))
        for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "-c", "user.email=ci@x", "-c", "user.name=ci",
                                                                       "commit", "-qm", "snapshot"]):
            subprocess.run(cmd, cwd=work, check=True)
        result = run(["dvc", "exp", "run", "-n", "gpu-quick", *QUICK], cwd=work, timeout=3000)
        metrics = work / "metrics" / "evaluate.json"
        return {"passed": result["rc"] == 0, "evaluate": json.loads(metrics.read_text()) if metrics.is_file() else None,
                **result}


def main(out: str) -> int:
    report = {"machine": machine()}
    for name, check in (("tests", tests), ("speed", speed), ("study", study)):
        print(f"gpu_check: {name} ...", flush=True)
        try:
            report[name] = check()
        except Exception as err:  # one broken check must not hide the others
            report[name] = {"passed": False, "error": f"{type(err).__name__}: {err}"}
        print(f"gpu_check: {name}: {'passed' if report[name]['passed'] else 'NOT passed'}", flush=True)
    report["passed"] = report["machine"]["cuda_available"] and all(report[k]["passed"] for k in ("tests", "speed", "study"))
    Path(out).write_text(json.dumps(report, indent=2))
    print(f"gpu_check: wrote {out}; passed: {report['passed']}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "gpu_check.json"))
