"""Property tests of cnncalc.backends.ops against torch.nn.functional as the oracle."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from cnncalc.backends import ops  # noqa: E402

RTOL = ATOL = 1e-4
FEW = settings(max_examples=60, deadline=None)
MANY = settings(max_examples=120, deadline=None)

TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
TORCH_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
TORCH_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
TORCH_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
TORCH_ADAPTIVE_AVG = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
TORCH_ADAPTIVE_MAX = {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}
LINEAR_MODE = {1: "linear", 2: "bilinear", 3: "trilinear"}


def random_array(seed, shape, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def torch_pad_list(pairs):
    """(before, after) pairs per axis -> F.pad's flat list, last axis first."""
    return [amount for pair in reversed(pairs) for amount in pair]


def assert_matches(ours, theirs, rtol=RTOL, atol=ATOL):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    assert ours.shape == theirs.shape
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol)


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


# ----------------------------------------------------------------------------
# exact cases
# ----------------------------------------------------------------------------

EDGE_IMAGE = np.array([[10, 10, 10, 0, 0, 0]] * 6, dtype=np.float32)


@pytest.mark.parametrize(
    "kernel, expected_row",
    [
        ([[1, 0, -1], [1, 0, -1], [1, 0, -1]], [0, 30, 30, 0]),
        ([[1, 0, -1], [2, 0, -2], [1, 0, -1]], [0, 40, 40, 0]),  # Sobel
    ],
)
def test_vertical_edge_detection(kernel, expected_row):
    x = EDGE_IMAGE[None, None]
    w = np.asarray(kernel, dtype=np.float32)[None, None]
    out = ops.conv(x, w, None, (1, 1), [(0, 0), (0, 0)], (1, 1), 1)
    np.testing.assert_array_equal(out[0, 0], np.array([expected_row] * 4, dtype=np.float32))


@pytest.mark.parametrize(
    "size, kernel, stride, pad, ceil_mode, expected",
    [
        (5, 2, 2, 1, True, 3),
        (5, 2, 2, 1, False, 3),
        (6, 2, 2, 1, True, 4),
        (6, 3, 2, 1, True, 4),
        (4, 2, 3, 1, True, 2),  # the extra ceil window would start in the right padding
        (4, 2, 3, 1, False, 2),
        (7, 3, 3, 0, True, 3),
        (7, 3, 3, 0, False, 2),
    ],
)
def test_pool_ceil_mode_lengths(size, kernel, stride, pad, ceil_mode, expected):
    x = random_array(size, (1, 2, size))
    padding = [(pad, pad)]
    out_max = ops.max_pool(x, (kernel,), (stride,), padding, (1,), ceil_mode)
    out_avg = ops.avg_pool(x, (kernel,), (stride,), padding, ceil_mode)
    assert out_max.shape[-1] == out_avg.shape[-1] == expected
    assert_matches(out_max, F.max_pool1d(t(x), kernel, stride, pad, 1, ceil_mode))
    assert_matches(out_avg, F.avg_pool1d(t(x), kernel, stride, pad, ceil_mode))


