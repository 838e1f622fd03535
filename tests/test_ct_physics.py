"""The CT-physics families (``ct_physics`` pool): physics, contract and tools.

Phantoms are in Hounsfield units: air (-1000) around a water (0) ellipse, with
bone-like (1000 HU) inserts where streaks are wanted. Sizes are 64^2 to 96^2 in
plane and a few slices, so the whole module runs in well under a minute.
"""

from __future__ import annotations

import itertools
import math
import pickle

import numpy as np
import pytest
import torch
import torchio as tio

import torchio_ramp as tr
from tests import catalogue
from tests.prep_fixtures import prepare_phantoms
from torchio_ramp.ct_physics import CT_PHYSICS_FAMILIES
from torchio_ramp.families import FAMILIES
from torchio_ramp.families import POOLS
from torchio_ramp.families import check_families
from torchio_ramp.kernels import IntensityError
from torchio_ramp.kernels import ct_physics as kernels
from torchio_ramp.kernels.ct_geometry import simulation
from torchio_ramp.stress.protocol import Setting
from torchio_ramp.stress.protocol import StressProtocol

SPACING = (3.0, 3.0, 3.0)
"""Body-sized phantoms: 96 pixels at 3 mm are 288 mm."""


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def ellipse(
    size: int = 96,
    slices: int = 4,
    axes: tuple[float, float] = (0.42, 0.26),
    bones: bool = False,
) -> torch.Tensor:
    """HU phantom ``(1, size, size, slices)``: water ellipse in air."""
    coordinates = (torch.arange(size) - (size - 1) / 2) / size
    y, x = torch.meshgrid(coordinates, coordinates, indexing='ij')
    inside = (x / axes[0]) ** 2 + (y / axes[1]) ** 2 <= 1
    hu = torch.where(inside, 0.0, -1000.0)
    if bones:
        for cx in (-0.2, 0.2):
            hu[(x - cx) ** 2 + y**2 <= 0.05**2] = 1000.0
    return hu[None, :, :, None].repeat(1, 1, 1, slices)


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# lowdose_noise: physics -------------------------------------------------------


def _noise(dose: float, seed: int = 0, **options) -> torch.Tensor:
    hu = ellipse()
    out = kernels.lowdose_noise(
        hu, dose=dose, spacing=SPACING, generator=seeded(seed), **options
    )
    return out - hu


def test_lowdose_std_scales_as_one_over_sqrt_dose():
    # The simulated image's noise is the original scan's (variance s0^2) plus
    # the added noise, s0^2 (1 / a - 1) (Yu et al.): in total s0^2 / a. The
    # phantom is noise-free, so s0^2 is the added variance at a = 1/2. Without
    # electronic noise the law is exact; fit over a 16x range of doses.
    centre = (slice(None), slice(36, 60), slice(40, 56))  # uniform water
    var_full = float(_noise(0.5, seed=99, electronic=0.0)[centre].var())
    doses = [0.0125, 0.025, 0.05, 0.1, 0.2]
    totals = [
        math.sqrt(float(_noise(a, seed=i, electronic=0.0)[centre].var()) + var_full)
        for i, a in enumerate(doses)
    ]
    slope = np.polyfit(np.log(doses), np.log(totals), 1)[0]
    assert slope == pytest.approx(-0.5, rel=0.10), slope
    # electronic noise adds to it, most at the lowest dose
    with_electronic = float(_noise(0.0125, seed=0, electronic=30.0)[centre].std())
    assert with_electronic > totals[0] * 1.05


