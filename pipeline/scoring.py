"""Scores with their spreads, and what they are read against — shared by `evaluate`, `score_sweep` and the
extended study's scoring stages (`score_seeds`, `score_longer`, `score_cross`).

Every FID carries a jackknife std (groups of generated and of reference features left out;
schedules paired by their shared initial noise), every pair of schedules a paired difference and
whether it is within noise, and a table is bracketed by the real-vs-real floor and two trivially
bad generators at the same N.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Generic, Hashable, Mapping, Optional, TypeVar

import numpy as np
import torch

from ddpm_study import baselines, data, fid_infinity, metrics, precision_recall, sampling, uncertainty
from ddpm_study.config import StudyConfig
from ddpm_study.runtime import resolve_device

from . import outputs
from .outputs import Pair, PerClass, Scores, ScoreTable

# Fixed, independent jackknife group assignments per use (numpy seeds from the pair (seed, stream)).
FLOOR_STREAM, EVALUATE_STREAM, CEILING_STREAM, SWEEP_STREAMS, SWEEP_BASELINE_STREAMS = 0, 1, 2, 100, 500
LONGER_STREAM, CROSS_STREAMS = 700, 800  # the extended study's: score_longer, score_cross (+ setting index)

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Jackknifed(Generic[K]):
    """Paired generated sets' FIDs and FID∞s against one reference with their delete-a-group jackknife replicates
    (the same groups dropped from every set), keyed by anything: a schedule, (snapshot, cell), (A, B)."""

    fid: dict[K, float]
    replicates: dict[K, np.ndarray]  # [2, groups]
    stream: int  # the jackknife groups' stream: (seed, stream) draws them
    fid_inf: Optional[dict[K, float]] = None  # FID∞ (``fid_infinity.jackknife``, the same groups); None: not computed
    inf_replicates: Optional[dict[K, np.ndarray]] = None

    def std(self, key: K) -> float:
        return uncertainty.jackknife_std(self.replicates[key])

    def inf_std(self, key: K) -> Optional[float]:
        return None if self.inf_replicates is None else uncertainty.jackknife_std(self.inf_replicates[key])

    def compare(self, a: K, b: K) -> Pair:
        """FID(a) - FID(b), its paired std and whether it is within noise; the same difference of FID∞ and its std."""
        pair = uncertainty.compare(self.fid[a], self.fid[b], self.replicates[a], self.replicates[b])
        if self.fid_inf is not None:
            inf = uncertainty.compare(self.fid_inf[a], self.fid_inf[b], self.inf_replicates[a], self.inf_replicates[b])
            pair |= {"diff_inf": inf["diff"], "std_inf": inf["std"]}
        return Pair(**pair)


def jackknifed(cfg: StudyConfig, generated: Mapping[K, np.ndarray], reference: np.ndarray, stream: int,
               infinity: bool = True) -> Jackknifed[K]:
    """The paired jackknife of FID and, with ``infinity``, of FID∞ (reusing the FIDs at full size)."""
    e, device = cfg.evaluate, resolve_device(cfg.device)
    points, replicates = uncertainty.jackknife(reference, generated, e.jackknife_groups, (cfg.seed, stream), device=device)
    if not infinity:
        return Jackknifed(points, replicates, stream)
    inf, inf_reps = fid_infinity.jackknife(reference, generated, e.jackknife_groups, (cfg.seed, stream),
                                           e.fid_inf_fractions, e.fid_inf_degree, device, full=(points, replicates))
    return Jackknifed(points, replicates, stream, inf, inf_reps)


def _scores(cfg: StudyConfig, generated: dict[str, np.ndarray], reference: np.ndarray, jack: Jackknifed[str]) -> dict[str, Scores]:
    """Point FID (the exact fast form, equal to torch-fidelity's) and its jackknife std, torch-fidelity's KID,
    precision and recall with jackknife stds over the FID's own groups (``precision_recall``)."""
    e = cfg.evaluate
    pr, pr_reps = precision_recall.jackknife_precision_recall(reference, generated, e.jackknife_groups,
                                                              (cfg.seed, jack.stream))
    out = {}
    for name, features in generated.items():
        kid_mean, kid_std = metrics.kid(torch.from_numpy(features), torch.from_numpy(reference), e.kid_subset_size,
                                        e.kid_subsets, cfg.seed)
        out[name] = Scores(fid=jack.fid[name], kid_mean=kid_mean, kid_std=kid_std, fid_std=jack.std(name),
                           **{m: pr[name][m] for m in precision_recall.METRICS},
                           **{f"{m}_std": uncertainty.jackknife_std(pr_reps[name][m]) for m in precision_recall.METRICS},
                           fid_inf=None if jack.fid_inf is None else jack.fid_inf[name], fid_inf_std=jack.inf_std(name))
    return out


def with_spreads(cfg: StudyConfig, generated: dict[str, np.ndarray], reference: np.ndarray, stream: int) -> ScoreTable:
    """Scores of paired generated sets with their jackknife stds, and every pairwise difference."""
    jack = jackknifed(cfg, generated, reference, stream)
    return ScoreTable(_scores(cfg, generated, reference, jack), {(a, b): jack.compare(a, b) for a, b in combinations(generated, 2)})


def real_vs_real(cfg: StudyConfig, floor: np.ndarray, reference: np.ndarray) -> Scores:
    """The floor: a second real split scored like a generator, with its jackknife std."""
    generated = {"floor": floor}
    return _scores(cfg, generated, reference, jackknifed(cfg, generated, reference, FLOOR_STREAM))["floor"]


def ceilings(cfg: StudyConfig, num_images: int, reference: np.ndarray, device: torch.device) -> dict[str, Scores]:
    """FID/KID of two trivially bad generators at ``num_images``: Gaussian noise and the mean image (no FID∞: they
    bracket the table at its N, hundreds of FID above it, where the N-bias does not matter)."""
    train = outputs.read_prepared("train_images")
    noise = metrics.inception_features(baselines.gaussian_noise(num_images, cfg.image_shape, cfg.seed),
                                       cfg.evaluate.batch_size, device).numpy()
    # One image repeated: its features are one vector repeated, so extract it once.
    mean = metrics.inception_features(baselines.mean_image(train, 1), 1, device).numpy()
    generated = {"gaussian_noise": noise, "mean_image": np.repeat(mean, num_images, axis=0)}
    return _scores(cfg, generated, reference, jackknifed(cfg, generated, reference, CEILING_STREAM, infinity=False))


def per_class(cfg: StudyConfig, generated: dict[str, np.ndarray], ref: outputs.Reference) -> PerClass:
    """Intra-class FID: each class's samples against the reference split's images of that class.

    Samples have class i mod K (``sampling.class_labels``); the real splits' classes are read from the
    prepared labels in the order the `reference` stage stored their features. With N / K images per
    class the FIDs are far above the all-class FID, so each is read against the floor split's FID for
    the same class, at about the same N.
    """
    k, n = cfg.model.num_classes, cfg.sample.num_images
    labels = outputs.read_prepared("train_labels")
    idx_ref, idx_floor = data.real_splits(len(labels), n, cfg.seed)
    ref_labels, floor_labels = labels[np.sort(idx_ref)], labels[np.sort(idx_floor)]
    gen_labels = sampling.class_labels(n, k).numpy()

    def fid(feats: np.ndarray, labels: np.ndarray, c: int) -> float | None:
        """None where a split has fewer than 2 images of class c (small N): no covariance to compare."""
        x, y = feats[labels == c], ref.reference[ref_labels == c]
        return uncertainty.frechet_distance(x, y) if min(len(x), len(y)) >= 2 else None

    return PerClass(names=outputs.read_prepared_info().classes, counts=np.bincount(gen_labels, minlength=k).tolist(),
                    floor=[fid(ref.floor, floor_labels, c) for c in range(k)],
                    fid={name: [fid(feats, gen_labels, c) for c in range(k)] for name, feats in generated.items()})
