"""nnU-Net's z-scored CT <-> RAMP's [0, 1] HU window (no nnU-Net needed)."""

from __future__ import annotations

import sys

import pytest
import torch

from torchio_ramp.nnunet import require_nnunetv2
from torchio_ramp.nnunet.domain import HUWindow
from torchio_ramp.nnunet.domain import hu_with_window_change

# Foreground statistics as nnU-Net's plans store them (phantom export)
PLANS = {'mean': 2.44, 'std': 231.68, 'percentile_00_5': -922.0}


def nnunet_z(hu: torch.Tensor) -> torch.Tensor:
    """nnU-Net's CTNormalization (percentile clip, then z-score)."""
    return (hu.clamp(-922.0, 174.0) - PLANS['mean']) / PLANS['std']


def test_round_trip_is_the_identity_inside_the_window():
    mapping = HUWindow.from_plans(PLANS)
    hu = torch.linspace(-200, 300, 10_001, dtype=torch.float64)
    z = (hu - PLANS['mean']) / PLANS['std']
    w = mapping.to_window(z)
    assert torch.allclose(w, (hu + 200) / 500, atol=1e-12)
    assert torch.allclose(mapping.from_window(w), z, atol=1e-12)
    z32 = z.float()
    back = mapping.from_window(mapping.to_window(z32))
    assert torch.allclose(back, z32, atol=1e-5)


def test_outside_the_window_voxels_keep_their_value_plus_the_change():
    mapping = HUWindow.from_plans(PLANS)
    hu = torch.tensor([-1000.0, -500.0, 0.0, 150.0, 900.0])
    z = nnunet_z(hu)
    # identity operation: every voxel unchanged, also air and bright voxels
    assert torch.equal(mapping.apply(z, lambda w: w), z)

    # +0.1 in the window is +50 HU everywhere, never a clip to the edge
    out = mapping.apply(z, lambda w: (w + 0.1).clamp(0, 1))
    hu_out = out * PLANS['std'] + PLANS['mean']
    assert torch.allclose(hu_out, hu.clamp(-922, 174) + 50, atol=1e-3)
    assert hu_out[0] < -800  # air stays air instead of becoming -200 HU
    # a change the window saturates (above high) adds nothing
    bright = (torch.tensor([400.0]) - PLANS['mean']) / PLANS['std']
    same = mapping.apply(bright, lambda w: (w + 0.1).clamp(0, 1))
    assert torch.allclose(same, bright)


def test_window_is_a_setting_and_bad_values_are_refused():
    mapping = HUWindow.from_plans(PLANS, window=(-1000.0, 1000.0))
    assert mapping.to_window(nnunet_z(torch.tensor([0.0]))).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match='low < high'):
        HUWindow(0.0, 1.0, window=(300.0, -200.0))
    with pytest.raises(ValueError, match='foreground intensity mean/std'):
        HUWindow.from_plans({'median': 3.0})


def test_hu_change_leaves_untouched_voxels_bit_identical():
    hu = torch.tensor([-1000.0, -123.456, 42.125, 1500.0])
    clean = ((hu + 200) / 500).clamp(0, 1)
    changed = clean.clone()
    changed[1] += 0.01
    out = hu_with_window_change(hu, clean, changed, (-200, 300))
    assert torch.equal(out[[0, 2, 3]], hu[[0, 2, 3]])
    assert out[1].item() == pytest.approx(-123.456 + 5.0, abs=1e-3)


def test_missing_nnunetv2_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, 'nnunetv2', None)
    with pytest.raises(ImportError, match=r'torchio-ramp\[nnunet\]'):
        require_nnunetv2()
