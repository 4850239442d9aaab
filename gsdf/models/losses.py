"""Loss functions shared by the models.

* :func:`sdf_masks` and :func:`masked_l1`: the reference's clamped L1 SDF loss (or its
  dead-zone-free ``band`` variant) with the ``sdf_add_epoch`` mask schedule.
* :class:`HandOrdinalLoss`: the hand ordinal loss of the pose network (joint-pair and bone-pair
  depth orderings seen from random virtual views; reference ``common/loss/ordinal_loss.py``).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

_PARENTS_21 = [0, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19]


def sdf_masks(batch_size: int, num_points: int, both_branches: bool, epoch: int,
              sdf_add_epoch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Which points supervise the hand and the object decoder.

    The batch's first ``N/2`` points are the hand SDF set, the rest the object set
    (docs/architecture.md). With both branches and ``epoch < sdf_add_epoch``, each decoder sees
    only its own set; afterwards (or with one branch) every point supervises it.

    Returns:
        mask_hand, mask_obj: (B, N) float 0/1.
    """
    ones = torch.ones(batch_size, num_points, device=device)
    if not both_branches or epoch >= sdf_add_epoch:
        return ones, ones
    first = torch.zeros_like(ones)
    first[:, : num_points // 2] = 1
    return first, 1 - first


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
              clamp: float, style: str = "clamped") -> torch.Tensor:
    """Clamped L1 SDF loss, mean over the masked entries.

    ``clamped`` is DeepSDF's Eq. 9, ``|clamp(pred) - clamp(target)|`` (the reference). Its
    gradient is zero wherever the prediction is beyond the clamp, whatever the target: a decoder
    that drifts above ``+clamp`` over a region where the truth is inside the band stays there
    (an object field positive everywhere, a decoder collapsed to a constant).

    ``band`` (DualSDF's corrected clamped L1, Hao et al. CVPR 2020) keeps the same "do not care
    beyond the clamp" meaning but has no dead zone: ``|pred - target|`` where the target is inside
    the band, ``max(clamp - pred, 0)`` where it is beyond ``+clamp`` and ``max(pred + clamp, 0)``
    where it is beyond ``-clamp``. It equals ``clamped`` whenever the prediction is inside the
    band and is never smaller.

    Args: pred, target, mask: (B, N) (hand-frame units); clamp: clamp distance; style:
        ``clamped`` | ``band``.
    Returns: scalar.
    """
    if style == "clamped":
        diff = (pred.clamp(-clamp, clamp) - target.clamp(-clamp, clamp)).abs()
    elif style == "band":
        diff = torch.where(target >= clamp, (clamp - pred).clamp_min(0.0),
                           torch.where(target <= -clamp, (pred + clamp).clamp_min(0.0),
                                       (pred - target).abs()))
    else:
        raise ValueError(f"SDF loss style {style!r}; allowed values: ['clamped', 'band']")
    return (diff * mask).sum() / mask.sum().clamp_min(1.0)


def _view_vectors(num: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The camera axis and ``num`` random directions on the front half sphere: (num + 1, 3)."""
    theta = torch.rand(num, device=device, dtype=dtype) * 2 * math.pi
    u = torch.rand(num, device=device, dtype=dtype)
    r = torch.sqrt(1 - u ** 2)
    views = torch.stack([r * torch.cos(theta), r * torch.sin(theta), u], dim=1)
    cam = torch.tensor([[0.0, 0.0, 1.0]], device=device, dtype=dtype)
    return torch.cat([cam, views], dim=0)


class HandOrdinalLoss(nn.Module):
    """Ordinal loss on 21 joints (reference ``HandOrdLoss``).

    For a random third of the joint pairs, ``log(1 + relu(-sign(<gt_i - gt_j, v>) * <pred_i -
    pred_j, v>))`` over the camera axis and 20 random views; the same without the log on the
    ``<bone_a x bone_b, v>`` of a random third of the bone pairs. Uses the global torch RNG.

    Shapes: pred, gt (B, 21, 3) -> scalar.
    """

    def __init__(self, num_views: int = 20) -> None:
        super().__init__()
        self.num_views = num_views
        self.register_buffer("joint_pairs", torch.tensor(
            list(itertools.combinations(range(21), 2))), persistent=False)
        self.register_buffer("bone_pairs", torch.tensor(
            list(itertools.combinations(range(20), 2))), persistent=False)

    def _subset(self, pairs: torch.Tensor) -> torch.Tensor:
        keep = torch.randperm(len(pairs), device=pairs.device)[: len(pairs) // 3]
        return pairs[keep]

    def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        views = _view_vectors(self.num_views, pred.device, pred.dtype)  # (V, 3)
        jp = self._subset(self.joint_pairs)
        d_pred = (pred[:, jp[:, 0]] - pred[:, jp[:, 1]]) @ views.T  # (B, P, V)
        d_gt = (gt[:, jp[:, 0]] - gt[:, jp[:, 1]]) @ views.T
        joint_loss = torch.log1p(torch.relu(-torch.sign(d_gt) * d_pred)).mean()
        bones_pred = (pred - pred[:, _PARENTS_21])[:, 1:]  # (B, 20, 3)
        bones_gt = (gt - gt[:, _PARENTS_21])[:, 1:]
        bp = self._subset(self.bone_pairs)
        c_pred = torch.cross(bones_pred[:, bp[:, 0]], bones_pred[:, bp[:, 1]], dim=-1) @ views.T
        c_gt = torch.cross(bones_gt[:, bp[:, 0]], bones_gt[:, bp[:, 1]], dim=-1) @ views.T
        part_loss = torch.relu(-torch.sign(c_gt) * c_pred).mean()
        return joint_loss + part_loss
