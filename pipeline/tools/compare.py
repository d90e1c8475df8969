"""``python -m pipeline.tools.compare A B --readme R``: not a stage (nor a `ddpm-study` command: pipeline/cli.py is
in every stage's code, and a new command there would make DVC rerun the study). Two committed runs of the study side by side, B against A.

A run is a folder holding the run's ``params.yaml`` and ``metrics/`` (evaluate.json, sweep.json and, where it
ran, likelihood.json), as reports/prediction/ keeps them. The comparison: the main setting per schedule (FID,
FID∞, precision, recall, bits/dim); every sweep cell's FID with its gap to the sweep's DDPM baseline cell; the
schedules' paired differences; and the sentences that read them. It is written between the
``<!-- compare:begin -->`` and ``<!-- compare:end -->`` lines of R (``--block NAME``: ``<!-- NAME:begin -->`` ...,
for a page with several comparisons), so no number in R is typed by hand.

Two runs that train different models share no samples, so a difference between runs is unpaired: the two
jackknife stds in quadrature, conservative since both share the reference split. A gap to DDPM and a difference
between schedules are paired within their run (the same noise, one jackknife).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Optional

import pandas as pd
import typer

from ddpm_study import samplers
from ddpm_study.config import StudyConfig
from ddpm_study.errors import StudyError

from .. import outputs, params
from ..cli import _fail
from ..console import console
from ..outputs import Cell, EvaluateMetrics, LikelihoodMetrics, Pair, SweepMetrics
from ..writeup import findings
from ..writeup.findings import marked, unpaired
from ..writeup.tables import markdown, verdict
from .readme import with_block

BLOCK = "compare"


def markers(name: str = BLOCK) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


MISSING = "–"  # a cell or schedule one of the runs has not got


@dataclass(frozen=True)
class Run:
    name: str  # the folder's name: the column label
    cfg: StudyConfig
    evaluate: EvaluateMetrics
    sweep: SweepMetrics
    likelihood: Optional[LikelihoodMetrics]


FROZEN_DEFAULTS = (("likelihood", "exact_terms", 0),)  # (section, key, the behaviour before the key existed)


def read_run(folder: Path) -> Run:
    """A committed run's params and metric files (read with the stages' own readers, inside the folder)."""
    if not (folder / outputs.PARAMS).is_file():
        raise StudyError(f"{folder}: no {outputs.PARAMS} (a run folder holds the run's {outputs.PARAMS} and "
                         f"{outputs.METRICS_DIR}/)")
    raw = params.parse(folder / outputs.PARAMS)
    # Keys added after a run was frozen, with the value that reproduces what that run did.
    for section, key, before in FROZEN_DEFAULTS:
        if isinstance(raw.get(section), dict):
            raw[section].setdefault(key, before)
    cfg = params._study(raw)  # what params.load validates, on the upgraded mapping
    with contextlib.chdir(folder):
        for need in (outputs.EVALUATE_METRICS, outputs.SWEEP_METRICS):
            if not need.is_file():
                raise StudyError(f"{folder}: no {need}")
        likelihood = outputs.read_likelihood_metrics() if outputs.LIKELIHOOD_METRICS.is_file() else None
        return Run(folder.name, cfg, outputs.read_evaluate_metrics(), outputs.read_sweep_metrics(), likelihood)


def shared_schedules(a: Run, b: Run) -> list[str]:
    return [n for n in a.cfg.schedule if n in b.cfg.schedule]


def cells(a: Run, b: Run) -> list[Cell]:
    """Every cell either run scored, in the registry's sampler order, then by NFE."""
    order = {name: i for i, name in enumerate(samplers.SAMPLERS)}
    return sorted(set(a.sweep.cells) | set(b.sweep.cells), key=lambda c: (order[c.sampler], c.guidance, c.nfe))


