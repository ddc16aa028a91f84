"""`layernorm` (over the channels at every position, as ConvNeXt's LayerNorm2d, or over the last
axes named by `normalized_shape`, as nn.LayerNorm), `groupnorm` and `instancenorm`: shapes and
trainable and non-trainable counts against PyTorch's modules in 1-D, 2-D and 3-D, the parameter
tensors as PyTorch names them, and the NumPy and torch forward passes against those modules in
eval mode with the very arrays the forward pass used."""
from __future__ import annotations

import math

import numpy as np
import pytest

import cnncalc
from cnncalc.api import analyze_spec
from cnncalc.backends.forward import gain, input_array, reduction_length, run_forward
from cnncalc.backends.parameters import SeededParameters
from cnncalc.backends.registry import load_backend
from cnncalc.errors import CnnCalcError

torch = pytest.importorskip("torch")
nn = torch.nn
INSTANCE_NORMS = {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}
RUNNING = ("running_mean", "running_var")  # what counts as non-trainable (not num_batches_tracked, as batchnorm)


class LayerNormChannels(nn.LayerNorm):
    """torchvision.models.convnext.LayerNorm2d (permute to channels last, nn.LayerNorm(C), permute
    back), for any number of spatial axes: movedim(1, -1) is its permute(0, 2, 3, 1) in 2-D."""

    def forward(self, x):
        x = x.movedim(1, -1)
        x = nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.movedim(-1, 1)


def instance_norm(rank, **options):
    return lambda c: INSTANCE_NORMS[rank](c, **options)


# (id, spec entry, per-sample input shape, the PyTorch module for C input channels)
CASES = [
    ("ln over C 2-D", "layernorm", [6, 5, 7], lambda c: LayerNormChannels(c)),
    ("ln over C 1-D", "layernorm", [4, 9], lambda c: LayerNormChannels(c)),
    ("ln over C 3-D", "layernorm", [3, 4, 5, 6], lambda c: LayerNormChannels(c)),
    ("ln over C flat", "layernorm", [10], lambda c: nn.LayerNorm(c)),
    ("ln over C eps no affine", {"layernorm": {"eps": 1e-3, "elementwise_affine": False}}, [6, 5, 7],
     lambda c: LayerNormChannels(c, eps=1e-3, elementwise_affine=False)),
    ("ln over C no bias", {"layernorm": {"bias": False}}, [6, 5, 7], lambda c: LayerNormChannels(c, bias=False)),
    ("ln [W]", {"layernorm": 7}, [6, 5, 7], lambda c: nn.LayerNorm(7)),
    ("ln [H, W]", {"layernorm": [5, 7]}, [6, 5, 7], lambda c: nn.LayerNorm([5, 7])),
    ("ln [C, H, W]", {"layernorm": {"normalized_shape": [6, 5, 7]}}, [6, 5, 7], lambda c: nn.LayerNorm([6, 5, 7])),
    ("ln [L] 1-D", {"layernorm": 9}, [4, 9], lambda c: nn.LayerNorm(9)),
    ("ln [D, H, W] 3-D", {"layernorm": [4, 5, 6]}, [3, 4, 5, 6], lambda c: nn.LayerNorm([4, 5, 6])),
    ("ln [features] flat", {"layernorm": [10]}, [10], lambda c: nn.LayerNorm(10)),
    ("ln [H, W] no affine", {"layernorm": {"normalized_shape": [5, 7], "elementwise_affine": False}}, [6, 5, 7],
     lambda c: nn.LayerNorm([5, 7], elementwise_affine=False)),
    ("ln [W] no bias eps", {"layernorm": {"normalized_shape": 7, "bias": False, "eps": 1e-6}}, [6, 5, 7],
     lambda c: nn.LayerNorm(7, bias=False, eps=1e-6)),
    ("gn 2 groups 2-D", {"groupnorm": 2}, [6, 5, 7], lambda c: nn.GroupNorm(2, c)),
    ("gn 1 group", {"groupnorm": 1}, [6, 5, 7], lambda c: nn.GroupNorm(1, c)),
    ("gn one channel per group", {"groupnorm": 6}, [6, 5, 7], lambda c: nn.GroupNorm(6, c)),
    ("gn 1-D", {"groupnorm": {"groups": 2, "eps": 1e-3}}, [4, 9], lambda c: nn.GroupNorm(2, c, eps=1e-3)),
    ("gn 3-D", {"groupnorm": 3}, [6, 3, 4, 5], lambda c: nn.GroupNorm(3, c)),
    ("gn flat", {"groupnorm": 4}, [8], lambda c: nn.GroupNorm(4, c)),
    ("gn no affine", {"groupnorm": {"groups": 3, "affine": False}}, [6, 5, 7],
     lambda c: nn.GroupNorm(3, c, affine=False)),
    *((f"in {rank}-D affine {affine} running {running}",
       {"instancenorm": {"affine": affine, "track_running_stats": running}} if affine or running else "instancenorm",
       [3, 7, 6, 5][:rank + 1], instance_norm(rank, affine=affine, track_running_stats=running))
      for rank in (1, 2, 3) for affine in (False, True) for running in (False, True)),
    ("in eps", {"instancenorm": {"eps": 1e-3, "affine": True}}, [3, 6, 5], instance_norm(2, eps=1e-3, affine=True)),
]


