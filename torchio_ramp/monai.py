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
(:class:`~torchio_ramp.Ramp`); :class:`BatchRampCorruptd` corrupts collated
batches ``(B, C, ...)`` after the ``DataLoader``, on any device
(:class:`~torchio_ramp.batch.BatchRampCorrupt`). Needs the ``monai`` extra
(``pip install -c constraints.txt -e '.[monai]'``).

Images are channel-first 3-D ``(C, H, W, D)`` or 2-D ``(C, H, W)``. As MONAI's
own spatial transforms do, every wrapper records itself in a ``MetaTensor``'s
``applied_operations``, and a flip updates the ``MetaTensor`` affine
(``affine @ F``, the same physical image), so :class:`monai.transforms.Invertd`
undoes the flips of :class:`Rampd` on an image, a label map or a prediction.
An elastic deformation (or any other resampling) cannot be inverted: the
inverse then stops with an error instead of returning a wrong geometry.
Intensity changes are not inverted (as in MONAI).

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
    from monai.data.utils import to_affine_nd
    from monai.transforms import InvertibleTransform
    from monai.transforms import MapTransform
    from monai.transforms import Randomizable
    from monai.utils import TraceKeys
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

from .batch import BatchRampCorrupt
from .pipelines import Ramp
from .pipelines import RampCorrupt
from .transforms.laterality import LateralityFlip
from .transforms.normalization import CTNormalize

__all__ = [
    'ApplyTorchIOd',
    'BatchRampCorruptd',
    'CTNormalized',
    'RampCorruptd',
    'Rampd',
    'RandApplyTorchIOd',
]

SEED_BOUND = 2**31 - 1


class ApplyTorchIOd(MapTransform, InvertibleTransform):
    """Apply a deterministic TorchIO transform to the entries ``keys``.

    Args:
        keys: Entries to transform as scalar images (channel-first,
            ``(C, H, W, D)`` or 2-D ``(C, H, W)``).
        transform: A TorchIO transform, e.g. :class:`~torchio_ramp.CTNormalize`.
        label_keys: Entries passed as label maps: moved by spatial transforms,
            never by intensity ones. A label key missing from the dictionary
            raises ``KeyError`` (a typo would move the image without its
            label).
        allow_missing_keys: Skip ``keys`` missing from the dictionary instead of
            raising ``KeyError``.
        allow_missing_label_keys: Skip ``label_keys`` missing from the
            dictionary (e.g. unlabelled samples) instead of raising ``KeyError``.

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
        allow_missing_label_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.allow_missing_label_keys = allow_missing_label_keys
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
        label_keys = self._present_label_keys(output)
        images = {
            key: _to_image(output[key], key, tio.ScalarImage) for key in image_keys
        }
        labels = {key: _to_image(output[key], key, tio.LabelMap) for key in label_keys}
        names = {key: str(key) for key in [*images, *labels]}
        if len(set(names.values())) < len(names):
            raise ValueError(f'keys must differ as strings, not {list(names)}')
        flat = {key: _is_2d(output[key]) for key in names}
        if len(set(flat.values())) > 1:
            raise ValueError(f'2-D and 3-D entries cannot be mixed: {flat}')
        subject = tio.Subject(
            {names[key]: image for key, image in {**images, **labels}.items()}
        )
        transformed = self._apply(subject)
        record = _spatial_record(transformed.history, 2 if any(flat.values()) else 3)
        for key in names:
            data = transformed[names[key]].data
            output[key] = _restore(data[..., 0] if flat[key] else data, output[key])
            if isinstance(output[key], MetaTensor):
                output[key] = self._push(output[key], record)
        return output

    def _present_label_keys(self, data: Mapping[Hashable, Any]) -> list[Hashable]:
        missing = [key for key in self.label_keys if key not in data]
        if missing and not self.allow_missing_label_keys:
            message = (
                f'label_keys {missing} of {type(self).__name__} are not in the data'
                f' (keys: {list(data)}); a misspelt label key would move the image'
                ' without its label. Pass allow_missing_label_keys=True for samples'
                ' without labels'
            )
            raise KeyError(message)
        return [key for key in self.label_keys if key in data]

    def _push(self, value: MetaTensor, record: dict[str, Any]) -> MetaTensor:
        flip = _flip_matrix(record['flips'], value.shape[1:])
        return self.push_transform(value, extra_info=record, affine=flip)

    def inverse(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Undo the flips of the last call on every entry present.

        Used by :class:`monai.transforms.Invertd` (through ``Compose.inverse``).
        Each entry must be a ``MetaTensor`` carrying this transform's record.

        Raises:
            ValueError: If the call also resampled the entry (an elastic
                deformation), which cannot be inverted.
        """
        output = dict(data)
        keys = [*self.keys, *self.label_keys]
        for key in [key for key in keys if key in output]:
            value = output[key]
            record = self.pop_transform(value)[TraceKeys.EXTRA_INFO]
            if record['not_invertible']:
                message = (
                    f'{type(self).__name__} cannot invert entry {key!r}: the sample'
                    f' was resampled by {", ".join(record["not_invertible"])} (only'
                    ' flips are invertible; set its probability to 0 in pipelines'
                    ' you invert)'
                )
                raise ValueError(message)
            output[key] = _unflip(value, record['flips'])
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

    Flips update a ``MetaTensor``'s affine and are recorded in its
    ``applied_operations``: :class:`monai.transforms.Invertd` undoes them (an
    elastic deformation cannot be undone and makes the inverse stop).

    Args:
        keys: Image entries, in ``[0, 1]``.
        label_keys: Label entries to move with the images; each must be in
            the data (``KeyError`` otherwise).
        allow_missing_keys: Skip missing ``keys``.
        allow_missing_label_keys: Skip missing ``label_keys``.
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
        allow_missing_label_keys: bool = False,
        **kwargs: Any,
    ):
        super().__init__(
            keys,
            Ramp(**kwargs),
            label_keys=label_keys,
            allow_missing_keys=allow_missing_keys,
            allow_missing_label_keys=allow_missing_label_keys,
        )


