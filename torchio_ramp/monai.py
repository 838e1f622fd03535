"""MONAI dictionary transforms running RAMP's TorchIO transforms on the same kernels.

MONAI pipelines pass dictionaries of channel-first arrays (``MetaTensor``,
``torch.Tensor`` or ``numpy.ndarray``) from transform to transform.
:class:`ApplyTorchIOd` and :class:`RandApplyTorchIOd` run one of this package's
TorchIO transforms on the entries named by ``keys``: they build a
:class:`torchio.Subject` around those arrays (``keys`` as scalar images,
``label_keys`` as label maps, the ``MetaTensor`` affine as the images' affine),
apply the transform, and put the results back with the input's type, dtype of
the result, device and metadata (affine, ``meta`` and applied operations kept).
Entries not named are untouched.

:class:`RandApplyTorchIOd` follows MONAI's :class:`~monai.transforms.Randomizable`
convention: each call draws one seed from ``self.R`` (seeded by
``set_random_state`` or, in a :class:`monai.data.DataLoader`, per worker) and
runs the TorchIO transform with torch's generator seeded with it, inside
:func:`torch.random.fork_rng`, so torch's global random state is left as it was.
The seed of the last call is ``self.seed``: ``torch.manual_seed(seed)`` followed
by the TorchIO transform on a subject with the same image names gives the same
tensors.

Ready-made: :class:`CTNormalized` (:class:`~torchio_ramp.CTNormalize`),
:class:`RampCorruptd` (:class:`~torchio_ramp.RampCorrupt`) and :class:`Rampd`
(:class:`~torchio_ramp.Ramp`). Needs the ``monai`` extra
(``pip install -c constraints.txt -e '.[monai]'``).

Example:
    >>> import torch
    >>> from monai.data import MetaTensor
    >>> from monai.transforms import Compose
    >>> from torchio_ramp.monai import CTNormalized, RampCorruptd
    >>> hu = torch.linspace(-1000, 1000, 16**3).reshape(1, 16, 16, 16)
    >>> label = (hu > 0).to(torch.uint8)
    >>> pipeline = Compose([
    ...     CTNormalized(keys='image', hu_range=(-200, 300)),
    ...     RampCorruptd(keys='image', p=1, num_corruptions=2),
    ... ]).set_random_state(seed=0)
    >>> out = pipeline({'image': MetaTensor(hu, affine=torch.eye(4)), 'label': label})
    >>> type(out['image']).__name__, out['image'].dtype, out['label'] is label
    ('MetaTensor', torch.float32, True)
"""

from __future__ import annotations

from collections.abc import Hashable
from collections.abc import Mapping
from typing import Any
from typing import ClassVar

import numpy as np
import torch
import torchio as tio

try:
    from monai.config import KeysCollection
    from monai.data import MetaTensor
    from monai.transforms import MapTransform
    from monai.transforms import Randomizable
    from monai.utils import TransformBackends
    from monai.utils import convert_to_dst_type
    from monai.utils import ensure_tuple
except ImportError as error:  # pragma: no cover - exercised in a subprocess
    message = (
        'torchio_ramp.monai needs MONAI, the "monai" extra of torchio-ramp: pip'
        " install -c constraints.txt -e '.[monai]' in a clone, or"
        " 'torchio_ramp-<version>-py3-none-any.whl[monai]' (see the installation"
        f' documentation) ({error})'
    )
    raise ImportError(message) from error

from .pipelines import Ramp
from .pipelines import RampCorrupt
from .transforms.normalization import CTNormalize

__all__ = [
    'ApplyTorchIOd',
    'CTNormalized',
    'RampCorruptd',
    'Rampd',
    'RandApplyTorchIOd',
]

SEED_BOUND = 2**31 - 1


