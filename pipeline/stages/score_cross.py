"""Stage `score_cross` (extended study): training schedule and sampling schedule, separated.

Every model (trained with A) samples on every schedule's noise levels (B's respaced process, the
network told A's real-valued timestep of the same ᾱ: ``ddpm_study.crossing``) at each setting of
``extended.cross``, from the sweep's noise; the diagonal is the model's own process. Scored like
the sweep (``scoring.jackknifed``: one paired jackknife per setting), each cell read against its row's diagonal, and each
schedule's advantage over the baseline (the first of ``schedule``) split into its training and its
sampling part (``replication.factorial_split``).
"""

from __future__ import annotations

from pathlib import Path

from ddpm_study import crossing, metrics, replication, sampling
from ddpm_study.config import StudyConfig
from ddpm_study.diffusion import GaussianDiffusion
from ddpm_study.files import write_array
from ddpm_study.runtime import setup_device

from .. import checkpoints, extended_params, outputs, scoring
from ..console import console


def run(cfg: StudyConfig, params: Path) -> None:
    ext = extended_params.load(params)
    device = setup_device(cfg.device, cfg.reproducible)
    sw, names = cfg.sweep, list(cfg.schedule)
    reference = outputs.read_reference().reference
    models = {a: checkpoints.load(cfg, a, device) for a in names}
    processes = {b: cfg.gaussian_diffusion(b) for b in names}
    baseline, settings = names[0], {}
    for i, cell in enumerate(outputs.sweep_cells(ext.cross.samplers, ext.cross.steps)):
        generated, clamped = {}, {}
        for a in names:
            model, diffusion_a = models[a]
            for b in names:
                console.print(f"{cell.sampler} {cell.steps} steps: trained with {a}, sampled on {b}")
                wrapped, runner, _, mask = crossing.crossed(model, diffusion_a, processes[b].respace(cell.steps))
                out = sampling.generate(wrapped, runner, num_images=sw.num_images, batch_size=sw.batch_size,
                                        image_shape=cfg.image_shape, seed=cfg.seed, device=device, sampler=cell.sampler,
                                        eta=sw.eta, trajectory_images=1, trajectory_frames=2)
                generated[(a, b)] = metrics.inception_features(out.images, cfg.evaluate.batch_size, device).numpy()
                write_array(outputs.cross_features(a, b, cell), generated[(a, b)])
                clamped[(a, b)] = int(mask.sum())
        jack = scoring.jackknifed(cfg, generated, reference, scoring.CROSS_STREAMS + i)
        fid = jack.fid

        def grid(value) -> dict:
            return {a: {b: value(a, b) for b in names} for a in names}

        settings[cell] = outputs.CrossSetting(
            fid=grid(lambda a, b: fid[(a, b)]),
            fid_std=grid(lambda a, b: jack.std((a, b))),
            minus_own=grid(lambda a, b: jack.compare((a, b), (a, a))),
            clamped_steps=grid(lambda a, b: clamped[(a, b)]),
            split={b: {part: outputs.Part(**v) for part, v in replication.factorial_split(fid, jack.replicates, baseline, b).items()}
                   for b in names if b != baseline},
        )
        for a in names:
            console.print(f"  {a:>10} " + "  ".join(f"{fid[(a, b)]:6.1f}" for b in names))
    outputs.write_cross_metrics(outputs.CrossMetrics(num_images=sw.num_images, eta=sw.eta, schedules=names,
                                                     baseline=baseline, settings=settings))
