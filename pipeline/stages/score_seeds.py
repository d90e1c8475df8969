"""Stage `score_seeds` (extended study): every training seed's model sampled like the main setting, scored,
and each pair's verdict read against training seeds as a second source of spread.

Seed ``seed`` is the main study's model and its `sample` images; the others come from `train_seeds`.
All seeds sample from the *same* noise (``seed``), so what differs between seeds is training alone,
and within a seed the schedules are paired as in `evaluate` (the same jackknife groups too: at
seed ``seed`` the scores equal `evaluate`'s).
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import torch

from ddpm_study import metrics, replication, samplers, sampling
from ddpm_study.config import StudyConfig
from ddpm_study.diffusion import GaussianDiffusion
from ddpm_study.files import write_array
from ddpm_study.runtime import setup_device

from .. import checkpoints, extended_params, outputs, scoring
from ..console import console


def images_of(cfg: StudyConfig, name: str, seed: int, device: torch.device) -> torch.Tensor:
    """uint8 samples of the seed's model at the main setting, from the main setting's noise."""
    if seed == cfg.seed:
        return torch.from_numpy(outputs.read_sample_images(name))
    s = cfg.sample
    model = checkpoints.load_seed(cfg, name, seed, device)
    return sampling.generate(model, samplers.reverse_process(cfg.gaussian_diffusion(name), s.steps, s.spacing, s.sigma_max), num_images=s.num_images,
                             batch_size=s.batch_size, image_shape=cfg.image_shape, seed=cfg.seed, device=device,
                             sampler=s.sampler, eta=s.eta, trajectory_images=1, trajectory_frames=2).images


def run(cfg: StudyConfig, params: Path) -> None:
    ext = extended_params.load(params)
    device = setup_device(cfg.device, cfg.reproducible)
    reference = outputs.read_reference().reference
    names, seeds = list(ext.seeds.schedules), ext.seeds.seeds(cfg.seed)
    tables = {}
    for seed in seeds:
        generated = {}
        for name in names:
            console.print(f"{name} seed {seed}: samples and Inception features")
            generated[name] = metrics.inception_features(images_of(cfg, name, seed, device), cfg.evaluate.batch_size,
                                                         device).numpy()
            write_array(outputs.seed_features(name, seed), generated[name])
        tables[seed] = scoring.with_spreads(cfg, generated, reference, scoring.EVALUATE_STREAM)
    pairs = {}
    for a, b in combinations(names, 2):
        per_seed = [tables[seed].pair(a, b) for seed in seeds]
        pairs[(a, b)] = outputs.SeedPair(diffs=[p.diff for p in per_seed], stds=[p.std for p in per_seed],
                                         separated_at_main=not per_seed[0].within_noise,
                                         **replication.seed_verdict([p.diff for p in per_seed]))
    outputs.write_seeds_metrics(outputs.SeedsMetrics(
        seeds=seeds, schedules=names, sampler=cfg.sample.sampler, steps=cfg.sample.steps,
        num_images=cfg.sample.num_images, confidence=replication.CONFIDENCE,
        fid={n: [tables[s].scores[n].fid for s in seeds] for n in names},
        fid_std={n: [tables[s].scores[n].fid_std for s in seeds] for n in names}, pairs=pairs))
    for (a, b), p in pairs.items():
        console.print(f"{a}-{b}: " + ", ".join(f"{d:+.2f}" for d in p.diffs) + f" -> {p.verdict}")
