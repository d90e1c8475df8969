"""Stage `extended_report` (extended study): reports/extended/ — tables, heatmaps, figures and findings
from the extended study's metrics (``writeup.extended``); logged to this configuration's MLflow
execution run, the curves along training and seeds as metric steps."""

from __future__ import annotations

import json
from pathlib import Path

from ddpm_study.config import StudyConfig
from ddpm_study.files import write_text

from .. import outputs, tracking
from ..writeup import extended

DDIM_VARIANTS = Path("benchmarks/ddim_variants.json")  # written by benchmarks/ddim_variants.py


def run(cfg: StudyConfig, params: Path) -> None:
    tracking.check_reachable(tracking.tracking_uri(cfg))
    outputs.EXTENDED_REPORT_DIR.mkdir(parents=True, exist_ok=True)
    x = extended.Inputs(cfg=cfg, seeds=outputs.read_seeds_metrics(), undertraining=outputs.read_undertraining_metrics(),
                        cross=outputs.read_cross_metrics(), ddim_variants=json.loads(DDIM_VARIANTS.read_text()))
    write_text(outputs.EXTENDED_REPORT, extended.write_up(x))
    with tracking.execution_run(cfg) as run:
        u = x.undertraining
        for step in u.snapshots:
            snap = u.cells[step]
            run.log_metrics({f"extended/undertraining/{c.key}/fid": f.fid for c, f in snap.cells.items()}
                            | {"extended/undertraining/final_loss": snap.final_loss}, step=step)
        for i, seed in enumerate(x.seeds.seeds):
            run.log_metrics({f"extended/seeds/{n}/fid": f[i] for n, f in x.seeds.fid.items()}, step=seed)
        run.log_metrics({f"extended/cross/{cell.key}/{a}__{b}/fid": v for cell, s in x.cross.settings.items()
                         for a, row in s.fid.items() for b, v in row.items()})
        run.log_artifacts(sorted(outputs.EXTENDED_REPORT_DIR.iterdir()), "extended_report")
