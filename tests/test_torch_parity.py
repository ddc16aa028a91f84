"""Shapes and parameter counts of every layer kind against PyTorch's own modules, over wide
hypothesis sweeps (1-D, 2-D, 3-D, asymmetric padding, dilation, groups, ceil_mode), including
the configurations PyTorch rejects: cnncalc must reject exactly those too."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnncalc.errors import CnnCalcError
from helpers import run

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

SWEEP = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
CONV_T = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
MAXPOOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
AVGPOOL = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}
ADAPTIVE = {"adaptive_avgpool": {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d},
            "adaptive_maxpool": {1: nn.AdaptiveMaxPool1d, 2: nn.AdaptiveMaxPool2d, 3: nn.AdaptiveMaxPool3d}}
BATCHNORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


def torch_outcome(module_factory, x_shape, pre=None):
    """(output shape without batch, trainable params, buffers) or None where PyTorch refuses."""
    try:
        module = module_factory().eval()
        x = torch.zeros(1, *x_shape)
        with torch.no_grad():
            y = module(pre(x) if pre else x)
    except (RuntimeError, ValueError):
        return None
    if y.numel() == 0:  # PyTorch allows some empty outputs; a size that reaches zero is an error in cnncalc
        return None
    trainable = sum(p.numel() for p in module.parameters())
    buffers = sum(b.numel() for name, b in module.named_buffers() if not name.endswith("num_batches_tracked"))
    return list(y.shape[1:]), trainable, buffers


def cnncalc_outcome(x_shape, layer):
    try:
        row = run(list(x_shape), layer).to_dict()["layers"][-1]
    except CnnCalcError:
        return None
    return row["output_shape"], row["trainable_params"], row["non_trainable_params"]


def assert_same(x_shape, layer, module_factory, pre=None):
    expected = torch_outcome(module_factory, x_shape, pre)
    got = cnncalc_outcome(x_shape, layer)
    assert got == expected, f"input {x_shape}, layer {layer}: PyTorch {expected}, cnncalc {got}"


ranks = st.integers(1, 3)


@st.composite
def input_shapes(draw, rank, max_size=12, max_channels=8):
    channels = draw(st.integers(1, max_channels))
    return (channels, *draw(st.lists(st.integers(1, max_size), min_size=rank, max_size=rank)))


def axes(draw, rank, low, high):
    """An int for all axes or a per-axis list."""
    if draw(st.booleans()):
        return draw(st.integers(low, high))
    return draw(st.lists(st.integers(low, high), min_size=rank, max_size=rank))


def as_tuple(value, rank):
    return tuple(value) if isinstance(value, list) else (value,) * rank


@SWEEP
@given(st.data())
def test_conv_matches_pytorch(data):
    rank = data.draw(ranks)
    shape = data.draw(input_shapes(rank))
    groups = data.draw(st.sampled_from([1, 1, 2, 3, shape[0]]))
    filters = data.draw(st.integers(1, 3)) * groups if data.draw(st.booleans()) else data.draw(st.integers(1, 8))
    kernel, stride = axes(data.draw, rank, 1, 5), axes(data.draw, rank, 1, 3)
    dilation, padding = axes(data.draw, rank, 1, 2), axes(data.draw, rank, 0, 3)
    bias = data.draw(st.booleans())
    layer = {"conv": {"filters": filters, "kernel": kernel, "stride": stride, "padding": padding,
                      "dilation": dilation, "groups": groups, "bias": bias}}
    assert_same(shape, layer, lambda: CONV[rank](shape[0], filters, as_tuple(kernel, rank), as_tuple(stride, rank),
                                                 as_tuple(padding, rank), as_tuple(dilation, rank), groups, bias))


@SWEEP
@given(st.data())
def test_conv_with_asymmetric_padding_matches_pytorch_pad_then_conv(data):
    rank = data.draw(ranks)
    shape = data.draw(input_shapes(rank))
    pairs = [data.draw(st.tuples(st.integers(0, 3), st.integers(0, 3))) for _ in range(rank)]
    kernel, stride = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 3))
    layer = {"conv": {"filters": 4, "kernel": kernel, "stride": stride, "padding": [list(p) for p in pairs]}}
    torch_pad = [v for before, after in reversed(pairs) for v in (before, after)]  # F.pad wants last axis first
    assert_same(shape, layer, lambda: CONV[rank](shape[0], 4, kernel, stride), pre=lambda x: F.pad(x, torch_pad))


@SWEEP
@given(st.data())
def test_conv_same_padding_at_stride_1_matches_pytorch(data):
    rank = data.draw(ranks)
    shape = data.draw(input_shapes(rank))
    kernel, dilation = axes(data.draw, rank, 1, 6), axes(data.draw, rank, 1, 3)
    layer = {"conv": {"filters": 2, "kernel": kernel, "dilation": dilation, "padding": "same"}}
    assert_same(shape, layer, lambda: CONV[rank](shape[0], 2, as_tuple(kernel, rank), 1, "same",
                                                 as_tuple(dilation, rank)))


@SWEEP
@given(st.data())
def test_conv_transpose_matches_pytorch(data):
    rank = data.draw(ranks)
    shape = data.draw(input_shapes(rank, max_size=6))
    groups = data.draw(st.sampled_from([1, 1, 2, shape[0]]))
    filters = data.draw(st.integers(1, 3)) * groups
    kernel, stride = axes(data.draw, rank, 1, 4), axes(data.draw, rank, 1, 3)
    dilation, padding = axes(data.draw, rank, 1, 2), axes(data.draw, rank, 0, 3)
    output_padding = axes(data.draw, rank, 0, 2)
    layer = {"conv_transpose": {"filters": filters, "kernel": kernel, "stride": stride, "padding": padding,
                                "dilation": dilation, "groups": groups, "output_padding": output_padding}}
    assert_same(shape, layer, lambda: CONV_T[rank](
        shape[0], filters, as_tuple(kernel, rank), as_tuple(stride, rank), as_tuple(padding, rank),
        as_tuple(output_padding, rank), groups, True, as_tuple(dilation, rank)))


@SWEEP
@given(st.data())
def test_max_and_avg_pool_match_pytorch_including_ceil_mode(data):
    rank = data.draw(ranks)
    shape = data.draw(input_shapes(rank))
    kind = data.draw(st.sampled_from(["maxpool", "avgpool"]))
    kernel, stride = axes(data.draw, rank, 1, 4), axes(data.draw, rank, 1, 3)
    padding = axes(data.draw, rank, 0, 2)
    ceil_mode = data.draw(st.booleans())
    args = {"kernel": kernel, "stride": stride, "padding": padding, "ceil_mode": ceil_mode}
    if kind == "maxpool":
        dilation = axes(data.draw, rank, 1, 2)
        args["dilation"] = dilation
        factory = lambda: MAXPOOL[rank](as_tuple(kernel, rank), as_tuple(stride, rank), as_tuple(padding, rank),
                                        as_tuple(dilation, rank), ceil_mode=ceil_mode)
    else:
        factory = lambda: AVGPOOL[rank](as_tuple(kernel, rank), as_tuple(stride, rank), as_tuple(padding, rank),
                                        ceil_mode=ceil_mode)
        # AvgPool3d alone refuses an input smaller than the kernel even where padding or ceil_mode give
        # whole windows (AvgPool1d/2d and MaxPool3d accept it); cnncalc follows PyTorch in each case.
    assert_same(shape, {kind: args}, factory)


@pytest.mark.parametrize("size, kernel, stride, padding, expected", [
    (5, 2, 2, 1, 3), (6, 2, 2, 1, 4), (7, 3, 2, 1, 4), (4, 3, 2, 0, 2), (5, 3, 3, 1, 2), (10, 3, 3, 0, 4),
])
def test_ceil_mode_edge_cases(size, kernel, stride, padding, expected):
    layer = {"maxpool": {"kernel": kernel, "stride": stride, "padding": padding, "ceil_mode": True}}
    assert cnncalc_outcome((1, size), layer)[0] == [1, expected]
    assert_same((1, size), layer, lambda: nn.MaxPool1d(kernel, stride, padding, ceil_mode=True))


@SWEEP
@given(st.data())
def test_adaptive_and_global_pools_match_pytorch(data):
    rank = data.draw(ranks)
    shape = data.draw(input_shapes(rank))
    kind = data.draw(st.sampled_from(["adaptive_avgpool", "adaptive_maxpool", "global_avgpool", "global_maxpool"]))
    if kind.startswith("global"):
        module = ADAPTIVE["adaptive_" + kind.split("_")[1]][rank]
        assert_same(shape, kind, lambda: module(1))
    else:
        output = axes(data.draw, rank, 1, 6)
        assert_same(shape, {kind: output}, lambda: ADAPTIVE[kind][rank](as_tuple(output, rank)))


@SWEEP
@given(st.data())
def test_linear_flattens_and_matches_pytorch(data):
    rank = data.draw(st.integers(0, 3))
    shape = data.draw(input_shapes(rank, max_size=5))
    features, bias = data.draw(st.integers(1, 20)), data.draw(st.booleans())
    n_in = 1
    for size in shape:
        n_in *= size
    assert_same(shape, {"linear": {"features": features, "bias": bias}},
                lambda: nn.Sequential(nn.Flatten(), nn.Linear(n_in, features, bias)))


@SWEEP
@given(st.data())
def test_shape_keeping_layers_match_pytorch(data):
    rank = data.draw(ranks)
    shape = data.draw(input_shapes(rank))
    kind, factory = data.draw(st.sampled_from([
        ("batchnorm", lambda: BATCHNORM[rank](shape[0])),
        ({"lrn": 3}, lambda: nn.LocalResponseNorm(3)),
        ({"dropout": 0.3}, lambda: nn.Dropout(0.3)),
        ("relu", nn.ReLU), ("leaky_relu", nn.LeakyReLU), ("sigmoid", nn.Sigmoid), ("tanh", nn.Tanh),
        ("gelu", nn.GELU), ("softmax", lambda: nn.Softmax(dim=1)), ("flatten", nn.Flatten),
    ]))
    assert_same(shape, kind, factory)


@SWEEP
@given(st.data())
def test_upsample_and_unpool_match_pytorch(data):
    rank = data.draw(ranks)
    shape = data.draw(input_shapes(rank))
    choice = data.draw(st.sampled_from(["scale", "float_scale", "size", "unpool"]))
    if choice == "scale":
        scale = data.draw(st.integers(1, 4))
        assert_same(shape, {"upsample": scale}, lambda: nn.Upsample(scale_factor=scale))
    elif choice == "float_scale":
        scale = data.draw(st.sampled_from([0.5, 1.5, 2.5, 0.75]))
        assert_same(shape, {"upsample": {"scale_factor": scale}}, lambda: nn.Upsample(scale_factor=scale))
    elif choice == "size":
        size = axes(data.draw, rank, 1, 20)
        assert_same(shape, {"upsample": {"size": size}}, lambda: nn.Upsample(size=as_tuple(size, rank)))
    else:
        factor = data.draw(st.integers(1, 4))
        mode = data.draw(st.sampled_from(["nearest", "bed_of_nails"]))
        assert_same(shape, {"unpool": {"factor": factor, "mode": mode}}, lambda: nn.Upsample(scale_factor=factor))


@pytest.mark.parametrize("layer, module", [
    ({"conv": {"filters": 4, "kernel": 3, "groups": 3}}, lambda: nn.Conv2d(6, 4, 3, groups=3)),
    ({"conv": {"filters": 6, "kernel": 3, "groups": 4}}, lambda: nn.Conv2d(6, 6, 3, groups=4)),
    ({"conv": {"filters": 2, "kernel": 9}}, lambda: nn.Conv2d(6, 2, 9)),
    ({"maxpool": {"kernel": 2, "padding": 2}}, lambda: nn.MaxPool2d(2, padding=2)),
    ({"avgpool": {"kernel": 3, "padding": 2}}, lambda: nn.AvgPool2d(3, padding=2)),
    ({"conv_transpose": {"filters": 2, "kernel": 3, "stride": 2, "output_padding": 2}},
     lambda: nn.ConvTranspose2d(6, 2, 3, 2, output_padding=2)),
    ({"conv_transpose": {"filters": 2, "kernel": 3, "padding": 6}}, lambda: nn.ConvTranspose2d(6, 2, 3, padding=6)),
    ({"maxpool": 9}, lambda: nn.MaxPool2d(9)),
], ids=["input channels not divisible by groups", "filters not divisible by groups", "kernel larger than input",
        "pool padding over half the kernel", "avg pool padding over half the kernel", "output_padding too large",
        "transposed padding eats the output", "pool window larger than input"])
def test_configurations_pytorch_rejects_are_rejected(layer, module):
    assert torch_outcome(module, (6, 8, 8)) is None
    assert cnncalc_outcome((6, 8, 8), layer) is None
