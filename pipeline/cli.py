"""The `ddpm-study` command: one sub-command per DVC stage (dvc.yaml calls these)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import typer

from . import outputs

app = typer.Typer(
    help="Noise-schedule study of U-Net DDPMs. Each command is one DVC stage and reads params.yaml; "
    "run the whole study with `dvc repro`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
ParamsOption = typer.Option(outputs.PARAMS, "--params", help="Parameter file (validated strictly before any work).")


def _run(stage: Callable, params: Path) -> None:
    """Validate params, run the stage; known failures end in one readable line and exit code 1."""
    from ddpm_study.errors import StudyError
    from rich.markup import escape

    from .params import load
    from .ui import console

    try:
        stage(load(params))
    # Expected failures, each with a message naming its cause; anything else keeps its traceback.
    except (StudyError, FileNotFoundError) as err:
        # Escaped: messages hold brackets ("[1, 1000]") that rich would otherwise read as markup.
        console.print(f"[red]error:[/] {escape(str(err))}", soft_wrap=True, highlight=False)
        raise typer.Exit(1) from None


@app.command()
def prepare(params: Path = ParamsOption) -> None:
    """Read the data set (data folder, local official files, or torchvision download) into data/prepared."""
    from . import prepare as stage

    _run(stage.run, params)


@app.command()
def train(params: Path = ParamsOption) -> None:
    """Train one U-Net DDPM per listed schedule (GPU when present; train.processes > 1: torchrun, data-parallel); resumes from models/<schedule>/checkpoint.pt."""
    from . import train as stage

    _run(lambda cfg: stage.run(cfg, params), params)


@app.command()
def reference(params: Path = ParamsOption) -> None:
    """Inception features of two fixed real splits: the FID reference and the real-vs-real floor."""
    from . import reference as stage

    _run(stage.run, params)


@app.command()
def sample(params: Path = ParamsOption) -> None:
    """Sample each schedule's EMA model from shared noise; write images, grid, denoising GIF, forward strip."""
    from . import sample as stage

    _run(stage.run, params)


@app.command()
def evaluate(params: Path = ParamsOption) -> None:
    """FID and KID (2048-d Inception features) of each schedule's samples, with spreads, floor and ceilings."""
    from . import evaluate as stage

    _run(stage.run, params)


@app.command()
def sweep(params: Path = ParamsOption) -> None:
    """Sample every schedule x sampler x number of sampling steps from shared noise; keep Inception features."""
    from . import sweep as stage

    _run(stage.run, params)


@app.command("score-sweep")
def score_sweep(params: Path = ParamsOption) -> None:
    """FID/KID of every sweep cell with jackknife spreads, paired differences, floor and ceilings."""
    from . import score_sweep as stage

    _run(stage.run, params)


@app.command()
def report(params: Path = ParamsOption) -> None:
    """Write the comparison (table, figures, grids, GIFs) to reports/ and log it to MLflow."""
    from . import report as stage

    _run(stage.run, params)


@app.command()
def check(params: Path = ParamsOption) -> None:
    """Validate params.yaml, the extended study's section too (the gate stage before all others); write params.ok."""
    from . import check as stage

    _run(lambda cfg: stage.run(cfg, params), params)


@app.command()
def backfill(params: Path = ParamsOption) -> None:
    """Not a stage: record the study in DVC's files (e.g. after `dvc pull`) in the MLflow store, as its stages would have."""
    from . import backfill as command

    _run(command.run, params)


# The extended study (extended/dvc.yaml): `dvc repro extended/dvc.yaml`. Its stages read the
# `extended` section themselves (pipeline/extended_params.py), so that the CLI does not import it.
@app.command("train-seeds")
def train_seeds(params: Path = ParamsOption) -> None:
    """Extended study: train extended.seeds.schedules again with the extra training seeds."""
    from . import train_seeds as stage

    _run(lambda cfg: stage.run(cfg, params), params)


@app.command()
def seeds(params: Path = ParamsOption) -> None:
    """Extended study: every training seed sampled and scored like the main setting; does each verdict survive?"""
    from . import seeds as stage

    _run(lambda cfg: stage.run(cfg, params), params)


@app.command("train-longer")
def train_longer(params: Path = ParamsOption) -> None:
    """Extended study: one schedule trained longer, its model kept at every snapshot."""
    from . import train_longer as stage

    _run(lambda cfg: stage.run(cfg, params), params)


@app.command()
def undertraining(params: Path = ParamsOption) -> None:
    """Extended study: DDPM and DDIM at every sweep setting along the longer run's snapshots."""
    from . import undertraining as stage

    _run(lambda cfg: stage.run(cfg, params), params)


@app.command()
def cross(params: Path = ParamsOption) -> None:
    """Extended study: every model sampled on every schedule's noise levels (trained with x sampled on)."""
    from . import cross as stage

    _run(lambda cfg: stage.run(cfg, params), params)


@app.command("extended-report")
def extended_report(params: Path = ParamsOption) -> None:
    """Extended study: write extended/report/ (tables, heatmaps, figures) and log it to MLflow."""
    from . import extended_report as stage

    _run(lambda cfg: stage.run(cfg, params), params)


if __name__ == "__main__":
    app()
