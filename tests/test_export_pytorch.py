"""`cnncalc export SPEC --to pytorch`: the generated file, executed.

For every zoo spec (built on the meta device, which costs milliseconds whatever the model's size)
and for small specs that together use every layer kind (flat, 1-D, 2-D, 3-D, named inputs, the
composites): the output shape, the trainable parameters, the buffers and FlopCounterMode's MACs
are the spec's, and the submodules carry the spec's names. On the small specs (and on random
specs drawn as tests/test_verify.py draws them) the same weights give the same numbers as
cnncalc's torch backend.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings

import cnncalc
from cnncalc import zoo
from cnncalc.cli import cli
from cnncalc.commands.export import analysed
from cnncalc.export.pytorch import MODULE_ATTRIBUTES, module_keys, pytorch_source
from cnncalc.kinds import KINDS, Composite, Layer

torch = pytest.importorskip("torch")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from cnncalc.backends.forward import input_array, other_inputs, run_forward  # noqa: E402
from cnncalc.backends.parameters import SeededParameters  # noqa: E402
from cnncalc.backends.registry import load_backend  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TORCH = load_backend("torch", "cpu")
TOLERANCE = 1e-4  # relative to max(1, max |backend output|): float32 sums in another order


# ----------------------------------------------------------------------------- helpers
def exported(spec):
    """(analysis, the generated namespace, the model class) of a spec (name, path or mapping)."""
    loaded, analysis = analysed(spec, None)
    code = pytorch_source(analysis, "spec", loaded.description)
    namespace: dict = {"__name__": "exported"}
    exec(compile(code, "<exported>", "exec"), namespace)
    model_class = [v for v in namespace.values() if isinstance(v, type) and issubclass(v, torch.nn.Module)][-1]
    return analysis, namespace, model_class


def inputs_for(namespace, batch: int = 1, device: str = "meta"):
    return [torch.empty(batch, *shape, device=device) for shape in namespace["INPUT_SHAPES"].values()]


def assert_counts_and_names(spec) -> None:
    """Built on the meta device: output shape, parameters, buffers, MACs and names are the spec's."""
    analysis, namespace, model_class = exported(spec)
    with torch.device("meta"):
        model = model_class().eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = model(*inputs_for(namespace))
    totals, steps = analysis.report.totals, analysis.plan.steps
    assert tuple(out.shape[1:]) == tuple(steps[-1].output_shape)
    assert sum(p.numel() for p in model.parameters()) == totals.trainable_params
    buffers = sum(b.numel() for name, b in model.named_buffers() if not name.endswith("num_batches_tracked"))
    assert buffers == totals.non_trainable_params
    assert counter.get_total_flops() == 2 * totals.macs
    modules, parameters = dict(model.named_modules()), dict(model.named_parameters())
    codes = [(step.name, step.layer.pytorch(step)) for step in steps]
    with_modules = [name for name, code in codes if code.module is not None]
    assert [name for name in with_modules if name not in modules] == []
    assert all(not isinstance(modules[name], (torch.nn.ModuleDict, torch.nn.Sequential)) for name in with_modules)
    assert [name for name, code in codes if code.parameter is not None and name not in parameters] == []


def load_weights(model, plan, parameters, batch: int) -> None:
    """The arrays cnncalc's backends use (``SeededParameters``), as each kind maps them."""
    state = {}
    for step in plan.steps:
        arrays = parameters(step, (batch, *step.input_shape))
        for key, value in step.layer.pytorch_state(step, arrays).items():
            name = ".".join([*module_keys(step.name), *([key] if key else [])])
            state[name] = torch.from_numpy(numpy.ascontiguousarray(value))
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert unexpected == [] and all(key.endswith("num_batches_tracked") for key in missing), (missing, unexpected)


