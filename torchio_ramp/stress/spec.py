"""The specification of a stress-test run: every option, declared once.

A :class:`RunSpec` is built once, by ``ramp-stress run`` from its options or
by :func:`~torchio_ramp.stress.api.stress_test_model`,
:func:`~torchio_ramp.stress.api.stress_test_nnunet` and
:func:`~torchio_ramp.stress.runner.run_stress_test` from their keywords, and
passed down to the runner and
:func:`~torchio_ramp.stress.runner.evaluate_subject`.

Each field is an option, declared with :func:`option`: its name, type and
default (the field's), its help, which runs accept it (a model file, an
nnU-Net model folder, a predictor callable) and whether it enters the
results header (``'arguments'``: it changes the numbers, so a resumed run
must repeat it; ``'session'``: recorded, not compared). From these fields
come the options of ``ramp-stress run`` and their ``--help``
(:func:`cli_options`), the signatures and argument docs of the API functions
(:func:`api`) and the option part of the results header
(:meth:`RunSpec.header_values`).

Adding an option is one field here plus its use. For instance a tolerance of
a boundary metric, recorded with the results::

    tolerance_mm: float = option(
        2.0,
        'Tolerance of the surface Dice in mm.',
        header='arguments',
        cli=plain('--tolerance-mm', type=float, show_default=True),
    )

(``plain`` gives the command option the field's default).

then ``spec.tolerance_mm`` where the metric is built.

Example:
    >>> spec = RunSpec(model='m.pt2', data='data', out='out', levels=(0.1,), name='m')
    >>> [setting.name for setting in spec.stress_protocol.settings][:3]
    ['clean', 'gaussian_noise@0.1', 'blur@0.1']
    >>> spec.header_values('arguments')
    {'split': 'test', 'levels': (0.1,), 'seed': 0, 'protocol': 'paired', 'name': 'm', 'amp': False}
"""  # noqa: E501

from __future__ import annotations

import dataclasses
import inspect
import textwrap
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import click

from ..arguments import device_problem
from ..arguments import resolve_device
from ..cli_options import DEVICE_HELP
from ..cli_options import data_option
from ..cli_options import device_option
from ..cli_options import family_names
from ..cli_options import hu_range_option
from ..cli_options import progress_option
from ..cli_options import seed_option
from ..cli_options import size_option
from ..cli_options import split_list
from ..families import PAPER_FAMILIES
from ..integrity import VERIFY_ENV
from ..integrity import VERIFY_MODES
from ..operators import SEVERITY_LEVELS
from ..transforms.normalization import DEFAULT_HU_RANGE
from .protocol import DEFAULT_PROTOCOL
from .protocol import PROTOCOLS
from .protocol import StressProtocol
from .store import parse_shard
from .store import shard_from_environment

MODEL = 'model'
"""A run of a model file or ``module:factory`` (:func:`~torchio_ramp.stress.api.stress_test_model`)."""  # noqa: E501

NNUNET = 'nnunet'
"""A run of an nnU-Net v2 model folder (:func:`~torchio_ramp.stress.api.stress_test_nnunet`)."""  # noqa: E501

PREDICTOR = 'predictor'
"""A run of any predictor callable (:func:`~torchio_ramp.stress.runner.run_stress_test`)."""  # noqa: E501

KINDS = (MODEL, NNUNET, PREDICTOR)
"""Every kind of run."""

HEADER_PARTS = ('arguments', 'session')
"""Where an option can enter the results header."""

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


@dataclass(frozen=True)
class Option:
    """How one field of :class:`RunSpec` is given and recorded.

    Attributes:
        help: What it is, for ``--help`` and the API docs.
        kinds: The runs that accept it (:data:`KINDS`).
        header: ``'arguments'`` (binds the results), ``'session'``
            (recorded, not compared) or ``None`` (not recorded).
        cli: ``(help, default) -> click option decorator``; ``None``: not
            a command option.
        from_cli: Turns the command's value into the field's value (called
            when the run starts, so its errors are the run's errors).
    """

    help: str
    kinds: frozenset[str]
    header: str | None = None
    cli: Callable[[str, Any], Decorator] | None = None
    from_cli: Callable[[Any], Any] | None = None


