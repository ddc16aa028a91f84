"""`cnncalc run --cross-check`: the float32 rule (each layer may differ by what its inputs already
differ, times its gain, plus its own rounding) and the fixed `--tolerance`.

The sigmoid case: a conv whose outputs reach about 2000 differs between backends by a few float32
ulps of 2000 (~3e-7 relative, ~6e-4 absolute), and a sigmoid after it turns that into up to
0.25 x 6e-4 = 1.5e-4, over the old fixed 1e-4 though nothing is wrong. The drift is injected
(3e-7 of the conv's largest output, added to every output) so the case is the same on every
machine; a mismatch of the same small size made by the layer itself must still fail.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnncalc.cli import cli

torch = pytest.importorskip("torch", reason="the cross-check compares against PyTorch")
from cnncalc.backends import torch_backend, torch_ops  # noqa: E402  (imports torch)
from cnncalc.backends.forward import FLOAT32_EPS, SAFETY, gain, reduction_length  # noqa: E402
from test_verify import specs  # noqa: E402  (the random specs of every layer kind)

CONV_THEN_SIGMOID = "name: conv then sigmoid\ninput: [3, 12, 12]\n{values}layers:\n" \
                    "  - conv: {{name: conv, filters: 4, kernel: 5}}\n  - sigmoid\n"


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


def cross_check(spec, *options, seed=0):
    result = invoke("run", str(spec), "--cross-check", "torch", "--format", "json", "--seed", str(seed), *options)
    data = json.loads(result.stdout)
    return result.exit_code, data["cross_check"], {layer["name"]: layer for layer in data["cross_check"]["layers"]}


@pytest.fixture
def big_conv_then_sigmoid(tmp_path):
    """Pixel values up to 1000 on the left half and zeros on the right: the conv's outputs reach
    about 2000, and those that see only zeros are its bias, where the sigmoid is steepest (1/4)."""
    image = np.random.default_rng(0).uniform(0, 1000, (3, 12, 12)).astype(np.float32)
    image[:, :, 6:] = 0
    np.save(tmp_path / "image.npy", image)
    spec = tmp_path / "net.yaml"
    spec.write_text(CONV_THEN_SIGMOID.format(values="input_values: image.npy\n"))
    return spec


@pytest.fixture
def conv_drift(monkeypatch):
    """torch's conv off by 3e-7 of its largest output: float32 drift of a 75-term sum, no bug."""
    conv = torch_ops.conv

    def drifting(*args):
        out = conv(*args)
        return out + 3e-7 * out.abs().max()

    monkeypatch.setattr(torch_ops, "conv", drifting)


def test_float32_drift_amplified_at_a_sigmoid_passes_by_default(big_conv_then_sigmoid, conv_drift):
    code, check, layers = cross_check(big_conv_then_sigmoid)
    assert code == 0 and check["ok"] is True
    assert check["rule"] == "float32" and check["tolerance"] is None and check["safety"] == SAFETY
    conv, sigmoid = layers["conv"], layers["sigmoid1"]
    assert conv["max_abs"] > 1000 and 1e-7 < conv["relative"] < 1e-6  # a few ulps of the largest output
    assert sigmoid["max_abs_diff"] > 1e-4  # what the fixed tolerance calls a failure
    # the sigmoid may show a quarter (its steepest slope) of what reached it, plus its own rounding
    assert sigmoid["carried"] == pytest.approx(0.25 * conv["max_abs_diff"])
    assert sigmoid["allowed"] == pytest.approx(sigmoid["carried"] + sigmoid["local"])
    assert sigmoid["local"] == pytest.approx(SAFETY * FLOAT32_EPS * 1.0)  # n = 1, outputs up to 1
    assert sigmoid["max_abs_diff"] <= sigmoid["allowed"] and conv["max_abs_diff"] <= conv["allowed"]


