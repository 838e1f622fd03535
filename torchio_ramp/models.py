"""A compact 3D U-Net, the segmentation backbone of the training examples.

Why a model of our own rather than MONAI's ``UNet`` / ``DynUNet``: MONAI is a
large dependency (it pulls in its own transform stack, which overlaps with
TorchIO, and pins torch versions) for one network of about a hundred lines.
Our dependency budget is torch, TorchIO, SimpleITK, NumPy, click and tqdm, so
the backbone is written here, in plain ``torch.nn``, and kept
TorchScript-compatible so that a trained model ships as one file that the
stress test loads without this package.

The architecture follows nnU-Net's 3D full-resolution U-Net, the paper's
backbone (section 2.2), at a size a CPU can train: per stage two
``3x3x3 conv -> InstanceNorm -> LeakyReLU(0.01)`` blocks, downsampling by a
strided convolution, upsampling by a transposed convolution, skip connections
by concatenation and a ``1x1x1`` convolution to the class logits. What it
leaves out of nnU-Net: deep supervision and the self-configured depth and
kernel sizes (pass ``channels`` instead).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


class ConvBlock(nn.Sequential):
    """``conv -> InstanceNorm -> LeakyReLU`` twice; the first conv may stride.

    Args:
        in_channels: Input channels.
        out_channels: Output channels of both convolutions.
        stride: Stride of the first convolution (2 halves each spatial axis).

    Example:
        >>> import torch
        >>> block = ConvBlock(1, 4, stride=2)
        >>> block(torch.rand(1, 1, 8, 8, 8)).shape
        torch.Size([1, 4, 4, 4, 4])
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        layers: list[nn.Module] = []
        for index in range(2):
            layers += [
                nn.Conv3d(
                    in_channels if index == 0 else out_channels,
                    out_channels,
                    kernel_size=3,
                    stride=stride if index == 0 else 1,
                    padding=1,
                    bias=True,
                ),
                nn.InstanceNorm3d(out_channels, affine=True, eps=1e-5),
                nn.LeakyReLU(0.01, inplace=True),
            ]
        super().__init__(*layers)