def assert_same_numbers(spec, batch: int = 2, seed: int = 3, backend_may_fail: bool = False) -> None:
    """The exported model and cnncalc's torch backend on the same weights and inputs.
    ``backend_may_fail``: a drawn spec the backend itself cannot run is no test of the export."""
    analysis, namespace, model_class = exported(spec)
    plan = analysis.plan
    model = model_class().eval()
    parameters = SeededParameters(seed)
    load_weights(model, plan, parameters, batch)
    last = plan.steps[-1].index
    results = run_forward(plan, TORCH, batch=batch, seed=seed, parameters=parameters,
                          keep=lambda step: step.index == last)
    if backend_may_fail:
        assume(all(r.ok for r in results))
    assert all(r.ok for r in results), [(r.name, r.error) for r in results if not r.ok]
    expected = results[-1].output
    arrays = [input_array(plan, batch, seed), *other_inputs(plan, batch, seed).values()]
    with torch.no_grad():
        got = model(*(torch.from_numpy(array) for array in arrays)).numpy()
    assert got.shape == expected.shape
    both = numpy.isfinite(expected)
    assert (numpy.isfinite(got) == both).all()
    scale = max(1.0, float(numpy.abs(expected[both]).max(initial=0.0)))
    assert float(numpy.abs(got[both] - expected[both]).max(initial=0.0)) <= TOLERANCE * scale


def written_kinds(layers) -> set[str]:
    kinds = set()
    for layer in layers:
        kinds.add(layer.kind)
        kinds |= written_kinds(layer.children())
    return kinds


# ----------------------------------------------------------------------------- small specs
def activations():
    return ["relu", "relu6", "sigmoid", "tanh", "gelu", "silu", "hardswish", "hardsigmoid", "mish", "selu",
            {"elu": 0.5}, {"leaky_relu": 0.2}, "identity", {"dropout": 0.3}]