def option(
    default: Any,
    help: str,
    *,
    kinds: Sequence[str] = KINDS,
    header: str | None = None,
    cli: Callable[[str, Any], Decorator] | None = None,
    from_cli: Callable[[Any], Any] | None = None,
) -> Any:
    """A field of :class:`RunSpec` that is an option (see the module docstring).

    Example:
        >>> field = option(2, 'Patches per forward pass.', header='session')
        >>> field.default, field.metadata['option'].header
        (2, 'session')
    """
    unknown = set(kinds) - set(KINDS)
    if unknown or (header is not None and header not in HEADER_PARTS):
        raise ValueError(f'bad option declaration: kinds {kinds}, header {header}')
    declared = Option(help, frozenset(kinds), header, cli, from_cli)
    return dataclasses.field(default=default, metadata={'option': declared})


def plain(*declarations: str, **attributes: Any) -> Callable[[str, Any], Decorator]:
    """A ``click.option`` with these declarations and attributes, the field's
    help and (unless ``attributes`` give one) the field's default.

    Example:
        >>> decorate = plain('--batch-size', type=int)('Patches per pass.', 2)
    """

    def make(help: str, default: Any) -> Decorator:
        return click.option(
            *declarations, help=help, **{'default': default, **attributes}
        )

    return make


def parse_levels(
    ctx: Any, param: Any, values: tuple[str, ...]
) -> tuple[float, ...] | None:
    """Click callback: severity levels, comma-separated or repeated.

    Example:
        >>> parse_levels(None, None, ('0.1,0.25',))
        (0.1, 0.25)
    """
    items = split_list(values)
    if not items:
        return None
    try:
        levels = tuple(float(item) for item in items)
    except ValueError as error:
        raise click.BadParameter(f'levels must be numbers, not {items}') from error
    if any(not level > 0 or level == float('inf') for level in levels):
        raise click.BadParameter(f'levels must be positive numbers, not {items}')
    if len(set(levels)) != len(levels):
        raise click.BadParameter(f'repeated levels in {items}')
    return levels


def _aggregation_device(ctx: Any, param: Any, value: str) -> str:
    device, problem = device_problem(value)
    if device is None:
        raise click.BadParameter(problem.removesuffix('; use --device cpu'))
    return str(device)


def _shard(text: str | None) -> tuple[int, int] | None:
    return parse_shard(text) if text else shard_from_environment()


def _device(value: str | None) -> str:
    return str(resolve_device(value))


_FILE_MODELS = (MODEL,)
_NNUNET = (NNUNET,)
_MODELS = (MODEL, NNUNET)


