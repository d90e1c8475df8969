"""Stage `score_sweep`: FID/KID of every sweep cell with jackknife spreads, floor and ceilings at its N (``scoring``)."""

from __future__ import annotations

from pathlib import Path

from ddpm_study.config import StudyConfig
from ddpm_study.runtime import setup_device

from .. import outputs, records, scoring, tracking
from ..console import console


def run(cfg: StudyConfig, params: Path) -> None:
    tracking.check_reachable(tracking.tracking_uri(cfg))
    device = setup_device(cfg.device, cfg.reproducible)
    sw = cfg.sweep
    ref = outputs.read_reference()
    floor = ref.floor[: sw.num_images]
    cells = outputs.sweep_grid(sw)
    # A cell's jackknife groups follow its place in the full grid (every sampler at every budget), so dropping
    # some budgets of some samplers leaves the other cells' spreads as they were.
    grid = outputs.sweep_cells(sw.samplers, sw.all_budgets, sw.guidance)
    console.print(f"jackknife ({cfg.evaluate.jackknife_groups} groups) per cell, floor and trivial generators")
    # Across cells: every cell of a schedule shares its x_T, so one jackknife per schedule pairs each cell with the
    # baseline (DDPM at sweep.baseline_nfe) and says which cheaper settings match it within noise.
    baseline = outputs.baseline_cell(sw, outputs.main_guidance(cfg.sample.guidance, sw.guidance))
    versus = {}
    if baseline is not None:
        for i, name in enumerate(cfg.schedule):
            at_w = [c for c in cells if c.guidance == baseline.guidance]
            jack = scoring.jackknifed(cfg, {c: outputs.read_sweep_array(name, c, "features") for c in at_w},
                                      ref.reference, stream=scoring.SWEEP_BASELINE_STREAMS + i)
            versus[name] = {c: jack.compare(c, baseline) for c in at_w}
    result = outputs.SweepMetrics(
        num_images=sw.num_images,
        jackknife_groups=cfg.evaluate.jackknife_groups,
        eta=sw.eta,
        real_vs_real=scoring.real_vs_real(cfg, floor, ref.reference),
        ceilings=scoring.ceilings(cfg, sw.num_images, ref.reference, device),
        cells={cell: scoring.with_spreads(
            cfg, {name: outputs.read_sweep_array(name, cell, "features") for name in cfg.schedule},
            ref.reference, stream=scoring.SWEEP_STREAMS + grid.index(cell)) for cell in cells},
        baseline=baseline, versus_baseline=versus,
    )
    outputs.write_sweep_metrics(result, cfg.schedule, sw.samplers)
    for name in cfg.schedule:
        with records.schedule_run(cfg, name, "score_sweep") as run:
            records.record_score_sweep(run, name)
    for cell in cells:
        line = "  ".join(f"{n} {result.cells[cell].scores[n].fid:.1f}" for n in cfg.schedule)
        console.print(f"{cell.setting} {cell.nfe:>4} NFE: FID {line}")