SMALL = {
    "flat": {"name": "flat", "input": [12], "layers": [
        {"linear": 12, "name": "fc"}, "batchnorm", "layernorm", {"groupnorm": 3}, {"lrn": 3},
        {"prelu": {"num_parameters": 12, "init": 0.1}}, {"layer_scale": 0.5}, *activations(),
        {"add": {"from": ["fc", "identity1"]}}, {"mul": {"from": ["add1", "fc"]}, "name": "gated"},
        {"concat": {"from": ["gated", "fc"]}}, {"split": {"sizes": [10, 14], "names": ["left", "right"]}},
        {"linear": {"features": 6, "bias": False}, "from": "left"}, {"unsqueeze": 2}, {"squeeze": -1},
        {"reshape": [2, 3]}, "flatten", "softmax", "log_softmax",
    ]},
    "1d": {"name": "one-d", "input": "2@20", "layers": [
        {"conv": {"filters": 4, "kernel": 4, "padding": "same"}},
        {"conv": {"filters": 4, "kernel": 3, "padding": [[2, 0]], "dilation": 2, "groups": 2}},
        {"conv_transpose": {"filters": 6, "kernel": 3, "stride": 2, "padding": [[1, 0]], "output_padding": 1}},
        {"maxpool": {"kernel": 3, "stride": 2, "padding": [[1, 0]], "ceil_mode": True}},
        {"avgpool": {"kernel": 3, "stride": 2, "padding": [[0, 1]], "ceil_mode": True, "count_include_pad": False}},
        {"subsample": 2}, {"pad": {"padding": [[2, 1]], "mode": "reflect"}}, "instancenorm", "batchnorm",
        {"lrn": 2}, {"channel_shuffle": 2}, {"upsample": {"scale_factor": 1.5, "mode": "linear"}},
        {"unpool": {"factor": 2, "mode": "bed_of_nails"}}, {"adaptive_maxpool": 5},
        {"adaptive_avgpool": 3, "name": "adaptive"},
        {"global_maxpool": None, "name": "gmax"}, {"global_avgpool": None, "from": "adaptive", "name": "gavg"},
        {"add": {"from": ["gmax", "gavg"]}}, {"linear": 3},
    ]},
    "2d": {"name": "LeNet-ish 2-D", "input": [3, 17, 16], "layers": [
        {"conv": {"filters": 6, "kernel": [3, 2], "stride": 2, "padding": "same", "bias": False}},
        {"conv": {"filters": 4, "kernel": 3, "padding": [[1, 0], [0, 2]],
                  "connection_table": [[0, 1], [1, 2, 3], [4, 5], [0, 2, 3, 5]]}},
        {"conv_transpose": {"filters": 4, "kernel": 2, "stride": 2, "padding": [[0, 0], [1, 1]]}},
        {"maxpool": {"kernel": 2, "padding": [[1, 0], [1, 1]], "dilation": [2, 1]}},
        {"avgpool": {"kernel": 3, "stride": 1, "padding": 1, "count_include_pad": False}},
        {"pixel_unshuffle": 2}, {"pixel_shuffle": 2}, {"pad": {"padding": 1, "mode": "circular"}},
        {"pad": {"padding": [1, [0, 2]], "mode": "replicate"}}, {"pad": [[1, 0], 1]},
        {"residual": {"layers": [{"conv": {"filters": 4, "kernel": 3, "padding": 1}}, "batchnorm", "relu"],
                      "after": ["relu"]}, "name": "res"},
        {"residual": {"layers": [{"conv": {"filters": 8, "kernel": 3, "stride": 2, "padding": 1}}],
                      "shortcut": [{"conv": {"filters": 8, "kernel": 1, "stride": 2}}]}},
        {"se": {"reduction": 4, "activation": "silu", "gate": "hardsigmoid"}, "name": "se"},
        {"branches": [[{"conv": {"filters": 2, "kernel": 1}, "name": "1x1"}],
                      [{"conv": {"filters": 3, "kernel": 3, "padding": 1}, "name": "3x3"}, "relu"],
                      [{"maxpool": {"kernel": 3, "stride": 1, "padding": 1}}], []], "name": "mixed"},
        {"depthwise_separable": {"filters": 6, "kernel": 3, "padding": 1, "multiplier": 2}},
        {"sequence": [{"groupnorm": 2}, {"instancenorm": {"affine": True, "track_running_stats": True}},
                      {"layernorm": None}, {"drop_path": {"p": 0.2, "mode": "row"}}], "name": "block"},
        {"repeat": {"times": 2, "layers": [{"conv": {"filters": 6, "kernel": 3, "padding": 1}}, "relu"],
                    "name": "stage"}},
        {"permute": [0, 2, 3, 1]}, {"linear": {"features": 5, "flatten": False}}, {"layernorm": 5},
        {"permute": [0, 3, 1, 2]}, {"layer_scale": 1e-3},
        {"upsample": {"size": [7, 9], "mode": "bilinear"}, "name": "up"},
        {"upsample": {"scale_factor": [2, 1], "mode": "bicubic"}},
        {"conv": {"filters": 3, "kernel": 3}, "name": "down", "from": "up"},
        {"concat": {"from": ["up", "down"], "crop": True}},
        {"prelu": 8}, {"unpool": [1, 2]}, {"adaptive_avgpool": [None, 2]}, {"softmax": None},
        "flatten", {"linear": 4},
    ]},
    "3d": {"name": "three-d", "input": [2, 5, 6, 7], "layers": [
        {"conv": {"filters": 4, "kernel": [1, 3, 3], "padding": [0, 1, [0, 1]]}}, "batchnorm", "relu",
        {"conv_transpose": {"filters": 3, "kernel": 2, "stride": [1, 2, 1], "groups": 1}},
        {"maxpool": {"kernel": 2, "ceil_mode": True}}, {"avgpool": {"kernel": [1, 2, 2], "padding": [0, 1, 0]}},
        {"subsample": [1, 2, 1]}, {"instancenorm": {"affine": True}}, {"pad": [[1, 0], 0, 1]},
        {"upsample": {"scale_factor": 2, "mode": "trilinear"}}, {"unpool": 2}, {"adaptive_maxpool": [2, None, 3]},
        {"layernorm": None}, "global_avgpool", "flatten", {"linear": 2},
    ]},
    "named inputs": {"name": "two inputs", "inputs": {"image": "3x8x8", "meta": [5]}, "layers": [
        {"conv": {"filters": 4, "kernel": 3, "stride": 2}}, "relu", "global_avgpool", "flatten",
        {"name": "image_features", "linear": 6},
        {"linear": 6, "from": "meta", "name": "meta_features"},
        {"concat": {"from": ["image_features", "meta_features"]}}, {"linear": 2},
    ]},
    "awkward names": {"name": "x", "input": [3, 6, 6], "layers": [
        {"conv": {"filters": 4, "kernel": 3, "padding": 1}, "name": "forward"},
        {"conv": {"filters": 4, "kernel": 1}, "name": "forward.keys"},
        {"relu": None, "name": "class"}, {"relu": None, "name": "x"}, {"batchnorm": None, "name": "block1-0"},
        {"identity": None, "name": "0"}, {"identity": None, "name": "self"}, {"tanh": None, "name": "F"},
        {"sequence": [{"conv": {"filters": 4, "kernel": 1}, "name": "torch"}, "relu"], "name": "nn"},
        {"add": {"from": ["x", "nn.relu1", "0"]}, "name": "sum"}, {"split": {"chunks": 2, "names": ["a", "b"]}},
        {"add": {"from": ["a", "a"]}, "name": "twice"}, {"mul": {"from": ["twice", "b"]}},
        {"channel_shuffle": 2, "name": "shuffle"}, {"layer_scale": 0.5, "name": "scale-1"},
        {"layer_scale": 2.0, "name": "nn.train"},
    ]},
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_small_specs_count_and_name_as_the_spec(name):
    assert_counts_and_names(SMALL[name])


@pytest.mark.parametrize("name", sorted(SMALL))
def test_small_specs_compute_what_the_torch_backend_computes(name):
    assert_same_numbers(SMALL[name])


def test_the_small_specs_use_every_layer_kind():
    used = set().union(*(written_kinds(cnncalc.load_spec(spec).layers) for spec in SMALL.values()))
    assert set(KINDS) - used == set()


def test_every_kind_that_makes_a_row_writes_pytorch_code():
    makes_rows = {"residual", "branches", "se", "split"}  # composites whose own rows are merges or pieces
    missing = [kind for kind, cls in KINDS.items()
               if (not issubclass(cls, Composite) or kind in makes_rows) and cls.pytorch is Layer.pytorch]
    assert missing == []


# ----------------------------------------------------------------------------- the zoo
@pytest.mark.parametrize("model", zoo.model_names())
def test_every_zoo_spec_counts_and_names_as_the_spec(model):
    assert_counts_and_names(model)


@pytest.mark.parametrize("model", ["lenet5_original", "squeezenet1_1", "unet"])
def test_zoo_specs_compute_what_the_torch_backend_computes(model):
    spec = cnncalc.load_spec(model)
    small = {"lenet5_original": None, "squeezenet1_1": (3, 64, 64), "unet": (1, 188, 188)}[model]
    assert_same_numbers(spec if small is None else spec.with_input(small), batch=1)


# torchvision's own modules, where the zoo spec's names are torchvision's: its state_dict loads as it is
# and the two compute the same (tests/torchvision_models.py loads its definitions without its compiled ops).
TORCHVISION = {"resnet18": {}, "efficientnet_b0": {}, "convnext_tiny": {}, "shufflenet_v2_x1_0": {},
               "densenet121": {}, "inception_v3": {"aux_logits": False, "init_weights": False}}


@pytest.mark.parametrize("model", sorted(TORCHVISION))
def test_torchvision_state_dicts_load_into_the_export(model):
    import torchvision_models

    if not torchvision_models.available():
        pytest.skip("torchvision (and Pillow) are not installed")
    spec = cnncalc.load_spec(model)
    analysis, namespace, model_class = exported(spec.with_input((3, 96, 96)))
    exported_model, reference = model_class().eval(), torchvision_models.build(model, **TORCHVISION[model]).eval()
    exported_model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(exported_model(x), reference(x), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- drawn specs
def test_random_specs_export_exactly():
    """Random specs over every kind (tests/test_verify.py's strategy): counts and numbers."""
    from test_verify import specs

    @settings(max_examples=60, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(specs())
    def exact(spec):
        assert_counts_and_names(spec)
        assert_same_numbers(spec, backend_may_fail=True)

    exact()


# ----------------------------------------------------------------------------- the generated file
def test_the_file_reads_like_pytorch():
    _, analysis = analysed("resnet18", None)
    code = pytorch_source(analysis, "resnet18")
    assert "cnncalc" not in code.replace("`cnncalc export resnet18 --to pytorch`", "").replace(
        "as `cnncalc table` counts them", "")
    assert "self.conv1 = nn.Conv2d(3, 64, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3), bias=False)" in code
    assert '"downsample": nn.ModuleDict({' in code
    assert "x = x + maxpool  # layer1.0 (add): [N, 64, 56, 56]" in code
    assert "x = torch.flatten(x, 1)  # flatten1 (flatten): [N, 512]\n        x = self.fc(x)  # [N, 1000]" in code
    _, analysis = analysed({"name": "t", "input": [2, 3, 3], "layers": [{"linear": 4, "name": "fc"}]}, None)
    assert "x = self.fc(torch.flatten(x, 1))  # [N, 4]" in pytorch_source(analysis)  # the lecture's FC flattens
    ast.parse(code)


def test_asymmetric_padding_is_written_as_f_pad():
    _, analysis = analysed({"name": "t", "input": [1, 8, 8], "layers": [
        {"conv": {"filters": 2, "kernel": 2, "padding": "same"}},
        {"maxpool": {"kernel": 2, "padding": [[1, 0], [0, 1]]}}]}, None)
    code = pytorch_source(analysis)
    assert "x = self.conv1(F.pad(x, (0, 1, 0, 1)))" in code
    assert 'x = self.pool1(F.pad(x, (0, 1, 1, 0), value=float("-inf")))' in code


def test_awkward_names_stay_the_spec_names():
    analysis, namespace, model_class = exported(SMALL["awkward names"])
    modules = dict(model_class().named_modules())
    assert {"forward", "forward.keys", "class", "x", "block1-0", "0", "self", "F", "nn.torch"} <= set(modules)
    assert isinstance(modules["forward"], torch.nn.Conv2d) and isinstance(modules["forward.keys"], torch.nn.Conv2d)
    assert {"scale-1", "nn.train"} <= set(dict(model_class().named_parameters()))  # layer scales: parameters


def test_module_attributes_cover_pytorch_s():
    attributes = {name for name in dir(torch.nn.ModuleDict()) if not name.startswith("_")}
    assert attributes <= MODULE_ATTRIBUTES


def test_the_exporter_never_names_a_kind():
    """cnncalc/export/pytorch.py is generic: each kind writes its own code."""
    tree = ast.parse((ROOT / "cnncalc" / "export" / "pytorch.py").read_text(encoding="utf-8"))
    strings = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    assert strings & set(KINDS) == set()


# ----------------------------------------------------------------------------- the command
def test_export_writes_a_runnable_file(tmp_path):
    target = tmp_path / "net.py"
    result = CliRunner().invoke(cli, ["export", "lenet5_original", "--to", "pytorch", "-o", str(target)])
    assert result.exit_code == 0, result.output
    done = subprocess.run([sys.executable, str(target)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "output [1, 10], 60,840 trainable parameters"


def test_export_prints_to_stdout_by_default():
    result = CliRunner().invoke(cli, ["export", "lenet5"])
    assert result.exit_code == 0
    assert result.output.startswith('"""LeNet-5, written by `cnncalc export lenet5 --to pytorch`.')
    assert "class LeNet5(nn.Module):" in result.output


def test_export_knows_pytorch_and_onnx_only():
    result = CliRunner().invoke(cli, ["export", "lenet5", "--to", "tensorflow"])
    assert result.exit_code == 2 and "Invalid value for '--to': 'tensorflow'" in result.output


def test_export_never_overwrites_the_spec(tmp_path):
    spec = tmp_path / "net.yaml"
    spec.write_text("input: [1, 8, 8]\nlayers:\n  - conv: {filters: 2, kernel: 3}\n")
    result = CliRunner().invoke(cli, ["export", str(spec), "-o", str(spec)])
    assert result.exit_code == 2 and "refusing to overwrite" in result.output
    assert spec.read_text().startswith("input:")


def test_export_reports_a_bad_spec_in_one_line(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("input: [1, 8, 8]\nlayers:\n  - conv: {filters: 2, kernel: 9}\n")
    result = CliRunner().invoke(cli, ["export", str(spec)])
    assert result.exit_code == 2 and "error:" in result.output and "Traceback" not in result.output
