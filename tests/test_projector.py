"""The parallel-beam projector against scikit-image's ``radon``/``iradon``.

Conventions: our angle ``theta`` is scikit-image's ``-theta`` (its rows point
down and it rotates the image the other way), and both put the rotation axis
on the centre pixel of an odd-sized image, so the comparison uses odd sizes.

Stated tolerances (Shepp-Logan phantom, 63^2, 90 views):

* sinograms: mean absolute difference below 0.5% of the mean line integral,
  99th percentile below 2% of the largest (the two interpolate differently:
  Joseph's method against rotate-and-sum bilinear warping);
* FBP: ours and ``iradon`` (ramp filter) within 0.05 everywhere (phantom
  contrast 1) and 0.005 on average; FBP of the noiseless sinogram reproduces
  the phantom with a mean absolute error below 0.02 (``iradon``'s own error
  is 0.017).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from torchio_ramp.kernels.projector import ParallelBeam
from torchio_ramp.kernels.projector import default_views
from torchio_ramp.kernels.projector import detector_bins

skimage_transform = pytest.importorskip('skimage.transform')

EXAMPLE = Path(__file__).resolve().parents[1] / '..' / 'shared' / 'data'
EXAMPLE_CT = EXAMPLE / 'totalseg-example' / 's0001' / 'ct.nii.gz'


def shepp_logan(size: int) -> np.ndarray:
    from skimage.data import shepp_logan_phantom

    return skimage_transform.resize(
        shepp_logan_phantom(), (size, size), anti_aliasing=True
    ).astype(np.float32)


def skimage_sinogram(image: np.ndarray, angles: torch.Tensor) -> np.ndarray:
    """scikit-image's sinogram in our layout ``(A, L)`` and angle convention."""
    theta = -np.degrees(angles.numpy())
    sinogram = skimage_transform.radon(image, theta=theta, circle=False).T
    bins = detector_bins(image.shape, (1.0, 1.0))
    return np.pad(sinogram, ((0, 0), (0, bins - sinogram.shape[1])))


def compare_sinograms(ours: np.ndarray, reference: np.ndarray) -> None:
    error = np.abs(ours - reference)
    assert error.mean() < 0.005 * np.abs(reference).mean(), error.mean()
    assert np.percentile(error, 99) < 0.02 * np.abs(reference).max()


def test_sinogram_matches_skimage_radon_on_shepp_logan():
    image = shepp_logan(63)
    beam = ParallelBeam(image.shape, views=90)
    ours = beam.project(torch.from_numpy(image)[None])[0].numpy()
    compare_sinograms(ours, skimage_sinogram(image, beam.angles))


@pytest.mark.parametrize('filter_name', ['ramp', 'shepp-logan'])
def test_fbp_matches_skimage_iradon_and_reproduces_the_phantom(filter_name):
    image = shepp_logan(63)
    beam = ParallelBeam(image.shape, views=90)
    sinogram = beam.project(torch.from_numpy(image)[None])
    ours = beam.fbp(sinogram, filter_name)[0].numpy()
    reference = skimage_transform.iradon(
        skimage_sinogram(image, beam.angles)[:, :-1].T,
        theta=-np.degrees(beam.angles.numpy()),
        circle=False,
        filter_name=filter_name,
    )
    assert np.abs(ours - reference).max() < 0.05
    assert np.abs(ours - reference).mean() < 0.005
    assert np.abs(ours - image).mean() < 0.02


def test_spacing_gives_line_integrals_in_millimetres():
    # a 20 x 20 mm square of value 1, sampled at 0.5 mm and at 2 mm
    fine, coarse = torch.zeros(1, 81, 81), torch.zeros(1, 21, 21)
    fine[0, 30:70, 30:70] = 1
    coarse[0, 5:15, 5:15] = 1
    for image, spacing in ((fine, 0.5), (coarse, 2.0)):
        beam = ParallelBeam(image.shape[1:], spacing=(spacing, spacing), views=4)
        sinogram = beam.project(image)
        # at 0 degrees every ray through the square crosses 20 mm
        assert float(sinogram[0, 0].max()) == pytest.approx(20.0, rel=1e-5)
        # total mass x bin width at every angle: the area, 400 mm^2
        areas = sinogram[0].sum(-1) * beam.dt
        torch.testing.assert_close(areas, torch.full((4,), 400.0), rtol=0.02, atol=0)
        reconstruction = beam.fbp(beam.project(image))
        assert float(reconstruction.max()) > 0.5  # FBP recovers the unit value


