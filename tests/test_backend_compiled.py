"""The NumPy backend's compiled kernels (numba, ``backends/numba_kernels.py``) against PyTorch and
against the NumPy code they stand in for: the same values, at the edges too (NaN, infinities,
padding on one side, dilation, strides), and taken only where they apply."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from cnncalc.backends import compiled, ops

torch = pytest.importorskip("torch")
F = torch.nn.functional
kernels = compiled.kernels()
pytestmark = pytest.mark.skipif(kernels is None, reason="numba is not installed (the [fast] extra)")


def random_array(seed, shape, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def numpy_only(op, *arguments):
    """``op`` computed by the NumPy code alone."""
    usable = compiled.usable
    compiled.usable = lambda *arrays, **options: None
    try:
        return op(*arguments)
    finally:
        compiled.usable = usable


def channels_last(shape, seed=0, scale=1.0):
    return ops.channels_last(random_array(seed, shape, scale))


# ----------------------------------------------------------------------------- depthwise
@pytest.mark.parametrize("kernel, stride, dilation, pads", [
    ((3, 3), (1, 1), (1, 1), [(1, 1), (1, 1)]),
    ((3, 3), (2, 2), (1, 1), [(1, 1), (1, 1)]),
    ((5, 5), (2, 1), (1, 1), [(2, 2), (2, 2)]),
    ((3, 3), (1, 2), (2, 3), [(0, 3), (2, 1)]),  # padding on one side only, dilation per axis
    ((2, 4), (3, 1), (1, 1), [(0, 0), (0, 0)]),
    ((7, 7), (1, 1), (1, 1), [(3, 3), (3, 3)]),  # a kernel larger than the input's rows
], ids=str)
def test_depthwise_kernel_matches_torch(kernel, stride, dilation, pads):
    x = channels_last((2, 24, 6, 9), seed=1)
    w = random_array(2, (24, 1) + kernel)
    padded = F.pad(torch.from_numpy(np.ascontiguousarray(x)), [p for pair in reversed(pads) for p in pair])
    expected = F.conv2d(padded, torch.from_numpy(w), stride=stride, dilation=dilation, groups=24).numpy()
    ours = ops.conv(x, w, None, stride, pads, dilation, 24)
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours, numpy_only(ops.conv, x, w, None, stride, pads, dilation, 24), rtol=1e-5,
                               atol=1e-5)


def test_depthwise_kernel_takes_only_what_it_computes(monkeypatch):
    """Channel multipliers, 1-D and 3-D convolutions and float16 stay with NumPy's einsum."""
    calls = []
    monkeypatch.setattr(kernels, "depthwise2d", lambda *a: calls.append(a) or pytest.fail("kernel used"))
    x = channels_last((1, 4, 5, 5))
    ops.conv(x, random_array(3, (8, 1, 3, 3)), None, (1, 1), [(1, 1), (1, 1)], (1, 1), 4)  # multiplier 2
    ops.conv(random_array(4, (1, 4, 9)), random_array(5, (4, 1, 3)), None, (1,), [(1, 1)], (1,), 4)
    ops.conv(x.astype(np.float16), random_array(3, (4, 1, 3, 3)).astype(np.float16), None, (1, 1),
             [(1, 1), (1, 1)], (1, 1), 4)
    assert not calls


# ----------------------------------------------------------------------------- element-wise
EDGES = np.array([np.nan, np.inf, -np.inf, -1000, -88.8, -88.72, -87.4, -20, -1e-30, -0.0, 0.0, 1e-30, 0.5,
                  20, 87.4, 88.8, 1000], np.float32)


@pytest.mark.parametrize("op, reference", [
    (ops.relu, F.relu), (ops.relu6, F.relu6), (ops.sigmoid, torch.sigmoid), (ops.silu, F.silu),
    (ops.hardsigmoid, F.hardsigmoid), (ops.hardswish, F.hardswish),
], ids=lambda f: getattr(f, "__name__", ""))
def test_activations_at_the_edges_match_torch(op, reference):
    x = EDGES.reshape(1, 1, 1, -1)
    np.testing.assert_array_equal(op(x), reference(torch.from_numpy(x)).numpy())


@pytest.mark.parametrize("op", [ops.hardsigmoid, ops.hardswish], ids=lambda f: f.__name__)
def test_hard_gates_equal_the_numpy_code_bit_for_bit(op):
    x = random_array(21, (2, 8, 16, 16), scale=5.0)
    np.testing.assert_array_equal(op(x), numpy_only(op, x))


@pytest.mark.parametrize("op, reference", [(ops.sigmoid, torch.sigmoid), (ops.silu, F.silu)],
                         ids=["sigmoid", "silu"])
