"""Shared fixtures: small normalised subjects and the path of ``../shared``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchio as tio

SHARED = Path(__file__).resolve().parents[2] / 'shared'
"""``../shared`` beside the checkout (present in CI, absent in users' clones)."""

TOTALSEG_EXAMPLE = SHARED / 'data' / 'totalseg-example'

# Test tensors are tiny: intra-op threads only add scheduling overhead, which
# becomes severe when the CI machine's two cores are busy.
torch.set_num_threads(1)


def make_subject(
    shape: tuple[int, int, int] = (24, 20, 16),
    channels: int = 1,
    seed: int = 0,
) -> tio.Subject:
    """A normalised CT-like subject whose label is tied to the image.

    The image is piecewise constant (label / 8 + 0.2) plus mild texture, so spatial
    transforms can be checked by comparing the moved image with the moved label.
    """
    generator = torch.Generator().manual_seed(seed)
    label = torch.zeros(1, *shape, dtype=torch.uint8)
    label[0, : shape[0] // 2, : shape[1] // 2] = 1
    label[0, shape[0] // 2 :, shape[1] // 3 :, shape[2] // 4 :] = 3
    label[0, 2:6, -6:-2, 1:5] = 5
    texture = 0.05 * torch.rand(channels, *shape, generator=generator)
    image = label.float() / 8 + 0.2 + texture
    return tio.Subject(
        ct=tio.ScalarImage(tensor=image.clamp(0, 1)),
        seg=tio.LabelMap(tensor=label),
        subject_id=f'toy{seed}',
    )


@pytest.fixture
def subject() -> tio.Subject:
    return make_subject()
