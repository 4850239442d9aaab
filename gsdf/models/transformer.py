"""Spatial-temporal transformer over per-frame feature maps (gSDF video, reference
``VideoTransformer``): every cell of every frame is a token; a spatial transformer attends within
each frame, then a temporal transformer attends across frames at each cell.
"""

from __future__ import annotations

import torch
from torch import nn

from gsdf.models.args import TransformerArgs


class _Attention(nn.Module):
    """Multi-head self-attention with an inner width ``heads * dim_head`` (may differ from dim).

    Shapes: (B, L, dim) -> (B, L, dim).
    """

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dim_head = heads, dim_head
        self.qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, self.dim_head).permute(2, 0, 3, 1, 4)
        y = nn.functional.scaled_dot_product_attention(q, k, v)  # (B, heads, L, dim_head)
        return self.out(y.transpose(1, 2).reshape(b, n, -1))


class _Encoder(nn.Module):
    """Pre-norm transformer: ``depth`` x (attention + GELU MLP, residual), final LayerNorm."""

    def __init__(self, args: TransformerArgs) -> None:
        super().__init__()
        d = args.dim
        self.blocks = nn.ModuleList()
        for _ in range(args.depth):
            self.blocks.append(nn.ModuleList([
                nn.LayerNorm(d), _Attention(d, args.heads, args.dim_head, args.dropout),
                nn.LayerNorm(d), nn.Sequential(
                    nn.Linear(d, d * args.mlp_ratio), nn.GELU(), nn.Dropout(args.dropout),
                    nn.Linear(d * args.mlp_ratio, d), nn.Dropout(args.dropout))]))
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for norm1, attn, norm2, mlp in self.blocks:
            x = x + attn(norm1(x))
            x = x + mlp(norm2(x))
        return self.norm(x)


class SpatialTemporalTransformer(nn.Module):
    """Refine T feature maps jointly.

    Args:
        channels: channels of the input and output maps.
        num_cells: cells per map (``h * w``) -- the positional embedding has one entry per cell.
        num_frames: T (for a per-frame embedding).
        args: :class:`TransformerArgs`.

    Shapes:
        (B, T, C, h, w) -> (B, T, C, h, w).
    """

    def __init__(self, channels: int, num_cells: int, num_frames: int,
                 args: TransformerArgs) -> None:
        super().__init__()
        self.num_cells = num_cells
        self.embed = nn.Linear(channels, args.dim)
        frames = num_frames if args.temporal_embedding else 1
        self.pos = nn.Parameter(torch.randn(1, frames, num_cells, args.dim))
        self.spatial = _Encoder(args)
        self.temporal = _Encoder(args)
        self.project = nn.Identity() if args.dim == channels else nn.Linear(args.dim, channels)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = maps.shape
        if h * w != self.num_cells:
            raise ValueError(f"feature maps of {h}x{w} cells but the transformer was built for "
                             f"{self.num_cells}; set model_args 'image_size' to the training size")
        x = self.embed(maps.flatten(3).transpose(2, 3))  # (B, T, n, dim)
        x = x + self.pos[:, :t]
        x = self.spatial(x.reshape(b * t, h * w, -1)).reshape(b, t, h * w, -1)
        x = x.transpose(1, 2).reshape(b * h * w, t, -1)  # (B n, T, dim)
        x = self.temporal(x).reshape(b, h * w, t, -1).transpose(1, 2)  # (B, T, n, dim)
        x = self.project(x)  # (B, T, n, C)
        return x.transpose(2, 3).reshape(b, t, c, h, w)