def test_logistic_kernel_within_two_ulp_over_the_whole_range(op, reference):
    """The kernel's own exp (Cephes' polynomial): against the float64 truth, within 2 ulp or no
    further than PyTorch's float32 result is (both overflow exp(-x) below x = -88.72)."""
    x = np.linspace(-100, 100, 400_001, dtype=np.float32).reshape(1, 1, 1, -1)
    truth = reference(torch.from_numpy(x).double()).numpy()
    ulp = np.spacing(np.abs(truth).astype(np.float32)).astype(np.float64)
    ours = np.abs(op(x).astype(np.float64) - truth) / ulp
    theirs = np.abs(reference(torch.from_numpy(x)).numpy().astype(np.float64) - truth) / ulp
    assert np.all(ours <= np.maximum(2, theirs))


def test_float64_logistic_stays_with_numpy(monkeypatch):
    monkeypatch.setattr(kernels, "logistic", lambda *a: pytest.fail("float32 kernel used on float64"))
    x = random_array(6, (1, 2, 3, 3)).astype(np.float64)
    np.testing.assert_allclose(ops.silu(x), F.silu(torch.from_numpy(x)).numpy(), rtol=1e-12)


@pytest.mark.parametrize("channels", [1, 3, 16, 700])
def test_batch_norm_kernel_matches_torch_and_numpy(channels):
    x = channels_last((2, channels, 5, 3), seed=7, scale=3.0)
    mean, var, weight, bias = (random_array(8 + i, channels) for i in range(4))
    var = np.abs(var) + 0.1
    expected = F.batch_norm(torch.from_numpy(np.ascontiguousarray(x)), *map(torch.from_numpy, (mean, var, weight, bias)),
                            training=False).numpy()
    np.testing.assert_allclose(ops.batch_norm(x, mean, var, weight, bias), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ops.batch_norm(x, mean, var), F.batch_norm(
        torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(mean), torch.from_numpy(var)).numpy(),
        rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(ops.batch_norm(x, mean, var, weight, bias),
                                  numpy_only(ops.batch_norm, x, mean, var, weight, bias))


def test_add_mul_and_channel_gates():
    a, b = channels_last((2, 6, 5, 4), 9), channels_last((2, 6, 5, 4), 10)
    gate = random_array(11, (2, 6, 1, 1))
    np.testing.assert_array_equal(ops.add(a, b), a + b)
    np.testing.assert_array_equal(ops.mul(a, b), a * b)
    np.testing.assert_array_equal(ops.mul(a, gate), a * gate)
    assert np.moveaxis(ops.mul(a, gate), 1, -1).flags.c_contiguous  # the result keeps channels-last
    np.testing.assert_array_equal(ops.mul(a, gate[:1]), a * gate[:1])  # one gate for all: NumPy broadcasts


@pytest.mark.parametrize("shape", [(2, 5, 7, 3), (1, 300, 1, 1), (3, 4, 9)])
def test_global_average_pool_kernel(shape):
    x = ops.channels_last(random_array(12, shape, scale=5.0))
    expected = F.adaptive_avg_pool1d if len(shape) == 3 else F.adaptive_avg_pool2d
    theirs = expected(torch.from_numpy(np.ascontiguousarray(x)), 1).numpy()
    ours = ops.adaptive_avg_pool(x, 1)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


def test_non_dense_arrays_stay_with_numpy():
    wide = random_array(13, (2, 8, 5, 5))[:, ::2]  # a strided view: no flat memory order
    np.testing.assert_array_equal(ops.relu(wide), np.maximum(wide, 0))
    assert compiled.usable(np.zeros(3, np.int32)) is None


# ----------------------------------------------------------------------------- when they load
def run_python(code: str, mode: str | None) -> list[str]:
    """``code``'s printed lines in a fresh process under ``CNNCALC_NUMBA=mode`` (None: unset)."""
    env = {key: value for key, value in os.environ.items() if key != "CNNCALC_NUMBA"}
    if mode is not None:
        env["CNNCALC_NUMBA"] = mode
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return done.stdout.splitlines()


MODES = """
import sys, numpy
from cnncalc.backends import compiled, ops
from cnncalc.backends.registry import load_backend
from cnncalc.commands.forward_common import analysed
x = numpy.ones((1, 64, 32, 32), numpy.float32)
backend = load_backend("numpy", "cpu")
_, report, plan = analysed("lenet5", 1, None)
backend.prepare(plan.steps, 1)  # a small pass
print(compiled.usable(x) is not None, "numba" in sys.modules, backend.kernels)
backend.prepare(plan.steps, compiled.AUTO_MIN_VALUES)  # a pass this large repays loading numba
print(compiled.usable(x) is not None, "numba" in sys.modules, backend.kernels)
"""


def test_auto_mode_loads_numba_only_for_large_passes():
    small, large = run_python(MODES, None)
    assert small == (f"False False NumPy only (numba's kernels run from {compiled.AUTO_MIN_VALUES:,} output "
                     "values per pass, or with CNNCALC_NUMBA=1)")
    assert large == f"True True NumPy with numba {numba_version()} kernels"
    assert run_python(MODES, "auto") == [small, large]


def test_mode_one_always_and_mode_zero_never():
    always = run_python(MODES, "1")
    assert always == [f"True True NumPy with numba {numba_version()} kernels"] * 2
    assert run_python(MODES, "Yes") == always
    never = run_python(MODES, "0")
    assert never == ["False False NumPy only (CNNCALC_NUMBA=0)"] * 2
    assert run_python(MODES, "off") == ["False False NumPy only (CNNCALC_NUMBA=off)"] * 2


def test_an_unknown_setting_reads_as_auto_and_says_so():
    small, large = run_python(MODES, "fast")
    assert small.startswith("False False NumPy only (") and large.startswith("True True NumPy with numba")
    assert all(line.endswith("; CNNCALC_NUMBA='fast' is not 0, 1 or auto: read as auto)") or
               line.endswith("kernels; CNNCALC_NUMBA='fast' is not 0, 1 or auto: read as auto")
               for line in (small, large))


def test_small_arrays_stay_with_numpy_even_when_on():
    """Below MIN_ELEMENTS the NumPy code runs: a small network's `run` never imports numba."""
    code = ("import sys, numpy; from cnncalc.backends import ops\n"
            "ops.silu(numpy.ones((1, 2, 8, 8), numpy.float32)); print('numba' in sys.modules)")
    assert run_python(code, "1") == ["False"]


def numba_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("numba")


def test_verify_names_the_kernels():
    from click.testing import CliRunner

    from cnncalc.cli import cli

    result = CliRunner().invoke(cli, ["verify", "lenet5", "--backend", "numpy", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert f"numba {numba_version()}" in result.output


def test_channels_innermost_in_another_order_is_not_read_as_rows():
    """Memory [N, W, H, C] has C innermost too; reading it as channels-last rows would scramble
    positions silently. And a [1, 1, 1, 1, 2] conv output, whose size-1 axes make its strides
    ambiguous, still gives channels-last results."""
    x = random_array(14, (2, 3, 4, 5), scale=2.0)
    swapped = np.ascontiguousarray(x.transpose(0, 3, 2, 1)).transpose(0, 3, 2, 1)
    assert swapped.strides[1] == 4 and np.array_equal(swapped, x)
    mean, var = random_array(15, 3), np.abs(random_array(16, 3)) + 0.5
    expected = F.batch_norm(torch.from_numpy(x), torch.from_numpy(mean), torch.from_numpy(var)).numpy()
    np.testing.assert_allclose(ops.batch_norm(swapped, mean, var), expected, rtol=1e-6, atol=1e-6)
    gate = random_array(17, (2, 3, 1, 1))
    np.testing.assert_array_equal(ops.mul(swapped, gate), x * gate)
    np.testing.assert_allclose(ops.adaptive_avg_pool(swapped, (1, 1)), x.mean(axis=(2, 3), keepdims=True), rtol=1e-6)
    tiny = ops.conv(random_array(18, (1, 1, 1, 1, 2)), random_array(19, (1, 1, 1, 1, 1)), None, (1, 1, 1),
                    [(0, 0)] * 3, (1, 1, 1), 1)
    np.testing.assert_allclose(ops.batch_norm(tiny, np.zeros(1, np.float32), np.ones(1, np.float32), eps=0.0), tiny,
                               rtol=1e-6)


def test_without_numba_every_op_runs_its_numpy_code_and_says_how_to_get_the_kernels():
    code = ("import sys; sys.modules['numba'] = None  # as if it were not installed\n"
            "import numpy; from cnncalc.backends import compiled, ops\n"
            "x = numpy.linspace(-5, 5, 8192, dtype=numpy.float32).reshape(1, 2, 64, 64)\n"
            "print(compiled.activate_for(10**10), compiled.usable(x) is None, float(ops.silu(x).sum()) != 0)\n"
            "print(compiled.description())")
    assert run_python(code, "1") == ["False True True",
                                     "NumPy only (numba is not installed: pip install numba, or the [fast] extra)"]


def test_add_and_mul_of_a_scalar_or_mixed_dtypes_stay_with_numpy():
    a = channels_last((1, 4, 8, 8), 20)
    np.testing.assert_array_equal(ops.mul(a, np.float32(2.0)), a * np.float32(2.0))
    np.testing.assert_array_equal(ops.add(a, np.float32(1.5)), a + np.float32(1.5))
    np.testing.assert_array_equal(ops.add(a, a.astype(np.float64)), a + a.astype(np.float64))


def test_kernels_that_fail_to_load_leave_numpy_computing_and_say_why():
    code = ("import numba\n"
            "def broken(*a, **k): raise RuntimeError('cannot cache function: no locator available')\n"
            "numba.njit = broken\n"
            "import numpy; from cnncalc.backends import compiled, ops\n"
            "x = numpy.ones((1, 2, 64, 64), numpy.float32)\n"
            "print(compiled.activate_for(10**10), compiled.usable(x) is None, float(ops.relu6(x).max()))\n"
            "print(compiled.description())")
    assert run_python(code, "1") == [
        "False True 1.0",
        "NumPy only (numba's kernels did not load: RuntimeError: cannot cache function: no locator available)"]
