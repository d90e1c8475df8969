"""Inception features and KID through torch-fidelity (FID itself: ``uncertainty.frechet_distance``).

Features come from torch-fidelity's ``inception-v3-compat`` extractor (the reference FID network);
its weights are read from torch's hub cache (``$TORCH_HOME/hub/checkpoints``) and downloaded there
on a machine with internet. Only the 2048-d features are used: FID, KID and their kin are standard
on them; Inception Score is not computed.
"""

from __future__ import annotations

import torch
from torch_fidelity.metric_kid import kid_features_to_metric, KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD
from torch_fidelity.utils import create_feature_extractor

FEATURE_EXTRACTOR = "inception-v3-compat"
FEATURE_LAYER = "2048"


def inception_features(images_uint8: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    """2048-d features [N, 2048] (float32, CPU) of uint8 images [N, C, H, W]; grayscale is repeated to RGB."""
    if images_uint8.dtype != torch.uint8 or images_uint8.dim() != 4 or images_uint8.shape[1] not in (1, 3):
        raise ValueError(f"expected uint8 images [N, 1 or 3, H, W], got {images_uint8.dtype} {list(images_uint8.shape)}")
    extractor = create_feature_extractor(FEATURE_EXTRACTOR, [FEATURE_LAYER], cuda=device.type == "cuda", verbose=False)
    out = []
    with torch.no_grad():
        for start in range(0, len(images_uint8), batch_size):
            batch = images_uint8[start : start + batch_size]
            if batch.shape[1] == 1:
                batch = batch.repeat(1, 3, 1, 1)
            (features,) = extractor(batch.to(device))
            out.append(features.cpu())
    return torch.cat(out)


def kid(features_1: torch.Tensor, features_2: torch.Tensor, subset_size: int, subsets: int, seed: int) -> tuple[float, float]:
    """Kernel Inception Distance (mean, std over ``subsets`` random subsets of ``subset_size``)."""
    out = kid_features_to_metric(
        features_1, features_2, kid_subset_size=subset_size, kid_subsets=subsets, rng_seed=seed, verbose=False,
        kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1,
    )
    return out[KEY_METRIC_KID_MEAN], out[KEY_METRIC_KID_STD]

