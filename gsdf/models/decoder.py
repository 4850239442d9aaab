"""DeepSDF decoder (Park et al. 2019), as the reference's ``SDFHead``.

``f(z, e(x)) -> s``: the conditioning feature ``z`` and the point encoding ``e(x)`` are
concatenated; hidden layers of 512 with weight normalisation, ReLU and dropout 0.2; the input is
re-concatenated at the middle layer (the layer before it outputs ``512 - input_size`` so the
concatenation is 512 wide); a linear output and ``tanh``. The output layer starts near zero
(see ``__init__``). The optional hand-part head is a linear
classifier on the input of the last layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from gsdf.models.args import DecoderArgs


def fast_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout with the same semantics as ``F.dropout`` (zero with probability ``p``,
    scale the rest by ``1 / (1 - p)``), with the mask drawn by ``torch.rand_like``: on CPU,
    ``F.dropout``'s ``bernoulli_`` was ~2x slower for the decoders' (B * N, 512) activations and
    12% of a decoder-heavy training step (benchmarks/bench_train.py). Same RNG stream (the
    global generator), so seeded runs stay reproducible.
    """
    if not training or p == 0.0:
        return x
    if p >= 1.0:
        return torch.zeros_like(x)
    return x * torch.rand_like(x).ge_(p).mul_(1.0 / (1.0 - p))


class SDFDecoder(nn.Module):
    """DeepSDF MLP.

    Args:
        feat_dim: size of the conditioning feature ``z``.
        point_dim: size of the point encoding.
        args: :class:`DecoderArgs`.
        with_parts: add the part classifier (``args.num_classes`` logits).

    Shapes:
        forward: (M, feat_dim + point_dim) -> sdf (M,) in hand-frame units (tanh range),
        part logits (M, num_classes) or None.
    """

    def __init__(self, feat_dim: int, point_dim: int, args: DecoderArgs | None = None,
                 with_parts: bool = False) -> None:
        super().__init__()
        args = args or DecoderArgs()
        self.in_dim = feat_dim + point_dim
        dims = [self.in_dim, *args.dims, 1]
        self.latent_in = set(args.latent_in)
        self.dropout_layers = set(args.dropout_layers)
        self.dropout_prob = args.dropout_prob
        self.layers = nn.ModuleList()
        for i in range(len(dims) - 1):
            out_dim = dims[i + 1] - self.in_dim if (i + 1) in self.latent_in else dims[i + 1]
            if out_dim <= 0:
                raise ValueError(f"decoder layer {i + 1} re-injects an input of {self.in_dim} "
                                 f"features into a layer of {dims[i + 1]}: widen 'decoder.dims'")
            lin = nn.Linear(dims[i], out_dim)
            if i == len(dims) - 2:
                # Start inside the clamp band: the loss clamps the prediction too (DeepSDF Eq. 9),
                # so a prediction beyond +-clamp has no gradient; a default-initialised output
                # layer can put every point there and stall training (not in the reference).
                nn.init.normal_(lin.weight, std=1e-3)
                nn.init.zeros_(lin.bias)
            self.layers.append(weight_norm(lin) if i in args.norm_layers else lin)
        self.part_head = nn.Linear(dims[-2], args.num_classes) if with_parts else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        inp, h, parts = x, x, None
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            if i == last and self.part_head is not None:
                parts = self.part_head(h)
            if i in self.latent_in:
                h = torch.cat([h, inp], dim=-1)
            h = layer(h)
            if i < last:
                h = F.relu(h)
                if i in self.dropout_layers:
                    h = fast_dropout(h, self.dropout_prob, self.training)
        return torch.tanh(h[..., 0]), parts