class BatchRampCorruptd(Randomizable, MapTransform):
    """Dictionary :class:`~torchio_ramp.batch.BatchRampCorrupt` for collated batches.

    MONAI's post-collate pattern: the ``DataLoader`` collates samples into
    ``(B, C, H, W, D)`` (or 2-D ``(B, C, H, W)``) tensors, the batch moves to
    the GPU, and this transform corrupts each sample there with its own plan.
    Each call draws one seed per sample from ``self.R`` (``set_random_state``),
    kept in ``self.seeds``; sample ``i`` then equals
    :class:`~torchio_ramp.RampCorrupt` after ``torch.manual_seed(seeds[i])``
    (bit for bit with ``generator_device='cpu'``). Labels are not named and
    stay untouched; metadata (``MetaTensor``) is kept.

    Args:
        keys: Batched image entries, in ``[0, 1]``.
        allow_missing_keys: Skip missing ``keys``.
        **kwargs: Arguments of :class:`~torchio_ramp.batch.BatchRampCorrupt`
            (``p``, ``num_corruptions``, ``families``, ``exclude_families``,
            ``ranges``, ``generator_device``).

    Example:
        >>> import torch
        >>> from torchio_ramp.monai import BatchRampCorruptd
        >>> corrupt = BatchRampCorruptd('image', p=1).set_random_state(seed=0)
        >>> batch = {'image': torch.rand(2, 1, 8, 8, 8), 'label': torch.zeros(2, 1, 8, 8, 8)}
        >>> out = corrupt(batch)
        >>> out['image'].shape, out['label'] is batch['label'], len(corrupt.seeds)
        (torch.Size([2, 1, 8, 8, 8]), True, 2)
    """  # noqa: E501

    backend: ClassVar = [TransformBackends.TORCH]

    def __init__(
        self, keys: KeysCollection, allow_missing_keys: bool = False, **kwargs: Any
    ):
        super().__init__(keys, allow_missing_keys)
        self.corrupt = BatchRampCorrupt(**kwargs)
        self.seeds: list[int] = []

    def randomize(self, data: Any = None) -> None:
        """Draw one seed per sample of a batch of ``data`` samples."""
        self.seeds = [int(self.R.randint(SEED_BOUND)) for _ in range(int(data))]

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        output = dict(data)
        for key in self.key_iterator(output):
            value = output[key]
            if not isinstance(value, torch.Tensor):
                message = (
                    f'entry {key!r} must be a collated torch tensor, not'
                    f' {type(value).__name__}'
                )
                raise TypeError(message)
            tensor = value.as_tensor() if isinstance(value, MetaTensor) else value
            if tensor.ndim not in (4, 5):
                message = (
                    f'entry {key!r} must be a batch (B, C, H, W, D) or (B, C, H, W),'
                    f' not of shape {tuple(tensor.shape)}'
                )
                raise ValueError(message)
            flat = tensor.ndim == 4
            self.randomize(tensor.shape[0])
            out = self.corrupt(tensor[..., None] if flat else tensor, seeds=self.seeds)
            output[key] = _restore(out[..., 0] if flat else out, value)
        return output


