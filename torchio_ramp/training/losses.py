"""Loss, optimiser and learning-rate schedule (nnU-Net's defaults)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_LR = {'adamw': 1e-3, 'sgd': 1e-2}
"""Initial learning rate per optimizer (nnU-Net uses SGD at 1e-2)."""


class DiceCELoss(nn.Module):
    """Soft Dice loss plus cross-entropy, as in nnU-Net.

    ``loss = ce_weight * CE + dice_weight * (1 - mean_c Dice_c)`` with the
    soft Dice ``(2 sum p g + smooth) / (sum p + sum g + smooth)`` of the
    softmax probabilities ``p`` and the one-hot target ``g``. With
    ``batch_dice`` the sums run over the batch and the voxels (one Dice per
    class per batch, stable when a patch misses a class); otherwise one Dice
    per class per patch.

    Args:
        include_background: Also average the Dice of class 0.
        batch_dice: Sum over the batch before the ratio.
        smooth: Added to the numerator and the denominator.
        ce_weight: Weight of the cross-entropy term.
        dice_weight: Weight of the Dice term.

    Example:
        >>> import torch
        >>> loss = DiceCELoss()
        >>> target = torch.randint(0, 3, (2, 8, 8, 8))
        >>> perfect = 20.0 * torch.nn.functional.one_hot(target, 3).permute(0, 4, 1, 2, 3)
        >>> round(float(loss(perfect, target)), 4)
        0.0
    """  # noqa: E501

    def __init__(
        self,
        include_background: bool = False,
        batch_dice: bool = True,
        smooth: float = 1e-5,
        ce_weight: float = 1.0,
        dice_weight: float = 1.0,
    ):
        super().__init__()
        self.include_background = include_background
        self.batch_dice = batch_dice
        self.smooth = smooth
        self.ce_weight = ce_weight
        self.dice_weight = dice_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss of ``logits`` ``(B, K, *spatial)`` for labels ``(B, *spatial)``
        (or ``(B, 1, *spatial)``), any integer type."""
        if target.ndim == logits.ndim:
            target = target[:, 0]
        target = target.long()
        cross_entropy = F.cross_entropy(logits, target)
        probabilities = logits.float().softmax(dim=1)
        one_hot = torch.zeros_like(probabilities).scatter_(1, target[:, None], 1.0)
        if not self.include_background:
            probabilities = probabilities[:, 1:]
            one_hot = one_hot[:, 1:]
        spatial = tuple(range(2, probabilities.ndim))
        dims = (0, *spatial) if self.batch_dice else spatial
        intersection = (probabilities * one_hot).sum(dims)
        denominator = probabilities.sum(dims) + one_hot.sum(dims)
        dice = (2 * intersection + self.smooth) / (denominator + self.smooth).clamp_min(
            1e-8
        )
        return self.ce_weight * cross_entropy + self.dice_weight * (1 - dice.mean())


def make_optimizer(
    name: str,
    parameters: Any,
    lr: float | None = None,
    weight_decay: float = 3e-5,
) -> torch.optim.Optimizer:
    """AdamW, or SGD with Nesterov momentum 0.99 (nnU-Net's optimiser).

    Args:
        name: ``'adamw'`` or ``'sgd'``.
        parameters: The model's parameters.
        lr: Initial learning rate (default :data:`DEFAULT_LR`).
        weight_decay: L2 penalty (AdamW: decoupled), nnU-Net's ``3e-5``.

    Example:
        >>> import torch
        >>> optimizer = make_optimizer('sgd', torch.nn.Linear(2, 2).parameters())
        >>> optimizer.defaults['lr'], optimizer.defaults['momentum']
        (0.01, 0.99)
    """
    if name not in DEFAULT_LR:
        raise ValueError(f'optimizer must be one of {sorted(DEFAULT_LR)}, not {name!r}')
    lr = DEFAULT_LR[name] if lr is None else float(lr)
    if not lr > 0:
        raise ValueError(f'lr must be positive, not {lr}')
    if name == 'sgd':
        return torch.optim.SGD(
            parameters,
            lr=lr,
            momentum=0.99,
            nesterov=True,
            weight_decay=weight_decay,
        )
    return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)


def poly_lr(
    optimizer: torch.optim.Optimizer,
    epochs: int,
    exponent: float = 0.9,
) -> torch.optim.lr_scheduler.LRScheduler:
    """nnU-Net's polynomial decay, stepped once per epoch.

    The learning rate of epoch ``e`` (from 0) is ``lr * (1 - e / epochs) **
    exponent``: the full rate in the first epoch, ``lr * (1 / epochs) **
    exponent`` in the last.

    Example:
        >>> import torch
        >>> optimizer = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1.0)
        >>> schedule = poly_lr(optimizer, epochs=4)
        >>> rates = []
        >>> for _ in range(4):
        ...     rates.append(round(optimizer.param_groups[0]['lr'], 4))
        ...     optimizer.step()
        ...     schedule.step()
        >>> rates
        [1.0, 0.7719, 0.5359, 0.2872]
    """
    if epochs < 1:
        raise ValueError(f'epochs must be positive, not {epochs}')
    return torch.optim.lr_scheduler.PolynomialLR(
        optimizer, total_iters=epochs, power=exponent
    )
