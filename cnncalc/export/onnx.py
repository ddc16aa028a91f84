"""`cnncalc export SPEC --to onnx [-o net.onnx]`: the spec as an ONNX model, written with the
``onnx`` package's helpers alone (no PyTorch).

The model's batch axis is fixed at 1 (ONNX's shape inference of Resize loses a symbolic batch,
so a fixed one lets every tool infer every shape); every other size is cnncalc's.
Its weights are zeros (running variances one, constants such as a layer scale their value), or
seeded random values with ``weights="random"``; the model's ``doc_string`` says which. Opset 20.

This module is generic, as ``export/pytorch.py``: it walks the plan's steps in the engine's order
and asks each row's layer kind for its nodes (``Layer.onnx(step, graph)``, with ``graph`` an
``OnnxGraph``: the row's input tensors, and helpers that add nodes, parameters and constants
named after the row). It never looks at kind names. Nodes are named as PyTorch's exporter names
them (``/layer1.0.conv1/Conv``), so `cnncalc table net.onnx` reads the spec's names back.
"""
from __future__ import annotations

import math

from ..errors import CnnCalcError

OPSET = 20
BATCH = 1  # a fixed batch: ONNX's Resize shape inference loses a symbolic batch axis
INSTALL = 'writing ONNX files needs the onnx package: pip install "cnncalc[onnx]"'


class OnnxGraph:
    """What a kind's ``onnx`` method writes into: nodes, initializers and the current row's inputs."""

    def __init__(self, onnx, numpy, weights: str = "zero", seed: int = 0, parameters=None):
        if weights not in ("zero", "random"):
            raise CnnCalcError(f"unknown weights {weights!r}: zero or random")
        self.given = parameters  # (step, x_shape) -> {key: array}, e.g. a backend's SeededParameters
        self.onnx, self.np = onnx, numpy
        self.weights = weights
        self.rng = numpy.random.default_rng(seed)
        self.nodes: list = []
        self.initializers: list = []
        self.names: set[str] = set()
        self.step = None
        self.inputs: list[str] = []
        self.input_shapes: list[tuple[int, ...]] = []  # per sample, each of ``inputs``

    # ------------------------------------------------------------------ the current row
    @property
    def x(self) -> str:
        """The row's first input tensor."""
        return self.inputs[0]

    def _unique(self, name: str) -> str:
        candidate, number = name, 1
        while candidate in self.names:
            candidate, number = f"{name}_{number}", number + 1
        self.names.add(candidate)
        return candidate

    def node(self, op: str, inputs: list[str], outputs: int = 1, **attributes):
        """Adds one node of the current row (named ``/ROW/Op``, as PyTorch's exporter scopes it);
        returns its output's name (a list when ``outputs`` > 1). None attributes are left out."""
        scope = "/" + self.step.name.replace("/", "_")
        name = self._unique(f"{scope}/{op}")
        names = [self._unique(f"{name}_output_{i}") for i in range(outputs)]
        attributes = {key: value for key, value in attributes.items() if value is not None}
        self.nodes.append(self.onnx.helper.make_node(op, inputs, names, name=name, **attributes))
        return names[0] if outputs == 1 else names

    def constant(self, values, dtype: str = "int64", label: str = "const") -> str:
        """A small constant input (shapes, axes, bounds) as an initializer."""
        array = self.np.asarray(values, dtype=dtype)
        name = self._unique(f"/{self.step.name}/{label}")
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def parameters(self) -> dict[str, str]:
        """The row's parameter tensors, as the kind's ``tensors`` describes them (PyTorch's names and
        layouts, which are ONNX's for these ops), as initializers named ``ROW.key``."""
        return {key: self.parameter(key, array.shape, array) for key, array in self.arrays().items()}

    def arrays(self) -> dict:
        """The row's parameter arrays, in PyTorch's layouts: given (``parameters``), or filled."""
        step = self.step
        if self.given is not None:
            return {key: self.np.asarray(array, dtype="float32")
                    for key, array in self.given(step, (1, *step.input_shape)).items()}
        described = step.layer.tensors(step, (1, *step.input_shape))
        return {key: self.fill(param) for key, param in described.items()}

    def parameter(self, key: str, shape, array=None) -> str:
        array = self.np.zeros(shape, dtype="float32") if array is None else array
        name = self._unique(f"{self.step.name}.{key}")
        array = self.np.ascontiguousarray(array.reshape(shape), dtype="float32")
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def fill(self, param):
        np = self.np
        shape = tuple(param.shape)
        if param.fill == "constant":
            return np.full(shape, param.value, dtype="float32")
        if param.fill == "ones":
            return np.ones(shape, dtype="float32")
        if self.weights == "zero":
            return np.zeros(shape, dtype="float32")
        if param.fill == "he":
            return (self.rng.standard_normal(shape) * math.sqrt(2.0 / max(1.0, param.fan_in))).astype("float32")
        if param.fill == "bias":
            bound = 1 / math.sqrt(max(1.0, param.fan_in))
            return self.rng.uniform(-bound, bound, shape).astype("float32")
        if param.fill == "scale":
            return (1 + 0.1 * self.rng.standard_normal(shape)).astype("float32")
        if param.fill == "shift":
            return (0.1 * self.rng.standard_normal(shape)).astype("float32")
        return np.zeros(shape, dtype="float32")  # "zeros" and anything else