class ApplyTorchIOd(MapTransform):
    """Apply a deterministic TorchIO transform to the entries ``keys``.

    Args:
        keys: Entries to transform as scalar images (channel-first,
            ``(C, H, W, D)``).
        transform: A TorchIO transform, e.g. :class:`~torchio_ramp.CTNormalize`.
        label_keys: Entries passed as label maps: moved by spatial transforms,
            never by intensity ones. Missing label keys are skipped.
        allow_missing_keys: Skip ``keys`` missing from the dictionary instead of
            raising ``KeyError``.

    Example:
        >>> import numpy as np
        >>> from torchio_ramp import CTNormalize
        >>> from torchio_ramp.monai import ApplyTorchIOd
        >>> normalize = ApplyTorchIOd('ct', CTNormalize(hu_range=(-200, 300)))
        >>> hu = np.array([-1000.0, 50.0, 2000.0]).reshape(1, 3, 1, 1)
        >>> normalize({'ct': hu})['ct'].ravel().tolist()
        [0.0, 0.5, 1.0]
    """

    backend: ClassVar = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        keys: KeysCollection,
        transform: tio.Transform,
        label_keys: KeysCollection = (),
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        if not isinstance(transform, tio.Transform):
            message = (
                f'transform must be a torchio Transform, not {type(transform).__name__}'
            )
            raise TypeError(message)
        self.label_keys = ensure_tuple(label_keys)
        overlap = sorted(map(str, set(self.keys) & set(self.label_keys)))
        if overlap:
            raise ValueError(f'keys and label_keys share {overlap}')
        self.transform = transform

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        output = dict(data)
        image_keys = list(self.key_iterator(output))
        if not image_keys:
            return output
        label_keys = [key for key in self.label_keys if key in output]
        images = {
            key: _to_image(output[key], key, tio.ScalarImage) for key in image_keys
        }
        labels = {key: _to_image(output[key], key, tio.LabelMap) for key in label_keys}
        names = {key: str(key) for key in [*images, *labels]}
        if len(set(names.values())) < len(names):
            raise ValueError(f'keys must differ as strings, not {list(names)}')
        subject = tio.Subject(
            {names[key]: image for key, image in {**images, **labels}.items()}
        )
        transformed = self._apply(subject)
        for key in names:
            output[key] = _restore(transformed[names[key]].data, output[key])
        return output

    def _apply(self, subject: tio.Subject) -> tio.Subject:
        return self.transform(subject)


class RandApplyTorchIOd(Randomizable, ApplyTorchIOd):
    """Apply a random TorchIO transform, seeded by MONAI's ``self.R``.

    Arguments as :class:`ApplyTorchIOd`. Each call draws a seed from
    ``self.R`` (kept in ``self.seed``) and runs ``transform`` with torch's
    global generator seeded with it inside :func:`torch.random.fork_rng` (CPU
    generator only), so the outcome depends on ``set_random_state`` alone.

    Example:
        >>> import torch
        >>> from torchio_ramp import RampCorrupt
        >>> from torchio_ramp.monai import RandApplyTorchIOd
        >>> corrupt = RandApplyTorchIOd('ct', RampCorrupt(p=1))
        >>> data = {'ct': torch.rand(1, 8, 8, 8)}
        >>> first = corrupt.set_random_state(seed=3)(data)['ct']
        >>> torch.equal(first, corrupt.set_random_state(seed=3)(data)['ct'])
        True
    """

    seed: int | None = None

    def randomize(self, data: Any = None) -> None:
        """Draw the torch seed of the next application from ``self.R``."""
        self.seed = int(self.R.randint(SEED_BOUND))

    def _apply(self, subject: tio.Subject) -> tio.Subject:
        self.randomize()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return self.transform(subject)


class CTNormalized(ApplyTorchIOd):
    """Dictionary :class:`~torchio_ramp.CTNormalize`: HU window to ``[0, 1]``.

    Args:
        keys: CT entries to normalise.
        allow_missing_keys: Skip missing ``keys``.
        **kwargs: Arguments of :class:`~torchio_ramp.CTNormalize`
            (``hu_range``).

    Example:
        >>> import torch
        >>> from torchio_ramp.monai import CTNormalized
        >>> hu = torch.tensor([-1000.0, 50.0, 2000.0]).reshape(1, 3, 1, 1)
        >>> CTNormalized('ct', hu_range=(-200, 300))({'ct': hu})['ct'].flatten()
        tensor([0.0000, 0.5000, 1.0000])
    """

    def __init__(
        self, keys: KeysCollection, allow_missing_keys: bool = False, **kwargs: Any
    ):
        super().__init__(
            keys, CTNormalize(**kwargs), allow_missing_keys=allow_missing_keys
        )


