"""The samplers' committed experiment (issue 28): long SDE/ODE sweeps, the timestep-spacing axis, the start bound
(sigma_max), and the x0 error an eps-model implies at each noise level — on the committed models.

Every cell samples the sweep's N (``sweep.num_images``) from the sweep's x_T (seed ``seed``) and is scored as
`score_sweep` scores a cell, in one paired jackknife per schedule together with the sweep's own cells it is read
against (DDPM at the sweep's largest NFE, and each sampler's default-spacing cell at the same NFE), so every
difference has its paired std. Sampling is cached per cell under .cache/sampler_study/ (git-ignored), so an
interrupted run resumes; ``--score`` (after `dvc repro sweep`) scores and writes benchmarks/sampler_study.json,
the figure and the write-up reports/samplers/README.md.

    python benchmarks/sampler_study.py            # sample the missing cells (about 45 min on 2 CPU cores)
    python benchmarks/sampler_study.py --score    # score, write the JSON and the write-up (about 5 min)
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from ddpm_study import metrics, sampling  # noqa: E402
from ddpm_study.samplers import model_calls, reverse_process, steps_within  # noqa: E402
from pipeline import checkpoints, outputs, params, scoring  # noqa: E402

CACHE = ROOT / ".cache" / "sampler_study"
RESULTS = ROOT / "benchmarks" / "sampler_study.json"
REPORT_DIR = ROOT / "reports" / "samplers"
STREAM = 9100
EDM_SIGMA_MAX = 80.0                 # Karras et al. 2022, generate.py
DPM_SIGMA_MAX = round(math.exp(5.1))  # lambda >= -5.1 (DPM-Solver's recommendation for cosine models): sigma <= 164

# Heun at 1000 steps (1999 NFE, about 7 min of sampling per schedule on an idle 2-core CPU) is left out for time;
# whether it has converged is read from 100 against 250 steps (199 against 499 NFE).
LONG_STEPS = {"sde": (100, 250, 1000), "ode": (100, 250)}
LONG_SCHEDULES = ("linear", "cosine")
SPACING_SAMPLERS, SPACINGS, SPACING_NFE = ("ddpm", "ddim", "dpmpp2m", "ode_clip"), ("leading", "trailing", "quadratic", "karras"), 10
# Without a bound the sweep's own cells are the reference; the unclipped ODE, which the sweep does not run, gets
# its unbounded cell here.
START_SAMPLERS, START_SIGMAS, START_NFE = ("ddim", "dpmpp2m", "ode", "ode_clip"), (EDM_SIGMA_MAX, DPM_SIGMA_MAX), (10,)
UNBOUNDED_HERE = ("ode",)
X0_TIMESTEPS, X0_IMAGES = 40, 256
LARGE_BETAS = (0.05, 0.2)  # counted per schedule: the steps Euler-Maruyama takes at beta_t above these


@dataclass(frozen=True)
class Cell:
    part: str  # long | spacing | start
    sampler: str
    steps: int
    spacing: str = "linspace"
    sigma_max: float = 0.0
    budget: int = 0  # the NFE budget of the sweep cell it is read against (0: none)

    @property
    def key(self) -> str:
        return f"{self.part}_{self.sampler}_{self.spacing}_{self.steps}_s{self.sigma_max:g}"

    @property
    def nfe(self) -> int:
        return model_calls(self.sampler, self.steps)


def cells_of(schedule: str) -> list[Cell]:
    cells = [Cell("long", s, k) for s, ks in LONG_STEPS.items() for k in ks if schedule in LONG_SCHEDULES]
    # Karras' rho = 7 in sigma, from EDM's sigma_max (cosine's sigma_T = 2e4 repeats timesteps at 10 steps without it).
    cells += [Cell("spacing", s, steps_within(s, SPACING_NFE), sp, EDM_SIGMA_MAX if sp == "karras" else 0.0,
                   SPACING_NFE) for s in SPACING_SAMPLERS for sp in SPACINGS]
    cells += [Cell("start", s, steps_within(s, n), "linspace", sig, n) for s in START_SAMPLERS for n in START_NFE
              for sig in ((0.0, *START_SIGMAS) if s in UNBOUNDED_HERE else START_SIGMAS)]
    return cells


def cached(schedule: str, cell: Cell) -> Path:
    return CACHE / schedule / f"{cell.key}.npy"


def sample(cfg) -> None:
    """Every missing cell, the cheap parts first (all schedules), the long sweeps last."""
    sw, device = cfg.sweep, torch.device("cpu")
    order = {"spacing": 0, "start": 1, "long": 2}
    todo = sorted(((name, c) for name in cfg.schedule for c in cells_of(name) if not cached(name, c).exists()),
                  key=lambda nc: (order[nc[1].part], nc[1].nfe))
    loaded = {}
    for name, cell in todo:
        if name not in loaded:
            loaded[name] = checkpoints.load(cfg, name, device)
        model, diffusion = loaded[name]
        start = time.perf_counter()
        process = reverse_process(diffusion, cell.steps, cell.spacing, cell.sigma_max)
        images = sampling.generate(model, process, num_images=sw.num_images, batch_size=sw.batch_size,
                                   image_shape=cfg.image_shape, seed=cfg.seed, device=device, sampler=cell.sampler,
                                   eta=0.0, trajectory_images=1, trajectory_frames=2).images
        feats = metrics.inception_features(images, cfg.evaluate.batch_size, device).numpy()
        path = cached(name, cell)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, feats)
        meta = {"t_start": int(process.timestep_map[-1]), "seconds": time.perf_counter() - start}
        path.with_suffix(".json").write_text(json.dumps(meta))
        print(f"{name} {cell.key}: NFE {cell.nfe}, from t = {meta['t_start']}, {meta['seconds']:.0f} s", flush=True)


@torch.no_grad()
def x0_errors(cfg, name: str) -> list[dict]:
    """RMS errors of the eps-model's eps and of the x0 it implies, x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar), on
    test images at timesteps spread over [0, T); the x0 error is the eps error times sigma = sqrt((1 - abar) / abar)."""
    model, diffusion = checkpoints.load(cfg, name, torch.device("cpu"))
    x0 = torch.from_numpy(outputs.read_prepared("test_images")[:X0_IMAGES]).float() / 127.5 - 1
    gen = torch.Generator().manual_seed(cfg.seed)
    eps = torch.randn(x0.shape, generator=gen)
    T = diffusion.num_timesteps
    rows = []
    for t_int in np.unique(np.round(np.linspace(0, T - 1, X0_TIMESTEPS)).astype(int)):
        t = torch.full((len(x0),), int(t_int), dtype=torch.long)
        x_t = diffusion.q_sample(x0, t, eps)
        eps_hat, x0_hat = diffusion.predict_eps_x0(model, x_t, t)
        a = float(diffusion.alphas_cumprod_np[t_int])
        rows.append({"t": int(t_int), "sigma": math.sqrt((1 - a) / a),
                     "eps_rms": float((eps_hat - eps).pow(2).mean().sqrt()),
                     "x0_rms": float((x0_hat - x0).pow(2).mean().sqrt()),
                     "x0_clipped_rms": float((x0_hat.clamp(-1, 1) - x0).pow(2).mean().sqrt()),
                     "x0_out_of_range": float((x0_hat.abs() > 1).float().mean())})
    return rows


def score(cfg) -> dict:
    sw = cfg.sweep
    ref = outputs.read_reference()
    top = sw.baseline_budget
    result = {"num_images": sw.num_images, "baseline": f"ddpm_{top}", "schedules": {}}
    for name in cfg.schedule:
        cells = [c for c in cells_of(name) if cached(name, c).exists()]
        missing = [c for c in cells_of(name) if not cached(name, c).exists()]
        if any(c.part != "long" for c in missing):
            raise SystemExit(f"{name}: {len(missing)} cells not sampled yet (first: {missing[0].key}); run without --score")
        # The long sweeps are the slow part: a session that stops sampling early scores the lengths it has and
        # the write-up lists the rest as not run (a later run resumes them from the cache).
        result.setdefault("not_run", []).extend(f"{name} {c.sampler.upper()} {c.steps} steps" for c in missing)
        feats = {c.key: np.load(cached(name, c)) for c in cells}
        # The sweep's cells this experiment is read against: its baseline (DDPM at sweep.baseline_nfe) and every
        # default-spacing cell.
        sweep_keys = {f"sweep_{cell.key}": cell for cell in outputs.sweep_grid(sw)}
        feats.update({k: outputs.read_sweep_array(name, cell, "features") for k, cell in sweep_keys.items()})
        jack = scoring.jackknifed(cfg, feats, ref.reference, stream=STREAM)
        base = f"sweep_ddpm_{top}"
        rows, previous = [], {}
        for c in cells:
            meta = json.loads(cached(name, c).with_suffix(".json").read_text())
            default = f"sweep_{outputs.Cell(c.sampler, c.budget).key}" if c.budget else None
            if c.part == "start" and c.sampler in UNBOUNDED_HERE and c.sigma_max:  # its unbounded cell is here
                default = Cell("start", c.sampler, c.steps, "linspace", 0.0, c.budget).key
            row = {**asdict(c), "nfe": c.nfe, "fid": jack.fid[c.key], "fid_std": jack.std(c.key), **meta,
                   "vs_baseline": asdict(jack.compare(c.key, base))}
            if default in jack.fid:
                row["vs_linspace"] = asdict(jack.compare(c.key, default))
            if c.part == "long" and c.sampler in previous:  # convergence: against the same sampler's previous length
                row["vs_previous"] = {"steps": previous[c.sampler].steps,
                                      **asdict(jack.compare(c.key, previous[c.sampler].key))}
            if c.part == "long":
                previous[c.sampler] = c
            rows.append(row)
        swept = [{"sampler": cell.sampler, "nfe": cell.nfe, "steps": steps_within(cell.sampler, cell.nfe),
                  "fid": jack.fid[k], "fid_std": jack.std(k)} for k, cell in sweep_keys.items()]
        # Euler-Maruyama linearises each step of the reverse SDE; with the chain's own betas its step is beta_t
        # (beta(t) dt at T steps), so the steps where beta_t is not small are where it cannot be accurate.
        betas = cfg.betas(name)
        result["schedules"][name] = {"cells": rows, "sweep": swept, "x0_error": x0_errors(cfg, name),
                                     "betas": {"max": float(betas.max()),
                                               **{f"above_{b:g}": int((betas > b).sum()) for b in LARGE_BETAS}}}
        print(f"{name}: scored {len(rows)} cells", flush=True)
    return result


def main(score_only: bool = typer.Option(False, "--score", help="score the sampled cells and write the results")):
    cfg = params.load(ROOT / "params.yaml")
    if not score_only:
        sample(cfg)
        return
    result = score(cfg)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    from sampler_study_report import write_report  # noqa: E402  (beside this file)

    write_report(cfg, result, REPORT_DIR)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    typer.run(main)
