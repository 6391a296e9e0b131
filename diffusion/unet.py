"""The denoiser: a 1-D U-Net over latent windows with frame controls, in/outpainting
inputs and global (tag, text, time) conditioning.

`model(x_t, t, cond=...) -> velocity`, with
- x_t `[B, latent_dim, frames]`, t `[B]` in [0, 1] (1 = pure noise),
- cond["controls"] `[B, frames, num_controls]`, cond["control_groups"] `[B, G]` (1 = group given),
- cond["known"] `[B, latent_dim, frames]` and cond["mask"] `[B, 1, frames]` (1 = frame known),
- cond["tags"] `[B, fields]` token ids (0 = none), cond["text"] `[B, text_dim]`,
  cond["text_present"] `[B]`.
Most channels sit at low time resolution, so it is cheap per frame on a CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class UNetConfig:
    latent_dim: int = 64
    num_controls: int = 63
    control_groups: tuple[tuple[int, int], ...] = ((0, 5), (5, 17), (17, 30), (30, 45), (45, 48), (48, 63))
    channels: tuple[int, ...] = (128, 192, 256)
    blocks_per_level: int = 2
    patch: int = 2  # frames folded into one position by the stem (cost falls by this factor)
    attention_heads: int = 4
    cond_dim: int = 256
    tag_vocab_size: int = 64  # rows of the tag embedding table (grown for new fields/values)
    text_dim: int = 384
    dropout: float = 0.0
    group_names: tuple[str, ...] = ("rhythm", "harmony", "bass", "melody", "drums", "form")
    extra: dict = field(default_factory=dict)

    @property
    def downsampling(self) -> int:
        return self.patch * 2 ** (len(self.channels) - 1)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of t in [0, 1] -> `[B, dim]`."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    args = (t.float() * 1000.0)[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=-1)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, twice, with FiLM (scale, shift) from the global condition."""

    def __init__(self, channels_in: int, channels_out: int, cond_dim: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(8, channels_in)
        self.conv1 = nn.Conv1d(channels_in, channels_out, 3, padding=1)
        self.film = nn.Linear(cond_dim, 2 * channels_out)
        self.norm2 = nn.GroupNorm(8, channels_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv1d(channels_out, channels_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv1d(channels_in, channels_out, 1) if channels_in != channels_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(cond)[..., None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Self-attention over frames (used at the lowest time resolution only)."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.norm = nn.GroupNorm(8, channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.out = nn.Conv1d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, t).unbind(1)
        h = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.out(h.transpose(-1, -2).reshape(b, c, t))


class UNet1D(nn.Module):
    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        c = config
        groups = len(c.control_groups)
        in_channels = 2 * c.latent_dim + 1 + c.num_controls + groups
        self.time_mlp = nn.Sequential(nn.Linear(c.cond_dim, c.cond_dim), nn.SiLU(), nn.Linear(c.cond_dim, c.cond_dim))
        self.tag_embedding = nn.Embedding(c.tag_vocab_size, c.cond_dim, padding_idx=0)
        nn.init.normal_(self.tag_embedding.weight, std=0.02)
        with torch.no_grad():
            self.tag_embedding.weight[0].zero_()
        self.text_proj = nn.Linear(c.text_dim, c.cond_dim)
        self.cond_out = nn.Sequential(nn.SiLU(), nn.Linear(c.cond_dim, c.cond_dim))
        self.input = nn.Conv1d(in_channels, c.channels[0], 2 * c.patch + 1, stride=c.patch, padding=c.patch)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skip_channels = []
        width = c.channels[0]
        for level, channels in enumerate(c.channels):
            blocks = nn.ModuleList()
            for _ in range(c.blocks_per_level):
                blocks.append(ResBlock(width, channels, c.cond_dim, c.dropout))
                width = channels
                skip_channels.append(width)
            self.down.append(blocks)
            self.downsample.append(nn.Conv1d(width, width, 4, stride=2, padding=1)
                                   if level < len(c.channels) - 1 else nn.Identity())
        self.mid1 = ResBlock(width, width, c.cond_dim, c.dropout)
        self.mid_attention = Attention(width, c.attention_heads)
        self.mid2 = ResBlock(width, width, c.cond_dim, c.dropout)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level, channels in reversed(list(enumerate(c.channels))):
            blocks = nn.ModuleList()
            for _ in range(c.blocks_per_level):
                blocks.append(ResBlock(width + skip_channels.pop(), channels, c.cond_dim, c.dropout))
                width = channels
            self.up.append(blocks)
            self.upsample.append(nn.ConvTranspose1d(width, width, 4, stride=2, padding=1)
                                 if level > 0 else nn.Identity())
        self.output = nn.Sequential(
            nn.GroupNorm(8, width), nn.SiLU(),
            nn.ConvTranspose1d(width, c.latent_dim, 2 * c.patch, stride=c.patch, padding=c.patch // 2)
            if c.patch > 1 else nn.Conv1d(width, c.latent_dim, 3, padding=1))
        nn.init.zeros_(self.output[-1].weight)
        nn.init.zeros_(self.output[-1].bias)

    def global_condition(self, t: torch.Tensor, cond: dict) -> torch.Tensor:
        g = self.time_mlp(timestep_embedding(t, self.config.cond_dim))
        tags = cond.get("tags")
        if tags is not None and tags.numel():
            g = g + self.tag_embedding(tags).sum(dim=1)
        text = cond.get("text")
        if text is not None:
            present = cond.get("text_present", torch.ones(text.shape[0], device=text.device))
            g = g + self.text_proj(text) * present.float()[:, None]
        return self.cond_out(g)

    def frame_inputs(self, x_t: torch.Tensor, cond: dict) -> torch.Tensor:
        b, _, frames = x_t.shape
        c = self.config
        mask = cond.get("mask")
        if mask is None:
            mask = x_t.new_zeros(b, 1, frames)
        known = cond.get("known")
        known = x_t.new_zeros(x_t.shape) if known is None else known * mask
        controls = cond.get("controls")
        group_flags = cond.get("control_groups")
        if controls is None:
            controls = x_t.new_zeros(b, frames, c.num_controls)
            group_flags = x_t.new_zeros(b, len(c.control_groups))
        elif group_flags is None:
            group_flags = x_t.new_ones(b, len(c.control_groups))
        channel_mask = torch.zeros(b, c.num_controls, device=x_t.device)
        for g, (lo, hi) in enumerate(c.control_groups):
            channel_mask[:, lo:hi] = group_flags[:, g:g + 1]
        controls = controls.transpose(1, 2) * channel_mask[..., None]
        flags = group_flags[..., None].expand(-1, -1, frames)
        return torch.cat([x_t, known, mask, controls, flags], dim=1)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, *, cond: dict) -> torch.Tensor:
        frames = x_t.shape[-1]
        factor = self.config.downsampling
        pad = (-frames) % factor
        h = self.frame_inputs(x_t, cond)
        if pad:
            h = F.pad(h, (0, pad))
        g = self.global_condition(t, cond)
        h = self.input(h)
        skips = []
        for blocks, downsample in zip(self.down, self.downsample):
            for block in blocks:
                h = block(h, g)
                skips.append(h)
            h = downsample(h)
        h = self.mid2(self.mid_attention(self.mid1(h, g)), g)
        for blocks, upsample in zip(self.up, self.upsample):
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), g)
            h = upsample(h)
        return self.output(h)[..., :frames]
