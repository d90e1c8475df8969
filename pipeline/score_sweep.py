"""Stage `score_sweep`: FID/KID of every sweep cell with jackknife spreads, floor and ceilings at its N."""

from __future__ import annotations

import pandas as pd

from ddpm_study.config import StudyConfig
from ddpm_study.files import atomic_path, write_json
from ddpm_study.runtime import resolve_device

from . import paths, tracking
from .evaluate import SWEEP_STREAMS, ceilings, real_vs_real, with_spreads
from .prepare import load_array
from .sweep import cells
from .ui import console


def run(cfg: StudyConfig) -> None:
    tracking.check_reachable(tracking.tracking_uri(cfg))
    device = resolve_device(cfg.device)
    sw = cfg.sweep
    reference = load_array(paths.REFERENCE_FEATURES)
    floor = load_array(paths.FLOOR_FEATURES)[: sw.num_images]
    console.print(f"jackknife ({cfg.evaluate.jackknife_groups} groups) per cell, floor and trivial generators")
    results: dict = {"num_images": sw.num_images, "jackknife_groups": cfg.evaluate.jackknife_groups, "eta": sw.eta,
                     "real_vs_real": real_vs_real(cfg, floor, reference),
                     "ceilings": ceilings(cfg, sw.num_images, reference, device), "cells": {}}
    for i, (sampler, steps) in enumerate(cells(cfg)):
        features = {name: load_array(paths.sweep_array(name, sampler, steps, "features")) for name in cfg.schedule}
        results["cells"][f"{sampler}_{steps}"] = with_spreads(cfg, features, reference, stream=SWEEP_STREAMS + i)

    for name in cfg.schedule:
        rows = list(tracking.sweep_rows(results, name))
        for sampler in sw.samplers:
            table = pd.DataFrame([{"steps": steps, **row} for s, steps, row in rows if s == sampler])
            with atomic_path(paths.sweep_plot(name, sampler)) as tmp:
                table.to_csv(tmp, sep="\t", index=False)
        with tracking.schedule_run(cfg, name, "score_sweep") as run:
            for sampler, steps, row in rows:  # MLflow's step axis is the number of sampling steps
                run.log_metrics({f"sweep/{sampler}/{k}": v for k, v in row.items()}, step=steps)
    write_json(paths.SWEEP_METRICS, results)
    for sampler, steps in cells(cfg):
        line = "  ".join(f"{n} {results['cells'][f'{sampler}_{steps}'][n]['fid']:.1f}" for n in cfg.schedule)
        console.print(f"{sampler} {steps:>4} steps: FID {line}")
