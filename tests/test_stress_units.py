"""Severity levels in clinical units: hand-checked values and the CLI table."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from torchio_ramp.families import PAPER_FAMILIES
from torchio_ramp.stress.cli import main
from torchio_ramp.stress.units import physical_table

FWHM = 2 * math.sqrt(2 * math.log(2))  # 2.35482


def value(rows, family, level, quantity=None):
    for row in rows:
        if row['family'] == family and quantity in (None, row['quantity']):
            return row['values'][level]
    raise KeyError(family)


@pytest.mark.parametrize(
    ('hu_range', 'spacing', 'noise_hu', 'blur_mm', 'thickness_mm'),
    [
        # Level 0.15 noise std 0.11 x 500 HU = 55 HU; level 0.05 blur sigma
        # 0.5 voxel = FWHM 1.1774 voxels = 1.7661 mm at 1.5 mm, 3.5322 at 3 mm;
        # level 0.25 down-sampling x3 of 3 mm slices = 9 mm.
        ((-200, 300), (1.5, 1.5, 3.0), 55.0, (1.76612, 1.76612, 3.53223),
         (4.5, 4.5, 9.0)),
        # A wide window of 2000 HU: 220 HU; 0.8 mm isotropic: 0.94193 mm;
        # 0.7 x 0.7 x 5 mm x 3 = 2.1 x 2.1 x 15 mm.
        ((-1000, 1000), (0.8, 0.8, 0.8), 220.0, (0.94193,) * 3, (2.4, 2.4, 2.4)),
        ((-1000, 1000), (0.7, 0.7, 5.0), 220.0, (0.82419, 0.82419, 5.88706),
         (2.1, 2.1, 15.0)),
    ],
)  # fmt: skip
def test_hand_checked_values(hu_range, spacing, noise_hu, blur_mm, thickness_mm):
    rows = physical_table(hu_range, spacing)
    assert value(rows, 'gaussian_noise', 0.15) == pytest.approx(noise_hu)
    assert value(rows, 'blur', 0.05) == pytest.approx(blur_mm, abs=1e-5)
    assert value(rows, 'downsample', 0.25) == pytest.approx(thickness_mm)
    # Compound at level 0.1 blurs with sigma 5 x 0.1 = 0.5: the same FWHM.
    compound = value(rows, 'compound', 0.1, 'blur FWHM')
    assert compound == pytest.approx(blur_mm, abs=1e-5)


def test_every_family_has_a_reading_that_grows_with_the_level():
    rows = physical_table((-200, 300), (1.0, 1.0, 2.0))
    assert {row['family'] for row in rows} >= {
        'gaussian_noise', 'blur', 'stripe', 'salt_pepper', 'contrast_reduction'
    }  # fmt: skip
    assert len({row['family'] for row in rows}) == len(PAPER_FAMILIES)
    for row in rows:
        values = [v[-1] if isinstance(v, tuple) else v for v in row['values'].values()]
        assert values == sorted(values) and values[0] < values[-1], row['family']
        assert row['unit'] in ('HU', 'mm', '%')
    # Intensity readings scale with the window, not with the spacing.
    wide = physical_table((-1000, 1000), (1.0, 1.0, 2.0), families=['stripe'])
    narrow = physical_table((-200, 300), (5.0, 5.0, 5.0), families=['stripe'])
    assert wide[0]['values'][0.15] == pytest.approx(4 * narrow[0]['values'][0.15])
    assert narrow[0]['values'][0.15] == pytest.approx(0.35 * 500)


def test_levels_command():
    runner = CliRunner()
    result = runner.invoke(main, ['levels', '--hu-range', '-200', '300', '--spacing',
                                  '1.5,1.5,3'])  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = {line.split()[0] + ' ' + line.split()[1]: line for line in
             result.output.splitlines()[2:]}  # fmt: skip
    assert lines['gaussian_noise noise'].split()[-3] == '55'  # at level 0.15
    assert '1.8 x 1.8 x 3.5' in lines['blur blur']
    assert lines['downsample effective'].rstrip().endswith('4.5 x 4.5 x 9')
    result = runner.invoke(main, ['levels', '--spacing', '2', '--families', 'blur',
                                  '--levels', '0.1', '--json'])  # fmt: skip
    data = json.loads(result.output)
    assert data['rows'][0]['values']['0.1'] == pytest.approx([FWHM * 1.0 * 2] * 3)
    for arguments, needle in (
        (['--spacing', '0,1'], "Invalid value for '--spacing'"),
        (['--spacing', 'a'], "Invalid value for '--spacing'"),
        (['--hu-range', '300', '-200'], "Invalid value for '--hu-range'"),
        (['--families', 'fog'], "unknown corruption family 'fog'"),
        (['--levels', '-1'], 'positive'),
    ):
        result = runner.invoke(main, ['levels', *arguments])
        assert result.exit_code == 2 and needle in result.output, result.output
