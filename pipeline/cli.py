"""The `ddpm-study` command: one sub-command per DVC stage (dvc.yaml calls these), built from ``COMMANDS``.

Every command runs ``pipeline/stages/<stage>.py`` (or ``pipeline/tools/<tool>.py``) as
``run(cfg, params)``: params.yaml validated into the typed configuration first, so a bad value
fails before any work. The command name is the module's with ``-`` for ``_``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Optional

import typer

from . import outputs

# command -> (package, its help). Stages of the main study (dvc.yaml), then the extended study's
# (extended/dvc.yaml, `dvc repro extended/dvc.yaml`: they read the `extended` section themselves,
# pipeline/extended_params.py, so that this module does not import it), then the tools.
COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("stages", "Validate params.yaml, the extended study's section too (the gate stage before all others); write data/params.ok."),
    "prepare": ("stages", "Read the data set (data folder, local official files, or torchvision download) into data/prepared."),
    "reference": ("stages", "Inception features of two fixed real splits: the FID reference and the real-vs-real floor."),
    "train": ("stages", "Train one U-Net DDPM per listed schedule (GPU when present; train.processes > 1: torchrun, "
                        "data-parallel); resumes from models/<schedule>/checkpoint.pt."),
    "sample": ("stages", "Sample each schedule's EMA model from shared noise; write images, grid, denoising GIF, forward strip."),
    "evaluate": ("stages", "FID and KID (2048-d Inception features) of each schedule's samples, with spreads, floor and ceilings."),
    "likelihood": ("stages", "Bits/dim (the variational bound, Ho et al. eq. 5) of each schedule's EMA model on test images."),
    "sweep": ("stages", "Sample every schedule x sampler x number of sampling steps from shared noise; keep Inception features."),
    "score_sweep": ("stages", "FID/KID of every sweep cell with jackknife spreads, paired differences, floor and ceilings."),
    "report": ("stages", "Write the comparison (table, figures, grids, GIFs) to reports/main/ and log it to MLflow."),
    "train_seeds": ("stages", "Extended study: train extended.seeds.schedules again with the extra training seeds."),
    "score_seeds": ("stages", "Extended study: every training seed sampled and scored like the main setting; does each verdict survive?"),
    "train_longer": ("stages", "Extended study: one schedule trained longer, its model kept at every snapshot."),
    "score_longer": ("stages", "Extended study: DDPM and DDIM at every sweep setting along the longer run's snapshots."),
    "score_cross": ("stages", "Extended study: every model sampled on every schedule's noise levels (trained with x sampled on)."),
    "extended_report": ("stages", "Extended study: write reports/extended/ (tables, heatmaps, figures) and log it to MLflow."),
    "backfill": ("tools", "Not a stage: record the study in DVC's files (e.g. after `dvc pull`) in the MLflow store, "
                          "as its stages would have."),
    "readme": ("tools", "Not a stage: write README.md's answer block (the main study's ranking) from the committed metrics."),
}

app = typer.Typer(
    help="Noise-schedule study of U-Net DDPMs. Each command is one DVC stage and reads params.yaml; "
    "run the whole study with `dvc repro`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
ParamsOption = typer.Option(outputs.PARAMS, "--params", help="Parameter file (validated strictly before any work).")


def _fail(message: str) -> None:
    from rich.markup import escape

    from .console import console

    # Escaped: messages hold brackets ("[1, 1000]") that rich would otherwise read as markup.
    console.print(f"[red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(1)


def _run(module: str, params: Path, **options) -> None:
    """Validate params, run the module's ``run(cfg, params)``; known failures end in one readable line and exit code 1."""
    from ddpm_study.errors import StudyError

    from .params import load, recording

    try:
        with recording(module.rpartition(".")[2]):
            importlib.import_module(module).run(load(params), params, **options)
    # Expected failures, each with a message naming its cause; anything else keeps its traceback.
    except (StudyError, FileNotFoundError) as err:
        _fail(str(err))


def _command(name: str, package: str, help: str) -> None:
    def command(params: Path = ParamsOption) -> None:
        _run(f"{__package__}.{package}.{name}", params)

    app.command(name.replace("_", "-"), help=help)(command)


for _name, (_package, _help) in COMMANDS.items():
    _command(_name, _package, _help)


@app.command("generate")
def generate(
    out: Path = typer.Option(..., "--out", help="grid.png (a PNG grid) or images.npy (uint8 [N, C, H, W])."),
    schedule: Optional[str] = typer.Option(None, "--schedule", help="The current params.yaml's model of this schedule (models/<schedule>/checkpoint.pt)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Instead: any finished checkpoint file (it describes its own model and schedule)."),
    model: Optional[str] = typer.Option(None, "--model", help="Instead: an MLflow logged model, models:/<model id> (the experiment's Models tab)."),
    sampler: Optional[str] = typer.Option(None, "--sampler", help="Any sampler sample.sampler accepts (default: sample.sampler)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Respaced sampling steps (default: sample.steps)."),
    spacing: Optional[str] = typer.Option(None, "--spacing", help="Which timesteps: any value sample.spacing accepts (default: sample.spacing)."),
    sigma_max: Optional[float] = typer.Option(None, "--sigma-max", help="Start at sigma <= this, 0 = at t = T (default: sample.sigma_max)."),
    eta: Optional[float] = typer.Option(None, "--eta", help="DDIM's eta (default: sample.eta)."),
    num_images: Optional[int] = typer.Option(None, "--num-images", help="Default: sample.num_images."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Default: sample.batch_size (the noise of a batch depends on it)."),
    guidance: Optional[float] = typer.Option(None, "--guidance", help="Conditional models: w (default: sample.guidance)."),
    label: Optional[int] = typer.Option(None, "--class", help="Conditional models: sample only this class (default: classes in turn)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Default: params.yaml's seed (the `sample` stage's noise)."),
    params: Path = ParamsOption,
) -> None:
    """Not a stage: sample a finished model with any sampler and step count, outside DVC, into a PNG grid or .npy."""
    if sum(x is not None for x in (schedule, checkpoint, model)) != 1:
        _fail("--schedule, --checkpoint or --model: give exactly one")
    _run(f"{__package__}.tools.generate", params, request=dict(
        out=out, schedule=schedule, checkpoint=checkpoint, model=model, sampler=sampler, steps=steps, spacing=spacing, sigma_max=sigma_max, eta=eta, num_images=num_images,
        batch_size=batch_size, guidance=guidance, label=label, seed=seed))


if __name__ == "__main__":
    app()
