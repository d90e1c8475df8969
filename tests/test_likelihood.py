"""The variational bound's terms against closed forms: the Gaussian KL, the prior term, the discretised decoder
(a distribution over the 256 bins, its outer bins open), and the whole bound of an oracle model."""

import math

import numpy as np
import pytest
import torch

from ddpm_study import likelihood
from ddpm_study.diffusion import GaussianDiffusion
from ddpm_study.schedules import get_betas


def test_normal_kl_is_torchs_closed_form():
    g = torch.Generator().manual_seed(0)
    m1, m2, lv1, lv2 = (torch.randn(50, generator=g) for _ in range(4))
    ours = likelihood.normal_kl(m1, lv1, m2, lv2)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(m1, torch.exp(0.5 * lv1)),
                                            torch.distributions.Normal(m2, torch.exp(0.5 * lv2)))
    assert torch.allclose(ours, ref, atol=1e-5)
    assert torch.allclose(likelihood.normal_kl(m1, lv1, m1, lv1), torch.zeros(50), atol=1e-7)


def test_the_prior_term_at_x0_zero():
    betas = get_betas("linear", 1000, beta_start=1e-4, beta_end=0.02)
    d = GaussianDiffusion(betas)
    abar_T = float(np.cumprod(1 - betas)[-1])
    closed = 0.5 * (-1 - math.log(1 - abar_T) + (1 - abar_T)) / math.log(2)
    got = likelihood.prior_bpd(d, torch.zeros(3, 1, 4, 4))
    assert torch.allclose(got, torch.full((3,), closed), rtol=1e-5)
    # A nonzero image adds abar_T x0^2 / 2 nats per pixel.
    x = torch.full((1, 1, 4, 4), 0.5)
    assert math.isclose(float(likelihood.prior_bpd(d, x)[0]), closed + abar_T * 0.25 / 2 / math.log(2), rel_tol=1e-4)


def test_the_decoder_is_a_distribution_over_the_256_bins():
    levels = torch.arange(256, dtype=torch.float64) / 127.5 - 1
    for mean, log_scale in ((0.0, math.log(0.05)), (0.97, math.log(0.01)), (-1.2, math.log(0.3))):
        logp = likelihood.discretized_gaussian_log_likelihood(levels, torch.full_like(levels, mean),
                                                              torch.full_like(levels, log_scale))
        assert math.isclose(float(logp.exp().sum()), 1.0, rel_tol=1e-9)
        # The inner bins are the CDF differences at the bin edges, the outer ones the open tails.
        normal = torch.distributions.Normal(torch.tensor(mean, dtype=torch.float64),
                                            torch.tensor(math.exp(log_scale), dtype=torch.float64))
        i = min(max(round((mean + 1) * 127.5), 1), 254)  # the inner bin nearest the mean
        inner = normal.cdf(levels[i] + 1 / 255) - normal.cdf(levels[i] - 1 / 255)
        assert inner > 1e-3 and math.isclose(float(logp[i].exp()), float(inner), rel_tol=1e-9)
        assert math.isclose(float(logp[-1].exp()), float(1 - normal.cdf(levels[-1] - 1 / 255)), rel_tol=1e-9, abs_tol=1e-11)
        assert math.isclose(float(logp[0].exp()), float(normal.cdf(levels[0] + 1 / 255)), rel_tol=1e-9, abs_tol=1e-11)


class Oracle(torch.nn.Module):
    """The exact eps of x_t for one known image: x0 is recovered exactly at every t."""

    def __init__(self, diffusion, x0):
        super().__init__()
        self.d, self.x0 = diffusion, x0

    def forward(self, x_t, t, y=None):
        a = self.d._extract("sqrt_alphas_cumprod", t, x_t.shape)
        s = self.d._extract("sqrt_one_minus_alphas_cumprod", t, x_t.shape)
        return (x_t - a * self.x0) / s