def main_table(a: Run, b: Run) -> pd.DataFrame:
    rows = []
    for name in shared_schedules(a, b):
        sa, sb = a.evaluate.table.scores[name], b.evaluate.table.scores[name]
        row = {"schedule": name, f"FID {a.name}": findings.fmt(sa.fid, sa.fid_std),
               f"FID {b.name}": findings.fmt(sb.fid, sb.fid_std),
               f"{b.name} − {a.name}": marked(unpaired(sa.fid, sa.fid_std, sb.fid, sb.fid_std))}
        if sa.fid_inf is not None and sb.fid_inf is not None:
            row[f"FID∞ {a.name}"], row[f"FID∞ {b.name}"] = (findings.fmt(s.fid_inf, s.fid_inf_std) for s in (sa, sb))
        for metric in ("precision", "recall"):
            if getattr(sa, metric) is not None and getattr(sb, metric) is not None:
                row[f"{metric} % {a.name} / {b.name}"] = f"{100 * getattr(sa, metric):.0f} / {100 * getattr(sb, metric):.0f}"
        if a.likelihood and b.likelihood:
            ba, bb = a.likelihood.schedules[name], b.likelihood.schedules[name]
            row[f"bits/dim {a.name}"], row[f"bits/dim {b.name}"] = (findings.fmt(x.bpd, x.bpd_std, 2) for x in (ba, bb))
        rows.append(row)
    floor_a, floor_b = a.evaluate.real_vs_real, b.evaluate.real_vs_real
    rows.append({"schedule": "real vs real (floor)", f"FID {a.name}": findings.fmt(floor_a.fid, floor_a.fid_std),
                 f"FID {b.name}": findings.fmt(floor_b.fid, floor_b.fid_std)})
    return pd.DataFrame(rows).fillna("")


def _gap(run: Run, name: str, cell: Cell) -> Optional[Pair]:
    """FID(cell) − FID(the run's baseline cell), paired within the run (None: the run has not got the cell)."""
    if run.sweep.baseline is None or cell == run.sweep.baseline:
        return None
    return run.sweep.versus_baseline.get(name, {}).get(cell)


def sweep_table(a: Run, b: Run) -> pd.DataFrame:
    rows = []
    for name in shared_schedules(a, b):
        for cell in cells(a, b):
            ca, cb = (r.sweep.cells[cell].scores.get(name) if cell in r.sweep.cells else None for r in (a, b))
            ga, gb = _gap(a, name, cell), _gap(b, name, cell)
            rows.append({"schedule": name, "sampler": cell.sampler.upper(), "NFE": cell.nfe,
                         f"FID {a.name}": findings.fmt(ca.fid, ca.fid_std) if ca else MISSING,
                         f"FID {b.name}": findings.fmt(cb.fid, cb.fid_std) if cb else MISSING,
                         f"{b.name} − {a.name}": marked(unpaired(ca.fid, ca.fid_std, cb.fid, cb.fid_std)) if ca and cb else MISSING,
                         f"gap {a.name}": marked(ga) if ga else MISSING, f"gap {b.name}": marked(gb) if gb else MISSING})
    return pd.DataFrame(rows)


def pairs_table(a: Run, b: Run) -> pd.DataFrame:
    """FID(x) − FID(y) for every pair of shared schedules, paired within each run: the main setting, then every cell."""
    names, rows = shared_schedules(a, b), []
    settings = [("main setting", a.evaluate.table, b.evaluate.table)]
    settings += [(f"{c.sampler.upper()} {c.nfe} NFE", a.sweep.cells[c], b.sweep.cells[c])
                 for c in cells(a, b) if c in a.sweep.cells and c in b.sweep.cells]
    for label, ta, tb in settings:
        for x, y in combinations(names, 2):
            pa, pb = ta.pair(x, y), tb.pair(x, y)
            rows.append({"setting": label, "pair": f"{x} − {y}", a.name: marked(pa), b.name: marked(pb),
                         "verdict": "holds" if verdict(pa) == verdict(pb) else f"{verdict(pa)} → {verdict(pb)}"})
    return pd.DataFrame(rows)


def _standing(p: Pair) -> str:
    return "within noise of DDPM" if p.within_noise else ("ahead of DDPM" if p.diff < 0 else "behind DDPM")


def deterministic_gaps(a: Run, b: Run) -> str:
    """Does B close the gap between the deterministic samplers and the baseline DDPM? Cell by cell, the paired gap in
    each run and the change of gap between runs (unpaired)."""
    if a.sweep.baseline is None or b.sweep.baseline != a.sweep.baseline:
        return "The two sweeps have no common DDPM baseline cell: no gaps to compare."
    base = f"DDPM at {a.sweep.baseline.nfe} NFE"
    lines, counts, ahead = [], {"narrows": 0, "widens": 0, "does not move": 0}, 0
    for name in shared_schedules(a, b):
        for cell in cells(a, b):
            if samplers.get(cell.sampler).stochastic:
                continue
            ga, gb = _gap(a, name, cell), _gap(b, name, cell)
            if ga is None or gb is None:
                continue
            change = unpaired(ga.diff, ga.std, gb.diff, gb.std)
            verb = "does not move" if change.within_noise else ("narrows" if change.diff < 0 else "widens")
            counts[verb] += 1
            ahead += not gb.within_noise and gb.diff < 0
            lines.append(f"- {name}, {cell.sampler.upper()} at {cell.nfe} NFE: {a.name} {findings.signed(ga)} "
                         f"({_standing(ga)}), {b.name} {findings.signed(gb)} ({_standing(gb)}); the gap {verb} "
                         f"({findings.signed(change)}).")
    if not lines:
        return "Neither run has a deterministic sampler in both sweeps."
    head = (f"**The deterministic samplers against {base}** (FID(cell) − FID(baseline), paired within each run; the "
            f"change of gap between runs unpaired): in {b.name} the gap narrows in {counts['narrows']} of {len(lines)} "
            f"cells, widens in {counts['widens']} and does not move beyond noise in {counts['does not move']}; "
            f"{ahead} of {len(lines)} {b.name} cells are ahead of DDPM beyond noise.")
    return "\n".join([head, "", *lines])