def test_unpool_modes():
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
    nearest = ops.unpool(x, 2, "nearest")
    nails = ops.unpool(x, (2, 3), "bed_of_nails")
    np.testing.assert_array_equal(nearest[0, 0], [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
    np.testing.assert_array_equal(nails[0, 0], [[0, 0, 0, 1, 0, 0], [0] * 6, [2, 0, 0, 3, 0, 0], [0] * 6])


def test_structural_ops():
    a, b = random_array(0, (2, 3, 4, 5)), random_array(1, (2, 2, 4, 5))
    assert ops.flatten(a).shape == (2, 60)
    np.testing.assert_array_equal(ops.add(a, a), a + a)
    assert_matches(ops.concat([a, b]), torch.cat([t(a), t(b)], dim=1))


def test_linear_and_batch_norm():
    x, w, b = random_array(0, (3, 7)), random_array(1, (5, 7)), random_array(2, 5)
    assert_matches(ops.linear(x, w, b), F.linear(t(x), t(w), t(b)))
    images = random_array(3, (2, 4, 3, 5))
    mean, weight, bias = random_array(4, 4), random_array(5, 4), random_array(6, 4)
    var = np.abs(random_array(7, 4)) + 0.1
    expected = F.batch_norm(t(images), t(mean), t(var), t(weight), t(bias), training=False, eps=1e-3)
    assert_matches(ops.batch_norm(images, mean, var, weight, bias, eps=1e-3), expected)
    assert_matches(
        ops.batch_norm(images, mean, var), F.batch_norm(t(images), t(mean), t(var), training=False)
    )


def test_numpy_namespace():
    assert ops.array_namespace(np.zeros(1)) is np


# ----------------------------------------------------------------------------
# convolutions
# ----------------------------------------------------------------------------


@st.composite
def conv_cases(draw):
    ndim = draw(st.integers(1, 3))
    size_cap = {1: 6, 2: 4, 3: 2}[ndim]
    axes = []
    for _ in range(ndim):
        kernel, dilation = draw(st.integers(1, 3)), draw(st.integers(1, 2))
        before, after = draw(st.integers(0, 2)), draw(st.integers(0, 2))
        extent = dilation * (kernel - 1) + 1
        size = max(1, extent - before - after + draw(st.integers(0, size_cap)))
        axes.append(dict(kernel=kernel, dilation=dilation, stride=draw(st.integers(1, 3)), pad=(before, after), size=size))
    groups = draw(st.integers(1, 3))
    return dict(
        axes=axes,
        batch=draw(st.integers(1, 2)),
        groups=groups,
        c_in=groups * draw(st.integers(1, 3)),
        c_out=groups * draw(st.integers(1, 3)),
        bias=draw(st.booleans()),
        tiny_budget=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )


def axis_tuple(case, key):
    return tuple(axis[key] for axis in case["axes"])


@MANY
@given(conv_cases())
def test_conv_matches_torch(case):
    kernel, pads = axis_tuple(case, "kernel"), [axis["pad"] for axis in case["axes"]]
    x = random_array(case["seed"], (case["batch"], case["c_in"]) + axis_tuple(case, "size"))
    w = random_array(case["seed"] + 1, (case["c_out"], case["c_in"] // case["groups"]) + kernel)
    b = random_array(case["seed"] + 2, case["c_out"]) if case["bias"] else None
    budget = 1 if case["tiny_budget"] else ops.IM2COL_BUDGET_BYTES  # 1 byte: one output row per chunk
    rows = 1 if case["tiny_budget"] else ops.IM2COL_MIN_ROWS
    with mock.patch.object(ops, "IM2COL_BUDGET_BYTES", budget), mock.patch.object(ops, "IM2COL_MIN_ROWS", rows):
        ours = ops.conv(x, w, b, axis_tuple(case, "stride"), pads, axis_tuple(case, "dilation"), case["groups"])
    padded = F.pad(t(x), torch_pad_list(pads))
    theirs = TORCH_CONV[len(kernel)](
        padded, t(w), None if b is None else t(b),
        stride=axis_tuple(case, "stride"), dilation=axis_tuple(case, "dilation"), groups=case["groups"],
    )
    assert_matches(ours, theirs)


@st.composite
def conv_transpose_cases(draw, symmetric):
    ndim = draw(st.integers(1, 3))
    size_cap = {1: 5, 2: 3, 3: 2}[ndim]
    axes = []
    for _ in range(ndim):
        kernel, dilation, stride = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 3))
        size = draw(st.integers(1, size_cap))
        output_padding = draw(st.integers(0, max(stride, dilation) - 1))
        full = (size - 1) * stride + dilation * (kernel - 1) + 1 + output_padding
        if symmetric:
            before = after = draw(st.integers(0, (full - 1) // 2))
        else:
            before = draw(st.integers(0, min(3, full - 1)))
            after = draw(st.integers(0, min(3, full - 1 - before)))
        axes.append(dict(kernel=kernel, dilation=dilation, stride=stride, size=size, pad=(before, after), out_pad=output_padding))
    groups = draw(st.integers(1, 3))
    return dict(
        axes=axes,
        batch=draw(st.integers(1, 2)),
        groups=groups,
        c_in=groups * draw(st.integers(1, 3)),
        c_out=groups * draw(st.integers(1, 3)),
        bias=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )


def conv_transpose_inputs(case):
    kernel = axis_tuple(case, "kernel")
    x = random_array(case["seed"], (case["batch"], case["c_in"]) + axis_tuple(case, "size"))
    w = random_array(case["seed"] + 1, (case["c_in"], case["c_out"] // case["groups"]) + kernel)
    b = random_array(case["seed"] + 2, case["c_out"]) if case["bias"] else None
    return x, w, b


def our_conv_transpose(case, x, w, b):
    return ops.conv_transpose(
        x, w, b, axis_tuple(case, "stride"), [axis["pad"] for axis in case["axes"]],
        axis_tuple(case, "dilation"), case["groups"], axis_tuple(case, "out_pad"),
    )


@MANY
@given(conv_transpose_cases(symmetric=True))
def test_conv_transpose_matches_torch(case):
    x, w, b = conv_transpose_inputs(case)
    theirs = TORCH_CONV_T[x.ndim - 2](
        t(x), t(w), None if b is None else t(b),
        stride=axis_tuple(case, "stride"), padding=tuple(axis["pad"][0] for axis in case["axes"]),
        output_padding=axis_tuple(case, "out_pad"), groups=case["groups"], dilation=axis_tuple(case, "dilation"),
    )
    assert_matches(our_conv_transpose(case, x, w, b), theirs)


@FEW
@given(conv_transpose_cases(symmetric=False))
def test_conv_transpose_asymmetric_padding_crops_full_output(case):
    """Torch has no asymmetric padding: compare with its full output, extended by output_padding, then cropped."""
    x, w, b = conv_transpose_inputs(case)
    full = TORCH_CONV_T[x.ndim - 2](
        t(x), t(w), None, stride=axis_tuple(case, "stride"), groups=case["groups"], dilation=axis_tuple(case, "dilation")
    )
    full = F.pad(full, torch_pad_list([(0, axis["out_pad"]) for axis in case["axes"]]))
    crop = (slice(None), slice(None)) + tuple(
        slice(axis["pad"][0], length - axis["pad"][1]) for axis, length in zip(case["axes"], full.shape[2:])
    )
    expected = full[crop]
    if b is not None:
        expected = expected + t(b).reshape((1, -1) + (1,) * (x.ndim - 2))
    assert_matches(our_conv_transpose(case, x, w, b), expected)


# ----------------------------------------------------------------------------
# pooling
# ----------------------------------------------------------------------------


@st.composite
def pool_cases(draw, with_dilation):
    ndim = draw(st.integers(1, 3))
    size_cap = {1: 8, 2: 6, 3: 4}[ndim]
    axes = []
    for _ in range(ndim):
        kernel = draw(st.integers(1, 3))
        dilation = draw(st.integers(1, 2)) if with_dilation else 1
        pad = draw(st.integers(0, kernel // 2))  # torch requires pad <= kernel / 2
        extent = dilation * (kernel - 1) + 1
        # torch's avg_pool3d wants the unpadded input to hold a whole kernel
        smallest = extent if (ndim == 3 and not with_dilation) else max(1, extent - 2 * pad)
        size = smallest + draw(st.integers(0, size_cap))
        axes.append(dict(kernel=kernel, dilation=dilation, stride=draw(st.integers(1, 3)), pad=pad, size=size))
    return dict(
        axes=axes,
        shape=(draw(st.integers(1, 2)), draw(st.integers(1, 3))) + tuple(axis["size"] for axis in axes),
        ceil_mode=draw(st.booleans()),
        count_include_pad=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )


@MANY
@given(pool_cases(with_dilation=True))
def test_max_pool_matches_torch(case):
    x = random_array(case["seed"], case["shape"])
    kernel, stride, dilation = axis_tuple(case, "kernel"), axis_tuple(case, "stride"), axis_tuple(case, "dilation")
    pads = axis_tuple(case, "pad")
    ours = ops.max_pool(x, kernel, stride, [(p, p) for p in pads], dilation, case["ceil_mode"])
    theirs = TORCH_MAX[len(kernel)](t(x), kernel, stride, pads, dilation, case["ceil_mode"])
    assert_matches(ours, theirs)


@MANY
@given(pool_cases(with_dilation=False))
def test_avg_pool_matches_torch(case):
    x = random_array(case["seed"], case["shape"])
    kernel, stride, pads = axis_tuple(case, "kernel"), axis_tuple(case, "stride"), axis_tuple(case, "pad")
    ours = ops.avg_pool(x, kernel, stride, [(p, p) for p in pads], case["ceil_mode"], case["count_include_pad"])
    theirs = TORCH_AVG[len(kernel)](t(x), kernel, stride, pads, case["ceil_mode"], case["count_include_pad"])
    assert_matches(ours, theirs)


@FEW
@given(pool_cases(with_dilation=True), st.data())
def test_pools_with_asymmetric_padding_match_explicit_padding(case, data):
    """Asymmetric pairs equal torch pooling of an explicitly padded input (-inf for max, 0 for avg)."""
    x = random_array(case["seed"], case["shape"])
    kernel, stride, dilation = axis_tuple(case, "kernel"), axis_tuple(case, "stride"), axis_tuple(case, "dilation")
    pads = []
    for axis in case["axes"]:
        after = data.draw(st.integers(0, axis["kernel"] // 2))
        too_short = axis["size"] + axis["pad"] + after < axis["dilation"] * (axis["kernel"] - 1) + 1
        pads.append((axis["pad"], axis["pad"] if too_short else after))
    ours_max = ops.max_pool(x, kernel, stride, pads, dilation, False)
    ours_avg = ops.avg_pool(x, kernel, stride, pads, False, count_include_pad=True)
    padded_max = F.pad(t(x), torch_pad_list(pads), value=-np.inf)
    padded_avg = F.pad(t(x), torch_pad_list(pads))
    assert_matches(ours_max, TORCH_MAX[len(kernel)](padded_max, kernel, stride, 0, dilation))
    assert_matches(ours_avg, TORCH_AVG[len(kernel)](padded_avg, kernel, stride, 0))


@MANY
@given(
    ndim=st.integers(1, 3),
    data=st.data(),
    seed=st.integers(0, 2**16),
)
def test_adaptive_pools_match_torch(ndim, data, seed):
    sizes = tuple(data.draw(st.integers(1, 9 if ndim < 3 else 5)) for _ in range(ndim))
    output = tuple(data.draw(st.integers(1, size + 2)) for size in sizes)
    x = random_array(seed, (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3))) + sizes)
    assert_matches(ops.adaptive_avg_pool(x, output), TORCH_ADAPTIVE_AVG[ndim](t(x), output))
    assert_matches(ops.adaptive_max_pool(x, output), TORCH_ADAPTIVE_MAX[ndim](t(x), output))


# ----------------------------------------------------------------------------
# normalisation, activations, resampling
# ----------------------------------------------------------------------------


@FEW
@given(
    ndim=st.integers(1, 3),
    channels=st.integers(1, 8),
    size=st.integers(1, 7),
    alpha=st.floats(1e-4, 1.0),
    beta=st.floats(0.1, 1.0),
    k=st.floats(0.5, 2.0),
    seed=st.integers(0, 2**16),
)
def test_lrn_matches_torch(ndim, channels, size, alpha, beta, k, seed):
    x = random_array(seed, (2, channels) + (3,) * ndim, scale=3.0)
    assert_matches(ops.lrn(x, size, alpha, beta, k), F.local_response_norm(t(x), size, alpha, beta, k))


ACTIVATIONS = [
    (ops.relu, F.relu),
    (lambda x: ops.leaky_relu(x, 0.2), lambda x: F.leaky_relu(x, 0.2)),
    (ops.leaky_relu, F.leaky_relu),
    (ops.sigmoid, torch.sigmoid),
    (ops.tanh, torch.tanh),
    (ops.gelu, F.gelu),
    (ops.softmax, lambda x: F.softmax(x, dim=1)),
    (lambda x: ops.softmax(x, axis=-1), lambda x: F.softmax(x, dim=-1)),
]


@pytest.mark.parametrize("ours, theirs", ACTIVATIONS)
@settings(max_examples=20, deadline=None)
@given(scale=st.sampled_from([0.1, 1.0, 10.0, 60.0]), seed=st.integers(0, 2**16))
def test_activations_match_torch(ours, theirs, scale, seed):
    x = random_array(seed, (3, 5, 4), scale=scale)
    assert_matches(ours(x), theirs(t(x)), rtol=1e-5, atol=1e-5)


def test_gelu_near_zero_and_in_tails():
    x = np.array([[-1e-3, -1e-6, 0.0, 1e-6, 1e-3, -6.0, -9.0, 6.0, 30.0]], dtype=np.float32)
    assert_matches(ops.gelu(x), F.gelu(t(x)), rtol=1e-5, atol=1e-7)


@MANY
@given(
    ndim=st.integers(1, 3),
    mode=st.sampled_from(["nearest", "linear"]),
    by_size=st.booleans(),
    data=st.data(),
    seed=st.integers(0, 2**16),
)
def test_upsample_matches_torch(ndim, mode, by_size, data, seed):
    sizes = tuple(data.draw(st.integers(1, 6 if ndim < 3 else 4)) for _ in range(ndim))
    x = random_array(seed, (data.draw(st.integers(1, 2)), 2) + sizes)
    torch_mode = "nearest" if mode == "nearest" else LINEAR_MODE[ndim]
    if by_size:
        size = tuple(data.draw(st.integers(1, 9)) for _ in range(ndim))
        kwargs = dict(size=size)
    else:
        factors = st.floats(0.5, 3.0).filter(lambda f: all(int(n * f) >= 1 for n in sizes))
        one_for_all = data.draw(st.booleans())
        factor = data.draw(factors) if one_for_all else tuple(data.draw(factors) for _ in range(ndim))
        kwargs = dict(scale_factor=factor)
    assert_matches(ops.upsample(x, mode=torch_mode, **kwargs), F.interpolate(t(x), mode=torch_mode, **kwargs))


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("factor", [2, 3])
def test_unpool_nearest_equals_integer_nearest_upsample(ndim, factor):
    x = random_array(ndim, (1, 2) + (3,) * ndim)
    assert_matches(ops.unpool(x, factor), F.interpolate(t(x), scale_factor=factor, mode="nearest"))
    nails = ops.unpool(x, factor, "bed_of_nails")
    corners = (slice(None), slice(None)) + (slice(None, None, factor),) * ndim
    np.testing.assert_array_equal(nails[corners], x)
    assert nails.sum() == pytest.approx(x.sum(), rel=1e-5)


@pytest.mark.parametrize(
    "shape, factor, expected_last_axis",
    [
        ((1, 1, 7), 1.1, [0, 0, 1, 2, 3, 4, 5]),  # 1-D: floor(dst / 1.1)
        ((1, 1, 1, 7), 1.1, [0, 1, 2, 3, 4, 5, 6]),  # 2-D: out == in is copied
        ((1, 1, 1, 5), 2.1, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]),  # 2-D: out == 2*in is dst >> 1
        ((1, 1, 1, 1, 5), 2.1, [0, 0, 0, 1, 1, 2, 2, 3, 3, 4]),  # 3-D: floor(dst / 2.1)
    ],
)
def test_upsample_nearest_follows_torch_per_rank_rounding(shape, factor, expected_last_axis):
    x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    factors = (1.0,) * (len(shape) - 3) + (factor,)
    ours = ops.upsample(x, scale_factor=factors, mode="nearest")
    np.testing.assert_array_equal(ours.reshape(-1), expected_last_axis)
    assert_matches(ours, F.interpolate(t(x), scale_factor=factors, mode="nearest"))


def test_softmax_and_sigmoid_are_stable_for_huge_inputs():
    x = np.array([[1000.0, -1000.0, 0.0], [-1e30, 1e30, 3.0]], dtype=np.float32).T[None]
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        assert_matches(ops.softmax(x, axis=1), F.softmax(t(x), dim=1), atol=1e-7)
        assert_matches(ops.sigmoid(x), torch.sigmoid(t(x)), atol=1e-7)
