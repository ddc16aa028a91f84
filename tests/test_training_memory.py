"""Training memory (cnncalc/training.py and each kind's ``saved``) against PyTorch's own autograd.

The oracle: the module `cnncalc export --to pytorch` writes, run forward in training mode under
``torch.autograd.graph.saved_tensors_hooks``, counting the bytes of every distinct storage the
pack hook sees, parameters and buffers left out. cnncalc's ``saved_bytes`` must equal it.

- Every zoo network at batch 1 and 8, on the meta device (same autograd graph, no arithmetic):
  exactly, without and with --checkpoint (torch.utils.checkpoint, non-reentrant, on the same
  top-level entries); with --amp bf16 under torch.autocast("cpu") on fake CPU tensors, within 2%:
  fake tensors' meta kernels give batch, group and layer norm's statistics the input's bfloat16
  where the CPU kernels give float32, so that case cannot be exact there (the real-CPU runs below
  are, on the same kinds).
- Tours of every kind and variant (tests/cases/training/*.yaml) and zoo networks at a small input,
  on the CPU with real tensors, exactly: float32, autocast bf16 and fp16, checkpointed, and whole
  models in float64, bfloat16 and float16.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import cnncalc
from cnncalc import zoo
from cnncalc.api import analyze_spec, load_spec
from cnncalc.cli import cli
from cnncalc.errors import CnnCalcError
from cnncalc.export.pytorch import module_keys, pytorch_source
from cnncalc.kinds import KINDS, Composite, Layer, Leaf
from cnncalc.kinds.base import Autograd, Saved
from cnncalc.training import TrainingOptions, account, entries

torch = pytest.importorskip("torch")
from hypothesis import HealthCheck, assume, given, settings, strategies as st  # noqa: E402
from test_verify import specs as drawn_specs  # noqa: E402  (the drawn-spec strategy that covers every kind)
from torch._subclasses.fake_tensor import FakeTensorMode  # noqa: E402
from torch.utils.checkpoint import checkpoint  # noqa: E402

CASES = Path(__file__).parent / "cases" / "training"
TOURS = sorted(CASES.glob("*.yaml"))
HALF = {"bf16": torch.bfloat16, "fp16": torch.float16}


# ----------------------------------------------------------------------------- the oracle
def exported(analysis):
    """(the exported namespace, its model class) of an analysis."""
    namespace: dict = {"__name__": "exported"}
    exec(compile(pytorch_source(analysis, "spec"), "<exported>", "exec"), namespace)
    model_class = [v for v in namespace.values() if isinstance(v, type) and issubclass(v, torch.nn.Module)][-1]
    return namespace, model_class


def row_function(model, namespace, step):
    """One row of the exported forward as a function of its input values (the row's own code)."""
    code = step.layer.pytorch(step)
    name = ".".join(module_keys(step.name))
    module = model.get_parameter(name) if code.parameter else model.get_submodule(name) if code.module else None
    fields = {"x": "v[0]", "xs": ", ".join(f"v[{i}]" for i in range(len(step.inputs))),
              **{f"x{i}": f"v[{i}]" for i in range(len(step.inputs))}, "m": "m"}
    expression = compile(code.call.format(**fields), step.name, "eval")
    return lambda values: eval(expression, namespace, {"v": values, "m": module})


def checkpointed_forward(model, namespace, analysis, inputs):
    """The exported rows, each top-level entry of the spec under torch.utils.checkpoint
    (use_reentrant=False), as --checkpoint defines it; returns the output."""
    steps = analysis.plan.steps
    functions = [row_function(model, namespace, step) for step in steps]
    last_reader = {}
    for step in steps:
        for source in step.inputs:
            last_reader[source] = step.index
    values = {-1 - number: x for number, x in enumerate(inputs)}
    for span in entries(analysis.report.blocks, len(steps)):
        outside = sorted({source for index in span for source in steps[index].inputs if source < span.start})
        wanted = [index for index in span if last_reader.get(index, -1) >= span.stop or index == len(steps) - 1]

        def entry(*args, span=span, outside=outside, wanted=wanted):
            local = dict(zip(outside, args))
            for index in span:
                local[index] = functions[index]([local[source] for source in steps[index].inputs])
            return tuple(local[index] for index in wanted)

        values.update(zip(wanted, checkpoint(entry, *(values[i] for i in outside), use_reentrant=False)))
    return values[len(steps) - 1]


class Oracle:
    """The exported module of an analysis, built once per place and dtype and run as often as asked:
    "cpu" (real tensors), "meta" (the same autograd graph, no arithmetic) or "fake" (fake CPU
    tensors, which autocast treats as CPU tensors)."""

    def __init__(self, analysis):
        self.analysis = analysis
        self.namespace, self.model_class = exported(analysis)
        self.shapes = list(self.namespace["INPUT_SHAPES"].values())
        self.fake = FakeTensorMode()
        self.models: dict = {}

    def model(self, where: str, dtype):
        if (where, dtype) not in self.models:
            if where == "fake":
                with self.fake:
                    model = self.model_class().train()
            else:
                with torch.device("meta"):
                    model = self.model_class().train()
                if where == "cpu":  # memory filled with one number: random initialisation is slow
                    model = model.to_empty(device="cpu").to(dtype)
                    with torch.no_grad():
                        for tensor in [*model.parameters(), *model.buffers()]:
                            tensor.fill_(0.5)
            self.models[where, dtype] = model
        return self.models[where, dtype]

    def saved_bytes(self, batch: int, where: str = "cpu", amp: str | None = None, checkpointed: bool = False,
                    dtype=torch.float32) -> int:
        """Bytes of the distinct storages saved_tensors_hooks sees in a training-mode forward."""
        model = self.model(where, dtype)
        identity = (lambda s: s.data_ptr()) if where == "cpu" else (lambda s: s._cdata)  # meta: no addresses
        owned = {identity(t.untyped_storage()) for t in [*model.parameters(), *model.buffers()]}
        seen: dict[int, int] = {}

        def pack(tensor):
            storage = tensor.untyped_storage()
            if identity(storage) not in owned:
                seen[identity(storage)] = storage.nbytes()
            return tensor

        place = self.fake if where == "fake" else contextlib.nullcontext()
        autocast = torch.autocast("cpu", dtype=HALF[amp]) if amp else contextlib.nullcontext()
        with place:
            inputs = [torch.randn(batch, *shape, dtype=dtype, device="meta" if where == "meta" else "cpu")
                      for shape in self.shapes]
            with autocast, torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
                if checkpointed:
                    checkpointed_forward(model, self.namespace, self.analysis, inputs)
                else:
                    model(*inputs)
        return sum(seen.values())


def cnncalc_saved_bytes(spec, batch: int, **training) -> int:
    report = analyze_spec(spec, batch=batch, train_on="cpu", **training).report
    assert report.totals.saved_bytes == sum(row.saved_bytes for row in report.layers)
    return report.totals.saved_bytes


# ----------------------------------------------------------------------------- the zoo, batch 1 and 8
SLOW_UNDER_FAKE = {"densenet121", "densenet169", "efficientnet_b3", "inception_v3", "resnet152"}


@pytest.mark.parametrize("name", zoo.model_names())
def test_zoo_saved_bytes_equal_autograds(name):
    """Float32 and --checkpoint exactly on the meta device; --amp bf16 (and with --checkpoint) within
    2% on fake CPU tensors. The five slowest under fake tensors run --amp at batch 8 only."""
    spec = load_spec(name)
    oracle = Oracle(analyze_spec(spec))
    for batch in (1, 8):
        assert oracle.saved_bytes(batch, "meta") == cnncalc_saved_bytes(spec, batch)
        assert oracle.saved_bytes(batch, "meta", checkpointed=True) == cnncalc_saved_bytes(spec, batch, checkpoint=True)
        if batch == 1 and name in SLOW_UNDER_FAKE:
            continue
        expected = oracle.saved_bytes(batch, "fake", amp="bf16")
        assert cnncalc_saved_bytes(spec, batch, amp="bf16") == pytest.approx(expected, rel=0.02)
    expected = oracle.saved_bytes(8, "fake", amp="bf16", checkpointed=True)
    assert cnncalc_saved_bytes(spec, 8, amp="bf16", checkpoint=True) == pytest.approx(expected, rel=0.02)


# ----------------------------------------------------------------------------- real tensors, exactly
TOUR_CASES = [pytest.param(path, amp, id=f"{path.stem}-{amp or 'float32'}") for path in TOURS
              for amp in (None, "bf16", "fp16")]
ZOO_CASES = [pytest.param((name, "3x32x32"), amp, id=f"{name} at 32x32 ({why})-{amp or 'float32'}")
             for name, why in [("resnet18", "batch norm"), ("mobilenet_v3_small", "se, hardswish"),
                               ("shufflenet_v2_x1_0", "split, channel shuffle"),
                               ("convnext_tiny", "permute, layer norm, layer scale, drop path")]
             for amp in (None, "bf16")]  # CPU float16 convolutions are slow: the tours cover fp16
LENET = [pytest.param(("lenet5_original", None), amp, id=f"lenet5_original (connection table, subsampling)-"
                                                         f"{amp or 'float32'}") for amp in (None, "bf16", "fp16")]


@pytest.mark.parametrize("source, amp", TOUR_CASES + ZOO_CASES + LENET)
def test_saved_bytes_equal_autograds_on_real_tensors(source, amp):
    spec = load_spec(*source) if isinstance(source, tuple) else load_spec(source)
    oracle = Oracle(analyze_spec(spec))
    assert oracle.saved_bytes(2, amp=amp) == cnncalc_saved_bytes(spec, 2, amp=amp)
    assert oracle.saved_bytes(2, amp=amp, checkpointed=True) == cnncalc_saved_bytes(spec, 2, amp=amp, checkpoint=True)


def without_lrn(path: Path) -> dict:
    """A tour without `lrn`: PyTorch's CPU average pooling in 3-D has no half kernels."""
    data = yaml.safe_load(path.read_text())
    data["layers"] = [entry for entry in data["layers"] if not (isinstance(entry, dict) and "lrn" in entry)]
    return data


@pytest.mark.parametrize("path, dtype", [pytest.param(path, dtype, id=f"{path.stem}-{dtype}") for path in TOURS
                                         for dtype in ("float64", "bfloat16", "float16")
                                         if dtype == "float64" or path.stem != "tour3d"])
def test_whole_models_in_another_dtype(path, dtype):
    """No autocast: the model and its input in ``dtype`` (--dtype), statistics included. (PyTorch's
    CPU kernels for 3-D average pooling have no half versions: tour3d runs in float64 only.)"""
    spec = load_spec(path if dtype == "float64" else without_lrn(path))
    expected = analyze_spec(spec, batch=2, dtype=dtype, train_on="cpu").report.totals.saved_bytes
    assert Oracle(analyze_spec(spec)).saved_bytes(2, dtype=getattr(torch, dtype)) == expected


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(spec=drawn_specs(most_layers=6), batch=st.integers(1, 3), amp=st.sampled_from([None, "bf16"]),
       checkpointed=st.booleans())
def test_drawn_specs_over_every_kind(spec, batch, amp, checkpointed):
    """Random specs as tests/test_verify.py draws them (every kind, 1-D to 3-D), on real tensors."""
    loaded = load_spec(spec)
    oracle = Oracle(analyze_spec(loaded))
    try:
        expected = oracle.saved_bytes(batch, amp=amp, checkpointed=checkpointed)
    except (RuntimeError, ValueError, NotImplementedError):  # PyTorch refuses it (one value per channel)
        assume(False)
    assert cnncalc_saved_bytes(loaded, batch, amp=amp, checkpoint=checkpointed) == expected


# ----------------------------------------------------------------------------- what each kind states
def step_of(input_shape, entry, batch=2):
    """The plan step of a spec's last row, with a conv before it so its input requires grad."""
    spec = {"name": "t", "input": input_shape, "layers": [{"conv": {"filters": input_shape[0], "kernel": 1}}, entry]}
    return analyze_spec(load_spec(spec), batch=batch).plan.steps[-1]


def grad(step, batch=2, device="cpu", amp=None, compute="float32", needs=(True,)):
    return Autograd(batch, device, needs, compute, amp, (step.input_shape,) * len(needs))


def test_convolution_keeps_its_input_and_weight_and_a_padded_copy_for_asymmetric_padding():
    step = step_of([3, 8, 8], {"conv": {"filters": 4, "kernel": 3}})
    assert step.layer.saved(step, grad(step)) == [Saved.input(), Saved.weight(4 * 3 * 9)]
    step = step_of([3, 8, 8], {"conv": {"filters": 4, "kernel": 3, "padding": [[1, 0], [0, 2]]}})
    assert step.layer.saved(step, grad(step)) == [Saved.new(2 * 3 * 9 * 10, "compute", "padded input"),
                                                  Saved.weight(108)]


def test_max_pooling_keeps_its_input_and_int64_indices_of_its_output():
    step = step_of([3, 8, 8], {"maxpool": 2})
    assert step.layer.saved(step, grad(step)) == [Saved.input(), Saved.new(2 * 3 * 4 * 4, "int64", "indices")]


def test_activations_keep_their_output_or_their_input():
    for kind, source in [("relu", "output"), ("sigmoid", "output"), ("tanh", "output"), ("softmax", "output"),
                         ("log_softmax", "output"), ("gelu", "input"), ("silu", "input"), ("relu6", "input"),
                         ("hardswish", "input"), ("mish", "input"), ("elu", "input"), ("leaky_relu", "input")]:
        step = step_of([3, 4, 4], kind)
        assert [item.source for item in step.layer.saved(step, grad(step))] == [source], kind


def test_dropout_keeps_a_bool_mask_on_cuda_and_one_in_the_activations_dtype_on_the_cpu():
    step = step_of([3, 4, 4], {"dropout": 0.5})
    assert step.layer.saved(step, grad(step, device="cuda")) == [Saved.new(96, "bool", "mask")]
    assert step.layer.saved(step, grad(step, device="cpu")) == [Saved.new(96, "compute", "mask")]
    step = step_of([3, 4, 4], {"dropout": 0.0})
    assert step.layer.saved(step, grad(step)) == [] and step.layer.output_storage(step) == "view"


def test_batch_norm_statistics_are_float32_for_a_half_input_under_autocast():
    step = step_of([3, 4, 4], "batchnorm")
    assert step.layer.saved(step, grad(step, amp="bfloat16", compute="bfloat16")) == [
        Saved.input(), Saved.new(3, "float32", "save_mean"), Saved.new(3, "float32", "save_invstd")]
    # a whole bfloat16 model on the CPU: its parameters are bfloat16, so are the statistics
    assert step.layer.saved(step, grad(step, compute="bfloat16"))[1].dtype == "bfloat16"


def test_a_product_keeps_each_factor_for_the_others_gradient():
    step = step_of([3, 4, 4], {"mul": ["conv1", "conv1"]})
    both = Autograd(2, "cpu", (True, True), "float32", None, ((3, 4, 4), (3, 4, 4)))
    assert step.layer.saved(step, both) == [Saved.input(1), Saved.input(0)]
    one = Autograd(2, "cpu", (True, False), "float32", None, ((3, 4, 4), (3, 1, 1)))
    assert step.layer.saved(step, one) == [Saved.input(1)]


def test_linear_keeps_the_weight_copy_only_when_its_input_needs_a_gradient():
    step = step_of([3, 4, 4], {"linear": 5})
    assert step.layer.saved(step, grad(step, needs=(False,))) == [Saved.input(reshape="flatten")]
    assert step.layer.saved(step, grad(step)) == [Saved.input(reshape="flatten"), Saved.weight(48 * 5)]


def test_every_kind_that_owns_a_row_states_what_it_saves():
    owners = [cls for cls in KINDS.values() if issubclass(cls, Leaf) or "forward" in vars(cls)]
    assert owners and all(cls.saved is not Layer.saved for cls in owners), \
        [cls.kind for cls in owners if cls.saved is Layer.saved]
    assert {cls.kind for cls in KINDS.values() if cls not in owners} == {"repeat", "sequence", "depthwise_separable"}
    assert all(issubclass(KINDS[kind], Composite) for kind in ("repeat", "sequence", "depthwise_separable"))


def test_a_kind_that_does_not_know_what_it_saves_is_an_error_not_zero():
    class Unknown(Leaf):
        def infer(self, shape, ctx):
            return cnncalc.kinds.Outcome(shape=shape)

    Unknown.kind = "unknown kind"  # set after the class is made: it stays out of the registry
    analysis = analyze_spec(load_spec({"name": "t", "input": [2, 4, 4], "layers": [{"conv": {"filters": 2,
                                                                                        "kernel": 1}}]}))
    step = analysis.plan.steps[0]
    unknown = type(step)(**{**step.__dict__, "layer": Unknown()})
    with pytest.raises(CnnCalcError, match="does not know what PyTorch saves for the backward of `unknown kind`"):
        account(analysis.report.layers, [unknown], [], analysis.plan.inputs, 1, "float32", TrainingOptions())


# ----------------------------------------------------------------------------- the breakdown, by hand
SMALL = {"name": "small", "input": [4], "layers": [{"linear": {"features": 3, "name": "fc"}}, "relu",
                                                   {"linear": {"features": 2, "bias": False, "name": "out"}}]}


def test_training_memory_by_hand():
    """fc: 4*3 + 3 = 15 params, out: 6; batch 5, float32. fc keeps its input (5*4 floats), relu its
    output (5*3), out its input: the relu output again, counted once. Peak transient: relu's
    gradient in and out, 2 * 5*3 floats."""
    memory = cnncalc.analyze(SMALL, batch=5, optimizer="adamw").totals.training_memory
    assert memory == {"weights": 21 * 4, "gradients": 21 * 4, "optimizer": 2 * 21 * 4,
                      "saved_activations": (20 + 15) * 4, "weight_copies": 0, "peak_transient": 30 * 4,
                      "peak": (21 + 21 + 42 + 35 + 30) * 4}
    rows = cnncalc.analyze(SMALL, batch=5).layers
    assert [row.saved_bytes for row in rows] == [80, 60, 0]  # the relu output is counted at relu


def test_optimizers_and_their_state_dtype():
    def optimizer(**options):
        return cnncalc.analyze(SMALL, **options).totals.training_memory["optimizer"]

    assert [optimizer(optimizer=name) for name in ("sgd", "momentum", "adam", "adamw")] == [0, 84, 168, 168]
    assert optimizer(optimizer="adam", optimizer_dtype="bfloat16") == 2 * 21 * 2
    assert optimizer(optimizer="adam", dtype="float64") == 2 * 21 * 8  # the weights' dtype by default


def test_autocast_keeps_float32_master_weights_and_saves_half_copies_of_weights():
    """bf16: fc's input cast to bfloat16 (5*4 * 2 B), its weight copy not saved (its input needs no
    gradient); relu keeps its bfloat16 output (5*3 * 2); out keeps that output and a bfloat16
    copy of its weight (6 * 2)."""
    memory = cnncalc.analyze(SMALL, batch=5, amp="bf16").totals.training_memory
    assert (memory["weights"], memory["gradients"]) == (84, 84)
    assert (memory["saved_activations"], memory["weight_copies"]) == ((20 + 15) * 2, 12)


def test_checkpointing_keeps_each_top_level_entrys_inputs():
    """Entries fc, relu, out: kept are the network input (5*4), fc's output (5*3) and relu's (5*3);
    recomputing relu then holds its output again while its gradients (2 * 5*3) flow: the largest
    transient."""
    memory = cnncalc.analyze(SMALL, batch=5, checkpoint=True).totals.training_memory
    assert memory["saved_activations"] == (20 + 15 + 15) * 4
    assert memory["peak_transient"] == (15 + 30) * 4


def test_an_integer_dtype_has_no_training_memory():
    report = cnncalc.analyze(SMALL, dtype="int8")
    assert report.totals.training_memory is None and report.totals.saved_bytes is None
    assert all(row.saved_bytes is None for row in report.layers)
    assert "cannot be trained" in CliRunner().invoke(cli, ["table", "lenet5", "--dtype", "int8"]).output


def test_saved_bytes_grow_affinely_with_the_batch():
    for name in ("resnet18", "vgg16_bn", "lenet5_original"):
        at = [cnncalc.analyze(name, batch=batch).totals.saved_bytes for batch in (1, 2, 7)]
        assert at[2] - at[0] == 6 * (at[1] - at[0]), name


# ----------------------------------------------------------------------------- the contract
def test_table_json_contract():
    result = CliRunner().invoke(cli, ["table", "resnet18", "--format", "json", "--batch", "4", "--optimizer", "adam",
                                      "--amp", "fp16", "--checkpoint", "--train-on", "cpu"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    totals, memory = data["totals"], data["totals"]["training_memory"]
    assert set(memory) == {"weights", "gradients", "optimizer", "saved_activations", "weight_copies",
                           "peak_transient", "peak"}
    assert memory["peak"] == sum(value for key, value in memory.items() if key != "peak")
    assert totals["saved_bytes"] == sum(row["saved_bytes"] for row in data["layers"])
    assert totals["saved_bytes"] == memory["saved_activations"] + memory["weight_copies"]
    for key in ("saved_bytes", "training_memory", "peak_transient", "peak", "amp", "checkpoint", "train_on"):
        assert data["conventions"][key]
    assert "float16" in data["conventions"]["amp"] and "use_reentrant=False" in data["conventions"]["checkpoint"]
    assert {"training_bytes", "gradient_bytes", "optimizer_state_bytes"} <= set(totals)  # kept


def test_folded_rows_sum_their_saved_bytes():
    report = cnncalc.analyze("resnet18")
    folded = cnncalc.report.fold_to_depth(report, 0)
    assert sum(row.saved_bytes for row in folded.layers) == report.totals.saved_bytes


def test_the_table_summary_shows_the_training_memory():
    result = CliRunner().invoke(cli, ["table", "lenet5", "--optimizer", "adam", "--amp", "bf16"])
    line = next(line for line in result.output.splitlines() if line.startswith("- Training"))
    assert line.startswith("- Training (adam, bf16 autocast, on cuda): peak ") and "weight copies" in line


@pytest.mark.parametrize("arguments, message", [
    (["--amp", "bf16", "--dtype", "float16"], "--dtype must be float32"),
])
def test_unusable_training_options(arguments, message):
    result = CliRunner().invoke(cli, ["table", "lenet5", *arguments])
    assert result.exit_code == 2 and message in result.output