def random_statistics(arrays: dict, rng) -> dict:
    """The seeded arrays with the running statistics made random (seeded: mean 0, variance 1), so
    the forward pass really uses them."""
    arrays = dict(arrays)
    if "running_mean" in arrays:
        channels = arrays["running_mean"].shape
        arrays["running_mean"] = rng.normal(0, 1, channels).astype(np.float32)
        arrays["running_var"] = rng.uniform(0.2, 3, channels).astype(np.float32)
    return arrays


@pytest.mark.parametrize("entry, shape, module", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_shapes_counts_tensors_and_forward_match_pytorch(entry, shape, module):
    module = module(shape[0]).eval()
    analysis = analyze_spec({"input": shape, "layers": [entry]})
    row, step = analysis.report.layers[0], analysis.plan.steps[0]
    trainable = sum(p.numel() for p in module.parameters())
    buffers = sum(b.numel() for name, b in module.named_buffers() if name in RUNNING)
    assert list(row.output_shape) == shape and row.macs == 0
    assert (row.trainable_params, row.buffers, row.params) == (trainable, buffers, trainable + buffers)
    assert (row.weights, row.biases) == tuple(p.numel() if p is not None else 0 for p in (module.weight, module.bias))

    seed = 3
    arrays = random_statistics(SeededParameters(seed)(step, (1, *shape)), np.random.default_rng(seed))
    assert {name: a.shape for name, a in arrays.items()} == {  # PyTorch's names and layouts
        name: tuple(t.shape) for name, t in module.state_dict().items() if name != "num_batches_tracked"}
    module.load_state_dict({name: torch.from_numpy(a) for name, a in arrays.items()}, strict=False)

    def forward(backend, batch, values=None):
        out = run_forward(analysis.plan, load_backend(backend), batch=batch, seed=seed, input_values=values,
                          keep=lambda s: True, parameters=lambda s, _shape: arrays)[0]
        assert out.ok, out.error
        return out.output

    samples = input_array(analysis.plan, 2, seed)  # two different samples: statistics stay per sample
    shifted = 3 + 2 * samples[0]  # a mean and a scale the normalisation must take out
    with torch.no_grad():
        expected = module(torch.from_numpy(samples)).numpy()
        expected_shifted = module(torch.from_numpy(shifted[None])).numpy()
    for backend in ("numpy", "torch"):
        np.testing.assert_allclose(forward(backend, 2), expected, rtol=1e-5, atol=1e-5, err_msg=backend)
        np.testing.assert_allclose(forward(backend, 1, shifted), expected_shifted, rtol=1e-5, atol=1e-5,
                                   err_msg=backend)


def test_default_names_and_one_line_forms():
    rows = cnncalc.analyze({"input": [8, 5, 6], "layers": [
        "layernorm", "groupnorm 4", "instancenorm affine=true", "layernorm 5x6", "layernorm eps=1e-6 nobias",
        {"groupnorm": {"groups": 2, "name": "norm"}}]}).layers
    assert [r.name for r in rows] == ["ln1", "gn1", "in1", "ln2", "ln3", "norm"]
    assert [r.params for r in rows] == [16, 16, 16, 60, 8, 16]


@pytest.mark.parametrize("entry, shape, lines", [
    ("layernorm", [8, 5, 6], ["n = C = 8 (values per mean and variance: the 8 channels at each position, as "
                              "ConvNeXt's LayerNorm2d)", "params = 2*C = 2*8 = 16"]),
    ("layernorm", [12], ["n = C = 12 (values per mean and variance: the 12 features of each sample)",
                         "params = 2*C = 2*12 = 24"]),
    ({"layernorm": [5, 6]}, [8, 5, 6], ["n = prod(normalized_shape) = 5*6 = 30 (values per mean and variance: the "
                                        "last 2 axes [5, 6] of each sample)",
                                        "params = 2*prod(normalized_shape) = 2*5*6 = 60"]),
    ({"layernorm": {"normalized_shape": 6, "bias": False}}, [8, 5, 6],
     ["n = normalized_shape = 6 (values per mean and variance: the last axis [6] of each sample)",
      "params = normalized_shape = 6"]),
    ({"groupnorm": 4}, [8, 5, 6], ["n = C/G*H*W = 8/4*5*6 = 60 (values per mean and variance: each group of 2 "
                                   "channels of a sample)", "params = 2*C = 2*8 = 16"]),
    ({"groupnorm": {"groups": 2, "affine": False}}, [8], ["n = C/G = 8/2 = 4 (values per mean and variance: each "
                                                          "group of 4 channels of a sample)"]),
    ("instancenorm", [3, 4, 5, 6], ["n = D*H*W = 4*5*6 = 120 (values per mean and variance: each channel of a "
                                    "sample)"]),
    ({"instancenorm": {"affine": True, "track_running_stats": True}}, [3, 9],
     ["n = 1 (each channel is scaled by its running mean and variance, as PyTorch in eval mode)",
      "params = 2*C = 2*3 = 6"]),
], ids=["ln over C", "ln flat", "ln [H, W]", "ln [W] no bias", "gn", "gn flat no affine", "in 3-D", "in running"])
def test_worked_formulas_say_what_is_normalised(entry, shape, lines):
    step = analyze_spec({"input": shape, "layers": [entry]}).plan.steps[0]
    formulas = step.formulas()
    assert [f.text() for f in formulas] == lines
    for formula in formulas:
        if formula.arithmetic:
            assert eval(formula.arithmetic) == int(formula.value.split(" (")[0]), formula.text()  # noqa: S307


def located_error(tmp_path, entry: str, shape: str = "[6, 5, 7]") -> CnnCalcError:
    spec = tmp_path / "net.yaml"
    spec.write_text(f"input: {shape}\nlayers:\n  - relu\n  - {entry}\n")
    with pytest.raises(CnnCalcError) as info:
        cnncalc.analyze(cnncalc.load_spec(spec))
    error = info.value
    assert (error.loc.file, error.loc.line, error.loc.path) == (str(spec), 4, "layers[1]")
    return error


@pytest.mark.parametrize("entry, shape, message", [
    ("layernorm: [5, 6]", "[6, 5, 7]", "normalized_shape [5, 6] must equal the input's last 2 axes, but the input "
                                       "[6, 5, 7] ends in [5, 7] (PyTorch's LayerNorm normalises the trailing axes)"),
    ("layernorm: 6", "[6, 5, 7]", "normalized_shape [6] must equal the input's last axis, but the input [6, 5, 7] "
                                  "ends in [7]"),
    ("layernorm: [1, 6, 5, 7]", "[6, 5, 7]", "normalized_shape [1, 6, 5, 7] names 4 axes but the input [6, 5, 7] "
                                             "has only 3"),
    ("groupnorm: 4", "[6, 5, 7]", "6 channels (C) cannot be split into 4 groups: groupnorm needs C divisible by "
                                  "groups"),
    ("groupnorm: 6", "[6, 1, 1]", "each of the 6 groups of [6, 1, 1] holds one value"),
    ("instancenorm", "[6, 1, 1]", "instancenorm takes each channel's mean and variance over its positions, and "
                                  "[6, 1, 1] has one"),
    ("instancenorm", "[6]", "instancenorm needs an input with spatial axes [C, *spatial], got [6]"),
], ids=["ln other sizes", "ln one axis", "ln too many axes", "gn groups", "gn one value", "in one position",
        "in flat"])
def test_bad_shapes_are_located_errors_naming_both_sides(tmp_path, entry, shape, message):
    assert message in located_error(tmp_path, entry, shape).message


def test_pytorch_refuses_what_cnncalc_refuses():
    with pytest.raises(RuntimeError):
        nn.LayerNorm([5, 6])(torch.zeros(1, 6, 5, 7))
    with pytest.raises(ValueError):
        nn.GroupNorm(4, 6)
    with pytest.raises(ValueError):
        nn.GroupNorm(6, 6)(torch.zeros(1, 6, 1, 1))
    with pytest.raises(ValueError):
        nn.InstanceNorm2d(6)(torch.zeros(1, 6, 1, 1))
    nn.InstanceNorm2d(6, track_running_stats=True).eval()(torch.zeros(1, 6, 1, 1))  # running statistics: fine
    assert cnncalc.analyze({"input": [6, 1, 1], "layers": [{"instancenorm": {"track_running_stats": True}}]})


def test_reduction_lengths_and_gains():
    steps = analyze_spec({"input": [8, 5, 6], "layers": [
        "layernorm", {"layernorm": [5, 6]}, {"groupnorm": 2}, "instancenorm",
        {"instancenorm": {"track_running_stats": True, "affine": True}}]}).plan.steps
    assert [reduction_length(step) for step in steps] == [8, 30, 4 * 5 * 6, 30, 1]
    weight = np.array([0.5, -2.0] + [1.0] * 6, np.float32)
    assert gain(steps[0], {"weight": weight}) == pytest.approx(2 * (5 + math.sqrt(8)) / (2 * math.sqrt(1e-5)))
    assert gain(steps[3], {}) == pytest.approx((5 + math.sqrt(30)) / (2 * math.sqrt(1e-5)))
    running = {"weight": weight, "running_var": np.full(8, 0.25, np.float32)}
    assert gain(steps[4], running) == pytest.approx(2 / math.sqrt(0.25 + 1e-5))  # batch norm's


@pytest.mark.parametrize("n", [2, 8, 64, 256])
def test_the_gain_bounds_the_slope_of_input_statistics(n):
    """The largest row sum of |d out / d x| over inputs near the worst case (a nearly constant input,
    variance about eps, one value apart) stays under the gain the float32 rule uses."""
    eps = 1e-5
    step = analyze_spec({"input": [n], "layers": [{"layernorm": {"elementwise_affine": False}}]}).plan.steps[0]
    bound = gain(step, {})
    rng = np.random.default_rng(n)
    for spread in (0.0, 0.3, 1.0, 3.0, 30.0):
        x = torch.tensor(rng.normal(0, 1, n) * spread * math.sqrt(eps), dtype=torch.float64)
        x[0] += math.sqrt(n * eps)  # one outlier: the largest standardised value
        jacobian = torch.autograd.functional.jacobian(lambda t: nn.functional.layer_norm(t, (n,), eps=eps), x)
        assert jacobian.abs().sum(dim=1).max().item() <= bound


def test_constant_maps_agree_exactly_across_backends():
    """A map made constant (a 1x1 map upsampled) normalises to beta alone: both backends take its
    statistics exactly, where a float32 mean an ulp off would be magnified by 1/sqrt(eps)."""
    constant = ["global_avgpool", {"upsample": {"size": 7}}]
    spec = {"input": [4, 3, 3], "layers": [*constant, "instancenorm", *constant, {"groupnorm": 4}, *constant,
                                           {"layernorm": [7, 7]}]}
    plan = analyze_spec(spec).plan
    norms = {step.index for step in plan.steps if step.kind in ("instancenorm", "groupnorm", "layernorm")}
    for seed in range(3):
        outputs = [[r.output for r in run_forward(plan, load_backend(b), seed=seed, keep=lambda s: s.index in norms)]
                   for b in ("numpy", "torch")]
        for ours, theirs in zip(*outputs):
            if ours is not None:
                np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("seed", range(8))
def test_the_float32_rule_allows_pytorch_rounding_on_a_nearly_constant_map(seed):
    """layernorm over one channel outputs beta alone, which PyTorch's x*a + (beta - mean*a) leaves
    an ulp off; the group norm after it magnifies that up to 1/sqrt(eps): PyTorch's rounding, within
    the rule (its rounding factor), not a difference to report."""
    from cnncalc.backends.forward import RecordingGains, compare_outputs, largest_finite, seeded_parameters

    plan = analyze_spec({"input": [1, 1, 1, 2], "layers": [
        "layernorm", {"groupnorm": {"groups": 1, "affine": False}}, {"instancenorm": {"affine": True}}]}).plan
    gains = RecordingGains(seeded_parameters(plan, seed))
    ours = run_forward(plan, load_backend("numpy"), seed=seed, keep=lambda s: True, parameters=gains)
    theirs = run_forward(plan, load_backend("torch"), seed=seed, keep=lambda s: True)
    differences = compare_outputs(ours, theirs, rows=plan.steps, gains=gains.gains,
                                  input_peak=largest_finite(input_array(plan, 1, seed)))
    assert all(d.ok for d in differences), differences
    assert [step.layer.rounding_factor(step, 2) for step in plan.steps[1:]] == [
        pytest.approx(math.sqrt(2) + 2 / math.sqrt(1e-5))] * 2
