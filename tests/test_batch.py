"""The batched corruption path equals the per-subject transform, seed for seed."""

from __future__ import annotations

import pytest
import torch
import torchio as tio

import torchio_ramp as tr
from torchio_ramp.batch import BatchRampCorrupt


def _per_subject(transform: tio.Transform, sample: torch.Tensor, seed: int):
    torch.manual_seed(seed)
    subject = tio.Subject(ct=tio.ScalarImage(tensor=sample))
    return transform(subject).ct.data


@pytest.mark.parametrize(
    'options',
    [
        {},
        {'p': 1.0, 'num_corruptions': 4},
        {'p': 1.0, 'exclude_families': ['blur', 'compound'], 'num_corruptions': 1},
    ],
)
def test_equals_ramp_corrupt_for_the_same_seeds(options):
    batch = torch.rand(6, 2, 12, 10, 8, generator=torch.Generator().manual_seed(0))
    seeds = [3, 14, 15, 92, 65, 35]
    out = BatchRampCorrupt(**options)(batch, seeds=seeds)
    per_subject = tr.RampCorrupt(**options)
    for index, seed in enumerate(seeds):
        expected = _per_subject(per_subject, batch[index], seed)
        assert torch.equal(out[index], expected), index


def test_samples_get_their_own_plans_and_p_is_honoured():
    corrupt = BatchRampCorrupt()
    plans = corrupt.plans(range(400))
    applied = sum(bool(plan) for plan in plans)
    assert abs(applied / 400 - 0.85) < 5 * (0.85 * 0.15 / 400) ** 0.5
    assert len({tuple(f for f, _, _ in plan) for plan in plans if plan}) > 50


def test_uncorrupted_samples_are_copied_unchanged_and_input_is_intact():
    batch = torch.rand(3, 1, 8, 8, 8)
    before = batch.clone()
    out = BatchRampCorrupt(p=0.0)(batch, seeds=[1, 2, 3])
    assert torch.equal(out, before) and out is not batch
    BatchRampCorrupt(p=1.0)(batch, seeds=[1, 2, 3])
    assert torch.equal(batch, before)


def test_global_rng_is_left_untouched():
    batch = torch.rand(2, 1, 8, 8, 8)
    torch.manual_seed(0)
    BatchRampCorrupt(p=1.0)(batch, seeds=[5, 6])
    after = torch.rand(3)
    torch.manual_seed(0)
    assert torch.equal(after, torch.rand(3))


def test_input_device_generators_are_deterministic():
    batch = torch.rand(2, 1, 8, 8, 8)
    corrupt = BatchRampCorrupt(p=1.0, generator_device='input')
    assert torch.equal(corrupt(batch, seeds=[7, 8]), corrupt(batch, seeds=[7, 8]))


@pytest.mark.parametrize(
    ('call', 'pattern'),
    [
        (lambda c: c(torch.rand(1, 8, 8, 8)), r'\(B, C, D, H, W\)'),
        (lambda c: c(torch.rand(2, 1, 4, 4, 4), seeds=[1]), '1 seeds for a batch of 2'),
        (lambda c: c(torch.full((1, 1, 4, 4, 4), 2.0)), 'CTNormalize'),
    ],
)
def test_bad_input(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call(BatchRampCorrupt())


def test_bad_generator_device():
    with pytest.raises(ValueError, match='generator_device'):
        BatchRampCorrupt(generator_device='gpu')


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_batch_equals_cpu_batch_with_cpu_generators():
    batch = torch.rand(2, 1, 16, 16, 16)
    corrupt = BatchRampCorrupt(p=1.0)
    cpu = corrupt(batch, seeds=[1, 2])
    cuda = corrupt(batch.cuda(), seeds=[1, 2]).cpu()
    torch.testing.assert_close(cuda, cpu, atol=1e-5, rtol=0)