def main_change(a: Run, b: Run) -> str:
    """B against A at the main setting, per schedule; and whether each schedule pair's verdict holds."""
    parts = []
    for name in shared_schedules(a, b):
        sa, sb = a.evaluate.table.scores[name], b.evaluate.table.scores[name]
        d = unpaired(sa.fid, sa.fid_std, sb.fid, sb.fid_std)
        parts.append(f"{name} {findings.fmt(sa.fid, sa.fid_std)} → {findings.fmt(sb.fid, sb.fid_std)} "
                     f"({findings.signed(d)}, {'within noise' if d.within_noise else 'beyond noise'})")
    verdicts = []
    for x, y in combinations(shared_schedules(a, b), 2):
        pa, pb = a.evaluate.table.pair(x, y), b.evaluate.table.pair(x, y)
        verdicts.append(f"FID({x}) − FID({y}) is {marked(pa)} in {a.name} and {marked(pb)} in {b.name} ("
                        + ("the verdict holds" if verdict(pa) == verdict(pb) else
                           f"the verdict changes: {verdict(pa)} → {verdict(pb)}") + ")")
    text = f"**At the main setting** ({findings.sampler_text(a.cfg)}, {a.cfg.sample.steps} steps, N = " \
           f"{a.evaluate.num_images}): {'; '.join(parts)}. " + ("; ".join(verdicts) + " (≈: within noise)." if verdicts else "")
    if a.likelihood and b.likelihood:
        bits = []
        for name in shared_schedules(a, b):
            ba, bb = a.likelihood.schedules[name], b.likelihood.schedules[name]
            bits.append(f"{name} {ba.bpd:.2f} → {bb.bpd:.2f} ({findings.signed(unpaired(ba.bpd, ba.bpd_std, bb.bpd, bb.bpd_std))})")
        text += f" Bits/dim ({a.likelihood.images} test images): {'; '.join(bits)}."
    return text


def block(a: Run, b: Run) -> str:
    """The generated part of the comparison page."""
    return "\n".join([
        main_change(a, b), "", markdown(main_table(a, b)), "",
        deterministic_gaps(a, b), "",
        f"**Every sweep cell** (N = {a.sweep.num_images}; gap: FID(cell) − FID(DDPM at the baseline NFE), paired within "
        f"the run; ≈: within noise; {MISSING}: not in that run's sweep):", "", markdown(sweep_table(a, b)), "",
        "**The schedules' paired differences** (x − y, within each run):", "", markdown(pairs_table(a, b)),
    ])


def compare(run_a: Path, run_b: Path, readme: Path, name: str = BLOCK) -> None:
    begin, end = markers(name)
    a, b = (read_run(folder) for folder in (run_a, run_b))
    if not shared_schedules(a, b):
        raise StudyError(f"{run_a} and {run_b}: no schedule in common ({a.cfg.schedule} against {b.cfg.schedule})")
    if not readme.is_file():
        raise StudyError(f"{readme}: no such file (it needs one {begin} line followed by one {end} line)")
    readme.write_text(with_block(readme.read_text(), block(a, b), begin, end, readme))
    console.print(f"{readme}: the comparison of {b.name} against {a.name} rewritten from their metric files")


def main(
    run_a: Path = typer.Argument(..., help="The run compared against: a folder with the run's params.yaml and metrics/."),
    run_b: Path = typer.Argument(..., help="The run read against A, the same layout (e.g. reports/prediction/v)."),
    readme: Path = typer.Option(..., "--readme", help="The page whose <!-- NAME:begin --> ... <!-- NAME:end --> lines are rewritten."),
    name: str = typer.Option(BLOCK, "--block", help="NAME: which marked block of the page."),
) -> None:
    """Two committed runs side by side: the main setting, bits/dim, every sweep cell, the schedules' pairs."""
    try:
        compare(run_a, run_b, readme, name)
    except (StudyError, FileNotFoundError) as err:  # one readable line, as the stages fail
        _fail(str(err))


if __name__ == "__main__":
    typer.run(main)