@dataclass(frozen=True)
class RunSpec:
    """Everything a stress-test run was asked to do (see the module docstring).

    Fields left at ``None`` are filled in when the run starts: the HU window
    and patch size from the model's sidecar, the overlap from the patch, the
    name from the model file.

    Example:
        >>> spec = RunSpec(data='prepared', out='results', levels=(0.1,))
        >>> spec.kind, len(spec.stress_protocol.settings)
        ('predictor', 14)
    """

    model: str | Path | None = option(
        None,
        'Model file (torch.export .pt2, ONNX, or legacy TorchScript; recognised by'
        ' content), or package.module:factory (with --weights).',
        kinds=_FILE_MODELS,
        cli=plain('--model', 'model'),
    )
    nnunet: str | Path | None = option(
        None,
        'Instead of --model: an nnU-Net v2 model folder'
        ' ($nnUNet_results/DatasetNNN_Name/TRAINER__PLANS__CONFIG), run through'
        " nnU-Net's own predictor (the nnunet extra).",
        kinds=_NNUNET,
        cli=plain('--nnunet', type=click.Path(file_okay=False, path_type=Path)),
    )
    fold: str = option(
        '0',
        'With --nnunet: the fold (0-4 or all).',
        kinds=_NNUNET,
        cli=plain('--fold', show_default=True),
    )
    checkpoint: str = option(
        'checkpoint_final.pth',
        'With --nnunet: the checkpoint file of the fold.',
        kinds=_NNUNET,
        cli=plain('--checkpoint', show_default=True),
    )
    mirroring: bool = option(
        False,
        "With --nnunet: nnU-Net's test-time mirroring (up to 8 forward passes per"
        " patch). Off by default, as in the paper's protocol.",
        kinds=_NNUNET,
        cli=plain('--mirroring/--no-mirroring', show_default=True),
    )
    weights: str | Path | None = option(
        None,
        'state_dict file for --model module:factory (read with weights_only=True).',
        kinds=_FILE_MODELS,
        cli=plain('--weights', type=click.Path(dir_okay=False, path_type=Path)),
    )
    data: str | Path | None = option(
        None,
        'Dataset folder prepared by ramp-prep (holds dataset.json).',
        cli=lambda help, default: data_option(required=True, help=help),
    )
    split: str = option(
        'test',
        'Subjects to evaluate.',
        header='arguments',
        cli=plain(
            '--split',
            type=click.Choice(['test', 'val', 'train', 'all']),
            show_default=True,
        ),
    )
    out: str | Path | None = option(
        None,
        'Results folder (results.csv, results.json, summary.json).',
        cli=plain(
            '--out', required=True, type=click.Path(file_okay=False, path_type=Path)
        ),
    )
    families: Sequence[str] | None = option(
        None,
        "Corruption families or pools ('paper', 'ct_physics'), comma-separated"
        f" or repeated [default: the paper's {len(PAPER_FAMILIES)}].",
        kinds=_MODELS,
        header='arguments',
        cli=plain('--families', multiple=True, callback=family_names),
    )
    levels: Sequence[float] | None = option(
        None,
        'Severity levels, comma-separated [default: 0.05,0.1,0.15,0.2,0.25].',
        kinds=_MODELS,
        header='arguments',
        cli=plain('--levels', multiple=True, callback=parse_levels),
    )
    seed: int = option(
        0,
        'Base seed of the corrupted volumes.',
        kinds=_MODELS,
        header='arguments',
        cli=lambda help, default: seed_option(help=help, default=default),
    )
    protocol: str = option(
        DEFAULT_PROTOCOL,
        'Severity protocol: paired (the levels of a family share every random'
        ' draw but the severity) or independent (one draw per setting; the results'
        ' of earlier versions).',
        kinds=_MODELS,
        header='arguments',
        cli=plain(
            '--protocol',
            type=click.Choice(list(PROTOCOLS)),
            show_default=True,
        ),
    )
    name: str | None = option(
        None,
        'Model name in the results [default: the model file stem; for a run'
        " folder's best.pt with config.json, the folder name].",
        header='arguments',
        cli=plain('--name'),
    )
    hu_range: Sequence[float] | None = option(
        None,
        'HU window of CTNormalize [default: the model sidecar].',
        kinds=_MODELS,
        header='arguments',
        cli=lambda help, default: hu_range_option(help=help),
    )
    patch_size: Sequence[int] | None = option(
        None,
        'Sliding-window patch size [default: the model sidecar].',
        kinds=_FILE_MODELS,
        header='arguments',
        cli=lambda help, default: size_option('--patch-size', help=help),
    )
    overlap: Sequence[int] | None = option(
        None,
        'Patch overlap in voxels, even [default: half the patch].',
        kinds=_FILE_MODELS,
        header='arguments',
        cli=lambda help, default: size_option('--overlap', allow_zero=True, help=help),
    )
    batch_size: int = option(
        2,
        'Patches per forward pass.',
        kinds=_FILE_MODELS,
        header='session',
        cli=plain(
            '--batch-size',
            type=click.IntRange(min=1),
            show_default=True,
        ),
    )
    device: str | None = option(
        None,
        DEVICE_HELP,
        kinds=_MODELS,
        header='session',
        cli=lambda help, default: device_option(help=help),
        from_cli=_device,
    )
    amp: bool = option(
        False,
        'Automatic mixed precision (CUDA only).',
        kinds=_FILE_MODELS,
        header='arguments',
        cli=plain('--amp', is_flag=True),
    )
    aggregation_device: str = option(
        'cpu',
        'Device holding the blended output volume (e.g. cpu with a CUDA --device:'
        ' patches on the GPU, the volume in host memory).',
        kinds=_FILE_MODELS,
        header='session',
        cli=plain(
            '--aggregation-device',
            metavar='DEVICE',
            show_default=True,
            callback=_aggregation_device,
        ),
    )
    shard: tuple[int, int] | None = option(
        None,
        'Evaluate shard i of n (0-based, e.g. 0/4) [default: RANK/WORLD_SIZE'
        ' under torchrun, else all].',
        cli=plain('--shard'),
        from_cli=_shard,
    )
    save_worst: int = option(
        0,
        'Keep failure pictures (central slices: clean and every level, with the'
        ' prediction and the reference) of the N worst subjects of each family in'
        ' OUT/worst, for the report.',
        cli=plain(
            '--save-worst',
            type=click.IntRange(min=0),
            show_default=True,
            metavar='N',
        ),
    )
    progress: bool = option(
        False,
        'Show progress bars (on stderr).',
        cli=lambda help, default: progress_option(help=help),
    )
    verify: str | None = option(
        None,
        'Check each image/label against manifest.csv before use: sha256 (size and'
        ' SHA-256) or size (size and NIfTI completeness, for huge cohorts)'
        f' [default: ${VERIFY_ENV} or sha256].',
        cli=plain('--verify', type=click.Choice(VERIFY_MODES)),
    )

    @property
    def kind(self) -> str:
        """``'nnunet'``, ``'model'`` or ``'predictor'`` (what is evaluated)."""
        if self.nnunet is not None:
            return NNUNET
        if self.model is not None:
            return MODEL
        return PREDICTOR

    @cached_property
    def stress_protocol(self) -> StressProtocol:
        """The settings grid of this run (the paper's defaults where unset)."""
        return StressProtocol(
            families=self.families,
            levels=self.levels or SEVERITY_LEVELS,
            seed=self.seed,
            hu_range=tuple(self.hu_range or DEFAULT_HU_RANGE),
            protocol=self.protocol,
        )

    @classmethod
    def of(cls, kind: str, caller: str, /, **values: Any) -> RunSpec:
        """A spec from the keywords of one kind of run, refusing the others.

        Raises:
            TypeError: Naming ``caller`` and a keyword that this kind of run
                does not take (as Python does for a misspelt keyword).

        Example:
            >>> RunSpec.of('nnunet', 'f', nnunet='folder', patch_size=16)
            Traceback (most recent call last):
            ...
            TypeError: f() got an unexpected keyword argument 'patch_size'
        """
        accepted = {name for name, declared in options(kind)}
        for name in values:
            if name not in accepted:
                message = f'{caller}() got an unexpected keyword argument {name!r}'
                raise TypeError(message)
        return cls(**values)

    def header_values(self, part: str) -> dict[str, Any]:
        """The options of this run recorded in ``part`` of the results header.

        Args:
            part: ``'arguments'`` or ``'session'``.

        Example:
            >>> RunSpec(model='m.pt2', name='m', batch_size=4).header_values('session')
            {'batch_size': 4, 'aggregation_device': 'cpu'}
        """
        return {
            name: getattr(self, name)
            for name, declared in options(self.kind)
            if declared.header == part and getattr(self, name) is not None
        }

    def replace(self, **changes: Any) -> RunSpec:
        """A copy with ``changes`` (e.g. the values resolved from a sidecar)."""
        return dataclasses.replace(self, **changes)


