"""U-Net shapes: 28x28 (no cropping) and 32x32 inputs, grayscale and RGB, several depths."""

import numpy as np
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
    """[cos(t w_i), sin(t w_i)] with w_i = 10000^(-i / half), i = 0 .. half - 1 (improved-diffusion's layout);
    real-valued t work the same, and an odd width is padded with one zero."""
    t = torch.tensor([0.0, 1.0, 17.5, 999.0])
    emb = timestep_embedding(t, 16)
    assert emb.shape == (4, 16)
    w = 10000.0 ** (-np.arange(8) / 8)
    args = t.double().numpy()[:, None] * w[None]
    np.testing.assert_allclose(emb.numpy(), np.concatenate([np.cos(args), np.sin(args)], axis=1), atol=2e-4, rtol=0)
    odd = timestep_embedding(t, 17)
    assert odd.shape == (4, 17) and torch.equal(odd[:, :16], emb) and torch.equal(odd[:, 16], torch.zeros(4))


def _perturbed(model: UNet) -> UNet:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("mode", ["multiply", "add"])
def test_class_conditional_net_uses_the_class_and_the_null_class(mode):
    torch.manual_seed(0)
    model = _perturbed(UNet(1, 8, (1, 2, 4), 1, attention_heads=2, norm_groups=4, num_classes=10, class_embedding=mode))
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([500, 500])
    a, b = model(x, t, torch.tensor([3, 3])), model(x, t, torch.tensor([3, 7]))
    torch.testing.assert_close(a[0], b[0])  # per-image conditioning
    assert not torch.allclose(a[1], b[1])
    torch.testing.assert_close(model(x, t), model(x, t, torch.tensor([10, 10])))  # no label = the null class
    assert model.null_class == 10


def test_multiplied_context_starts_as_the_unconditional_net():
    """The class gains are created last and start at 1: same seed, same other weights, same output."""
    torch.manual_seed(0)
    plain = UNet(1, 8, (1, 2, 4), 1, attention_heads=2, norm_groups=4)
    torch.manual_seed(0)
    cond = UNet(1, 8, (1, 2, 4), 1, attention_heads=2, norm_groups=4, num_classes=10)
    shared = plain.state_dict()
    assert all(torch.equal(v, cond.state_dict()[k]) for k, v in shared.items())
    assert {k.split(".")[0] for k in cond.state_dict()} - {k.split(".")[0] for k in shared} == {"class_gains"}
    torch.manual_seed(1)
    _perturbed(plain)
    cond.load_state_dict({**cond.state_dict(), **plain.state_dict()})
    x, t = torch.randn(3, 1, 28, 28), torch.tensor([1, 400, 999])
    torch.testing.assert_close(cond(x, t, torch.tensor([0, 4, 9])), plain(x, t))


def test_labels_for_an_unconditional_net_are_refused():
    model = UNet(1, 8, (1, 2), 1, attention_heads=2, norm_groups=4)
    with pytest.raises(ValueError, match="unconditional"):
        model(torch.randn(1, 1, 28, 28), torch.tensor([0]), torch.tensor([1]))
