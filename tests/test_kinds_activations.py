"""The activations silu, hardswish, hardsigmoid, mish, elu, selu, log_softmax and prelu, drop path
(stochastic depth) and ConvNeXt's layer scale: shapes and counts against PyTorch's modules on flat,
1-D, 2-D and 3-D inputs, and the NumPy and torch forward passes against those modules."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import cnncalc
from cnncalc.api import analyze_spec
from cnncalc.backends import ops
from cnncalc.backends.forward import run_forward
from cnncalc.backends.registry import load_backend
from cnncalc.cli import cli
from cnncalc.errors import CnnCalcError

torch = pytest.importorskip("torch")
nn = torch.nn


class StochasticDepth(nn.Module):
    """torchvision.ops.StochasticDepth: in training it zeroes whole samples ("row") or the whole
    batch ("batch") with probability p and rescales the rest; in eval mode it is the identity."""

    def __init__(self, p: float, mode: str):
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        size = [x.shape[0]] + [1] * (x.ndim - 1) if self.mode == "row" else [1] * x.ndim
        noise = torch.empty(size, dtype=x.dtype).bernoulli_(1 - self.p)
        return x * noise / (1 - self.p)


class LayerScale(nn.Module):
    """ConvNeXt's layer scale as torchvision's CNBlock holds it: ones(C, 1, 1) * init, times x."""

    def __init__(self, channels: int, rank: int, init: float = 1e-6):
        super().__init__()
        self.layer_scale = nn.Parameter(torch.ones(channels, *([1] * rank)) * init)

    def forward(self, x):
        return self.layer_scale * x


# (id, spec entry for C input channels, PyTorch module for C channels and `rank` spatial axes)
CASES = [
    ("silu", lambda c: "silu", lambda c, rank: nn.SiLU()),
    ("hardswish", lambda c: "hardswish", lambda c, rank: nn.Hardswish()),
    ("hardsigmoid", lambda c: "hardsigmoid", lambda c, rank: nn.Hardsigmoid()),
    ("mish", lambda c: "mish", lambda c, rank: nn.Mish()),
    ("elu", lambda c: "elu", lambda c, rank: nn.ELU()),
    ("elu alpha 0.5", lambda c: {"elu": 0.5}, lambda c, rank: nn.ELU(alpha=0.5)),
    ("elu alpha 2", lambda c: {"elu": {"alpha": 2.0}}, lambda c, rank: nn.ELU(alpha=2.0)),
    ("selu", lambda c: "selu", lambda c, rank: nn.SELU()),
    ("log_softmax", lambda c: "log_softmax", lambda c, rank: nn.LogSoftmax(dim=1)),
    ("prelu shared", lambda c: "prelu", lambda c, rank: nn.PReLU()),
    ("prelu per channel", lambda c: {"prelu": c}, lambda c, rank: nn.PReLU(c)),
    ("prelu init", lambda c: {"prelu": {"num_parameters": c, "init": -0.5}},
     lambda c, rank: nn.PReLU(c, init=-0.5)),
    ("drop_path row", lambda c: {"drop_path": 0.2}, lambda c, rank: StochasticDepth(0.2, "row")),
    ("drop_path batch", lambda c: {"drop_path": {"p": 0.5, "mode": "batch"}},
     lambda c, rank: StochasticDepth(0.5, "batch")),
    ("layer_scale", lambda c: "layer_scale", lambda c, rank: LayerScale(c, rank)),
    ("layer_scale 0.5", lambda c: {"layer_scale": 0.5}, lambda c, rank: LayerScale(c, rank, 0.5)),
]
SHAPES = [[5], [3, 7], [3, 5, 4], [2, 3, 4, 5]]  # [C, *spatial]: flat, 1-D, 2-D, 3-D
SHAPE_IDS = ["flat", "1-D", "2-D", "3-D"]


def sample(shape, seed=0) -> np.ndarray:
    """Values spread over every piece of the activations (hardswish's bends sit at -3 and 3)."""
    return (4 * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def outputs(analysis, x, parameters=None):
    """(backend, last output [1, C, ...]) for the NumPy and torch backends."""
    for backend in ("numpy", "torch"):
        result = run_forward(analysis.plan, load_backend(backend), input_values=x, keep=lambda step: True,
                             parameters=parameters)[-1]
        assert result.ok, (backend, result.error)
        yield backend, result.output


def assert_close(out, expected):
    """float32 agreement relative to the output's own size (layer scale's outputs are ~1e-6)."""
    peak = max(float(np.abs(expected).max()), np.finfo(np.float32).tiny)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6 * peak)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("entry, module", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_shapes_counts_and_forward_match_the_pytorch_module(entry, module, shape):
    c, rank = shape[0], len(shape) - 1
    reference = module(c, rank).eval()
    analysis = analyze_spec({"input": shape, "layers": [entry(c)]})
    row = analysis.report.layers[0]
    x = sample(shape)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x[None])).numpy()
    assert list(row.output_shape) == list(expected.shape[1:]) == shape
    assert row.weights == sum(p.numel() for p in reference.parameters())
    assert (row.biases, row.buffers, row.macs) == (0, 0, 0)
    for backend, out in outputs(analysis, x):  # seeded parameters: PyTorch's initial values
        assert_close(out, expected)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("entry, module, attribute", [
    (lambda c: "prelu", lambda c, rank: nn.PReLU(), "weight"),
    (lambda c: {"prelu": c}, lambda c, rank: nn.PReLU(c), "weight"),
    (lambda c: "layer_scale", lambda c, rank: LayerScale(c, rank), "layer_scale"),
], ids=["prelu shared", "prelu per channel", "layer_scale"])
def test_learned_parameters_reach_the_forward_in_pytorch_layout(entry, module, attribute, shape):
    """Trained (random, per-channel different) slopes and scales, handed to both backends."""
    c, rank = shape[0], len(shape) - 1
    reference = module(c, rank).eval()
    parameter = getattr(reference, attribute)
    with torch.no_grad():
        parameter.uniform_(-2, 2, generator=torch.Generator().manual_seed(7))
    analysis = analyze_spec({"input": shape, "layers": [entry(c)]})
    step = analysis.plan.steps[0]
    x = sample(shape, seed=1)
    assert step.layer.tensors(step, (1, *x.shape))["weight"].shape == tuple(parameter.shape)
    weight = parameter.detach().numpy().copy()
    with torch.no_grad():
        expected = reference(torch.from_numpy(x[None])).numpy()
    for backend, out in outputs(analysis, x, parameters=lambda row, x_shape: {"weight": weight}):
        assert_close(out, expected)