def options(kind: str | None = None) -> list[tuple[str, Option]]:
    """``(name, declaration)`` of every option (of one kind of run), in order.

    Example:
        >>> [name for name, _ in options('nnunet')][:4]
        ['nnunet', 'fold', 'checkpoint', 'mirroring']
    """
    found = []
    for field in dataclasses.fields(RunSpec):
        declared = field.metadata['option']
        if kind is None or kind in declared.kinds:
            found.append((field.name, declared))
    return found


def cli_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a click command with every option that has a ``cli`` form.

    Example:
        >>> @click.command()
        ... @cli_options
        ... def run(**values): ...
        >>> [p.name for p in run.params][:3]
        ['model', 'nnunet', 'fold']
    """
    defaults = {field.name: field.default for field in dataclasses.fields(RunSpec)}
    for name, declared in reversed(options()):
        if declared.cli is not None:
            command = declared.cli(declared.help, defaults[name])(command)
    return command


def from_cli(values: Mapping[str, Any]) -> RunSpec:
    """The spec of a command's option values (``from_cli`` conversions applied).

    Example:
        >>> from_cli({'data': 'prepared', 'out': 'results', 'shard': '1/4'}).shard
        (1, 4)
    """
    converted = {}
    for name, declared in options():
        if name not in values:
            continue
        value = values[name]
        if declared.from_cli is not None:
            value = declared.from_cli(value)
        converted[name] = value
    return RunSpec(**converted)


def misplaced_options(kind: str, given: Sequence[str]) -> list[str]:
    """Of the options ``given``, those this kind of run does not take.

    Example:
        >>> misplaced_options('nnunet', ['data', 'patch_size', 'batch_size'])
        ['patch_size', 'batch_size']
    """
    accepted = {name for name, _ in options(kind)}
    return [name for name in given if name not in accepted]


def api(kind: str, positional: Sequence[str]) -> Decorator:
    """Give an API function the signature and argument docs of ``kind``'s options.

    The function's own positional parameters fill the fields ``positional``;
    every other option of ``kind`` follows as a keyword (its default and type
    from :class:`RunSpec`), then the function's own keyword-only parameters.
    The line ``{options}`` of its docstring becomes one ``name: help`` entry
    per option.

    Example:
        >>> @api('nnunet', ['nnunet', 'data', 'out'])
        ... def run(model_folder, data, out, **options):
        ...     '''Args:
        ...     {options}'''
        >>> list(inspect.signature(run).parameters)[:4]
        ['model_folder', 'data', 'out', 'fold']
    """

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        fields = {f.name: f for f in dataclasses.fields(RunSpec)}
        own = inspect.signature(function)
        names = [name for name, _ in options(kind) if name not in positional]
        parameters = [
            p
            for p in own.parameters.values()
            if p.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD
        ]
        parameters += [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=fields[name].default,
                annotation=fields[name].type,
            )
            for name in names
        ]
        parameters += [
            p
            for p in own.parameters.values()
            if p.kind == inspect.Parameter.KEYWORD_ONLY
        ]
        function.__signature__ = own.replace(parameters=parameters)  # type: ignore[attr-defined]
        doc = function.__doc__ or ''
        if '{options}' in doc:
            indent = doc.split('{options}')[0].rsplit('\n', 1)[-1]
            entries = [
                textwrap.fill(
                    f'{name}: {declared.help}',
                    width=80 - len(indent),
                    subsequent_indent='    ',
                    break_on_hyphens=False,
                )
                for name, declared in options(kind)
                if name in names
            ]
            text = textwrap.indent('\n'.join(entries), indent).lstrip()
            function.__doc__ = doc.replace('{options}', text)
        return function

    return decorate