def test_an_oracle_models_bound_is_the_prior_plus_the_decoder():
    """With x0 known exactly every KL term vanishes (the model's step is the posterior), and the decoder's mass
    is that of x0's bin around x0 itself at the scale sqrt(beta~_1)."""
    betas = get_betas("cosine", 200, s=0.008, max_beta=0.999)
    d = GaussianDiffusion(betas)
    x0 = (torch.randint(0, 256, (2, 1, 4, 4), generator=torch.Generator().manual_seed(1)).float() / 127.5 - 1)
    out = likelihood.bits_per_dim(d, Oracle(d, x0), x0, torch.Generator().manual_seed(2))
    assert out["terms"].shape == (200, 2)
    assert torch.allclose(out["terms"][1:], torch.zeros(199, 2, dtype=torch.float64), atol=1e-4)
    scale = math.sqrt(float(d.posterior_variance[1]))
    inner, edge = math.erf(1 / 255 / scale / math.sqrt(2)), 0.5 * (1 + math.erf(1 / 255 / scale / math.sqrt(2)))
    per_pixel = [-math.log(edge if abs(v) > 1 - 1e-3 else inner) / math.log(2) for v in x0[0].flatten().tolist()]
    assert math.isclose(float(out["terms"][0, 0]), float(np.mean(per_pixel)), rel_tol=1e-4)
    assert torch.allclose(out["total"], out["terms"].sum(0) + out["prior"])


def test_strata_partition_the_timesteps():
    parts = likelihood.strata(1000, 30)
    assert len(parts) == 30 and [t for r in parts for t in r] == list(range(1000))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    rest = likelihood.strata(1000, 49, 20)  # after 20 exact terms
    assert len(rest) == 49 and [t for r in rest for t in r] == list(range(20, 1000))
    with pytest.raises(ValueError, match="strata <= T"):
        likelihood.strata(10, 11)
    with pytest.raises(ValueError, match="strata <= T - start = 5"):
        likelihood.strata(10, 6, 5)


@pytest.mark.parametrize("exact", [0, 10])
def test_the_stratified_estimate_agrees_with_the_full_sum(exact):
    """An oracle off by a constant (so every KL term is positive): over independent noise draws, the mean of the
    stratified estimate (``exact`` terms exactly and 10 strata of the other T - exact = 100 - exact terms per image)
    equals the mean of the full T-term sum within 4 standard errors of their difference; without exact terms its
    spread is larger than the full sum's (it samples t)."""
    betas = get_betas("linear", 100, beta_start=1e-4, beta_end=0.02)
    d = GaussianDiffusion(betas)
    x0 = (torch.randint(0, 256, (2, 1, 4, 4), generator=torch.Generator().manual_seed(1)).float() / 127.5 - 1)
    model = Oracle(d, x0 * 0.8)
    full = torch.stack([likelihood.bits_per_dim(d, model, x0, torch.Generator().manual_seed(s))["total"]
                        for s in range(20)]).numpy()
    strat = torch.stack([likelihood.stratified_bits_per_dim(d, model, x0, 10, torch.Generator().manual_seed(100 + s),
                                                            exact)["total"] for s in range(200)]).numpy()
    assert full.mean() > 0.5  # the KL terms matter
    for image in range(2):
        a, b = full[:, image], strat[:, image]
        se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
        assert abs(a.mean() - b.mean()) < 4 * se, (a.mean(), b.mean(), se)
        if not exact:
            assert b.std() > a.std()
    # one generator state: the same t and noise for two models (paired); T strata: one term per timestep
    one = likelihood.stratified_bits_per_dim(d, model, x0, 100 - exact, torch.Generator().manual_seed(5), exact)["total"]
    again = likelihood.stratified_bits_per_dim(d, model, x0, 100 - exact, torch.Generator().manual_seed(5), exact)["total"]
    assert torch.equal(one, again)


def test_exact_small_t_terms_shrink_the_estimates_spread():
    """The small-t terms (the decoder L_0 above all) are the bound's largest: summing the first 10 of T = 100 exactly
    and stratifying the rest, at the same 20 calls per image, spreads the estimate less than 20 strata of [0, T)."""
    betas = get_betas("linear", 100, beta_start=1e-4, beta_end=0.02)
    d = GaussianDiffusion(betas)
    x0 = (torch.randint(0, 256, (2, 1, 4, 4), generator=torch.Generator().manual_seed(1)).float() / 127.5 - 1)
    model = Oracle(d, x0 * 0.8)

    def spread(count, exact):
        draws = torch.stack([likelihood.stratified_bits_per_dim(d, model, x0, count, torch.Generator().manual_seed(s),
                                                                exact)["total"] for s in range(100)])
        return draws.std(0)

    assert bool((spread(10, 10) < 0.5 * spread(20, 0)).all())