def test_anisotropic_spacing_matches_the_isotropic_resampled_image():
    # rows 2 mm apart, columns 1 mm: the same object as an isotropic 1 mm grid
    iso = torch.zeros(1, 41, 41)
    iso[0, 10:30, 14:27] = 1
    aniso = iso[:, ::2, :]  # 21 rows at 2 mm
    angles = torch.linspace(0, math.pi, 12)[:-1]
    a = ParallelBeam((41, 41), (1.0, 1.0), angles=angles).project(iso)
    b = ParallelBeam((21, 41), (2.0, 1.0), angles=angles).project(aniso)
    bins = min(a.shape[-1], b.shape[-1])
    crop = lambda s: s[..., (s.shape[-1] - bins) // 2 :][..., :bins]  # noqa: E731
    areas = crop(b).sum(-1) / crop(a).sum(-1)
    torch.testing.assert_close(areas, torch.ones_like(areas), rtol=0.06, atol=0)


def test_batched_slices_equal_one_at_a_time():
    images = torch.from_numpy(np.stack([shepp_logan(33), shepp_logan(33).T]))
    beam = ParallelBeam((33, 33), views=40)
    together = beam.fbp(beam.project(images))
    for i in range(2):
        alone = beam.fbp(beam.project(images[i : i + 1]))
        torch.testing.assert_close(together[i : i + 1], alone, rtol=0, atol=1e-5)


def test_default_views_and_bad_arguments():
    assert default_views((64, 48)) == math.ceil(math.pi * 32)
    with pytest.raises(ValueError, match='spacing must be two positive numbers'):
        ParallelBeam((8, 8), spacing=(0.0, 1.0))
    with pytest.raises(ValueError, match='views must be a positive integer'):
        ParallelBeam((8, 8), views=0)
    beam = ParallelBeam((8, 8), views=4)
    with pytest.raises(ValueError, match=r'image must have shape \(S, 8, 8\)'):
        beam.project(torch.zeros(8, 8))
    with pytest.raises(ValueError, match='filter must be one of'):
        beam.fbp(beam.project(torch.zeros(1, 8, 8)), 'hann')


def test_real_example_ct_slice_agrees_with_skimage():
    nibabel = pytest.importorskip('nibabel')
    if not EXAMPLE_CT.exists():
        pytest.skip('the example CT is not available')
    volume = np.asarray(nibabel.load(EXAMPLE_CT).dataobj, dtype=np.float32)
    hu = volume[..., volume.shape[-1] // 2]
    size = min(hu.shape) - (1 - min(hu.shape) % 2)  # odd square crop
    hu = hu[:size, :size]
    mu = 0.0194 * np.clip(1 + hu / 1000, 0, None).astype(np.float32)  # 1/mm
    beam = ParallelBeam(hu.shape, views=120)
    ours = beam.project(torch.from_numpy(mu)[None])[0].numpy()
    compare_sinograms(ours, skimage_sinogram(mu, beam.angles))
    reconstruction = beam.fbp(torch.from_numpy(ours)[None])[0].numpy()
    # soft tissue (mu ~ 0.019/mm) is reproduced within 3% on average
    assert np.abs(reconstruction - mu).mean() < 0.03 * 0.0194


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_matches_cpu():
    image = torch.from_numpy(shepp_logan(63))[None]
    cpu = ParallelBeam((63, 63), views=90)
    cuda = ParallelBeam((63, 63), views=90, device='cuda')
    sinogram = cuda.project(image.cuda())
    assert sinogram.device.type == 'cuda'
    torch.testing.assert_close(sinogram.cpu(), cpu.project(image), rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(
        cuda.fbp(sinogram).cpu(), cpu.fbp(cpu.project(image)), rtol=1e-4, atol=1e-4
    )
