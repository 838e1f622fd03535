"""The CT intensity stage: one registry entry per operation (paper Table 1).

Each entry carries the probability with which :class:`~torchio_ramp.RampIntensity`
applies it. All operations act in normalised ``[0, 1]`` intensity space.
"""

from __future__ import annotations

from . import kernels
from .operators import Operator
from .operators import Option
from .operators import Parameter
from .operators import int_triplet
from .operators import positive_int
from .operators import positive_number

INTENSITY_OPERATIONS: dict[str, Operator] = {
    operation.name: operation
    for operation in (
        Operator(
            name='gamma',
            title='Multi-level gamma',
            kernel=kernels.gamma,
            parameters=(
                Parameter('gamma1', 0.60, 1.60, minimum=0.0, doc='first exponent'),
                Parameter('gamma2', 0.70, 1.30, minimum=0.0, doc='second exponent'),
            ),
            summary='Two sequential gamma transformations (x ** gamma1) ** gamma2.',
            reference='Table 1',
            probability=0.45,
        ),
        Operator(
            name='window_level',
            title='CT window-level shift',
            kernel=kernels.window_level,
            parameters=(
                Parameter('center_shift', -0.15, 0.15, doc='window centre shift'),
                Parameter('width_scale', 0.70, 1.30, minimum=1e-3, doc='width scale'),
            ),
            summary='Moves the intensity window centre and scales its width'
            ' (windowing and calibration differences).',
            reference='Table 1',
            probability=0.45,
        ),
        Operator(
            name='histogram_warp',
            title='Histogram polynomial warp',
            kernel=kernels.histogram_warp,
            parameters=(),
            options=(
                Option('coefficient_std', 0.20, positive_number, 'coefficient std'),
                Option('degree', 3, positive_int, 'polynomial degree'),
            ),
            summary='Monotonic remapping by a polynomial with positive normalised'
            ' coefficients (0 -> 0, 1 -> 1).',
            reference='Table 1',
            probability=0.40,
        ),
        Operator(
            name='local_contrast',
            title='Adaptive local contrast',
            kernel=kernels.local_contrast,
            parameters=(
                Parameter('blend', 0.0, 0.35, minimum=0.0, maximum=1.0, doc='blend'),
            ),
            options=(Option('grid', (4, 4, 4), int_triplet, 'patch grid'),),
            summary='Blends the image with a patch-wise min-max normalisation on a'
            ' 4 x 4 x 4 grid, interpolated between patch centres.',
            reference='Table 1',
            probability=0.35,
        ),
        Operator(
            name='sharpen',
            title='Random sharpening',
            kernel=kernels.sharpen,
            parameters=(
                Parameter(
                    'sigma', 0.5, 2.5, minimum=0.0, doc='Gaussian sigma (voxels)'
                ),
                Parameter('amount', 0.2, 1.5, minimum=0.0, doc='strength alpha'),
            ),
            summary='Unsharp masking x + alpha (x - G_sigma x) (sharp reconstruction'
            ' kernels).',
            reference='Table 1',
            probability=0.30,
        ),
    )
}
"""The five CT intensity operations of Table 1, in the paper's order."""
