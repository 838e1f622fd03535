"""CT-physics families against physics: noise calibrated to the scan, slice
thickness, reconstruction kernels, metal, modulation, starvation, contrast
phases, cupping, orientation and the clinical-size memory bound.

Phantoms are water ellipses in HU whose own noise, where they need one, is
made by the simulator at a known photon count (noise with a CT's texture and
spatial spread), so "native" noise is known exactly. The real example CTs
(two TotalSegmentator abdomens, 3 mm voxels) are read from ../shared and the
tests that need them skip without it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torchio as tio

import torchio_ramp as tr
from torchio_ramp.families import FAMILIES
from torchio_ramp.kernels import ct_noise
from torchio_ramp.kernels import ct_physics as kernels
from torchio_ramp.kernels.ct_geometry import AxialSlices
from torchio_ramp.kernels.ct_geometry import axial_axis
from torchio_ramp.kernels.ct_geometry import hu_to_mu
from torchio_ramp.kernels.ct_geometry import simulation
from torchio_ramp.kernels.ct_image import enhancement

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / '..' / 'shared' / 'data' / 'totalseg-example'


@pytest.fixture(autouse=True, scope='module')
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, threads))
    yield
    torch.set_num_threads(threads)


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def ellipse(size: int, spacing: float, slices: int, axes=(150.0, 110.0), hu=0.0):
    """Water (``hu``) ellipse of semi-axes ``axes`` mm in air: ``(1, n, n, s)``."""
    c = (torch.arange(size) - (size - 1) / 2) * spacing
    y, x = torch.meshgrid(c, c, indexing='ij')
    inside = (x / axes[0]) ** 2 + (y / axes[1]) ** 2 <= 1
    image = torch.where(inside, hu, -1000.0)
    return image[None, :, :, None].repeat(1, 1, 1, slices)


# Dose: the scan's own noise ------------------------------------------------------


def test_quarter_dose_doubles_the_noise_of_a_phantom_with_known_noise():
    # native noise: a full-dose scan at 1.5e5 photons per view per mm^2 (its
    # added noise at dose 1/2 has the variance of the full-dose noise)
    spacing = (2.0, 2.0, 3.0)
    water = ellipse(160, 2.0, 4)
    native = kernels.lowdose_noise(
        water, dose=0.5, photons=1.5e5, electronic=0.0, calibrate=False,
        spacing=spacing, generator=seeded(1),
    )  # fmt: skip
    out = kernels.lowdose_noise(native, dose=0.25, spacing=spacing, generator=seeded(2))
    for rows, cols in (
        (slice(70, 90), slice(70, 90)),  # the centre
        (slice(70, 90), slice(20, 40)),  # the side
    ):
        ratio = float(out[0, rows, cols].std() / native[0, rows, cols].std())
        assert ratio == pytest.approx(2.0, rel=0.10), ratio
    # the calibration finds the photons the native noise was made with
    slices = AxialSlices.of(native, spacing)
    plan = simulation(slices.size, slices.spacing)
    columns = slices.columns(native)
    p = plan.project(hu_to_mu(columns))
    scale = ct_noise.calibrated_scale(
        columns, plan, p, 3.0, ct_noise.DEFAULT_PHOTONS, seeded(3)
    )
    assert ct_noise.DEFAULT_PHOTONS / scale == pytest.approx(1.5e5, rel=0.15)


@pytest.mark.parametrize('subject', ['s0001', 's0002'])
def test_quarter_dose_doubles_the_noise_of_the_real_example_cts(subject):
    path = EXAMPLE / subject / 'ct.nii.gz'
    if not path.exists():
        pytest.skip('the example CTs are not available')
    ct = tio.ScalarImage(path)
    hu = ct.data.float()[..., :40]  # s0002 has 112 slices: a 120 mm slab
    out = FAMILIES['lowdose_noise'](
        hu, generator=seeded(0), spacing=ct.spacing, affine=ct.affine, dose=0.25
    )
    # noise in uniform soft tissue: the mode of the local standard deviation
    # (Christianson et al. 2015) of the scan and of the added noise, in the
    # same windows; the two are independent, so the total is their quadrature
    native, windows = ct_noise.scan_noise(hu[0])
    added = ct_noise.noise_level((out - hu)[0], windows)
    total = math.hypot(native, added)
    assert 5 < native < 30  # a real abdominal CT's noise, HU
    assert total / native == pytest.approx(2.0, rel=0.10), (native, added)


def test_added_noise_falls_as_the_square_root_of_the_slice_thickness():
    water = ellipse(96, 3.0, 4)
    stds = []
    for thickness in (1.0, 5.0):
        out = kernels.lowdose_noise(
            water, dose=0.25, calibrate=False, electronic=0.0,
            spacing=(3.0, 3.0, thickness), generator=seeded(0),
        )  # fmt: skip
        stds.append(float((out - water)[0, 36:60, 36:60].std()))
    assert stds[0] / stds[1] == pytest.approx(math.sqrt(5), rel=0.10), stds


def _peak_frequency(noise: torch.Tensor) -> float:
    """Radial frequency (cycles/pixel) where the noise power spectrum peaks."""
    patches = noise.permute(2, 0, 1).numpy()
    patches = patches - patches.mean(axis=(-2, -1), keepdims=True)
    power = (np.abs(np.fft.fft2(patches)) ** 2).mean(axis=0)
    n = patches.shape[-1]
    f = np.fft.fftfreq(n)
    radius = np.hypot(*np.meshgrid(f, f, indexing='ij'))
    bins = np.round(radius * n).astype(int)
    profile = np.bincount(bins.ravel(), power.ravel()) / np.bincount(bins.ravel())
    return float(np.argmax(profile[1 : n // 2]) + 1) / n


def test_kernel_moves_the_noise_power_spectrum_peak():
    spacing = (0.5, 0.5, 3.0)
    water = ellipse(128, 0.5, 4, axes=(30.0, 30.0))
    noisy = kernels.lowdose_noise(
        water, dose=0.5, calibrate=False, photons=2e4, spacing=spacing,
        generator=seeded(0),
    )  # fmt: skip
    centre = (0, slice(48, 80), slice(48, 80))
    peaks = {}
    for name, mtf50 in (('sharp', 0.8), ('native', None), ('smooth', 0.2)):
        image = noisy
        if mtf50 is not None:
            image = kernels.reconstruction_kernel(noisy, mtf50=mtf50, spacing=spacing)
        peaks[name] = _peak_frequency((image - water)[centre])
    assert peaks['sharp'] > peaks['native'] > peaks['smooth'], peaks


# Families ---------------------------------------------------------------------------


def test_metal_streaks_lie_on_the_line_between_the_rods_and_labels_stay():
    spacing = (1.5, 1.5, 3.0)
    body = ellipse(128, 1.5, 2, axes=(85.0, 60.0), hu=40.0)
    label = (body > 0).to(torch.uint8)
    label[:, :, 40:88] = 0  # the middle is free for the rods
    subject = tio.Subject(
        ct=tio.ScalarImage(tensor=body, affine=np.diag([*spacing, 1.0])),
        seg=tio.LabelMap(tensor=label, affine=np.diag([*spacing, 1.0])),
    )
    out = tr.Corruption('metal', {'diameter': 12.0}, seed=4)(subject)
    assert torch.equal(out.seg.data, subject.seg.data)  # bit-identical labels
    error = (out.ct.data - body)[0, :, :, 0].abs()
    rods = out.ct.data[0, :, :, 0] >= 3000
    assert int(rods.sum()) > 0
    # the two rods' centres, and the band joining them
    rows, cols = torch.nonzero(rods, as_tuple=True)
    left = cols < cols.float().mean()
    a = torch.stack([rows[left].float().mean(), cols[left].float().mean()])
    b = torch.stack([rows[~left].float().mean(), cols[~left].float().mean()])
    yy, xx = torch.meshgrid(torch.arange(128.0), torch.arange(128.0), indexing='ij')
    direction = (b - a) / (b - a).norm()
    along = (yy - a[0]) * direction[0] + (xx - a[1]) * direction[1]
    across = ((yy - a[0]) * direction[1] - (xx - a[1]) * direction[0]).abs()
    gap = (along > 8 / 1.5 + 2) & (along < (b - a).norm() - 8 / 1.5 - 2)
    inside = (body[0, :, :, 0] > -500) & ~rods
    on_line = gap & (across < 2) & inside
    off_line = gap & (across > 10) & (across < 25) & inside
    energy_on = float(error[on_line].square().mean())
    energy_off = float(error[off_line].square().mean())
    assert energy_on > 2 * energy_off, (energy_on, energy_off)


def test_dose_modulation_evens_the_noise_between_thin_and_wide_slices():
    spacing = (3.0, 3.0, 3.0)
    thin = ellipse(96, 3.0, 2, axes=(60.0, 50.0))
    wide = ellipse(96, 3.0, 2, axes=(135.0, 100.0))
    volume = torch.cat([thin, wide], dim=-1)
    centre = (0, slice(40, 56), slice(40, 56))

    def ratio(name: str) -> float:
        out = FAMILIES[name].kernel(
            volume, dose=0.2, calibrate=False, spacing=spacing, generator=seeded(0)
        )
        noise = (out - volume)[centre]
        return float(noise[..., 2:].std() / noise[..., :2].std())

    constant, modulated = ratio('lowdose_noise'), ratio('dose_modulation')
    assert constant > 1.5  # the wide body is much noisier at constant current
    assert modulated < 0.8 * constant, (constant, modulated)


def test_photon_starvation_streaks_follow_the_most_attenuating_rays():
    spacing = (3.0, 3.0, 3.0)
    hu = ellipse(96, 3.0, 2, axes=(140.0, 70.0))
    c = (torch.arange(96) - 47.5) * 3.0
    y, x = torch.meshgrid(c, c, indexing='ij')
    for cx in (-80.0, 80.0):  # two dense bones on the long axis
        hu[0][((x - cx) ** 2 + y**2 <= 20.0**2)] = 1500.0
    out = kernels.photon_starvation(
        hu, counts=2.0, spacing=spacing, generator=seeded(0)
    )
    error = (out - hu)[0].square().mean(dim=-1)
    body = (hu[0, :, :, 0] > -500) & (hu[0, :, :, 0] < 1000)
    band = (y.abs() < 6) & (x.abs() < 50) & body  # between the bones
    across = (x.abs() < 6) & (y.abs() > 20) & body  # short, lateral paths
    assert float(error[band].mean()) > 2 * float(error[across].mean())


def test_contrast_phase_moves_organs_to_the_curves_and_only_them():
    hu = torch.full((1, 24, 24, 12), -100.0)
    liver = torch.zeros(1, 24, 24, 12, dtype=torch.uint8)
    liver[:, 4:14, 4:14, 2:10] = 1
    kidney = torch.zeros_like(liver)
    kidney[:, 16:21, 15:21, 3:9] = 1
    labels = liver + 3 * kidney
    hu[liver.bool()] = 110.0
    hu[kidney.bool()] = 175.0
    hu += 5 * torch.randn(hu.shape, generator=seeded(0))
    before = labels.clone()
    for delay in (0.0, 30.0, 200.0):
        out = kernels.contrast_phase(hu, delay=delay, labels=labels)
        assert torch.equal(labels, before)
        inner = torch.zeros_like(liver, dtype=torch.bool)
        inner[:, 5:12, 5:12, 3:9] = True
        assert float(out[inner].median()) == pytest.approx(
            enhancement('liver', delay), abs=2.0
        )
        texture = (out - hu)[inner]
        assert float(texture.std()) < 1e-3  # a shift: texture and noise kept
        far = torch.ones_like(inner)
        far[:, 2:23, 2:23, 1:11] = False
        assert torch.equal(out[far], hu[far])  # outside the organs: untouched
    with pytest.raises(ValueError, match='reads the organs from the label map'):
        kernels.contrast_phase(hu, delay=0.0)


def test_beam_hardening_cupping_is_its_parameter_and_grows_with_the_body():
    def cupping(diameter: float, value: float) -> float:
        size, spacing = 120, 2.0
        c = (torch.arange(size) - (size - 1) / 2) * spacing
        radius = torch.hypot(*torch.meshgrid(c, c, indexing='ij'))
        water = torch.where(radius <= diameter / 2, 0.0, -1000.0)[None, :, :, None]
        out = kernels.beam_hardening(water, cupping=value, spacing=(spacing,) * 3)
        half = diameter / 2
        rim = (radius >= 0.8 * half) & (radius <= 0.9 * half)
        return float(
            out[0, :, :, 0][rim].mean() - out[0, :, :, 0][radius <= 0.1 * half].mean()
        )

    assert cupping(200.0, 20.0) == pytest.approx(20.0, rel=0.02)
    assert cupping(200.0, 5.0) == pytest.approx(5.0, rel=0.02)
    assert cupping(230.0, 20.0) > cupping(200.0, 20.0) > cupping(160.0, 20.0)


# Orientation ------------------------------------------------------------------------


def test_slices_follow_the_affine_whatever_the_array_order():
    hu = ellipse(48, 6.0, 4, axes=(120.0, 90.0))
    hu[0, 20:28, 10:16] = 800.0
    canonical = np.diag([6.0, 6.0, 3.0, 1.0])
    # the same scan stored with the superior-inferior axis first: (K, I, J)
    moved = hu.permute(0, 3, 1, 2).contiguous()
    affine = np.array([[0, 6.0, 0, 0], [0, 0, 6.0, 0], [3.0, 0, 0, 0], [0, 0, 0, 1]])
    assert axial_axis(affine) == 0
    for name in ('beam_hardening', 'sparse_view', 'lowdose_noise'):
        operator = FAMILIES[name]
        arguments = operator.parameters_at(0.2)
        a = operator(hu, generator=seeded(0), spacing=(6.0, 6.0, 3.0),
                     affine=canonical, **arguments)  # fmt: skip
        b = operator(moved, generator=seeded(0), spacing=(3.0, 6.0, 6.0),
                     affine=affine, **arguments)  # fmt: skip
        torch.testing.assert_close(b.permute(0, 2, 3, 1), a, rtol=0, atol=1e-3)


def test_a_volume_without_axial_slices_is_refused():
    oblique = np.eye(4)
    angle = math.radians(50)
    oblique[1:3, 1:3] = [[math.cos(angle), -math.sin(angle)],
                         [math.sin(angle), math.cos(angle)]]  # fmt: skip
    oblique[0:2, 0:2] = [[math.cos(angle), 0], [0, 1]]
    oblique[0, 2] = math.sin(angle)
    with pytest.raises(ValueError, match='the image is not axial'):
        axial_axis(oblique)
    subject = tio.Subject(
        ct=tio.ScalarImage(tensor=ellipse(16, 10.0, 4), affine=oblique)
    )
    with pytest.raises(ValueError, match=r'Operator "ring": the image is not axial'):
        tr.Corruption('ring', {'amplitude': 20.0})(subject)


# Clinical size -----------------------------------------------------------------------


def test_a_clinical_volume_goes_through_every_family_within_one_gib():
    # 512 x 512 x 64 at 0.7 mm, each family in a fresh process's call, the
    # peak resident memory of the call measured by the kernel of Linux
    if not Path('/proc/self/clear_refs').exists():
        pytest.skip('needs Linux /proc to measure peak memory')
    from tests.ct_physics_memory import run

    rows = run(512, 64, threads=2, timeout=3600)
    assert [row['family'] for row in rows] == [
        *tr.families.POOLS['ct_physics'],
        'limited_angle',
    ]
    for row in rows:
        assert row['changed'], row
        assert row['extra_mib'] <= 1024, row


def test_the_organ_labels_are_the_output_heads():
    from torchio_ramp.kernels.ct_image import ENHANCEMENT
    from torchio_ramp.kernels.ct_image import ORGAN_LABELS
    from torchio_ramp.labels import CLASS_IDS

    assert {organ: CLASS_IDS[organ] for organ in ENHANCEMENT} == ORGAN_LABELS
    assert FAMILIES['contrast_phase'].default_options()['classes'] == ORGAN_LABELS
