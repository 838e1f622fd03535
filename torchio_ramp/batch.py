"""Multi-corruption on a collated batch, on the training device.

For users whose CPU workers cannot keep up: leave the corruption stage out of
the TorchIO pipeline and apply :class:`BatchRampCorrupt` to the batch after the
DataLoader, e.g. on the GPU. Each sample gets its own plan (whether it is
corrupted, which families in which order, their parameters and seeds), drawn
exactly as :class:`~torchio_ramp.RampCorrupt` draws it, and the same kernels.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import torch

from .families import FAMILIES
from .kernels.base import check_volume
from .kernels.base import inputs_checked
from .kernels.base import require_normalized
from .operators import seed_value
from .pipelines import RampCorrupt

Plan = list[tuple[str, dict[str, Any], int]]

_IMAGE = 'image'


class BatchRampCorrupt(torch.nn.Module):
    """:class:`~torchio_ramp.RampCorrupt` for a ``(B, C, D, H, W)`` tensor.

    For a sample with seed ``s``, the result equals ``RampCorrupt(...)`` applied
    to that sample after ``torch.manual_seed(s)`` (bit for bit on the CPU with
    the default CPU generators), so a per-subject pipeline and a batched one are
    interchangeable. The global RNG is left untouched.

    Args:
        p: Probability of corrupting each sample.
        num_corruptions: ``k`` or its inclusive range (paper: 2 to 4).
        families: Corruption pool (default: the paper's,
            :data:`~torchio_ramp.families.PAPER_FAMILIES`).
        exclude_families: Families to leave out of the pool.
        ranges: Training ranges per family and parameter (see
            :class:`~torchio_ramp.RampCorrupt`).
        generator_device: Where the kernels draw their random numbers.
            ``'cpu'`` (default) reproduces the per-subject transforms exactly
            on any device, at the cost of drawing noise on the CPU; ``'input'``
            draws on the batch's device, which is much faster on a GPU but
            gives a different (equally distributed) random stream.

    Example:
        >>> import torch
        >>> from torchio_ramp.batch import BatchRampCorrupt
        >>> corrupt = BatchRampCorrupt(p=1.0)
        >>> batch = torch.rand(2, 1, 16, 16, 16)
        >>> out = corrupt(batch, seeds=[0, 1])
        >>> out.shape, bool(out.min() >= 0), bool(out.max() <= 1)
        (torch.Size([2, 1, 16, 16, 16]), True, True)
        >>> [len(plan) in (2, 3, 4) for plan in corrupt.plans([0, 1])]
        [True, True]
    """

    def __init__(
        self,
        p: float = 0.85,
        num_corruptions: int | tuple[int, int] = (2, 4),
        families: Iterable[str] | None = None,
        exclude_families: Iterable[str] | None = None,
        ranges: Mapping[str, Mapping[str, Any]] | None = None,
        generator_device: str = 'cpu',
    ):
        super().__init__()
        self.sampler = RampCorrupt(
            p=p,
            num_corruptions=num_corruptions,
            families=families,
            exclude_families=exclude_families,
            ranges=ranges,
        )
        if self.sampler.domain == 'hu':
            message = (
                'BatchRampCorrupt corrupts normalised batches; the CT-physics'
                ' families act on Hounsfield units with the voxel spacing: use'
                " RampCorrupt(families='ct_physics') before CTNormalize"
            )
            raise ValueError(message)
        if generator_device not in ('cpu', 'input'):
            message = (
                f"generator_device must be 'cpu' or 'input', not {generator_device!r}"
            )
            raise ValueError(message)
        self.generator_device = generator_device

    def plans(self, seeds: Sequence[int]) -> list[Plan]:
        """The ``(family, parameters, seed)`` sequence of each sample."""
        plans = []
        for seed in seeds:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                # TorchIO's rule in Transform.__call__: skip when rand > p
                applied = torch.rand(1).item() <= self.sampler.probability
                steps = self.sampler.plan([_IMAGE]) if applied else []
            plans.append([(f, params[_IMAGE], s[_IMAGE]) for f, params, s in steps])
        return plans

    def forward(
        self,
        batch: torch.Tensor,
        seeds: Sequence[int] | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Corrupt each sample of ``batch`` (values in ``[0, 1]``).

        Args:
            batch: ``(B, C, D, H, W)`` floating tensor on any device.
            seeds: One seed per sample; drawn from torch's global RNG if
                omitted.

        Returns:
            A new tensor; samples that are not corrupted are copied unchanged.
        """
        check_volume(batch, 'batch')
        if batch.ndim != 5:
            message = f'batch must have shape (B, C, D, H, W), not {tuple(batch.shape)}'
            raise ValueError(message)
        batch = require_normalized(batch, 'batch', type(self).__name__)
        size = batch.shape[0]
        if seeds is None:
            seeds = torch.randint(0, 2**31, (size,)).tolist()
        seeds = [seed_value(int(s), f'{type(self).__name__}: seed') for s in seeds]
        if len(seeds) != size:
            raise ValueError(f'Got {len(seeds)} seeds for a batch of {size}')
        out = torch.empty_like(batch)
        # the batch was checked above; the kernels need not check it again
        with inputs_checked():
            for index, plan in enumerate(self.plans(seeds)):
                sample = batch[index]
                for family, parameters, seed in plan:
                    generator = self._generator(seed, batch.device)
                    sample = FAMILIES[family](sample, generator=generator, **parameters)
                out[index] = sample
        return out

    def _generator(self, seed: int, device: torch.device) -> torch.Generator:
        target = 'cpu' if self.generator_device == 'cpu' else device
        return torch.Generator(device=target).manual_seed(seed)

    def extra_repr(self) -> str:
        sampler = self.sampler
        return (
            f'p={sampler.probability}, num_corruptions={sampler.num_corruptions},'
            f' families={len(sampler.families)}, generator_device='
            f'{self.generator_device!r}'
        )
