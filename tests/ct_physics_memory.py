"""Run every CT-physics family once on a clinical-size volume; print peak memory.

``python tests/ct_physics_memory.py 512 64 [threads]`` prints one JSON line per
family: its name, the wall and CPU seconds it took and the extra memory it
needed: the process's peak resident set during the call minus the resident set
before it, in MiB (the peak is reset before each call through
``/proc/self/clear_refs``, Linux). So that freed memory cannot be reused
unseen, the allocator returns it to the system: large blocks are mapped
(``MALLOC_MMAP_THRESHOLD_``, set by :func:`run`) and the heap is trimmed
before each call. Run in a fresh process, as :func:`run` does.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from torchio_ramp.families import FAMILIES
from torchio_ramp.families import POOLS


def resident() -> tuple[int, int]:
    """Current and peak resident set size of this process, in bytes."""
    values = {}
    with open('/proc/self/status') as status:
        for line in status:
            key, _, rest = line.partition(':')
            if key in ('VmRSS', 'VmHWM'):
                values[key] = int(rest.split()[0]) * 1024
    return values['VmRSS'], values['VmHWM']


def run(size: int, slices: int, threads: int, timeout: float) -> list[dict]:
    """Rows of this script run in a fresh process with mapped large blocks."""
    environment = {**os.environ, 'MALLOC_MMAP_THRESHOLD_': str(1 << 16)}
    done = subprocess.run(
        [sys.executable, str(Path(__file__)), str(size), str(slices), str(threads)],
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout,
        env=environment,
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def reset_peak() -> bool:
    with contextlib.suppress(OSError):  # not glibc: nothing to trim
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    try:
        with open('/proc/self/clear_refs', 'w') as refs:
            refs.write('5')
    except OSError:
        return False
    return True


def phantom(
    size: int, slices: int, spacing: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """A water ellipse with two bones and a liver-like label, in HU (float32)."""
    coordinates = (torch.arange(size) - (size - 1) / 2) * spacing
    y, x = torch.meshgrid(coordinates, coordinates, indexing='ij')
    body = (x / 170) ** 2 + (y / 120) ** 2 <= 1
    bones = ((x - 60) ** 2 + y**2 <= 15**2) | ((x + 60) ** 2 + y**2 <= 15**2)
    liver = ((x + 40) / 60) ** 2 + ((y + 30) / 40) ** 2 <= 1
    hu = torch.full((size, size), -1000.0)
    hu[body] = 40.0
    hu[liver] = 105.0
    hu[bones] = 900.0
    label = liver.to(torch.uint8)
    volume = hu[None, :, :, None].expand(1, size, size, slices).contiguous()
    labels = label[None, :, :, None].expand(1, size, size, slices).contiguous()
    return volume, labels


def main() -> None:
    size, slices = int(sys.argv[1]), int(sys.argv[2])
    spacing = 0.7 if size >= 400 else 300.0 / size
    torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    hu, labels = phantom(size, slices, spacing)
    for name in (*POOLS['ct_physics'], 'limited_angle'):
        operator = FAMILIES[name]
        arguments = operator.parameters_at(0.15)
        exact = reset_peak()
        before, _ = resident()
        start, cpu = time.perf_counter(), time.process_time()
        out = operator(
            hu,
            generator=torch.Generator().manual_seed(0),
            spacing=(spacing, spacing, 3.0),
            labels=labels,
            **arguments,
        )
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu
        _, peak = resident()
        if not exact:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        changed = bool((out != hu).any())
        del out
        row = {
            'family': name,
            'seconds': round(seconds, 2),
            'cpu_seconds': round(cpu, 2),
            'extra_mib': round((peak - before) / 2**20, 1),
            'peak_reset': exact,
            'changed': changed,
        }
        print(json.dumps(row), flush=True)


if __name__ == '__main__':
    main()
