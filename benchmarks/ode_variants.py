"""The probability-flow ODE at few steps on the committed models: as it was (``ode``), on the clipped denoiser
(``ode_clip``), and on the clipped denoiser started no higher than EDM's sigma_max = 80 (Karras et al. 2022).

Every cell samples the sweep's N (``sweep.num_images``) from the sweep's x_T (seed ``seed``), on the sweep's
timestep spacing, and is scored as `score_sweep` scores a cell: FID against the reference split with its paired
jackknife std (``pipeline.scoring.jackknifed``). The sigma_max cap keeps only the training timesteps whose
sigma = sqrt((1 - abar) / abar) is at most 80 (the cosine schedule's last one is about 2e4, the linear's 157) and
respaces those; it starts from x_T ~ N(0, I) all the same, as EDM does. DDPM, DDIM and DPM-Solver++(2M) at the
same step counts come from metrics/sweep.json. Writes benchmarks/ode_variants.json.

    python benchmarks/ode_variants.py [--steps 10 --steps 20]    # from the project root, after `dvc repro`
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from ddpm_study import metrics, sampling  # noqa: E402
from ddpm_study.samplers import model_calls  # noqa: E402
from pipeline import checkpoints, outputs, params, scoring  # noqa: E402

SIGMA_MAX = 80.0
VARIANTS = {"ode": ("ode", None), "ode_clip": ("ode_clip", None), "ode_clip_sigma80": ("ode_clip", SIGMA_MAX)}


def capped(diffusion, sigma_max):
    """The process on its timesteps with sigma <= sigma_max (all of them when None)."""
    if sigma_max is None:
        return diffusion
    a = diffusion.alphas_cumprod_np
    keep = np.flatnonzero(np.sqrt((1 - a) / a) <= sigma_max)
    return diffusion.subsequence(keep)


def main(steps: list[int] = typer.Option([10, 20]), out: Path = typer.Option(ROOT / "benchmarks" / "ode_variants.json")):
    cfg = params.load(ROOT / "params.yaml")
    sw, device = cfg.sweep, torch.device("cpu")
    ref = outputs.read_reference()
    swept = outputs.read_sweep_metrics()
    rows = []
    for name in cfg.schedule:
        model, diffusion = checkpoints.load(cfg, name, device)
        feats = {}
        for k in steps:
            for variant, (sampler, sigma_max) in VARIANTS.items():
                process = capped(diffusion, sigma_max)
                spaced = process.respace(k, sw.spacing)
                images = sampling.generate(model, spaced, num_images=sw.num_images, batch_size=sw.batch_size,
                                           image_shape=cfg.image_shape, seed=cfg.seed, device=device, sampler=sampler,
                                           eta=0.0, trajectory_images=1, trajectory_frames=2).images
                feats[(variant, k)] = metrics.inception_features(images, cfg.evaluate.batch_size, device).numpy()
                print(f"{name} {variant} {k} steps: sampled from t = {int(spaced.timestep_map[-1])}", flush=True)
        jack = scoring.jackknifed(cfg, feats, ref.reference, stream=9000)
        for (variant, k), fid in jack.fid.items():
            rows.append({"schedule": name, "sampler": variant, "steps": k, "nfe": model_calls(VARIANTS[variant][0], k),
                         "fid": fid, "fid_std": jack.std((variant, k))})
        for sampler in sw.samplers:
            for k in steps:
                cell = swept.cells.get(outputs.Cell(sampler, k, 0.0))
                if cell is not None:
                    s = cell.scores[name]
                    rows.append({"schedule": name, "sampler": sampler, "steps": k, "nfe": model_calls(sampler, k),
                                 "fid": s.fid, "fid_std": s.fid_std})
    out.write_text(json.dumps({"num_images": sw.num_images, "sigma_max": SIGMA_MAX, "rows": rows}, indent=1) + "\n")
    import pandas as pd

    table = pd.DataFrame(rows).pivot_table(index=["sampler", "steps", "nfe"], columns="schedule", values="fid")
    print(table.round(1).to_string())


if __name__ == "__main__":
    typer.run(main)