def test_the_same_drift_fails_an_explicit_fixed_tolerance(big_conv_then_sigmoid, conv_drift):
    code, check, layers = cross_check(big_conv_then_sigmoid, "--tolerance", "1e-4")
    assert code == 1 and check["ok"] is False
    assert check["rule"] == "fixed" and check["tolerance"] == 1e-4 and "safety" not in check
    assert layers["conv"]["ok"] is True and layers["sigmoid1"]["ok"] is False
    for layer in layers.values():  # the documented rule: |diff| / max(1, max |reference|) <= tolerance
        assert layer["ok"] == (layer["relative"] <= 1e-4) and layer["tolerance"] == 1e-4
        assert layer["allowed"] == pytest.approx(1e-4 * max(1.0, layer["max_abs"]))


def test_without_drift_both_rules_pass_the_big_conv(big_conv_then_sigmoid):
    assert cross_check(big_conv_then_sigmoid)[0] == 0
    assert cross_check(big_conv_then_sigmoid, "--tolerance", "1e-4")[0] == 0


@pytest.fixture
def small_conv_then_sigmoid(tmp_path):
    spec = tmp_path / "net.yaml"
    spec.write_text(CONV_THEN_SIGMOID.format(values=""))  # a standard-normal input from --seed
    return spec


@pytest.mark.parametrize("seed", [0, 1])
def test_one_weight_off_by_a_thousandth_fails_at_that_layer_only(small_conv_then_sigmoid, monkeypatch, seed):
    conv = torch_ops.conv

    def wrong_weight(x, weight, *rest):
        weight = weight.clone()
        flat = weight.view(-1)
        flat[flat.abs().argmax()] *= 1.001
        return conv(x, weight, *rest)

    monkeypatch.setattr(torch_ops, "conv", wrong_weight)
    code, check, layers = cross_check(small_conv_then_sigmoid, seed=seed)
    assert code == 1 and check["ok"] is False
    assert layers["conv"]["ok"] is False and layers["conv"]["carried"] == 0  # the input is the same array
    assert layers["conv"]["max_abs_diff"] > 3 * layers["conv"]["allowed"]
    assert layers["sigmoid1"]["ok"] is True  # it only passes on what the conv got wrong


def test_an_ordering_bug_with_the_right_shape_fails(tmp_path, monkeypatch):
    """torch flattens channels-last: the same 144 numbers in another order."""
    spec = tmp_path / "flat.yaml"
    spec.write_text("input: [1, 8, 8]\nlayers:\n  - conv: {filters: 4, kernel: 3}\n  - relu\n  - flatten\n"
                    "  - linear: 10\n")

    def channels_last(x):
        return x.permute(0, *range(2, x.dim()), 1).reshape(x.shape[0], -1)

    monkeypatch.setattr(torch_ops, "flatten", channels_last)
    code, check, layers = cross_check(spec)
    assert code == 1
    assert [name for name, layer in layers.items() if not layer["ok"]] == ["flatten1"]
    text = invoke("run", str(spec), "--cross-check", "torch")
    assert text.exit_code == 1 and "float32 rule" in text.output and "1 layers differ" in text.output
    assert cross_check(spec, "--tolerance", "1e-4")[0] == 1


def test_a_shape_bug_fails_and_its_successors_are_not_blamed(tmp_path, monkeypatch):
    spec = tmp_path / "pool.yaml"
    spec.write_text("input: [2, 8, 8]\nlayers:\n  - conv: {filters: 4, kernel: 3, padding: 1}\n  - maxpool: 2\n"
                    "  - conv: {filters: 2, kernel: 3}\n")
    pool = torch_ops.max_pool
    monkeypatch.setattr(torch_ops, "max_pool", lambda *args: pool(*args).transpose(2, 3))
    code, check, layers = cross_check(spec)
    assert code == 1
    assert [name for name, layer in layers.items() if not layer["ok"]] == ["pool1"]


def test_layer_fields_extend_the_old_ones(small_conv_then_sigmoid):
    code, check, layers = cross_check(small_conv_then_sigmoid)
    assert code == 0
    assert {"backend", "tolerance", "layers", "ok", "rule", "safety"} <= set(check)
    conv = layers["conv"]
    assert {"name", "max_abs_diff", "max_abs", "relative", "ok"} <= set(conv)  # the fields before the rule
    assert conv["reduction_length"] == 3 * 5 * 5  # C x kernel volume
    assert conv["tolerance"] == pytest.approx(conv["allowed"] / max(1.0, conv["max_abs"]))
    assert layers["sigmoid1"]["reduction_length"] == 1


