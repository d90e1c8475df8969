"""Stage `report`: the study write-up in reports/main/ — protocol, tables with spreads, figures, conclusions.

Reads the other stages' outputs (``outputs``) and the committed spread benchmark; the figures,
tables and text are ``writeup``'s. Closes this execution's MLflow runs, filled with everything
upstream, and logs the write-up to the parent run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ddpm_study.config import StudyConfig
from ddpm_study.files import atomic_path, write_text

from .. import baseline, outputs, records
from ..params import parse
from ..writeup import figures, tables, text

SPREAD_BENCHMARK = Path("benchmarks/spread_vs_redraws.json")  # written by benchmarks/spread_vs_redraws.py


def verdict_benchmark(n: int) -> Path:
    """The verdict rule's measured error rates at N = n (written by benchmarks/verdict_rates.py)."""
    return Path(f"benchmarks/verdict_rates_n{n}.json")


def _copy(src: Path, name: str) -> None:
    with atomic_path(outputs.REPORT_DIR / name) as tmp:
        shutil.copyfile(src, tmp)


def run(cfg: StudyConfig, params: Path) -> None:
    outputs.REPORT_DIR.mkdir(parents=True, exist_ok=True)
    names = list(cfg.schedule)
    sweep = outputs.read_sweep_metrics()
    w = tables.main_guidance(cfg)
    committed = baseline.committed()
    evaluate = outputs.read_evaluate_metrics()
    rates = verdict_benchmark(evaluate.num_images)
    inputs = text.Inputs(
        cfg=cfg,
        train=outputs.read_train_metrics(),
        evaluate=evaluate,
        sweep=sweep,
        samples={n: outputs.read_sample_info(n) for n in names},
        likelihood=outputs.read_likelihood_metrics(),
        baseline=committed,
        baseline_differs=tuple(committed.differs_from(parse(params))) if committed else (),
        spread_ratios=tables.spread_ratios(json.loads(SPREAD_BENCHMARK.read_text())),
        verdict_rates=json.loads(rates.read_text()) if rates.exists() else None,
        figures=text.Figures(
            schedules=figures.schedule_figure(cfg),
            **dict(zip(("loss", "loss_by_timestep"), figures.loss_figures(cfg))),
            fid_vs_nfe=figures.sweep_figure(cfg, sweep, w),
            same_noise=figures.same_noise_figure(cfg),
            trajectory=figures.trajectory_figure(cfg, w),
            guidance=figures.guidance_figure(cfg, sweep, max(cfg.sweep.nfe)) if cfg.model.num_classes else "",
        ),
    )
    for table, name in ((tables.headline(cfg, inputs.train, inputs.evaluate), "results.csv"),
                        (tables.sweep(cfg, sweep)[2], "sweep.csv")):
        with atomic_path(outputs.REPORT_DIR / name) as tmp:
            table.to_csv(tmp, index=False)
    for name in names:
        grid, gif, forward = outputs.sample_pictures(name)
        _copy(grid, f"samples_{name}.png")
        _copy(gif, f"denoising_{name}.gif")
        _copy(forward, f"forward_{name}.png")
        if cfg.model.num_classes:
            _copy(outputs.class_grid(name), f"classes_{name}.png")
    write_text(outputs.REPORT, text.write_up(inputs))

    records.complete_schedule_runs(cfg, "report")
    records.record_execution(cfg)
