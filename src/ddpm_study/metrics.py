"""Inception features and KID through torch-fidelity (FID itself: ``uncertainty.frechet_distance``).

Features are those of torch-fidelity's ``inception-v3-compat`` extractor (the reference FID network);
its weights are read from torch's hub cache (``$TORCH_HOME/hub/checkpoints``) and downloaded there
on a machine with internet. Only the 2048-d features are used: FID, KID and their kin are standard
on them; Inception Score is not computed.

``InceptionFeatures`` runs that network's own modules and weights, rearranged without changing the
maths, about 1.8x as fast on a 2-core CPU (measured: ``benchmarks/speed.py``; features equal to ~3e-6
relative; the test pins 1e-4):
- the TF1-style bilinear resize to 299x299 is a fixed linear map per axis, so it is two small matrix
  products ``A_h @ x @ A_w^T`` instead of four gathers of full-size images (``A`` is torch-fidelity's
  own resize applied to the unit images, so the convention stays theirs);
- the (x - 128) / 128 scaling moves before the resize (each row of ``A`` sums to 1);
- every conv + eval-mode BatchNorm pair is folded into one conv with a bias;
- grayscale images go through a stem conv whose weights are the RGB kernel summed over its inputs
  (the same as repeating the channel three times, without the 3x larger resize);
- channels-last memory layout (oneDNN's fast path for these convs) and inference mode.
Not kept: ``torch.compile`` (about 1.1x here, after a compile that costs more than a stage's images
save) and bf16 (features differ by ~1e-2: FID stays fp32).
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch_fidelity.feature_extractor_inceptionv3 import BasicConv2d
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x
from torch_fidelity.metric_kid import kid_features_to_metric, KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD
from torch_fidelity.utils import create_feature_extractor

FEATURE_EXTRACTOR = "inception-v3-compat"
FEATURE_LAYER = "2048"
INPUT_SIZE = 299

# torch-fidelity's forward pass up to the 2048-d pool, block by block.
_BLOCKS = ("Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "MaxPool_2",
           "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
           "Mixed_7a", "Mixed_7b", "Mixed_7c")


def reference_extractor(device: torch.device) -> nn.Module:
    """torch-fidelity's extractor as its own API builds it (``InceptionFeatures`` is checked against it)."""
    return create_feature_extractor(FEATURE_EXTRACTOR, [FEATURE_LAYER], cuda=device.type == "cuda", verbose=False)


def _folded(block: BasicConv2d) -> nn.Sequential:
    """conv -> BatchNorm (eval) -> ReLU as conv-with-bias -> ReLU: w' = w * g / sqrt(var + eps), b' = beta - mean * g / sqrt(var + eps)."""
    conv, bn = block.conv, block.bn
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=True)
    fused.weight.data = conv.weight * scale[:, None, None, None]
    fused.bias.data = bn.bias - bn.running_mean * scale
    return nn.Sequential(fused, nn.ReLU(inplace=True))


def _fold_all(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, BasicConv2d):
            setattr(module, name, _folded(child))
        else:
            _fold_all(child)


@functools.lru_cache(maxsize=None)
def _resize_matrix(n_in: int) -> torch.Tensor:
    """[299, n_in]: torch-fidelity's TF1 bilinear resize along one axis, as a matrix (column a = resized unit row a)."""
    units = torch.eye(n_in, dtype=torch.float64)[:, None, :, None].expand(n_in, 1, n_in, 2).contiguous()
    resized = interpolate_bilinear_2d_like_tensorflow1x(units, size=(INPUT_SIZE, 2), align_corners=False)
    return resized[:, 0, :, 0].T.float()


def _folded_gray(stem: nn.Sequential) -> nn.Sequential:
    conv = stem[0]
    gray = nn.Conv2d(1, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=True)
    gray.weight.data = conv.weight.sum(dim=1, keepdim=True)
    gray.bias.data = conv.bias.clone()
    return nn.Sequential(gray, nn.ReLU(inplace=True))


class InceptionFeatures(nn.Module):
    """uint8 images [N, 1 or 3, H, W] -> torch-fidelity's 2048-d ``inception-v3-compat`` features [N, 2048]."""

    def __init__(self):
        super().__init__()
        net = reference_extractor(torch.device("cpu"))
        _fold_all(net)
        self.stem_rgb = net.Conv2d_1a_3x3
        self.stem_gray = _folded_gray(self.stem_rgb)
        self.blocks = nn.Sequential(*(getattr(net, name) for name in _BLOCKS))
        self.requires_grad_(False).eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        a_h = _resize_matrix(images.shape[2]).to(images.device)
        a_w = _resize_matrix(images.shape[3]).to(images.device)
        x = a_h @ ((images.float() - 128) / 128) @ a_w.T
        x = x.contiguous(memory_format=torch.channels_last)
        x = (self.stem_gray if images.shape[1] == 1 else self.stem_rgb)(x)
        return self.blocks(x).mean(dim=(2, 3))


@functools.lru_cache(maxsize=None)
def _network(device: torch.device) -> InceptionFeatures:
    return InceptionFeatures().to(device, memory_format=torch.channels_last)


def inception_features(images_uint8: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    """2048-d features [N, 2048] (float32, CPU) of uint8 images [N, C, H, W], C = 1 (grayscale) or 3."""
    if images_uint8.dtype != torch.uint8 or images_uint8.dim() != 4 or images_uint8.shape[1] not in (1, 3):
        raise ValueError(f"expected uint8 images [N, 1 or 3, H, W], got {images_uint8.dtype} {list(images_uint8.shape)}")
    network = _network(device)
    with torch.inference_mode():
        return torch.cat([network(images_uint8[start : start + batch_size].to(device)).cpu()
                          for start in range(0, len(images_uint8), batch_size)])


def kid(features_1: torch.Tensor, features_2: torch.Tensor, subset_size: int, subsets: int, seed: int) -> tuple[float, float]:
    """Kernel Inception Distance (mean, std over ``subsets`` random subsets of ``subset_size``)."""
    out = kid_features_to_metric(
        features_1, features_2, kid_subset_size=subset_size, kid_subsets=subsets, rng_seed=seed, verbose=False,
        kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1,
    )
    return out[KEY_METRIC_KID_MEAN], out[KEY_METRIC_KID_STD]
