"""The noise-prediction U-Net eps_theta(x_t, t) (Ho et al. 2020, appendix B; improved-diffusion).

Residual blocks with GroupNorm and a projected time embedding, a resolution level per entry of
``channel_mults`` (each level but the last halves the resolution), skip connections from every
down block to its mirror up block, and self-attention in the middle block at the lowest
resolution. 28x28 inputs work with up to three levels (28 -> 14 -> 7).

Class conditioning (``num_classes`` > 0) has two forms, chosen by ``class_embedding``:

- ``"multiply"`` (the seed notes' context embedding, ``up = up_block(context_emb * up + t_emb, skip)``):
  a learned per-class, per-channel gain multiplies the feature map entering each decoder level (the
  middle block's output, and each upsampled level), while the time embedding keeps being added
  inside every residual block. A gain can switch a decoder channel on or off per class, and scales
  whatever the encoder found; the encoder itself stays class-agnostic. The gains start at 1, so an
  untrained conditional net is the unconditional one.
- ``"add"`` (improved-diffusion / ADM): a class embedding is added to the time embedding, so the class
  shifts the per-channel bias of *every* residual block, encoder and middle included, through the
  same projection as the timestep.

Index ``num_classes`` is the null class (no label), which classifier-free guidance needs (Ho &
Salimans 2021): training replaces a label by it with probability ``train.cond_drop_prob``, and a
missing ``y`` means the null class. Which form is better here was measured once (write-up of the
conditional run).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of timesteps ``t`` [B] -> [B, dim] (Vaswani et al. 2017)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


class ResBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.in_layers = nn.Sequential(nn.GroupNorm(groups, in_ch), nn.SiLU(), nn.Conv2d(in_ch, out_ch, 3, padding=1))
        self.emb_proj = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, out_ch))
        self.out_layers = nn.Sequential(
            nn.GroupNorm(groups, out_ch), nn.SiLU(), nn.Dropout(dropout), nn.Conv2d(out_ch, out_ch, 3, padding=1)
        )
        # Zero-init the last conv so every block starts as the identity (improved-diffusion).
        nn.init.zeros_(self.out_layers[-1].weight)
        nn.init.zeros_(self.out_layers[-1].bias)
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x) + self.emb_proj(emb)[:, :, None, None]
        return self.skip(x) + self.out_layers(h)


class AttentionBlock(nn.Module):
    """Multi-head self-attention over the spatial positions, with a residual connection."""

    def __init__(self, ch: int, heads: int, groups: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)  # [B, heads, HW, C/heads]
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class UNet(nn.Module):
    """eps_theta: ([B, C, H, W] images, [B] integer timesteps) -> [B, C, H, W] predicted noise."""

    def __init__(
        self,
        in_channels: int,
        base_channels: int,
        channel_mults: tuple[int, ...],
        num_res_blocks: int,
        attention_heads: int,
        norm_groups: int,
        dropout: float = 0.0,
        num_classes: int = 0,
        class_embedding: str = "multiply",
    ):
        super().__init__()
        ch = base_channels
        emb_dim = 4 * ch
        self.base_channels = ch
        self.num_classes = num_classes
        self.class_embedding = class_embedding
        if class_embedding not in ("multiply", "add"):
            raise ValueError(f"class_embedding must be 'multiply' or 'add', got {class_embedding!r}")
        self.time_mlp = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.stem = nn.Conv2d(in_channels, ch, 3, padding=1)

        self.down = nn.ModuleList()
        skip_channels = [ch]
        width = ch
        for level, mult in enumerate(channel_mults):
            for _ in range(num_res_blocks):
                self.down.append(ResBlock(width, ch * mult, emb_dim, norm_groups, dropout))
                width = ch * mult
                skip_channels.append(width)
            if level != len(channel_mults) - 1:
                self.down.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
                skip_channels.append(width)

        self.mid = nn.ModuleList(
            [
                ResBlock(width, width, emb_dim, norm_groups, dropout),
                AttentionBlock(width, attention_heads, norm_groups),
                ResBlock(width, width, emb_dim, norm_groups, dropout),
            ]
        )

        # Modules are created only for conditional nets, after all others: an unconditional net
        # draws exactly the initial weights it always did.
        decoder_widths = [width] + [ch * m for m in reversed(channel_mults[1:])]
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mults))):
            for i in range(num_res_blocks + 1):
                self.up.append(ResBlock(width + skip_channels.pop(), ch * mult, emb_dim, norm_groups, dropout))
                width = ch * mult
                if level != 0 and i == num_res_blocks:
                    self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
                    self.up.append(nn.Conv2d(width, width, 3, padding=1))

        self.head = nn.Sequential(nn.GroupNorm(norm_groups, width), nn.SiLU(), nn.Conv2d(width, in_channels, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

        if num_classes and class_embedding == "multiply":
            # One gain vector per decoder level (entries: classes + the null class), initialised to 1.
            self.class_gains = nn.ModuleList(nn.Embedding(num_classes + 1, w) for w in decoder_widths)
            for gains in self.class_gains:
                nn.init.ones_(gains.weight)
        elif num_classes:
            self.class_emb = nn.Embedding(num_classes + 1, emb_dim)

    @property
    def null_class(self) -> int:
        return self.num_classes

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``y`` [B]: class indices in [0, num_classes], ``num_classes`` = null; None = null (conditional nets only)."""
        if y is not None and not self.num_classes:
            raise ValueError("class labels given to an unconditional U-Net (num_classes = 0)")
        if self.num_classes and y is None:
            y = torch.full((x.shape[0],), self.null_class, device=x.device, dtype=torch.long)
        emb = self.time_mlp(timestep_embedding(t, self.base_channels))
        if self.num_classes and self.class_embedding == "add":
            emb = emb + self.class_emb(y)
        gains = iter(self.class_gains) if self.num_classes and self.class_embedding == "multiply" else None
        h = self.stem(x)
        skips = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
            skips.append(h)
        for layer in self.mid:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
        if gains is not None:  # entering the lowest decoder level
            h = h * next(gains)(y)[:, :, None, None]
        for layer in self.up:
            if isinstance(layer, ResBlock):
                h = layer(torch.cat([h, skips.pop()], dim=1), emb)
            else:
                h = layer(h)
                if gains is not None and isinstance(layer, nn.Conv2d):  # entering the next decoder level
                    h = h * next(gains)(y)[:, :, None, None]
        return self.head(h)