def _is_2d(value: Any) -> bool:
    return getattr(value, 'ndim', 0) == 3


def _to_image(value: Any, key: Hashable, kind: type[tio.Image]) -> tio.Image:
    """A TorchIO image sharing ``value``'s data where possible (2-D: ``D = 1``)."""
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
    if tensor.ndim not in (3, 4):
        message = (
            f'entry {key!r} must be channel-first (C, H, W, D) or (C, H, W), not of'
            f' shape {tuple(tensor.shape)}'
        )
        raise ValueError(message)
    if tensor.ndim == 3:
        tensor = tensor[..., None]
    affine = None
    if isinstance(value, MetaTensor) and value.affine.ndim == 2:
        affine = to_affine_nd(3, value.affine.detach().cpu().double()).numpy()
    return kind(tensor=tensor, affine=affine)


def _spatial_record(history: list, spatial_dims: int) -> dict[str, Any]:
    """The flips (invertible) and other resamplings in a TorchIO history."""
    flips, other = [], []
    for transform in history:
        axes = getattr(transform, 'axes', None)
        if isinstance(transform, tio.Flip) and all(isinstance(a, int) for a in axes):
            pairs = getattr(transform, 'label_pairs', None)
            flips.append(
                {
                    'axes': [int(a) for a in axes if a < spatial_dims],
                    'label_pairs': {int(k): int(v) for k, v in (pairs or {}).items()},
                }
            )
        elif isinstance(transform, tio.SpatialTransform):
            other.append(transform.name)
    return {'flips': flips, 'not_invertible': other}


def _flip_matrix(flips: list[dict[str, Any]], shape: tuple[int, ...]) -> torch.Tensor:
    """``F`` with ``affine @ F`` the affine of the flipped array (same world)."""
    dims = len(shape)
    matrix = torch.eye(dims + 1, dtype=torch.float64)
    for flip in flips:
        for axis in flip['axes']:
            step = torch.eye(dims + 1, dtype=torch.float64)
            step[axis, axis] = -1.0
            step[axis, dims] = float(shape[axis] - 1)
            matrix = matrix @ step
    return matrix


def _unflip(value: MetaTensor, flips: list[dict[str, Any]]) -> MetaTensor:
    """``value`` with ``flips`` undone (label values swapped back) and its affine."""
    flat = _is_2d(value)
    kind = tio.ScalarImage if value.is_floating_point() else tio.LabelMap
    image = _to_image(value, 'inverse', kind)
    subject = tio.Subject(entry=image)
    for flip in reversed(flips):
        pairs = flip['label_pairs'] or None
        subject = LateralityFlip(flip['axes'], label_pairs=pairs)(subject)
    data = subject['entry'].data
    out = _restore(data[..., 0] if flat else data, value)
    out.affine = value.affine @ to_affine_nd(
        value.affine.shape[-1] - 1, _flip_matrix(flips, value.shape[1:])
    )
    return out


def _restore(data: torch.Tensor, original: Any) -> Any:
    """``data`` as the type of ``original``, with its metadata and device."""
    if isinstance(original, np.ndarray):
        return data.cpu().numpy()
    return convert_to_dst_type(data, original, dtype=data.dtype)[0]