def unsupported(step, why: str = "") -> CnnCalcError:
    """The error of a row that has no ONNX form (yet): names its kind."""
    return CnnCalcError(f"no ONNX export for kind `{step.kind}` yet (row `{step.name}`)" + (f": {why}" if why else ""))


def onnx_model(analysis, source: str | None = None, description: str | None = None, weights: str = "zero",
               seed: int = 0):
    """The ``onnx.ModelProto`` of an analysed spec (``cnncalc.engine.Analysis``), checked with
    ``onnx.checker.check_model``."""
    model = build(analysis, source, description, weights, seed)[0]
    check(model)
    return model


def build(analysis, source: str | None = None, description: str | None = None, weights: str = "zero",
          seed: int = 0, parameters=None):
    """(the ONNX model, unchecked, and the name of each plan step's output tensor, in the plan's order)."""
    try:
        import numpy
        import onnx
    except ImportError:
        raise CnnCalcError(INSTALL) from None
    from onnx import TensorProto, helper

    plan, report = analysis.plan, analysis.report
    graph = OnnxGraph(onnx, numpy, weights, seed, parameters)
    homes: dict[int, str] = {}
    shapes: dict[int, tuple[int, ...]] = {}
    graph_inputs = []
    for number, (name, shape) in enumerate(plan.inputs.items(), start=1):
        graph.names.add(name)
        homes[-number] = name
        shapes[-number] = tuple(shape)
        graph_inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH, *shape]))
    for step in plan.steps:
        graph.step = step
        graph.inputs = [homes[i] for i in step.inputs]
        graph.input_shapes = [shapes[i] for i in step.inputs]
        try:
            homes[step.index] = step.layer.onnx(step, graph)
        except CnnCalcError as exc:  # located at the row, as every spec error is
            raise exc.located(file=plan.file, line=step.line, path=step.path, name=step.name) from None
        shapes[step.index] = tuple(step.output_shape)
    last = plan.steps[-1]
    output = homes[last.index]
    if output in plan.inputs:  # a network that passes its input on: ONNX needs a node
        graph.step = last
        output = graph.node("Identity", [output])
    outputs = [helper.make_tensor_value_info(output, TensorProto.FLOAT, [BATCH, *last.output_shape])]
    filled = ("given by the caller" if parameters is not None else "zeros (running variances one, constants such as a layer scale or PReLU slopes their value)"
              if weights == "zero" else f"seeded random values (numpy default_rng({seed}), He-normal weights)")
    doc = (f"{plan.name}, written by `cnncalc export {source or plan.name} --to onnx`."
           + (f" {description.rstrip('.')}." if description else "")
           + f" Weights: {filled}. Batch axis: fixed at {BATCH} (shapes are per sample times {BATCH})."
           f" Trainable parameters: {report.totals.trainable_params:,};"
           f" multiply-accumulates per sample: {report.totals.macs // report.batch:,}.")
    onnx_graph = helper.make_graph(graph.nodes, _graph_name(plan.name), graph_inputs, outputs,
                                   graph.initializers, doc_string=doc)
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="cnncalc", doc_string=doc)
    model.ir_version = min(model.ir_version, 10)  # readable by older runtimes as well
    return model, [homes[step.index] for step in plan.steps[:-1]] + [output]


def check(model) -> None:
    """onnx.checker.check_model on the model (or its serialized bytes: a large model is then
    serialized once)."""
    import onnx

    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:  # pragma: no cover - a bug in a kind's nodes
        raise CnnCalcError(f"the ONNX model fails onnx.checker: {exc}") from None


def _graph_name(name: str) -> str:
    return name or "cnncalc"


def onnx_bytes(analysis, source: str | None = None, description: str | None = None, weights: str = "zero",
               seed: int = 0) -> bytes:
    """The checked model, serialized."""
    data = build(analysis, source, description, weights, seed)[0].SerializeToString()
    check(data)
    return data
