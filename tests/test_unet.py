"""U-Net shapes: 28x28 (no cropping) and 32x32 inputs, grayscale and RGB, several depths."""

import pytest
import torch

from ddpm_study.unet import UNet, timestep_embedding


@pytest.mark.parametrize(
    "channels,size,mults,blocks",
    [(1, 28, (1, 2, 4), 1), (1, 28, (1, 2), 2), (3, 32, (1, 2, 2, 2), 1), (1, 28, (1,), 1)],
)
def test_output_shape_matches_input(channels, size, mults, blocks):
    model = UNet(channels, 8, mults, blocks, attention_heads=2, norm_groups=4)
    x = torch.randn(3, channels, size, size)
    assert model(x, torch.tensor([0, 500, 999])).shape == x.shape


def test_output_depends_on_timestep():
    torch.manual_seed(0)
    model = UNet(1, 8, (1, 2), 1, attention_heads=2, norm_groups=4)
    # Output layers start at zero (each block starts as the identity); give them weights to see the signal.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(1, 1, 28, 28)
    assert not torch.allclose(model(x, torch.tensor([10])), model(x, torch.tensor([900])))


def test_timestep_embedding():
    emb = timestep_embedding(torch.tensor([0, 1, 999]), 16)
    assert emb.shape == (3, 16)
    torch.testing.assert_close(emb[0, :8], torch.ones(8))  # cos(0)
    torch.testing.assert_close(emb[0, 8:], torch.zeros(8))  # sin(0)
