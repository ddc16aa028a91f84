"""Receptive fields after upsampling and transposed convolutions, against PyTorch's
input-gradient footprint on the zoo's U-Net and FCN (channels scaled down; max pools replaced by
average pools of the same window; every weight positive, so nothing cancels; float64).

After an upsampling by f (or a transposed conv of stride f), the f output pixels made from one
coarse pixel see the same input: each pixel's true field is a staircase over its position. A
single (size, jump, start) per axis is the linear model through it: the jump is fractional, the
centre line ``start + i * jump`` passes within half a coarse step of every pixel's true centre,
and the size is every pixel's size where the staircase keeps one size (FCN's bilinear x8) and
within one coarse step of it where the merges of a decoder make it alternate (U-Net: 188 or 204
pixels, against the model's 200). These tests pin exactly that.
"""
from __future__ import annotations

import copy
import functools
from pathlib import Path

import pytest
import yaml

torch = pytest.importorskip("torch")

from cnncalc.commands.export import analysed  # noqa: E402
from cnncalc.export.pytorch import pytorch_source  # noqa: E402

SPECS = Path(__file__).resolve().parent.parent / "specs"


def scaled(data, by: int):
    """The spec with every `filters` divided by ``by`` (at least 1): the same geometry, less work."""
    if isinstance(data, dict):
        return {k: max(1, v // by) if k == "filters" and isinstance(v, int) else scaled(v, by) for k, v in data.items()}
    if isinstance(data, list):
        return [scaled(v, by) for v in data]
    return data


@functools.cache
def network(name: str, by: int, size: int):
    """(the analysis' last receptive field, output of a float64 forward pass, its input)."""
    data = scaled(yaml.safe_load((SPECS / f"{name}.yaml").read_text()), by)
    data["input"] = [data["input"][0], size, size]
    _, analysis = analysed(copy.deepcopy(data), None)
    namespace: dict = {"__name__": "footprint"}
    exec(compile(pytorch_source(analysis, name, None), f"<{name}>", "exec"), namespace)
    model_class = [v for v in namespace.values() if isinstance(v, type) and issubclass(v, torch.nn.Module)][-1]
    model = model_class().double().eval()
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, torch.nn.MaxPool2d):  # a max pool routes its gradient to one pixel
                setattr(module, child_name, torch.nn.AvgPool2d(child.kernel_size, child.stride, child.padding,
                                                               ceil_mode=child.ceil_mode))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.rand(parameter.shape, generator=generator, dtype=parameter.dtype) + 0.5)
    x = torch.ones(1, analysis.report.input_shape[0], size, size, dtype=torch.float64, requires_grad=True)
    return analysis.report.layers[-1].receptive_field, model(x), x


def footprint(name: str, by: int, size: int, pixel: int) -> tuple[int, float]:
    """(extent, centre) on the first spatial axis of output pixel (pixel, pixel)'s input gradient."""
    _, out, x = network(name, by, size)
    x.grad = None
    out[0, :, pixel, pixel].sum().backward(retain_graph=True)
    rows = (x.grad[0].abs().sum(0) > 0).any(dim=1).nonzero().flatten().tolist()
    first, last = rows[0], rows[-1]
    assert first > 0 and last < size - 1, "the field reaches the border: enlarge the input"
    return last - first + 1, (first + last) / 2


@pytest.mark.parametrize("name, by, size, pixels, coarse, sizes", [
    # U-Net, 252x252 -> 68x68: four 2x2 up-convolutions, so 16 output pixels per bottom pixel
    ("unet", 32, 252, range(26, 42), 16, {188, 204}),
    # FCN-ResNet50 (dilated, output stride 8), bilinear x8 back to the input size
    ("fcn_resnet50", 32, 600, range(296, 304), 8, {451}),
])
def test_the_linear_field_runs_through_the_staircase(name, by, size, pixels, coarse, sizes):
    rf, _, _ = network(name, by, size)
    seen = set()
    for pixel in pixels:
        extent, centre = footprint(name, by, size, pixel)
        seen.add(extent)
        predicted = float(rf.start[0] + pixel * rf.jump[0])
        assert abs(centre - predicted) <= coarse / 2, (pixel, centre, predicted)
        assert abs(extent - float(rf.size[0])) <= coarse, (pixel, extent, rf.size[0])
    assert seen == sizes  # every size the staircase takes, over one coarse period
    assert float(rf.jump[0]) == 1  # back at the input's resolution