class RampCorruptd(RandApplyTorchIOd):
    """Dictionary :class:`~torchio_ramp.RampCorrupt`: ``k`` random corruptions.

    Images must already be in ``[0, 1]`` (:class:`CTNormalized`). Labels are
    not named and stay untouched.

    Args:
        keys: Image entries to corrupt (each with its own parameters).
        allow_missing_keys: Skip missing ``keys``.
        **kwargs: Arguments of :class:`~torchio_ramp.RampCorrupt` (``p``,
            ``num_corruptions``, ``families``, ``exclude_families``, ``ranges``).

    Example:
        >>> import torch
        >>> from torchio_ramp.monai import RampCorruptd
        >>> pool = ['blur', 'stripe']
        >>> corrupt = RampCorruptd('ct', p=1, families=pool, num_corruptions=2)
        >>> out = corrupt.set_random_state(seed=0)({'ct': torch.rand(1, 8, 8, 8)})
        >>> out['ct'].shape
        torch.Size([1, 8, 8, 8])
    """

    def __init__(
        self, keys: KeysCollection, allow_missing_keys: bool = False, **kwargs: Any
    ):
        super().__init__(
            keys, RampCorrupt(**kwargs), allow_missing_keys=allow_missing_keys
        )


class Rampd(RandApplyTorchIOd):
    """Dictionary :class:`~torchio_ramp.Ramp`: spatial, intensity, corruption.

    The spatial stage (flips, elastic deformation) moves ``label_keys`` with
    the images (nearest neighbour); the intensity and corruption stages touch
    images only.

    Args:
        keys: Image entries, in ``[0, 1]``.
        label_keys: Label entries to move with the images.
        allow_missing_keys: Skip missing ``keys``.
        **kwargs: Arguments of :class:`~torchio_ramp.Ramp`.

    Example:
        >>> import torch
        >>> from torchio_ramp.monai import Rampd
        >>> augment = Rampd('ct', label_keys='seg').set_random_state(seed=1)
        >>> data = {'ct': torch.rand(1, 8, 8, 8), 'seg': torch.zeros(1, 8, 8, 8)}
        >>> sorted(augment(data))
        ['ct', 'seg']
    """

    def __init__(
        self,
        keys: KeysCollection,
        label_keys: KeysCollection = (),
        allow_missing_keys: bool = False,
        **kwargs: Any,
    ):
        super().__init__(
            keys,
            Ramp(**kwargs),
            label_keys=label_keys,
            allow_missing_keys=allow_missing_keys,
        )


def _to_image(value: Any, key: Hashable, kind: type[tio.Image]) -> tio.Image:
    """A TorchIO image sharing ``value``'s data where possible."""
    if isinstance(value, np.ndarray):
        tensor = torch.from_numpy(value)
    elif isinstance(value, torch.Tensor):
        tensor = value.as_tensor() if isinstance(value, MetaTensor) else value
    else:
        message = (
            f'entry {key!r} must be a numpy array or a torch tensor, not'
            f' {type(value).__name__}'
        )
        raise TypeError(message)
    if tensor.ndim != 4:
        message = (
            f'entry {key!r} must be channel-first (C, H, W, D), not of shape'
            f' {tuple(tensor.shape)}'
        )
        raise ValueError(message)
    affine = None
    if isinstance(value, MetaTensor) and value.affine.shape == (4, 4):
        affine = value.affine.detach().cpu().double().numpy()
    return kind(tensor=tensor, affine=affine)


def _restore(data: torch.Tensor, original: Any) -> Any:
    """``data`` as the type of ``original``, with its metadata and device."""
    if isinstance(original, np.ndarray):
        return data.cpu().numpy()
    return convert_to_dst_type(data, original, dtype=data.dtype)[0]
