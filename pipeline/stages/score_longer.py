"""Stage `score_longer` (extended study): are the deterministic samplers behind DDPM because the models are
undertrained?

The longer run's EMA model at every snapshot samples every sweep cell (sampler x NFE, DDPM's baseline cell
included) from the sweep's noise and is scored like the sweep: FID with a jackknife std; every other sampler
minus DDPM at the same NFE, and DDPM's change from each snapshot to the next, as paired differences. All
snapshots and cells share the noise, so they share the jackknife groups too.
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
    cells = outputs.sweep_grid(sw)
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
    minus: dict[str, dict[int, dict[int, outputs.Pair]]] = {}
    gain: dict[int, dict[int, outputs.Pair]] = {}
    if "ddpm" in sw.samplers:
        for nfe in sorted(sw.nfe):
            ddpm = outputs.Cell("ddpm", nfe)
            for sampler in (s for s in sw.samplers if s != "ddpm"):
                minus.setdefault(sampler, {})[nfe] = {step: jack.compare((step, outputs.Cell(sampler, nfe)), (step, ddpm))
                                                      for step in snapshots}
            gain[nfe] = {a: jack.compare((b, ddpm), (a, ddpm)) for a, b in zip(snapshots[:-1], snapshots[1:])}
    outputs.write_undertraining_metrics(outputs.LongerMetrics(
        schedule=name, num_images=sw.num_images, eta=sw.eta, snapshots=list(snapshots), main_steps=cfg.train.steps,
        cells=table, minus_ddpm=minus, overtakes={s: {n: overtakes(g) for n, g in by.items()} for s, by in minus.items()},
        ddpm_gain=gain))
    for sampler, by_nfe in minus.items():
        for nfe, g in by_nfe.items():
            console.print(f"{sampler} - DDPM at {nfe} NFE: " + ", ".join(f"step {s}: {v.diff:+.1f}" for s, v in g.items()))
