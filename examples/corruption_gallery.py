"""Draw the evaluation grid: every corruption family at every severity level.

Rows are the corruption families of a pool (default: the paper's Table 2;
``--families ct_physics`` for the CT-physics families, simulated on the HU
image before the window), columns the clean slice and the five severity levels
of the stress test (0.05 ... 0.25), all on the same axial slice, as the model
sees it (windowed to [-200, 300] HU).

Usage:
    python examples/corruption_gallery.py                     # built-in phantom
    python examples/corruption_gallery.py --ct path/to/ct.nii.gz --out gallery.png
    python examples/corruption_gallery.py --families ct_physics --ct ct.nii.gz

The phantom is synthetic; with ``--ct`` any CT in Hounsfield units works.
Families that read organs (``contrast_phase``) or keep implants off them
(``metal``) take the label map of ``--label`` (a five-class map, or a
TotalSegmentator ``segmentations/`` folder beside ``--ct``, merged the way
``ramp-prep`` merges it).
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import torch
import torchio as tio

from torchio_ramp import FAMILIES
from torchio_ramp import SEVERITY_LEVELS
from torchio_ramp import Corruption
from torchio_ramp import CTNormalize
from torchio_ramp.families import POOLS
from torchio_ramp.families import check_families
from torchio_ramp.labels import merge_totalseg_masks
from torchio_ramp.phantoms import phantom_subject

HERE = Path(__file__).resolve().parent


def corruption_grid(
    ct: tio.ScalarImage,
    seed: int = 0,
    families: str | None = None,
    label: tio.LabelMap | None = None,
) -> dict[tuple[str, float], torch.Tensor]:
    """The middle axial slice of ``ct`` for every (family, level) and clean.

    Families on Hounsfield units corrupt ``ct`` (with ``label``, read only)
    before :class:`CTNormalize`, the others the normalised image (as the
    stress test makes its volumes).
    """
    normalize = CTNormalize()
    normalized = normalize(ct)
    scan = tio.Subject(ct=ct) if label is None else tio.Subject(ct=ct, label=label)
    k = normalized.shape[-1] // 2
    slices = {('clean', 0.0): normalized.data[0, :, :, k]}
    for row, family in enumerate(check_families(families)):
        on_hu = FAMILIES[family].domain == 'hu'
        for column, level in enumerate(SEVERITY_LEVELS):
            # one seed per cell, as in the stress test (random axes, shifts...)
            cell_seed = seed + 100 * row + column
            corruption = Corruption(family, level=level, seed=cell_seed)
            if on_hu:
                corrupted = normalize(corruption(scan).ct)
            else:
                corrupted = corruption(normalized)
            slices[family, level] = corrupted.data[0, :, :, k]
    return slices


def draw(slices: dict[tuple[str, float], torch.Tensor], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(family for family, _ in slices if family != 'clean'))
    rows, columns = len(names), len(SEVERITY_LEVELS) + 1
    figure, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.5 * rows))
    clean = slices['clean', 0.0]
    for row, (family, operator) in enumerate((n, FAMILIES[n]) for n in names):
        cells = [clean] + [slices[family, level] for level in SEVERITY_LEVELS]
        for column, image in enumerate(cells):
            axis = axes[row, column]
            # RAS voxels (I, J): radiological view, patient's right on the left
            axis.imshow(image.T.flip(0).flip(1), cmap='gray', vmin=0, vmax=1)
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                label = (
                    'clean' if column == 0 else f'level {SEVERITY_LEVELS[column - 1]}'
                )
                axis.set_title(label, fontsize=9)
        label = operator.title
        if operator.domain == 'hu':  # the physical parameter at 0.05 and 0.25
            (parameter,) = operator.parameters
            low, high = (
                operator.parameters_at(level)[parameter.name]
                for level in (SEVERITY_LEVELS[0], SEVERITY_LEVELS[-1])
            )
            label = (
                f'{label}\n{parameter.name} {low:.3g} to {high:.3g}\n({parameter.doc})'
            )
        axes[row, 0].set_ylabel(label, fontsize=7, rotation=0, ha='right')
    figure.suptitle(title, fontsize=10)
    figure.tight_layout(rect=(0, 0, 1, 0.98))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)


def label_map(ct: Path, label: str | None) -> tio.LabelMap | None:
    """``--label``, or the merged TotalSegmentator masks beside ``ct``, or None."""
    if label is not None:
        return tio.LabelMap(label)
    folder = ct.parent / 'segmentations'
    if not folder.is_dir():
        return None
    import nibabel

    def load(structure: str) -> np.ndarray:
        path = folder / f'{structure}.nii.gz'
        if not path.exists():
            return np.zeros(nibabel.load(ct).shape, dtype=np.uint8)
        return np.asarray(nibabel.load(path).dataobj) > 0

    merged = merge_totalseg_masks(load)
    affine = nibabel.load(ct).affine
    return tio.LabelMap(tensor=torch.from_numpy(merged.label[None]), affine=affine)


@click.command()
@click.option(
    '--ct',
    type=click.Path(exists=True, dir_okay=False),
    help='CT in HU (default: phantom).',
)
@click.option(
    '--out',
    type=click.Path(dir_okay=False),
    help='PNG to write [default: figures/corruption_gallery.png, or'
    ' figures/<pool>_gallery.png for another pool].',
)
@click.option(
    '--label',
    type=click.Path(exists=True, dir_okay=False),
    help='Label map of --ct (default: its TotalSegmentator segmentations/, if any).',
)
@click.option('--seed', type=int, default=0, show_default=True)
@click.option(
    '--families',
    type=click.Choice(sorted(POOLS)),
    default='paper',
    show_default=True,
    help='Pool of families (rows).',
)
def main(
    ct: str | None, out: str | None, label: str | None, seed: int, families: str
) -> None:
    """Save the families x levels corruption gallery as a PNG."""
    if out is None:
        stem = 'corruption_gallery' if families == 'paper' else f'{families}_gallery'
        out = str(HERE / 'figures' / f'{stem}.png')
    pool = 'RAMP' if families == 'paper' else 'CT-physics'  # in the title
    labels = None
    if ct is None:
        phantom = phantom_subject(
            shape=(96, 96, 32), spacing=(1.5, 1.5, 3.0), seed=seed
        )
        image, labels = phantom.ct, phantom['label']
        title = f'{pool} corruption families x severity levels (synthetic phantom)'
    else:
        image = tio.ScalarImage(ct)
        labels = label_map(Path(ct), label)
        name = f'{Path(ct).parent.name}/{Path(ct).name}'
        title = f'{pool} corruption families x severity levels ({name})'
    grid = corruption_grid(image, seed=seed, families=families, label=labels)
    draw(grid, Path(out), title)
    click.echo(f'Wrote {out}')


if __name__ == '__main__':
    main()
