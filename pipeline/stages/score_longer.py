"""Stage `score_longer` (extended study): is DDIM behind DDPM because the models are undertrained?

The longer run's EMA model at every snapshot samples every sweep setting (sampler x steps) from the
sweep's noise and is scored like the sweep: FID with a jackknife std, and DDIM - DDPM per step
count as a paired difference. All snapshots and settings share the noise, so they share the
jackknife groups too.
"""

from __future__ import annotations

from pathlib import Path

from ddpm_study import metrics, samplers, sampling, training
from ddpm_study.replication import overtakes
from ddpm_study.config import StudyConfig
from ddpm_study.diffusion import GaussianDiffusion
from ddpm_study.files import write_array
from ddpm_study.runtime import setup_device

from .. import checkpoints, extended_params, lineage, outputs, scoring
from ..params import unrecorded
from ..console import console

def run(cfg: StudyConfig, params: Path) -> None:
    ext = extended_params.load(params)
    device = setup_device(cfg.device, cfg.reproducible)
    sw, name, snapshots = cfg.sweep, ext.longer.schedule, ext.longer.snapshots
    reference = outputs.read_reference().reference
    with unrecorded():  # whether the snapshots are current; the models are the stage's deps
        run_lineage = lineage.longer(cfg, name, snapshots[-1])
    diffusion = cfg.gaussian_diffusion(name)
    cells = outputs.sweep_cells(sw.samplers, sw.nfe)
    generated, losses = {}, {}
    for step in snapshots:
        path = outputs.longer_snapshot(step)
        model = checkpoints.load_finished(path, cfg, run_lineage, step, device)
        losses[step] = training.final_loss(training.load_checkpoint(path)["history"])
        for cell in cells:
            console.print(f"{name} at step {step}: {cell.sampler}, {cell.nfe} NFE")
            out = sampling.generate(model, samplers.reverse_process(diffusion, cell.steps, sw.spacing, sw.sigma_max), num_images=sw.num_images, batch_size=sw.batch_size,
                                    image_shape=cfg.image_shape, seed=cfg.seed, device=device, sampler=cell.sampler,
                                    eta=sw.eta, trajectory_images=1, trajectory_frames=2)
            feats = metrics.inception_features(out.images, cfg.evaluate.batch_size, device).numpy()
            write_array(outputs.undertraining_features(step, cell), feats)
            generated[(step, cell)] = feats
    console.print(f"jackknife ({cfg.evaluate.jackknife_groups} groups) of {len(generated)} sets")
    jack = scoring.jackknifed(cfg, generated, reference, scoring.LONGER_STREAM)
    table = {step: outputs.Snapshot(losses[step], {c: outputs.Fid(jack.fid[(step, c)], jack.std((step, c))) for c in cells})
             for step in snapshots}
    gap: dict[int, dict[int, outputs.Pair]] = {}
    if {"ddpm", "ddim"} <= set(sw.samplers):
        for steps in sorted(sw.nfe):
            ddim, ddpm = outputs.Cell("ddim", steps), outputs.Cell("ddpm", steps)
            gap[steps] = {step: jack.compare((step, ddim), (step, ddpm)) for step in snapshots}
    outputs.write_undertraining_metrics(outputs.LongerMetrics(
        schedule=name, num_images=sw.num_images, eta=sw.eta, snapshots=list(snapshots), main_steps=cfg.train.steps,
        cells=table, ddim_minus_ddpm=gap, overtakes={k: overtakes(g) for k, g in gap.items()}))
    for steps, g in gap.items():
        console.print(f"DDIM - DDPM at {steps} steps: " + ", ".join(f"step {s}: {v.diff:+.1f}" for s, v in g.items()))
