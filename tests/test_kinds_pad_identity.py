"""`pad` and `identity`, the kinds added through the one-module-per-kind path: shapes and counts
against PyTorch's modules in 1-D, 2-D and 3-D, and the NumPy and torch forward passes against
torch.nn.functional."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import cnncalc
from cnncalc.api import analyze_spec
from cnncalc.backends.forward import run_forward
from cnncalc.backends.registry import load_backend
from cnncalc.errors import CnnCalcError

torch = pytest.importorskip("torch")
F = torch.nn.functional

MODES = {"zero": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}
MODULES = {  # PyTorch's module per mode and rank, where it has one
    ("zero", 1): torch.nn.ZeroPad1d, ("zero", 2): torch.nn.ZeroPad2d, ("zero", 3): torch.nn.ZeroPad3d,
    ("reflect", 1): torch.nn.ReflectionPad1d, ("reflect", 2): torch.nn.ReflectionPad2d,
    ("reflect", 3): torch.nn.ReflectionPad3d, ("replicate", 1): torch.nn.ReplicationPad1d,
    ("replicate", 2): torch.nn.ReplicationPad2d, ("replicate", 3): torch.nn.ReplicationPad3d,
    ("circular", 1): torch.nn.CircularPad1d, ("circular", 2): torch.nn.CircularPad2d,
    ("circular", 3): torch.nn.CircularPad3d,
}


def torch_padding(pairs) -> tuple[int, ...]:
    """[(before, after)] per axis, H before W -> PyTorch's flat tuple, last axis first."""
    return tuple(amount for pair in reversed(pairs) for amount in pair)


@st.composite
def pad_cases(draw):
    rank = draw(st.integers(1, 3))
    sizes = draw(st.lists(st.integers(1, 6), min_size=rank, max_size=rank))
    pairs = draw(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=rank, max_size=rank))
    mode = draw(st.sampled_from(list(MODES)))
    return [draw(st.integers(1, 3)), *sizes], [list(p) for p in pairs], mode


@settings(max_examples=300, deadline=None)
@given(case=pad_cases())
def test_pad_shapes_and_values_match_pytorch(case):
    shape, pairs, mode = case
    x = torch.randn(1, *shape, dtype=torch.float64)
    try:
        expected = MODULES[(mode, len(shape) - 1)](torch_padding(pairs))(x)
    except (RuntimeError, ValueError, IndexError, NotImplementedError):
        expected = None  # PyTorch refuses this padding for this size
    spec = {"input": shape, "layers": [{"pad": {"padding": pairs, "mode": mode}}]}
    try:
        analysis = analyze_spec(spec)
    except CnnCalcError:
        assert expected is None, f"cnncalc refused what PyTorch pads: {case}"
        return
    assert expected is not None, f"cnncalc pads what PyTorch refuses: {case}"
    row = analysis.report.layers[0]
    assert list(row.output_shape) == list(expected.shape[1:])
    assert (row.params, row.macs) == (0, 0)
    for backend in ("numpy", "torch"):
        out = run_forward(analysis.plan, load_backend(backend), seed=1, keep=lambda step: True,
                          input_values=x[0].numpy().astype(np.float32))[0]
        assert out.ok, out.error
        np.testing.assert_allclose(out.output[0], expected[0].numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("padding, shape, expected", [
    (1, [3, 5, 5], [3, 7, 7]),
    ([1, 2], [3, 5, 5], [3, 7, 9]),
    ([[0, 1], [2, 0]], [3, 5, 5], [3, 6, 7]),
    (2, [2, 10], [2, 14]),
    ([1, 0, 2], [1, 4, 4, 4], [1, 6, 4, 8]),
], ids=["one for all", "per axis", "before and after", "1-D", "3-D"])
def test_pad_sizes_and_explanation(padding, shape, expected):
    analysis = analyze_spec({"input": shape, "layers": [{"pad": padding}]})
    assert list(analysis.report.layers[0].output_shape) == expected
    for formula in analysis.plan.steps[0].formulas():
        arithmetic, value = formula.arithmetic, formula.value
        assert eval(arithmetic) == int(value), formula.text()  # noqa: S307 - our own arithmetic


def test_reflect_padding_as_large_as_the_input_is_refused_as_pytorch_does():
    with pytest.raises(CnnCalcError, match="reflect padding 3 needs an input larger"):
        cnncalc.analyze({"input": [1, 3, 8], "layers": [{"pad": {"padding": 3, "mode": "reflect"}}]})


def test_pad_moves_the_receptive_field_like_zero_padding():
    rows = cnncalc.analyze({"input": [1, 9, 9], "layers": [{"pad": 1}, {"conv": {"filters": 1, "kernel": 3}}]}).layers
    assert [list(r.receptive_field.size) for r in rows] == [[1, 1], [3, 3]]
    assert list(rows[1].receptive_field.start) == [0, 0]  # as conv with padding 1: centred on input pixel 0


@pytest.mark.parametrize("shape", [[3], [3, 7], [3, 5, 5], [2, 3, 4, 5]])
def test_identity_is_torch_identity(shape):
    analysis = analyze_spec({"input": shape, "layers": ["identity", {"identity": {"name": "id"}}]})
    rows = analysis.report.layers
    assert [r.name for r in rows] == ["identity1", "id"]
    assert all(list(r.output_shape) == shape and r.params == 0 and r.macs == 0 for r in rows)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    expected = torch.nn.Identity()(torch.from_numpy(x[None])).numpy()
    for backend in ("numpy", "torch"):
        out = run_forward(analysis.plan, load_backend(backend), input_values=x, keep=lambda step: True)[-1]
        np.testing.assert_array_equal(out.output, expected)


def test_the_new_kinds_are_one_module_each():
    """Adding a kind is its own module in cnncalc/kinds: the registry finds it there."""
    from cnncalc.kinds import KINDS

    assert KINDS["pad"].__module__ == "cnncalc.kinds.pad"
    assert KINDS["identity"].__module__ == "cnncalc.kinds.identity"


def test_the_kind_index_read_from_the_source_matches_the_registry():
    """KINDS finds a kind's module from its `kind: ClassVar[str] = "..."` line; every kind is found."""
    from cnncalc.kinds import KINDS

    defined = {name: cls.__module__.rsplit(".", 1)[1] for name, cls in KINDS.items()}
    assert KINDS.index() == defined
    assert "pad" in KINDS and KINDS.get("no_such_kind") is None


def test_a_spec_imports_only_the_kind_modules_it_names():
    code = ("import sys\nfrom cnncalc.api import analyze\n"
            "analyze({'input': [3, 8, 8], 'layers': ['conv 4 k3', 'relu']})\n"
            "print(sorted(m for m in sys.modules if m.startswith('cnncalc.kinds.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(eval(out))
    assert {"cnncalc.kinds.conv", "cnncalc.kinds.activations"} <= loaded
    assert not loaded & {"cnncalc.kinds.pool", "cnncalc.kinds.resample", "cnncalc.kinds.composites"}