def test_gains_and_reduction_lengths():
    import cnncalc
    import cnncalc.api

    steps = cnncalc.api.analyze_spec({"input": [3, 8, 8], "layers": [
        {"conv": {"filters": 2, "kernel": 3, "groups": 1}}, "batchnorm", "sigmoid", "softmax",
        {"avgpool": 2}, "flatten", {"linear": 4}]}).plan.steps
    conv, bn, sigmoid, softmax, pool, flatten, linear = steps
    weight = np.arange(54, dtype=np.float32).reshape(2, 3, 3, 3) - 30
    assert gain(conv, {"weight": weight}) == np.abs(weight).reshape(2, -1).sum(axis=1).max()
    bn_arrays = {"running_var": np.array([1, 0.25], np.float32), "weight": np.array([2, -3], np.float32)}
    assert gain(bn, bn_arrays) == pytest.approx(3 / np.sqrt(0.25 + 1e-5))
    assert (gain(sigmoid, {}), gain(softmax, {}), gain(pool, {}), gain(flatten, {})) == (0.25, 0.5, 1.0, 1.0)
    assert [reduction_length(step) for step in steps] == [27, 1, 1, 2, 4, 1, 2 * 3 * 3]


def test_tf32_convolutions_on_a_gpu_count_with_tf32_epsilon(monkeypatch):
    """No GPU needed: the backend only reads PyTorch's switches and the device's generation."""
    from cnncalc.kinds import KINDS

    conv, conv_transpose, linear, relu = (KINDS[kind] for kind in ("conv", "conv_transpose", "linear", "relu"))
    cuda = torch_backend.TorchBackend("cuda")
    assert torch_backend.TF32_SWITCHES["convolution"]() == torch.backends.cudnn.allow_tf32  # PyTorch's own
    assert torch_backend.TF32_SWITCHES["matmul"]() == torch.backends.cuda.matmul.allow_tf32
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setitem(torch_backend.TF32_SWITCHES, "convolution", lambda: True)  # PyTorch's default for cuDNN
    monkeypatch.setitem(torch_backend.TF32_SWITCHES, "matmul", lambda: False)  # ... and for matmuls
    assert cuda.epsilon(conv) == 2.0 ** -10 and cuda.epsilon(conv_transpose) == 2.0 ** -10
    assert cuda.epsilon(linear) == FLOAT32_EPS and cuda.epsilon(relu) == FLOAT32_EPS
    assert torch_backend.TorchBackend("cpu").epsilon(conv) == FLOAT32_EPS
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))  # no TF32 before Ampere
    assert cuda.epsilon(conv) == FLOAT32_EPS


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(spec=specs(), seed=st.integers(0, 2**16))
def test_the_float32_rule_passes_correct_backends_on_random_specs(spec, seed):
    """Every layer kind, drawn as the shape property test draws them: numpy and torch agree under
    the rule (measured margin: the largest local difference was 2.1 of the 16 allowed)."""
    import cnncalc
    import cnncalc.api
    from cnncalc.backends.forward import RecordingGains, compare_outputs, input_array, largest_finite, run_forward, \
        seeded_parameters
    from cnncalc.backends.registry import load_backend

    plan = cnncalc.api.analyze_spec(spec).plan
    gains = RecordingGains(seeded_parameters(plan, seed))
    ours = run_forward(plan, load_backend("numpy"), seed=seed, keep=lambda row: True, parameters=gains)
    theirs = run_forward(plan, load_backend("torch"), seed=seed, keep=lambda row: True)
    differences = compare_outputs(ours, theirs, rows=plan.steps, gains=gains.gains,
                                  input_peak=largest_finite(input_array(plan, 1, seed)))
    assert len(differences) == len(plan.steps)
    over = [(d.name, d.max_abs_diff, d.allowed) for d in differences if not d.ok]
    assert not over, f"{spec}: {over}"