class UpBlock(nn.Module):
    """Transposed-convolution upsampling, concatenation with the skip, ConvBlock.

    Args:
        in_channels: Channels of the coarser input.
        skip_channels: Channels of the skip connection (and of the output).

    Example:
        >>> import torch
        >>> up = UpBlock(8, 4)
        >>> up(torch.rand(1, 8, 2, 2, 2), torch.rand(1, 4, 4, 4, 4)).shape
        torch.Size([1, 4, 4, 4, 4])
    """

    def __init__(self, in_channels: int, skip_channels: int):
        super().__init__()
        self.upsample = nn.ConvTranspose3d(
            in_channels, skip_channels, kernel_size=2, stride=2, bias=False
        )
        self.convs = ConvBlock(2 * skip_channels, skip_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.upsample(x)
        return self.convs(torch.cat([x, skip], dim=1))


class UNet3d(nn.Module):
    """Compact nnU-Net-style 3D U-Net returning class logits.

    Each spatial size of the input must be divisible by
    :attr:`size_divisor` (``2 ** (len(channels) - 1)``); sliding-window
    inference feeds it patches of the training size, which
    :func:`check_patch_size` validates.

    Args:
        in_channels: Image channels (1 for CT).
        num_classes: Output channels including background (6 for the
            five-class head of :mod:`torchio_ramp.labels`).
        channels: Feature channels per resolution stage, finest first; the
            number of entries sets the depth.

    Example:
        >>> import torch
        >>> from torchio_ramp.models import UNet3d
        >>> model = UNet3d(num_classes=6, channels=(4, 8, 16))
        >>> model(torch.rand(2, 1, 16, 16, 8)).shape
        torch.Size([2, 6, 16, 16, 8])
        >>> model.init_kwargs
        {'in_channels': 1, 'num_classes': 6, 'channels': [4, 8, 16]}
        >>> scripted = torch.jit.script(model)  # ships as one file
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 6,
        channels: Sequence[int] = (16, 32, 64, 128),
    ):
        super().__init__()
        channels = [int(c) for c in channels]
        if len(channels) < 2 or min(channels) < 1:
            raise ValueError(
                f'channels must list at least two positive sizes, not {channels!r}'
            )
        if in_channels < 1 or num_classes < 2:
            raise ValueError(
                f'need in_channels >= 1 and num_classes >= 2, got {in_channels} and'
                f' {num_classes}'
            )
        self.in_channels = int(in_channels)
        self.num_classes = int(num_classes)
        self.channels = channels
        self.size_divisor = 2 ** (len(channels) - 1)
        encoder = [ConvBlock(in_channels, channels[0])]
        encoder += [
            ConvBlock(channels[i - 1], channels[i], stride=2)
            for i in range(1, len(channels))
        ]
        self.encoder = nn.ModuleList(encoder)
        self.decoder = nn.ModuleList(
            UpBlock(channels[i], channels[i - 1])
            for i in range(len(channels) - 1, 0, -1)
        )
        self.head = nn.Conv3d(channels[0], num_classes, kernel_size=1)

    @property
    def init_kwargs(self) -> dict[str, Any]:
        """Constructor arguments, JSON-ready, to rebuild the model."""
        return {
            'in_channels': self.in_channels,
            'num_classes': self.num_classes,
            'channels': list(self.channels),
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        depth = len(skips)
        for index, block in enumerate(self.decoder):
            x = block(x, skips[depth - 2 - index])
        return self.head(x)


UNET_PRESETS: dict[str, tuple[int, ...]] = {
    'tiny': (8, 16, 32, 64),
    'small': (16, 32, 64, 128),
    'base': (32, 64, 128, 256, 320),
}
"""Channels per stage of the named sizes. ``tiny`` (0.35 M parameters) trains on
a laptop CPU; ``base`` is nnU-Net's 3D full-resolution width (32 doubling to
320) with five stages."""


def unet3d_tiny() -> UNet3d:
    """Five-class ``UNet3d`` with the ``tiny`` channels (a ``module:factory``).

    ``ramp-stress run --model torchio_ramp.models:unet3d_tiny --weights
    best_state_dict.pt`` calls this without arguments.

    Example:
        >>> unet3d_tiny().channels
        [8, 16, 32, 64]
    """
    return UNet3d(channels=UNET_PRESETS['tiny'])


def unet3d_small() -> UNet3d:
    """Five-class ``UNet3d`` with the ``small`` channels (a ``module:factory``).

    Example:
        >>> unet3d_small().channels
        [16, 32, 64, 128]
    """
    return UNet3d(channels=UNET_PRESETS['small'])


def unet3d_base() -> UNet3d:
    """Five-class ``UNet3d`` with the ``base`` channels (a ``module:factory``).

    Example:
        >>> unet3d_base().channels
        [32, 64, 128, 256, 320]
    """
    return UNet3d(channels=UNET_PRESETS['base'])


PRESET_FACTORIES = {
    'tiny': 'torchio_ramp.models:unet3d_tiny',
    'small': 'torchio_ramp.models:unet3d_small',
    'base': 'torchio_ramp.models:unet3d_base',
}
"""``module:factory`` of each preset (six output classes, one input channel)."""


def check_patch_size(patch_size: Sequence[int], model: UNet3d) -> tuple[int, ...]:
    """Check that a patch size suits ``model``; return it as a tuple.

    Args:
        patch_size: Three positive sizes in voxels.
        model: The network, whose :attr:`UNet3d.size_divisor` each size must
            be a multiple of, with a coarsest feature map of at least 2 voxels
            per axis (instance normalisation needs more than one voxel).

    Raises:
        ValueError: Naming ``patch_size`` and the sizes that would work.

    Example:
        >>> check_patch_size((32, 32, 16), UNet3d(channels=(4, 8, 16, 32)))
        (32, 32, 16)
        >>> check_patch_size((30, 32, 32), UNet3d(channels=(4, 8, 16, 32)))
        Traceback (most recent call last):
        ...
        ValueError: patch_size (30, 32, 32) must be multiples of 8 of at least 16 \
for a U-Net with 4 stages (e.g. (32, 32, 32))
    """
    sizes = tuple(int(s) for s in patch_size)
    divisor = model.size_divisor
    smallest = 2 * divisor
    if len(sizes) != 3 or any(s % divisor or s < smallest for s in sizes):
        nearest = tuple(max(smallest, divisor * math.ceil(s / divisor)) for s in sizes)
        raise ValueError(
            f'patch_size {sizes} must be multiples of {divisor} of at least '
            f'{smallest} for a U-Net with {len(model.channels)} stages '
            f'(e.g. {nearest})'
        )
    return sizes


__all__ = [
    'PRESET_FACTORIES',
    'UNET_PRESETS',
    'ConvBlock',
    'UNet3d',
    'UpBlock',
    'check_patch_size',
    'unet3d_base',
    'unet3d_small',
    'unet3d_tiny',
]