@pytest.mark.parametrize("entry, low, high", [
    ("silu", -10, 10), ("hardswish", -5, 5), ("hardsigmoid", -5, 5), ("mish", -10, 10),
    ("elu", -10, 10), ({"elu": 0.5}, -10, 10), ({"elu": 3.0}, -10, 10), ("selu", -10, 10),
])
def test_float_gain_is_the_steepest_slope(entry, low, high):
    """The gain bounds |f'| (a difference in the input grows at most by it) and is not loose."""
    step = analyze_spec({"input": [1], "layers": [entry]}).plan.steps[0]
    x = torch.linspace(low, high, 200_001, dtype=torch.float64, requires_grad=True)
    y = run_torch_op(step, x)
    slope = float(torch.autograd.grad(y.sum(), x)[0].abs().max())
    gain = step.layer.float_gain(step, {})
    assert slope <= gain * (1 + 1e-7) and gain <= 1.01 * slope  # torch's backward writes 1/6 in float32


def run_torch_op(step, x):
    from cnncalc.backends import torch_ops

    return step.layer.forward(torch_ops, [x.reshape(1, -1)], {}, step)


def test_gains_and_reduction_lengths_of_parameters_and_log_softmax():
    def step_of(entry, shape):
        return analyze_spec({"input": shape, "layers": [entry]}).plan.steps[0]

    prelu = step_of({"prelu": 2}, [2, 3])
    assert prelu.layer.float_gain(prelu, {"weight": np.array([0.3, -2.5], np.float32)}) == 2.5
    assert prelu.layer.float_gain(prelu, {"weight": np.array([0.3, -0.5], np.float32)}) == 1.0
    scale = step_of("layer_scale", [2, 3])
    assert scale.layer.float_gain(scale, {"weight": np.array([[0.1], [-0.7]], np.float32)}) == pytest.approx(0.7)
    log_softmax = step_of("log_softmax", [6, 4, 4])
    assert (log_softmax.layer.float_gain(log_softmax, {}), log_softmax.layer.reduction_length(log_softmax)) == (2.0, 6)
    assert step_of({"drop_path": 0.3}, [2, 3]).layer.float_gain(None, {}) == 1.0


