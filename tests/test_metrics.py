"""KID on features and the real Inception feature extractor (FID: test_uncertainty.py)."""

import pytest
import torch

from ddpm_study import metrics


def gaussian(n, mean, std, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, len(mean), generator=g, dtype=torch.float64).float() * torch.tensor(std) + torch.tensor(mean)


def test_kid_near_zero_for_same_distribution_and_positive_otherwise():
    same, _ = metrics.kid(gaussian(400, [0.0] * 4, [1.0] * 4, 3), gaussian(400, [0.0] * 4, [1.0] * 4, 4), 100, 20, 0)
    diff, _ = metrics.kid(gaussian(400, [0.0] * 4, [1.0] * 4, 3), gaussian(400, [2.0] * 4, [1.0] * 4, 4), 100, 20, 0)
    assert abs(same) < 0.05 < diff


def test_inception_features_real_weights(torch_home):
    g = torch.Generator().manual_seed(0)
    gray = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8, generator=g)
    f = metrics.inception_features(gray, batch_size=2, device=torch.device("cpu"))
    assert f.shape == (4, 2048) and torch.isfinite(f).all() and f.abs().sum() > 0
    rgb = metrics.inception_features(gray.repeat(1, 3, 1, 1), batch_size=4, device=torch.device("cpu"))
    torch.testing.assert_close(f, rgb, atol=1e-4, rtol=1e-4)  # grayscale is repeated to 3 channels


def test_inception_rejects_float_images():
    with pytest.raises(ValueError, match="uint8"):
        metrics.inception_features(torch.zeros(1, 1, 28, 28), 1, torch.device("cpu"))


