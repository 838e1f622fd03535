"""The ``onnx`` extra: torch's default ONNX exporter works, onnxruntime runs it."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest
import torch

ort = pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')


def test_the_onnx_extra_brings_what_the_default_exporter_needs():
    requirements = importlib.metadata.requires('torchio-ramp') or []
    onnx = [r for r in requirements if 'extra == "onnx"' in r]
    names = {r.split(';')[0].split('>')[0].split('=')[0].strip() for r in onnx}
    assert {'onnx', 'onnxruntime', 'onnxscript'} <= names


def test_torch_onnx_export_with_the_default_exporter_runs_in_onnxruntime(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(4, 6, 1)
    ).eval()
    example = torch.rand(1, 1, 8, 8, 8)
    path = tmp_path / 'model.onnx'
    torch.onnx.export(model, (example,), str(path), input_names=['image'])
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    volume = torch.rand(1, 1, 8, 8, 8)
    (logits,) = session.run(None, {'image': volume.numpy()})
    with torch.no_grad():
        expected = model(volume).numpy()
    assert logits.shape == (1, 6, 8, 8, 8)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