EXTREMES = np.array([[-1e4, -100, -20, -3, -1e-3, 0, 1e-3, 3, 20, 100, 1e4]], np.float32)


@pytest.mark.parametrize("name", ["silu", "hardswish", "hardsigmoid", "mish", "elu", "selu", "log_softmax"])
def test_ops_are_stable_at_extreme_inputs(name):
    """No overflow (exp of a large argument) and PyTorch's values, also far from 0."""
    from cnncalc.backends import torch_ops

    with np.errstate(over="raise", invalid="raise", divide="raise"):
        ours = getattr(ops, name)(EXTREMES)
    theirs = getattr(torch_ops, name)(torch.from_numpy(EXTREMES)).numpy()
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


def test_prelu_with_a_wrong_number_of_slopes_is_a_located_error(tmp_path):
    spec = tmp_path / "prelu.yaml"
    spec.write_text("name: t\ninput: [4, 8, 8]\nlayers:\n  - conv: {filters: 8, kernel: 3}\n"
                    "  - {prelu: 3, name: act}\n")
    result = CliRunner().invoke(cli, ["table", str(spec)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"{spec}:5: layers[1] (act): error: prelu has num_parameters 3 but its input "
                                     "has 8 channels; use 1 (one shared slope) or 8 (one per channel)")
    with pytest.raises(CnnCalcError, match="prelu has num_parameters 3 but its input has 4 channels"):
        cnncalc.analyze({"input": [4, 8], "layers": [{"prelu": {"num_parameters": 3}}]})


def test_drop_path_needs_its_probability():
    with pytest.raises(CnnCalcError, match="`drop_path` needs `p`"):
        cnncalc.analyze({"input": [4, 8], "layers": ["drop_path"]})
    with pytest.raises(CnnCalcError, match="drop_path.p"):
        cnncalc.analyze({"input": [4, 8], "layers": [{"drop_path": 1.0}]})


ALL_KINDS = {
    "name": "activations",
    "input": [4, 6, 6],
    "layers": ["silu", "hardswish", "hardsigmoid", "mish", {"elu": 0.5}, "selu", {"prelu": 4},
               {"drop_path": 0.1}, "layer_scale", "log_softmax", "flatten", "prelu 1", "layer_scale init=0.5"],
}


def test_a_table_of_every_new_kind(tmp_path):
    report = cnncalc.analyze(ALL_KINDS)
    assert [row.name for row in report.layers] == [
        "silu1", "hardswish1", "hardsigmoid1", "mish1", "elu1", "selu1", "prelu1", "drop_path1", "layer_scale1",
        "log_softmax1", "flatten1", "prelu2", "layer_scale2"]
    assert [row.params for row in report.layers] == [0, 0, 0, 0, 0, 0, 4, 0, 4, 0, 0, 1, 144]
    assert (report.totals.trainable_params, report.totals.non_trainable_params, report.totals.macs) == (153, 0, 0)
    step = analyze_spec(ALL_KINDS).plan.steps[6]
    assert [f.text() for f in step.formulas()] == ["params = num_parameters = 4"]
    result = CliRunner().invoke(cli, ["table", _as_json_file(tmp_path, ALL_KINDS), "--format", "csv",
                                      "--columns", "name,output,params"])
    assert result.exit_code == 0, result.output
    assert "layer_scale2,144,144" in result.stdout.splitlines()


def _as_json_file(tmp_path, spec) -> str:
    import json

    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return str(path)
