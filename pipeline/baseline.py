"""The committed baseline a run is read against: what git's HEAD holds of ``params.yaml``,
``metrics/evaluate.json`` and, where readable, ``metrics/likelihood.json`` and ``metrics/sweep.json``. `dvc exp run` runs on top of that commit, so an experiment such as
``dvc exp run -S schedule=cosine`` can place its schedule in the committed study's ranking."""

from __future__ import annotations

import dataclasses
import subprocess
from dataclasses import dataclass
from typing import Any, Optional

from ruamel.yaml import YAML

from . import outputs


@dataclass(frozen=True)
class Baseline:
    params: dict[str, Any]
    evaluate: outputs.EvaluateMetrics
    likelihood: Optional[outputs.LikelihoodMetrics] = None
    sweep: Optional[outputs.SweepMetrics] = None

    def differs_from(self, params: dict[str, Any]) -> list[str]:
        """The top-level keys of params.yaml (and one level below) whose values differ, ``schedule`` and the
        extended study's section aside: empty when the run is the baseline but for its schedules."""
        keys = []
        for key in sorted(set(self.params) | set(params)):
            if key in ("schedule", "extended"):
                continue
            mine, theirs = params.get(key), self.params.get(key)
            if isinstance(mine, dict) and isinstance(theirs, dict):
                keys += [f"{key}.{k}" for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k)]
            elif mine != theirs:
                keys.append(key)
        return keys


def _git_show(path: str) -> Optional[str]:
    try:
        # in the working directory, as every stage's paths (``outputs``): the project DVC runs the stage in
        out = subprocess.run(["git", "show", f"HEAD:./{path}"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def committed() -> Optional[Baseline]:
    """HEAD's params and main-setting scores; None outside git, or where HEAD has no (readable) scores."""
    params, evaluate = _git_show("params.yaml"), _git_show(str(outputs.EVALUATE_METRICS))
    if params is None or evaluate is None:
        return None
    try:
        base = Baseline(YAML(typ="safe", pure=True).load(params), outputs.read_evaluate_metrics(evaluate))
    except (KeyError, TypeError, ValueError):  # scores of an older layout: nothing to compare with
        return None
    extra = {}
    for field, path, reader in (("likelihood", outputs.LIKELIHOOD_METRICS, outputs.read_likelihood_metrics),
                                ("sweep", outputs.SWEEP_METRICS, outputs.read_sweep_metrics)):
        text = _git_show(str(path))
        try:
            extra[field] = reader(text) if text is not None else None
        except (KeyError, TypeError, ValueError):  # an older layout: compared on the main setting only
            extra[field] = None
    return dataclasses.replace(base, **extra)
