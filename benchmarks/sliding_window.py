"""Peak memory of sliding-window inference: one weight channel vs one per class.

``SlidingWindowPredictor`` blends patch logits with a Hann window into the
output volume and a one-channel weight map, then divides in place. TorchIO's
``GridAggregator(overlap_mode='hann')``, which the predictor used before, keeps
a weight volume with as many channels as classes and divides into a new
tensor. Each variant runs once in a fresh subprocess on a ``1 x D x H x W``
float32 image with a pointwise ``K``-class network (the network's own memory is
negligible, so the peak is the aggregation's); the peak is the resident
high-water mark above the baseline after allocating the input (see
``memory.py``). On CUDA (``--device cuda``) the GPU's peak
(``torch.cuda.max_memory_allocated``) is reported too, with the output volume
on ``--aggregation-device``. A third subprocess computes both and reports the
largest absolute difference of the logits.

Usage::

    python benchmarks/sliding_window.py                        # 256x256x160, 6 classes
    python benchmarks/sliding_window.py --shape 64 64 48 --classes 3 --patch 32
    python benchmarks/sliding_window.py --device cuda --aggregation-device cpu
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import torch
from memory import MIB
from memory import _reset_peak
from memory import _status_mib

DEFAULT_SHAPE = (256, 256, 160)
VARIANTS = ('one-channel', 'full-channel')


def full_channel_logits(
    model: torch.nn.Module,
    image: torch.Tensor,
    patch_size: Sequence[int],
    overlap: Sequence[int],
    batch_size: int,
    device: torch.device,
) -> torch.Tensor:
    """The previous aggregation: TorchIO's ``GridAggregator`` in ``'hann'`` mode."""
    import torchio as tio

    subject = tio.Subject(image=tio.ScalarImage(tensor=image))
    sampler = tio.inference.GridSampler(subject, patch_size, overlap)
    aggregator = tio.inference.GridAggregator(sampler, overlap_mode='hann')
    loader = torch.utils.data.DataLoader(sampler, batch_size=batch_size)
    with torch.no_grad():
        for batch in loader:
            output = model(batch['image'][tio.DATA].to(device))
            aggregator.add_batch(output.float().cpu(), batch[tio.LOCATION])
    return aggregator.get_output_tensor()


def _setup(args: argparse.Namespace):
    from torchio_ramp.inference import SlidingWindowPredictor

    torch.set_num_threads(1)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = torch.nn.Conv3d(1, args.classes, 1).to(device).eval()
    image = torch.rand(1, *args.shape, generator=torch.Generator().manual_seed(0))
    patch = (args.patch,) * 3
    overlap = (args.patch // 2,) * 3
    predictor = SlidingWindowPredictor(
        model,
        patch,
        overlap,
        batch_size=args.batch_size,
        aggregation_device=args.aggregation_device,
    )

    def run(variant: str) -> torch.Tensor:
        if variant == 'one-channel':
            return predictor.logits(image)
        return full_channel_logits(
            model, image, patch, overlap, args.batch_size, device
        )

    return run, image, device


def _worker(args: argparse.Namespace) -> None:
    run, image, device = _setup(args)
    if args.variant == 'compare':
        difference = (run('one-channel').cpu() - run('full-channel')).abs().max()
        print(json.dumps({'max_abs_difference': difference.item()}))
        return
    if not _reset_peak():
        raise SystemExit('sliding_window.py: cannot reset the peak RSS (Linux only)')
    baseline = _status_mib('VmRSS')
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    run(args.variant)
    result = {
        'variant': args.variant,
        'peak_mib': _status_mib('VmHWM') - baseline,
        'input_mib': image.numel() * image.element_size() / MIB,
    }
    if device.type == 'cuda':
        result['gpu_peak_mib'] = torch.cuda.max_memory_allocated(device) / MIB
    print(json.dumps(result))


def _child(argv: Sequence[str], variant: str) -> dict:
    from harness import run_worker

    return run_worker(__file__, [*argv, '--worker', variant], repr(variant))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--shape', type=int, nargs=3, default=DEFAULT_SHAPE)
    parser.add_argument('--classes', type=int, default=6)
    parser.add_argument('--patch', type=int, default=128, help='patch side')
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--device', default='cpu', help='forward-pass device')
    parser.add_argument('--aggregation-device', default='cpu')
    parser.add_argument('--worker', choices=[*VARIANTS, 'compare'])
    args = parser.parse_args(argv)
    if args.worker:
        args.variant = args.worker
        _worker(args)
        return
    from harness import markdown_table

    forwarded = list(argv if argv is not None else sys.argv[1:])
    results = [_child(forwarded, variant) for variant in VARIANTS]
    difference = _child(forwarded, 'compare')['max_abs_difference']
    gpu = 'gpu_peak_mib' in results[0]
    headers = ['blending', 'peak MiB above input', 'x input']
    headers += ['GPU peak MiB'] if gpu else []
    rows = []
    for result in results:
        row = [
            result['variant'],
            f'{result["peak_mib"]:.0f}',
            f'{result["peak_mib"] / result["input_mib"]:.1f}',
        ]
        rows.append(row + ([f'{result["gpu_peak_mib"]:.0f}'] if gpu else []))
    shape = ' x '.join(map(str, (1, *args.shape)))
    print(
        f'Sliding-window inference of a {shape} float32 image, {args.classes}'
        f' classes, patch {args.patch}, overlap {args.patch // 2}, batch'
        f' {args.batch_size}, device {args.device}, aggregation on'
        f' {args.aggregation_device}:\n'
    )
    print(markdown_table(headers, rows))
    ratio = results[1]['peak_mib'] / results[0]['peak_mib']
    print(f'\nfull-channel / one-channel peak: {ratio:.2f}x')
    print(f'largest absolute difference of the logits: {difference:g}')


if __name__ == '__main__':
    main()
