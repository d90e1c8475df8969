"""Improved precision and recall (Kynkäänniemi et al. 2019) on Inception features, with paired jackknife spreads.

Each set of features defines a manifold: the union of balls around its points, each ball's radius the distance
to the point's k-th nearest neighbour in its own set (k = 3, the paper's and torch-fidelity's default).
Precision is the share of generated samples inside the real manifold (fidelity), recall the share of real
samples inside the generated manifold (diversity): a generator that trades diversity for fidelity, as
classifier-free guidance does, raises the first and lowers the second, which FID alone cannot show.

The values are torch-fidelity 0.4's (``metric_prc.calculate_precision_recall_full``: the same ``torch.cdist``
distances, the same ``kthvalue(k + 1)`` radii, ``<=`` for inside; tests/test_precision_recall.py checks equality).
Its default extractor is VGG-16, whose weights cannot be fetched here, so the study computes them on the FID's
``inception-v3-compat`` pool features instead, and says so.

The spread is the FID's delete-a-group jackknife (``uncertainty``): row 0 of the replicates drops one group of
generated samples at a time, row 1 one group of real ones, and the radii are recomputed without the dropped
points. The three distance matrices are computed once per set and every replicate only masks them, so a replicate
costs O(n^2), not O(n^2 d). Sets sampled from the same noise drop the same groups (paired).
"""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence, TypeVar

import numpy as np
import torch

from . import uncertainty

NEIGHBOURHOOD = 3  # k: Kynkäänniemi et al.'s and torch-fidelity's default (``prc_neighborhood``)
METRICS = ("precision", "recall")

K = TypeVar("K", bound=Hashable)


def _radii(self_distances: torch.Tensor, keep: torch.Tensor, k: int) -> torch.Tensor:
    """Each kept point's distance to its k-th nearest kept neighbour (itself, at distance 0, is the first)."""
    return self_distances[keep][:, keep].kthvalue(k + 1, dim=1).values


def _pr(cross: torch.Tensor, gen_radii: torch.Tensor, ref_radii: torch.Tensor) -> tuple[float, float]:
    """cross [n_gen, n_ref]: precision (generated inside any real ball), recall (real inside any generated ball)."""
    precision = (cross <= ref_radii[None, :]).any(dim=1).float().mean().item()
    recall = (cross.T <= gen_radii[None, :]).any(dim=1).float().mean().item()
    return precision, recall


def precision_recall(generated: np.ndarray, reference: np.ndarray, k: int = NEIGHBOURHOOD) -> tuple[float, float]:
    """(precision, recall) of ``generated`` [n1, d] against ``reference`` [n2, d]."""
    g, r = torch.as_tensor(generated, dtype=torch.float32), torch.as_tensor(reference, dtype=torch.float32)
    everyone_g, everyone_r = torch.arange(len(g)), torch.arange(len(r))
    return _pr(torch.cdist(g, r), _radii(torch.cdist(g, g), everyone_g, k), _radii(torch.cdist(r, r), everyone_r, k))


def jackknife_precision_recall(
    reference: np.ndarray, generated: Mapping[K, np.ndarray], groups: int, seed: int | Sequence[int],
    k: int = NEIGHBOURHOOD,
) -> tuple[dict[K, dict[str, float]], dict[K, dict[str, np.ndarray]]]:
    """Each set's precision and recall and their jackknife replicates [2, groups] per metric (``METRICS``).

    The groups are ``uncertainty.jackknife_groups``, the FID jackknife's: a set scored by both with one ``seed``
    has the same groups left out for FID and for precision/recall.
    """
    drop_generated, drop_reference = uncertainty.jackknife_groups(generated, len(reference), groups, seed)
    n = sum(len(d) for d in drop_generated)
    if min(n - len(drop_generated[0]), len(reference) - len(drop_reference[0])) <= k:
        raise ValueError(f"too few samples for k = {k} neighbours once a group is left out")
    r = torch.as_tensor(reference, dtype=torch.float32)
    rr = torch.cdist(r, r)
    all_r, all_g = torch.arange(len(r)), torch.arange(n)
    keep_r = [torch.from_numpy(np.delete(np.arange(len(r)), d)) for d in drop_reference]
    keep_g = [torch.from_numpy(np.delete(np.arange(n), d)) for d in drop_generated]
    ref_radii = _radii(rr, all_r, k)
    ref_radii_kept = [_radii(rr, kept, k) for kept in keep_r]
    points, replicates = {}, {}
    for name, feats in generated.items():
        g = torch.as_tensor(feats, dtype=torch.float32)
        gg, gr = torch.cdist(g, g), torch.cdist(g, r)
        gen_radii = _radii(gg, all_g, k)
        points[name] = dict(zip(METRICS, _pr(gr, gen_radii, ref_radii)))
        reps = np.empty((len(METRICS), 2, groups))
        for j in range(groups):
            kg, kr = keep_g[j], keep_r[j]
            reps[:, 0, j] = _pr(gr[kg], _radii(gg, kg, k), ref_radii)
            reps[:, 1, j] = _pr(gr[:, kr], gen_radii, ref_radii_kept[j])
        replicates[name] = {m: reps[i] for i, m in enumerate(METRICS)}
    return points, replicates
