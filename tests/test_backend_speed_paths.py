"""The NumPy backend's fast paths against torch.nn.functional: depthwise (tap sums over input
phases), grouped and dense im2col GEMMs in both column orders, 1x1 convolutions as plain matrix
products, channels-last memory, fused element-wise blocks and their sharing among threads; each
case with the NumPy code alone and with the compiled kernels (``compiled.py``) where they apply."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from cnncalc.backends import compiled, ops


@pytest.fixture(autouse=True, params=["numpy", "numba"])
def kernels(request, monkeypatch):
    """Every case twice: the NumPy code alone, and with the compiled kernels (where numba is installed)."""
    if request.param == "numpy":
        monkeypatch.setattr(compiled, "usable", lambda *arrays, **options: None)
    elif compiled.kernels() is None:
        pytest.skip("numba is not installed (the [fast] extra)")
    return request.param

TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
SIZES = {1: 11, 2: 9, 3: 6}


def random_array(seed, shape, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def torch_conv(x, w, b, stride, pads, dilation, groups):
    padded = F.pad(torch.from_numpy(np.ascontiguousarray(x)), [a for pair in reversed(pads) for a in pair])
    return TORCH_CONV[x.ndim - 2](padded, torch.from_numpy(w), None if b is None else torch.from_numpy(b),
                                  stride=stride, dilation=dilation, groups=groups).numpy()


def assert_conv_matches(x, w, b, stride, pads, dilation, groups):
    ours = ops.conv(x, w, b, stride, pads, dilation, groups)
    theirs = torch_conv(x, w, b, stride, pads, dilation, groups)
    assert ours.shape == theirs.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- depthwise
@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("kernel, stride, dilation", [
    (3, 1, 1), (3, 2, 1), (5, 2, 1), (3, 2, 2), (3, 2, 3), (3, 3, 2), (2, 3, 1), (1, 2, 1),
], ids=lambda v: str(v))
@pytest.mark.parametrize("multiplier", [1, 2])
def test_depthwise_sums_taps_like_torch(ndim, kernel, stride, dilation, multiplier):
    """groups == C: one einsum over the taps, along whole rows at stride 1, over channels otherwise."""
    channels = 3
    x = random_array(ndim + kernel, (2, channels) + (SIZES[ndim],) * ndim)
    w = random_array(stride, (channels * multiplier, 1) + (kernel,) * ndim)
    b = random_array(dilation, channels * multiplier)
    pads = [(kernel // 2, (kernel - 1) // 2 + 1)] * ndim  # asymmetric
    assert_conv_matches(x, w, b, (stride,) * ndim, pads, (dilation,) * ndim, channels)


def test_depthwise_output_blocks_and_threads_do_not_change_the_sums():
    x = random_array(1, (3, 16, 23, 19))
    w = random_array(2, (16, 1, 3, 3))
    reference = torch_conv(x, w, None, (2, 1), [(1, 1), (1, 1)], (1, 2), 16)
    with mock.patch.object(ops, "TAP_BLOCK_BYTES", 1), mock.patch.object(ops, "PARALLEL_MIN_ELEMENTS", 1):
        for threads in (1, 2, 3):
            with mock.patch.object(ops, "host_threads", lambda count=threads: count):
                ours = ops.conv(x, w, None, (2, 1), [(1, 1), (1, 1)], (1, 2), 16)
                np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)
                ours = ops.conv(x, w, None, (1, 1), [(1, 1), (1, 1)], (1, 2), 16)  # rows of W*C
                np.testing.assert_allclose(ours, torch_conv(x, w, None, (1, 1), [(1, 1), (1, 1)], (1, 2), 16),
                                           rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- GEMM paths
@pytest.mark.parametrize("kernel_major", [True, False], ids=["kernel-major columns", "PyTorch-order columns"])
@pytest.mark.parametrize("groups, c_in, c_out", [(1, 4, 6), (2, 4, 6), (3, 6, 3), (4, 8, 8)])
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_grouped_and_dense_gemm_in_both_column_orders(kernel_major, groups, c_in, c_out, ndim):
    x = random_array(groups, (2, c_in) + (SIZES[ndim],) * ndim)
    w = random_array(c_out, (c_out, c_in // groups) + (3,) * ndim)
    b = random_array(ndim, c_out)
    with mock.patch.object(ops, "kernel_major", lambda weights, columns: kernel_major):
        assert_conv_matches(x, w, b, (2,) * ndim, [(1, 0)] * ndim, (1,) * ndim, groups)


def test_column_order_follows_which_is_larger():
    assert ops.kernel_major(weight_bytes=100, column_bytes=1000)
    assert not ops.kernel_major(weight_bytes=1000, column_bytes=100)


@pytest.mark.parametrize("stride, pads, groups", [
    ((1, 1), [(0, 0), (0, 0)], 1),  # the input is its own im2col matrix: no copy
    ((1, 1), [(0, 0), (0, 0)], 2),
    ((2, 2), [(0, 0), (0, 0)], 1),  # strided: columns copied
    ((1, 1), [(1, 0), (0, 2)], 1),  # padded: the border outputs are the bias alone
])
def test_pointwise_convolutions(stride, pads, groups):
    x = random_array(3, (2, 6, 7, 5))
    w = random_array(4, (4, 6 // groups, 1, 1))
    b = random_array(5, 4)
    assert_conv_matches(x, w, b, stride, pads, (1, 1), groups)


def test_pointwise_conv_of_a_channels_last_input_allocates_its_output_alone():
    import tracemalloc

    x = ops.channels_last(random_array(6, (4, 64, 32, 32)))  # 1 MiB in, 256 KiB out
    w = random_array(7, (16, 64, 1, 1))
    ops.conv(x, w, None, (1, 1), [(0, 0), (0, 0)], (1, 1), 1)
    tracemalloc.start()
    try:
        out = ops.conv(x, w, None, (1, 1), [(0, 0), (0, 0)], (1, 1), 1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.nbytes <= peak < out.nbytes + 64 * 2**10  # no copy of the 1 MiB input
    np.testing.assert_allclose(out, torch_conv(x, w, None, (1, 1), [(0, 0), (0, 0)], (1, 1), 1), rtol=1e-4, atol=1e-4)


def test_im2col_chunks_of_one_row_give_the_same_result():
    x = random_array(8, (3, 5, 9, 8))
    w = random_array(9, (7, 5, 3, 3))
    reference = torch_conv(x, w, None, (1, 1), [(1, 1), (1, 1)], (1, 1), 1)
    with mock.patch.object(ops, "IM2COL_BUDGET_BYTES", 1), mock.patch.object(ops, "IM2COL_MIN_ROWS", 1):
        np.testing.assert_allclose(ops.conv(x, w, None, (1, 1), [(1, 1), (1, 1)], (1, 1), 1), reference,
                                   rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- memory layouts
def layouts(x):
    """The same values laid out channels-first, channels-last and as a strided (non-dense) view."""
    wide = np.zeros(x.shape[:1] + (2 * x.shape[1],) + x.shape[2:], np.float32)
    wide[:, ::2] = x
    return {"channels-first": np.ascontiguousarray(x), "channels-last": ops.channels_last(x), "strided": wide[:, ::2]}


def test_channels_last_is_a_view_of_channels_last_memory():
    x = random_array(10, (2, 3, 4, 5))
    last = ops.channels_last(x)
    assert last.shape == x.shape and np.moveaxis(last, 1, -1).flags.c_contiguous
    assert ops.channels_last(last) is last  # no second copy
    np.testing.assert_array_equal(last, x)


@pytest.mark.parametrize("op, reference", [
    (ops.relu, F.relu), (ops.relu6, F.relu6), (ops.sigmoid, torch.sigmoid), (ops.silu, F.silu),
    (ops.hardswish, F.hardswish), (ops.hardsigmoid, F.hardsigmoid), (ops.gelu, F.gelu), (ops.mish, F.mish),
    (ops.elu, F.elu), (ops.selu, F.selu), (ops.leaky_relu, F.leaky_relu), (ops.tanh, torch.tanh),
], ids=lambda f: getattr(f, "__name__", ""))
@pytest.mark.parametrize("layout", ["channels-first", "channels-last", "strided"])
def test_fused_element_wise_ops_on_every_layout_and_in_shared_blocks(op, reference, layout):
    x = layouts(random_array(11, (2, 5, 13, 7), scale=4.0))[layout]
    expected = reference(torch.from_numpy(np.ascontiguousarray(x))).numpy()
    with mock.patch.object(ops, "BLOCK_ELEMENTS", 64), mock.patch.object(ops, "GELU_BLOCK_ELEMENTS", 64), \
            mock.patch.object(ops, "PARALLEL_MIN_ELEMENTS", 1), mock.patch.object(ops, "host_threads", lambda: 2):
        ours = op(x)
    assert ours.dtype == np.float32 and ours.shape == x.shape
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)


def test_sigmoid_and_silu_reach_their_limits_without_warnings():
    x = np.array([[-1000.0, -89.0, -88.0, 0.0, 88.0, 1000.0]], np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        np.testing.assert_allclose(ops.sigmoid(x), torch.sigmoid(torch.from_numpy(x)).numpy(), atol=1e-30)
        np.testing.assert_allclose(ops.silu(x), F.silu(torch.from_numpy(x)).numpy(), atol=1e-30)


@pytest.mark.parametrize("channels", [1, 3, 16, 700])  # 700: rows of C alone; 3: a remainder after the tiled rows
@pytest.mark.parametrize("layout", ["channels-first", "channels-last", "strided"])
def test_batch_norm_per_channel_blocks(channels, layout):
    x = layouts(random_array(12, (2, channels, 5, 3)))[layout]
    mean, var, weight, bias = (random_array(13 + i, channels) for i in range(4))
    var = np.abs(var) + 0.5
    expected = F.batch_norm(torch.from_numpy(np.ascontiguousarray(x)), *map(torch.from_numpy, (mean, var, weight, bias)),
                            training=False).numpy()
    with mock.patch.object(ops, "BLOCK_ELEMENTS", 96), mock.patch.object(ops, "ROW_ELEMENTS", 8), \
            mock.patch.object(ops, "PARALLEL_MIN_ELEMENTS", 1):
        ours = ops.batch_norm(x, mean, var, weight, bias)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (3, 4)])
def test_prelu_with_one_slope_per_channel_or_one_for_all(shape):
    x = random_array(14, shape)
    for weight in (random_array(15, shape[1]), np.array([0.3], np.float32)):
        expected = F.prelu(torch.from_numpy(x), torch.from_numpy(weight)).numpy()
        np.testing.assert_allclose(ops.prelu(ops.channels_last(x), weight), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("same", [True, False], ids=["alike: blocks", "broadcast: whole"])
def test_add_and_mul_of_alike_and_broadcast_arrays(same):
    a = ops.channels_last(random_array(16, (2, 4, 6, 5)))
    b = ops.channels_last(random_array(17, (2, 4, 6, 5))) if same else random_array(17, (2, 4, 1, 1))
    with mock.patch.object(ops, "PARALLEL_MIN_ELEMENTS", 1), mock.patch.object(ops, "BLOCK_ELEMENTS", 16):
        np.testing.assert_array_equal(ops.add(a, b), a + b)
        np.testing.assert_array_equal(ops.mul(a, b), a * b)


def test_layer_norm_over_channels_and_over_the_last_axes_in_row_blocks():
    x = random_array(18, (2, 6, 4, 5), scale=3.0)
    weight, bias = random_array(19, 6), random_array(20, 6)
    with mock.patch.object(ops, "BLOCK_ELEMENTS", 12), mock.patch.object(ops, "PARALLEL_MIN_ELEMENTS", 1):
        over_channels = ops.layer_norm(ops.channels_last(x), (6,), weight, bias, over_channels=True)
        last = ops.layer_norm(x, (4, 5), random_array(21, (4, 5)), None)
    expected = F.layer_norm(torch.from_numpy(x).movedim(1, -1), (6,), torch.from_numpy(weight),
                            torch.from_numpy(bias)).movedim(-1, 1).numpy()
    np.testing.assert_allclose(over_channels, expected, rtol=1e-5, atol=1e-5)
    expected = F.layer_norm(torch.from_numpy(x), (4, 5), torch.from_numpy(random_array(21, (4, 5)))).numpy()
    np.testing.assert_allclose(last, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_interpolation_in_place_matches_torch(mode):
    x = ops.channels_last(random_array(22, (2, 3, 5, 4)))
    expected = F.interpolate(torch.from_numpy(np.ascontiguousarray(x)), size=(9, 7), mode=mode,
                             align_corners=False).numpy()
    np.testing.assert_allclose(ops.upsample(x, size=(9, 7), mode=mode), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_pools_pad_once_and_keep_channels_last(ceil_mode):
    x = ops.channels_last(random_array(23, (2, 3, 9, 8)))
    ours = ops.max_pool(x, (3, 3), (2, 2), [(1, 1), (1, 1)], (1, 1), ceil_mode)
    expected = F.max_pool2d(torch.from_numpy(np.ascontiguousarray(x)), 3, 2, 1, ceil_mode=ceil_mode).numpy()
    np.testing.assert_array_equal(ours, expected)
    assert np.moveaxis(ours, 1, -1).flags.c_contiguous
    averaged = ops.avg_pool(x, (3, 3), (2, 2), [(1, 1), (1, 1)], ceil_mode, count_include_pad=False)
    expected = F.avg_pool2d(torch.from_numpy(np.ascontiguousarray(x)), 3, 2, 1, ceil_mode=ceil_mode,
                            count_include_pad=False).numpy()
    np.testing.assert_allclose(averaged, expected, rtol=1e-6, atol=1e-6)


def test_worker_threads_follow_the_callers_error_settings():
    x = np.full(64, -100.0, np.float32)

    def overflow(source, result):
        np.exp(-source, out=result)
        result *= np.float32(1e30)  # inf: an overflow the caller asked to raise

    with mock.patch.object(ops, "BLOCK_ELEMENTS", 8), mock.patch.object(ops, "PARALLEL_MIN_ELEMENTS", 1), \
            mock.patch.object(ops, "host_threads", lambda: 2), np.errstate(over="raise"), \
            pytest.raises(FloatingPointError):
        ops._fused(overflow, x)
