"""Where a process sits in a ``torchrun`` job: context, device, process group."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torchio as tio

from .. import arguments


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in a ``torchrun`` job.

    Attributes:
        rank: Global rank (0 in a single process).
        world_size: Number of processes.
        local_rank: Rank on this machine (selects the GPU).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and prints."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """Whether there is more than one process."""
        return self.world_size > 1

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None
    ) -> DistributedContext:
        """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (set by torchrun).

        Args:
            environ: The environment (default ``os.environ``).

        Raises:
            ValueError: Naming the variable, if one is not an integer, is
                negative (``WORLD_SIZE`` below 1), or ``RANK`` is not below
                ``WORLD_SIZE``.

        Example:
            >>> DistributedContext.from_environment({'RANK': '1', 'WORLD_SIZE': '2'})
            DistributedContext(rank=1, world_size=2, local_rank=0)
            >>> DistributedContext.from_environment({'RANK': 'x'})
            Traceback (most recent call last):
            ...
            ValueError: the environment variable RANK='x' (set by torchrun) must be an integer >= 0
        """  # noqa: E501
        environ = os.environ if environ is None else environ
        values = {}
        for name, default, low in (
            ('RANK', 0, 0),
            ('WORLD_SIZE', 1, 1),
            ('LOCAL_RANK', 0, 0),
        ):
            text = environ.get(name)
            try:
                value = default if text is None else int(text)
            except ValueError:
                value = low - 1
            if value < low:
                message = (
                    f'the environment variable {name}={text!r} (set by torchrun)'
                    f' must be an integer >= {low}'
                )
                raise ValueError(message)
            values[name] = value
        if values['RANK'] >= values['WORLD_SIZE']:
            message = (
                f'the environment variables RANK={values["RANK"]} and WORLD_SIZE='
                f'{values["WORLD_SIZE"]} (set by torchrun) disagree: RANK must be'
                ' below WORLD_SIZE'
            )
            raise ValueError(message)
        return cls(values['RANK'], values['WORLD_SIZE'], values['LOCAL_RANK'])

    def barrier(self) -> None:
        """Wait for every process (no-op in a single process)."""
        if self.enabled:
            dist.barrier()


def resolve_device(name: str, context: DistributedContext) -> torch.device:
    """The one device rule (:func:`~torchio_ramp.arguments.resolve_device`) for ``context``.

    ``'auto'`` -> ``cuda:LOCAL_RANK`` if CUDA is available, else ``cpu``;
    ``'cuda'`` -> ``cuda:LOCAL_RANK``.

    Example:
        >>> resolve_device('cpu', DistributedContext())
        device(type='cpu')
    """  # noqa: E501
    return arguments.resolve_device(name, context.local_rank)


def init_distributed(device: torch.device) -> DistributedContext:
    """Start the process group under ``torchrun`` (gloo on CPU, NCCL on CUDA).

    Returns the context; a single process gets ``DistributedContext()`` and
    no process group.

    Example:
        >>> init_distributed(torch.device('cpu'))  # doctest: +SKIP
        DistributedContext(rank=0, world_size=1, local_rank=0)
    """
    context = DistributedContext.from_environment()
    if context.enabled and not dist.is_initialized():
        if device.type == 'cuda':
            torch.cuda.set_device(device)
        dist.init_process_group('nccl' if device.type == 'cuda' else 'gloo')
    return context


def distributed_subject_sampler(
    dataset: tio.SubjectsDataset,
    context: DistributedContext,
    seed: int = 0,
) -> torch.utils.data.DistributedSampler:
    """Shuffling :class:`~torch.utils.data.DistributedSampler` for ``context``.

    Each rank gets ``ceil(n / world_size)`` subjects (padded by repetition),
    so every rank makes the same number of optimiser steps.

    Example:
        >>> import torchio as tio
        >>> from torchio_ramp.phantoms import phantom_subject
        >>> dataset = tio.SubjectsDataset([phantom_subject((8, 8, 8))] * 3)
        >>> sampler = distributed_subject_sampler(dataset, DistributedContext(1, 2, 1))
        >>> len(sampler)
        2
    """
    return torch.utils.data.DistributedSampler(
        dataset,
        num_replicas=context.world_size,
        rank=context.rank,
        shuffle=True,
        seed=seed,
        drop_last=False,
    )