def _radial_power(noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Noise power spectrum of 2-D patches ``(N, n, n)``: frequencies, power."""
    patches = noise - noise.mean(axis=(-2, -1), keepdims=True)
    power = (np.abs(np.fft.fft2(patches)) ** 2).mean(axis=0)
    n = patches.shape[-1]
    frequency = np.fft.fftfreq(n)
    radius = np.hypot(*np.meshgrid(frequency, frequency, indexing='ij'))
    return radius, power


def _low_to_mid_ratio(noise: np.ndarray) -> float:
    radius, power = _radial_power(noise)
    low = power[(radius > 0) & (radius <= 0.08)].mean()
    mid = power[(radius >= 0.2) & (radius <= 0.35)].mean()
    return float(low / mid)


def test_lowdose_noise_power_spectrum_is_not_white():
    noise = _noise(0.1)[0, 32:64, 32:64].permute(2, 0, 1).numpy()
    ratio = _low_to_mid_ratio(noise)
    assert ratio < 0.5, ratio  # FBP's ramp filter: little low-frequency power
    # the paper's gaussian_noise is white: equal power at all frequencies
    white = tr.kernels.gaussian_noise(
        torch.full((1, 32, 32, 8), 0.5), std=0.05, generator=seeded(0)
    )
    white_ratio = _low_to_mid_ratio((white - 0.5)[0].permute(2, 0, 1).numpy())
    assert 0.7 < white_ratio < 1.4, white_ratio


def test_lowdose_noise_is_larger_in_the_centre_than_at_the_edge():
    noise = _noise(0.1)
    centre = noise[0, 42:54, 42:54].std()
    # near the end of the long axis (x = +-0.42 of the width): short paths
    edge = torch.cat([noise[0, 42:54, 12:20], noise[0, 42:54, 76:84]]).std()
    # the bowtie evens it out but does not undo it
    assert centre > 1.1 * edge, (float(centre), float(edge))


def test_full_dose_adds_nothing():
    hu = ellipse(size=32, slices=1)
    assert torch.equal(kernels.lowdose_noise(hu, dose=1.0), hu)


# ring, sparse_view and the others --------------------------------------------


def _radial_profile(image: torch.Tensor, spacing: float) -> np.ndarray:
    """Mean |value| in 1-pixel rings around the rotation axis (the centre)."""
    size = image.shape[0]
    centre = (size - 1) / 2
    y, x = np.meshgrid(
        np.arange(size) - centre, np.arange(size) - centre, indexing='ij'
    )
    radius = np.hypot(x, y)
    bins = np.round(radius).astype(int)
    values = np.abs(image.numpy())
    total = np.bincount(bins.ravel(), values.ravel())
    counts = np.bincount(bins.ravel())
    return total / np.maximum(counts, 1)


def test_ring_profile_peaks_at_the_radii_of_the_perturbed_elements():
    hu = ellipse(size=64, slices=2, axes=(0.45, 0.45))
    spacing = (2.0, 2.0, 2.0)
    out = kernels.ring(
        hu, amplitude=40.0, fraction=0.06, spacing=spacing, generator=seeded(3)
    )
    difference = (out - hu)[0, :, :, 0]
    assert float(difference.abs().max()) == pytest.approx(40.0, rel=1e-4)
    beam = simulation((64, 64), spacing[:2]).fine
    elements, _ = kernels.ring_elements(beam, 0.06, seeded(3))
    radii = ((elements - (beam.bins - 1) / 2).abs() * beam.dt / spacing[0]).numpy()
    profile = _radial_profile(difference, spacing[0])[:31]
    expected = set(np.round(radii).astype(int).tolist())
    top = np.argsort(profile)[::-1][: len(expected)]
    # each of the strongest rings lies within one pixel of a perturbed element
    assert all(min(abs(r - e) for e in expected) <= 1 for r in top), (top, expected)
    # and every element's radius stands out from the background
    background = np.median(profile)
    assert all(profile[r] > 3 * background for r in expected if r < 31)
    # the same rings in every slice
    assert torch.equal(out[..., 0] - hu[..., 0], out[..., 1] - hu[..., 1])


def test_sparse_view_streak_energy_grows_as_views_fall():
    hu = ellipse(size=64, slices=1, bones=True)
    energies = []
    for views in (90, 45, 22, 11):
        out = kernels.sparse_view(
            hu, step=180 / views, spacing=SPACING, generator=seeded(0)
        )
        energies.append(float((out - hu).square().mean()))
    assert all(a < b for a, b in itertools.pairwise(energies)), energies
    assert energies[-1] > 4 * energies[0]


def test_limited_angle_error_grows_with_the_wedge():
    hu = ellipse(size=64, slices=1, bones=True)
    errors = [
        float(
            (
                kernels.limited_angle(hu, wedge=w, spacing=SPACING, generator=seeded(0))
                - hu
            )
            .abs()
            .mean()
        )
        for w in (0.0, 20.0, 60.0, 120.0)
    ]
    assert errors[0] == 0.0
    assert all(a < b for a, b in itertools.pairwise(errors)), errors


def test_beam_hardening_cups_the_body_and_darkens_between_bones():
    water = ellipse(size=64, slices=1, axes=(0.4, 0.4))
    out = kernels.beam_hardening(water, cupping=30.0, spacing=SPACING)
    centre, rim = out[0, 30:34, 30:34].mean(), out[0, 30:34, 12:16].mean()
    assert float(rim - centre) > 10  # cupping, HU
    bones = ellipse(size=64, slices=1, axes=(0.4, 0.4), bones=True)
    hardened = kernels.beam_hardening(bones, cupping=30.0, spacing=SPACING)
    plain = kernels.beam_hardening(
        bones, cupping=30.0, bone_weight=0.0, spacing=SPACING
    )
    between = (slice(None), slice(30, 34), slice(29, 35), slice(None))
    assert float((hardened - plain)[between].mean()) < -5  # dark band


def test_rigid_motion_grows_with_the_shift_and_vanishes_without_it():
    hu = ellipse(size=64, slices=1)
    assert torch.equal(kernels.rigid_motion(hu, shift=0.0, spacing=SPACING), hu)
    errors = [
        float(
            (
                kernels.rigid_motion(hu, shift=s, spacing=SPACING, generator=seeded(0))
                - hu
            )
            .abs()
            .mean()
        )
        for s in (1.0, 4.0, 12.0)
    ]
    assert errors[0] < errors[1] < errors[2], errors


def test_photon_starvation_is_worse_with_fewer_counts():
    hu = ellipse(size=64, slices=2, bones=True)
    errors = []
    for counts in (200.0, 20.0, 1.0):
        out = kernels.photon_starvation(
            hu, counts=counts, spacing=SPACING, generator=seeded(0)
        )
        errors.append(float((out - hu)[hu > -500].std()))
    assert errors[0] < errors[1] < errors[2], errors


def test_a_larger_body_is_noisier_at_the_same_dose():
    # the same pixel size, twice the diameter: longer paths, fewer photons
    def centre_std(size: int) -> float:
        hu = ellipse(size=size, slices=2)
        out = kernels.lowdose_noise(hu, dose=0.1, spacing=SPACING, generator=seeded(0))
        middle = slice(size // 2 - 4, size // 2 + 4)
        return float((out - hu)[0, middle, middle].std())

    assert centre_std(64) > 1.5 * centre_std(32)


# Kernel contract on HU -------------------------------------------------------------

FAMILY_NAMES = (*CT_PHYSICS_FAMILIES, 'limited_angle')
PARAMETERS = {name: FAMILIES[name].parameters_at(0.2) for name in FAMILY_NAMES}
DETERMINISTIC = {'beam_hardening', 'reconstruction_kernel', 'contrast_phase'}
RANDOM = set(FAMILY_NAMES) - DETERMINISTIC


def _labels(hu: torch.Tensor) -> torch.Tensor:
    """A label map of an ellipse phantom: liver (1) and kidneys (3)."""
    return (hu > -500).to(torch.uint8) + 2 * (hu > 500).to(torch.uint8)


def _extra(name: str, hu: torch.Tensor) -> dict:
    return {'labels': _labels(hu)} if FAMILIES[name].reads_labels else {}


@pytest.mark.parametrize('name', FAMILY_NAMES)
def test_output_contract_and_batch(name):
    kernel = FAMILIES[name].kernel
    hu = ellipse(size=32, slices=2, bones=True)
    hu64 = hu.double()
    before = hu.clone()
    extra = _extra(name, hu)
    labels_before = {k: v.clone() for k, v in extra.items()}
    out = kernel(hu, generator=seeded(1), spacing=SPACING, **extra, **PARAMETERS[name])
    for key, value in extra.items():
        assert torch.equal(value, labels_before[key])  # labels only read
    assert torch.equal(hu, before)  # input untouched
    assert out.shape == hu.shape and out.dtype == hu.dtype
    assert out.data_ptr() != hu.data_ptr()
    assert torch.isfinite(out).all() and float(out.min()) >= kernels.HU_FLOOR
    assert not torch.equal(out, hu)
    arguments = {**extra, **PARAMETERS[name]}
    again = kernel(hu, generator=seeded(1), spacing=SPACING, **arguments)
    assert torch.equal(out, again)  # a seed fixes the result
    other = kernel(hu, generator=seeded(2), spacing=SPACING, **arguments)
    assert torch.equal(out, other) == (name not in RANDOM)
    assert kernel(hu64, generator=seeded(1), spacing=SPACING, **arguments).dtype == (
        torch.float64
    )
    # batched path: one generator draws the samples in order; per-sample values
    batch = torch.stack([hu, hu])
    batch_extra = {k: [v, v] for k, v in extra.items()}
    batch_arguments = {**PARAMETERS[name], **batch_extra}
    together = kernel(batch, generator=seeded(1), spacing=SPACING, **batch_arguments)
    torch.testing.assert_close(together[0], out, rtol=0, atol=1e-3)
    (key,) = FAMILIES[name].parameter_names
    values = [FAMILIES[name].parameters_at(level)[key] for level in (0.1, 0.25)]
    per_sample = kernel(
        batch,
        generator=[seeded(1), seeded(1)],
        spacing=SPACING,
        **{**batch_arguments, key: values},
    )
    single = kernel(
        hu, generator=seeded(1), spacing=SPACING, **{**arguments, key: values[1]}
    )
    torch.testing.assert_close(per_sample[1], single, rtol=0, atol=1e-3)


@pytest.mark.parametrize('name', FAMILY_NAMES)
def test_bad_input_is_refused_with_a_clear_error(name):
    operator = FAMILIES[name]
    arguments = PARAMETERS[name]
    normalised = torch.rand(1, 8, 8, 2)
    with pytest.raises(
        IntensityError,
        match=rf'^Operator "{name}": image "x" has values in \[0, 1\], a normalised',
    ):
        operator(normalised, **arguments)
    with pytest.raises(IntensityError, match='contains NaN or Inf values'):
        operator(torch.full((1, 8, 8, 2), float('nan')), **arguments)
    with pytest.raises(IntensityError, match='outside the Hounsfield range'):
        operator(torch.full((1, 8, 8, 2), 1e6), **arguments)
    with pytest.raises(ValueError, match='spacing must be 2 or 3 positive numbers'):
        operator.kernel(ellipse(8, 1), spacing=(0.0, 1.0, 1.0), **arguments)
    with pytest.raises(ValueError, match='slice_axis must be 0, 1 or 2'):
        operator.kernel(ellipse(8, 1), slice_axis=3, **arguments)
    subject = tio.Subject(ct=tio.ScalarImage(tensor=normalised))
    with pytest.raises(IntensityError, match=r'image "ct" has values in \[0, 1\]'):
        tr.RandomCorruption(name)(subject)


# Transforms: history, labels, pickling, pools -----------------------------------


def hu_subject(size: int = 24, slices: int = 3) -> tio.Subject:
    hu = ellipse(size=size, slices=slices, bones=True)
    label = (hu > -500).to(torch.uint8) + (hu > 500).to(torch.uint8)
    return tio.Subject(
        ct=tio.ScalarImage(tensor=hu.to(torch.int16), spacing=SPACING),
        seg=tio.LabelMap(tensor=label),
    )


@pytest.mark.parametrize('name', sorted(catalogue.HU))
def test_transform_history_replays_bit_for_bit_and_labels_are_untouched(name):
    subject = hu_subject()
    torch.manual_seed(0)
    out = catalogue.HU[name](p=1)(subject)
    assert not torch.equal(out.ct.data.float(), subject.ct.data.float())
    assert torch.equal(out.seg.data, subject.seg.data)
    assert [t.name for t in out.history] == ['Corruption']
    replayed = out.get_composed_history()(subject)
    assert torch.equal(replayed.ct.data, out.ct.data)
    assert torch.equal(subject.ct.data, hu_subject().ct.data)  # input untouched
    clone = pickle.loads(pickle.dumps(catalogue.HU[name](p=1)))
    torch.manual_seed(0)
    assert torch.equal(clone(subject).ct.data, out.ct.data)
    assert catalogue.HU[name](p=0)(subject).history == []


def test_every_family_has_a_named_transform_and_units():
    named = {catalogue.HU[n]().operator.name for n in catalogue.HU}
    assert named == set(FAMILY_NAMES)
    for name in FAMILY_NAMES:
        (parameter,) = FAMILIES[name].parameters
        assert parameter.doc  # units or meaning, shown in tables and reports


def test_the_pool_is_named_and_outside_the_paper_defaults():
    assert check_families('ct_physics') == CT_PHYSICS_FAMILIES == POOLS['ct_physics']
    assert not set(CT_PHYSICS_FAMILIES) & set(tr.RampCorrupt().families)
    assert 'limited_angle' in FAMILIES and 'limited_angle' not in CT_PHYSICS_FAMILIES
    assert check_families(['paper']) == tr.RampCorrupt().families
    assert (
        tr.families.severity_table(families='ct_physics')[0]['family']
        == 'lowdose_noise'
    )


def test_ramp_corrupt_runs_the_pool_on_hu_before_ct_normalize():
    subject = hu_subject()
    pipeline = tio.Compose(
        [
            tr.RampCorrupt(p=1, families='ct_physics', num_corruptions=2),
            tr.CTNormalize(),
        ]
    )
    torch.manual_seed(1)
    out = pipeline(subject)
    assert float(out.ct.data.min()) >= 0 and float(out.ct.data.max()) <= 1
    assert [t.name for t in out.history] == ['Corruption', 'Corruption', 'CTNormalize']
    assert torch.equal(out.seg.data, subject.seg.data)
    assert torch.equal(out.get_composed_history()(subject).ct.data, out.ct.data)
    with pytest.raises(ValueError, match="'ring' acts on Hounsfield units"):
        tr.RampCorrupt(families=['blur', 'ring'])
    with pytest.raises(
        ValueError, match='BatchRampCorrupt corrupts normalised batches'
    ):
        tr.BatchRampCorrupt(families='ct_physics')


def test_stress_protocol_corrupts_hu_then_normalises():
    subject = hu_subject()
    protocol = StressProtocol(families='ct_physics', levels=[0.2])
    image = protocol.normalize(subject)
    ct = subject.ct
    volumes = dict(
        protocol.volumes(
            image,
            's1',
            hu=ct.data,
            spacing=ct.spacing,
            affine=ct.affine,
            labels=subject.seg.data,
        )
    )
    assert len(volumes) == 1 + len(CT_PHYSICS_FAMILIES)
    for setting, volume in volumes.items():
        assert volume.shape == image.shape
        assert float(volume.min()) >= 0 and float(volume.max()) <= 1
        if not setting.is_clean:
            assert not torch.equal(volume, image), setting.name
    ring = Setting('ring', 0.2)
    expected = tr.Corruption('ring', level=0.2, seed=protocol.seed_of('s1', ring))(
        subject
    )
    torch.testing.assert_close(
        volumes[ring], tr.CTNormalize(hu_range=protocol.hu_range)(expected).ct.data
    )
    with pytest.raises(ValueError, match='acts on Hounsfield units; pass the CT in HU'):
        protocol.corrupt(image, 's1', ring)


# CPU and CUDA agree ----------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('name', FAMILY_NAMES)
def test_cuda_matches_cpu_with_a_cpu_generator(name):
    hu = ellipse(size=48, slices=2, bones=True)
    kernel = FAMILIES[name].kernel
    arguments = {**_extra(name, hu), **PARAMETERS[name]}
    cpu = kernel(hu, generator=seeded(5), spacing=SPACING, **arguments)
    cuda_extra = {k: v.cuda() for k, v in _extra(name, hu).items()}
    cuda = kernel(
        hu.cuda(),
        generator=seeded(5),
        spacing=SPACING,
        **{**arguments, **cuda_extra},
    )
    assert cuda.device.type == 'cuda'
    # float32 sums in another order: agreement to 0.1% of the artifact's range
    scale = float((cpu - hu).abs().max())
    torch.testing.assert_close(cuda.cpu(), cpu, rtol=0, atol=1e-3 * scale + 1e-2)


def test_small_geometries_keep_their_blocks_large_ones_stream():
    from torchio_ramp.kernels import projector

    small = projector.ParallelBeam((32, 32), (3.0, 3.0))
    assert small._entries() <= projector.CACHE_ENTRIES
    first = small._matrices('back', 0, 4, True, torch.device('cpu'))
    assert small._matrices('back', 0, 4, True, torch.device('cpu')) is first
    large = projector.ParallelBeam((512, 512), (0.7, 0.7))
    assert large._entries() > projector.CACHE_ENTRIES
    one = large._matrices('back', 0, 1, True, torch.device('cpu'))
    assert large._matrices('back', 0, 1, True, torch.device('cpu')) is not one


# ramp-stress ------------------------------------------------------------------------


@pytest.fixture(scope='module')
def phantoms(tmp_path_factory):
    """Two 24^3 phantoms prepared by ramp-prep, both in the test split."""
    root = tmp_path_factory.mktemp('ct-physics-stress')
    return prepare_phantoms(root, 2, '24,24,24')


def test_ramp_stress_accepts_the_pool(phantoms, tmp_path):
    from torchio_ramp.cli_options import family_names
    from torchio_ramp.stress.runner import run_stress_test
    from torchio_ramp.stress.store import load_results

    # ``ramp-stress run --families ct_physics`` (the option's callback)
    assert family_names(None, None, ('ct_physics',)) == CT_PHYSICS_FAMILIES
    assert family_names(None, None, ('paper,ring',))[-1] == 'ring'
    protocol = StressProtocol(families='ct_physics', levels=[0.2])

    def threshold(image: torch.Tensor) -> torch.Tensor:
        return (image[0] > 0.5).long()

    run_stress_test(threshold, phantoms, tmp_path, protocol=protocol, name='m')
    results = load_results(tmp_path)
    assert results.complete
    assert [s.family for s in results.settings] == ['clean', *CT_PHYSICS_FAMILIES]


def test_cost_benchmark_script_runs():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / 'benchmarks' / 'ct_physics.py'
    spec = importlib.util.spec_from_file_location('ct_physics_benchmark', path)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    rows = benchmark.measure(size=16, repeats=1)
    assert [row[0] for row in rows] == [*CT_PHYSICS_FAMILIES, *benchmark.IMAGE_DOMAIN]
    assert all(float(row[3]) >= 0 and float(row[4]) >= 0 for row in rows)


def test_levels_table_names_the_physical_units():
    from torchio_ramp.stress.units import physical_table

    rows = physical_table((-200, 300), (1.5, 1.5, 3.0), families='ct_physics')
    units = {(row['family'], row['quantity']): row['unit'] for row in rows}
    assert units['lowdose_noise', 'dose'] == '%'
    assert units['ring', 'peak ring amplitude'] == 'HU'
    assert units['sparse_view', 'views over 180 deg'] == 'views'
    assert units['rigid_motion', 'in-plane shift'] == 'mm'
    assert units['metal', 'rod diameter'] == 'mm'
    assert units['beam_hardening', 'cupping of 200 mm water'] == 'HU'
    assert units['photon_starvation', 'counts on the widest ray'] == 'photons'
    assert units['reconstruction_kernel', 'kernel MTF50'] == 'lp/mm'
    assert units['contrast_phase', 'time after injection'] == 's'
    assert units['dose_modulation', 'mean dose'] == '%'
    assert {row['family'] for row in rows} == set(CT_PHYSICS_FAMILIES)
    (dose,) = [row for row in rows if row['family'] == 'lowdose_noise']
    assert dose['values'][0.25] == pytest.approx(10.0)  # 10% of the dose
    (views,) = [r for r in rows if r['quantity'] == 'views over 180 deg']
    assert [views['values'][level] for level in (0.05, 0.25)] == [120, 30]


def test_padding_below_air_is_air():
    # scanners pad outside the field of view with -3024 (or -32768): mu = 0
    hu = ellipse(size=32, slices=1)
    padded = hu.clone()
    padded[:, :3] = -3024.0
    padded[:, -3:] = -32768.0
    a = kernels.lowdose_noise(hu, dose=0.2, spacing=SPACING, generator=seeded(0))
    b = kernels.lowdose_noise(padded, dose=0.2, spacing=SPACING, generator=seeded(0))
    assert float(b.min()) >= kernels.HU_FLOOR
    torch.testing.assert_close(a[:, 3:-3], b[:, 3:-3])
