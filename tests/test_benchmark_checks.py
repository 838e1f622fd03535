"""The CPU-side logic of the benchmark checks, in process.

``benchmarks/check_cuda.py`` runs on a GPU machine; what decides its verdicts
(summaries, the agreement rule, the slab count, the target) is tested here on
the CPU. The peer transforms of ``benchmarks/peers.py`` are checked to do the
same augmentation as our operators (with the optional libraries installed).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / 'benchmarks'


@pytest.fixture(scope='module', autouse=True)
def benchmarks_on_path():
    sys.path.insert(0, str(BENCHMARKS))
    yield
    sys.path.remove(str(BENCHMARKS))


@pytest.fixture
def check_cuda(benchmarks_on_path):
    import check_cuda

    return check_cuda


def test_summary_reports_mean_median_and_high_percentile(check_cuda):
    # 15% of plans do nothing: the median hides the expensive tail, the mean not
    times = [0.1] * 3 + [4.0] * 14 + [12.0] * 3
    summary = check_cuda.Summary.of(times)
    assert summary.median == 4.0
    assert math.isclose(summary.mean, (0.3 + 56.0 + 36.0) / 20)
    assert summary.high == 12.0
    assert summary.calls == 20
    with pytest.raises(ValueError, match='no timings'):
        check_cuda.Summary.of([])


def test_target_is_judged_on_the_mean(check_cuda):
    summary = check_cuda.Summary
    fast_median_slow_mean = summary(mean=6.0, median=3.0, high=15.0, calls=50)
    steady = summary(mean=4.5, median=4.4, high=5.5, calls=50)
    assert check_cuda.fastest_meeting_target([('cpu', fast_median_slow_mean)]) is None
    label, _ = check_cuda.fastest_meeting_target(
        [('cpu', fast_median_slow_mean), ('input', steady)]
    )
    assert label == 'input'


def test_agreement_flags_differences_nan_and_shapes(check_cuda):
    a = torch.rand(1, 4, 4, 4)
    assert check_cuda.Agreement.between(a, a + 5e-5).agrees
    off = check_cuda.Agreement.between(a, a + 2e-3)
    assert not off.agrees and off.voxels_off == a.numel()
    nan = a.clone()
    nan[0, 0, 0, 0] = math.nan
    found = check_cuda.Agreement.between(a, nan)
    assert not found.agrees and found.voxels_off == 1
    with pytest.raises(ValueError, match='shapes differ'):
        check_cuda.Agreement.between(a, a[..., :2])


def test_seeds_differ_per_call_and_from_the_warm_up(check_cuda):
    timed = [s for i in range(50) for s in check_cuda.batch_seeds(i, 2)]
    warm = [s for i in range(1, 6) for s in check_cuda.batch_seeds(-i, 2)]
    assert len(set(timed)) == 100
    assert not set(timed) & set(warm)


def test_time_calls_passes_call_indices(check_cuda):
    seen = []
    times = check_cuda.time_calls(seen.append, 'cpu', repeats=3, warmup=2)
    assert seen == [-1, -2, 0, 1, 2]
    assert len(times) == 3 and all(t >= 0 for t in times)


def test_slab_count_matches_the_elastic_sampler(check_cuda, monkeypatch):
    from torchio_ramp.kernels import elastic

    assert check_cuda.elastic_slabs((1, 144, 144, 144)) > 1  # the default check
    assert check_cuda.elastic_slabs((1, 8, 8, 8)) == 1
    x = torch.rand(1, 12, 10, 8)
    grid = elastic.elastic_grid(
        x.shape[-3:], alpha=80.0, sigma=4.0, generator=torch.Generator()
    )
    whole = elastic.sample(x, grid)
    monkeypatch.setattr(elastic, 'SLAB_VOXELS', 10 * 8 * 5)
    assert check_cuda.elastic_slabs(x.shape) == 3
    # slab by slab upsampling gives the same result as one slab
    assert torch.allclose(elastic.sample(x, grid), whole, atol=1e-6)


def test_agreement_check_runs_the_slab_path_on_the_cpu(check_cuda, monkeypatch, capsys):
    from torchio_ramp.kernels import elastic

    monkeypatch.setattr(elastic, 'SLAB_VOXELS', 10 * 10 * 4)
    assert check_cuda.check_agreement('cpu', 10, seeds=1)
    output = capsys.readouterr().out
    assert 'elastic samples in 3 slabs' in output
    assert 'WARNING' not in output
    assert check_cuda.check_pipeline_agreement('cpu', 8, batch=2, calls=2)
    assert 'Pipeline agrees' in capsys.readouterr().out


# Peers ---------------------------------------------------------------------


def _peer(name: str, library: str):
    import peers

    pytest.importorskip(peers._MODULES[library])
    return next(p for p in peers.PEERS[name] if p.library == library)


def _call(name: str, library: str, image: torch.Tensor, seed: int = 0):
    from cases import operator_cases

    case = next(c for c in operator_cases() if c.name == name)
    peer = _peer(name, library)
    call = peer.build(case.parameters, tuple(image.shape))
    call.seed(seed)
    return case, torch.as_tensor(call(image.clone()))


@pytest.mark.parametrize('library', ['MONAI', 'batchgeneratorsv2'])
def test_peer_flip_and_shift_do_what_ours_do(library):
    image = torch.rand(1, 6, 5, 4) * 0.5 + 0.25
    _, flipped = _call('flip', library, image)
    assert torch.equal(flipped, torch.flip(image, (1,)))
    case, shifted = _call('intensity_shift', library, image)
    shift = case.parameters['shift']
    assert torch.allclose((shifted - image).abs(), torch.full_like(image, shift))


def test_peer_contrast_equals_our_kernel_inside_the_range():
    image = torch.rand(1, 6, 5, 4) * 0.5 + 0.25
    case, theirs = _call('contrast_reduction', 'batchgeneratorsv2', image)
    ours = case.run_kernel(image, 0)
    assert torch.allclose(theirs, ours, atol=1e-6)


@pytest.mark.parametrize('library', ['MONAI', 'batchgeneratorsv2'])
def test_peer_noise_has_our_standard_deviation(library):
    image = torch.full((1, 32, 32, 32), 0.5)
    case, noisy = _call('gaussian_noise', library, image)
    std = case.parameters['std']
    assert abs(float((noisy - image).std()) - std) < 0.05 * std


def test_monai_elastic_draws_our_field_size():
    image = torch.rand(1, 24, 24, 24)
    _, warped = _call('elastic', 'MONAI', image)
    assert warped.shape == image.shape
    assert 0 < float((warped - image).abs().mean()) < 0.2


def test_peer_summary_says_which_libraries_are_present():
    import peers
    import run

    summary = run.peer_summary()
    for library in peers.LIBRARIES:
        expected = 'not installed' if not peers.available(library) else library
        assert expected in summary


def test_a_failing_worker_names_itself_and_its_error(benchmarks_on_path):
    import harness

    arguments = ['--worker', '--shape', '8', '8', '8', 'no_such_operator']
    with pytest.raises(RuntimeError) as error:
        harness.run_worker(BENCHMARKS / 'memory.py', arguments, "'no_such_operator'")
    message = str(error.value)
    assert message.startswith("memory.py worker for 'no_such_operator' failed:")
    assert "unknown operator 'no_such_operator'" in message
