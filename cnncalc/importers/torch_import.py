"""PyTorch models -> cnncalc specs, through torch.fx (issue 13: `cnncalc import --torch`).

``spec_from_torch("pkg.module:factory", (3, 224, 224))`` (or ``"path/to/file.py:ClassName"``)
builds the model by calling the factory with no arguments; ``spec_from_module(model, shape,
name)`` takes a model already built. Both return spec data (``{"name", "input", "layers",
...}``) for ``cnncalc.load_spec``.

How it works:

1. ``torch.fx`` traces the model in eval mode (so training-only branches, such as Inception's
   auxiliary head, are left out, as in the zoo). The standard ``torch.nn`` layers are leaves, so
   are subclasses of them that keep the base class's ``forward`` (torchvision's ``Conv3DSimple``)
   and torchvision's ``StochasticDepth``, ``Permute`` and ``LayerNorm2d``; every other module
   (``Sequential``, a ResNet block, ``SqueezeExcitation``) is traced through, so its own
   modules become rows.
2. The graph runs once on a batch of 2 (on the meta device where the model allows it: shapes,
   no arithmetic), which gives every node's shape and the values of shape arithmetic
   (``x.view(x.size(0), -1)``); batch 2 tells the batch axis from a size-1 axis.
3. Every node becomes cnncalc rows: ``call_module`` by the module's class, ``call_function``
   and ``call_method`` by the function, wired with ``from:`` where a row does not read the one
   before it. A module's qualified name (``layer1.0.conv1``) is its row's name (a module called
   again gets ``_1``, ``_2``), a function's row gets the fx node name (``add``, ``cat_3``), a
   parameter used as a layer scale its own name (``features.1.0.layer_scale``).
4. Whatever cannot be mapped is collected and raised as one ``CnnCalcError`` naming every such
   module (by its path and class) and function (by its fx node name, the function and the
   module it sits in). Nothing is skipped silently; the only nodes without a row of their own
   are those that compute no tensor (``x.size()``, integer arithmetic), those that give their
   input back unchanged (``contiguous``, ``clone``, ``detach``, ``to``) and the view - transpose
   - view of a written-out channel shuffle, which is one ``channel_shuffle`` row.
5. The spec is analysed: its trainable params must equal ``sum(p.numel() for p in
   model.parameters())`` and every row's output shape the shape the node had in PyTorch;
   anything else is a ``CnnCalcError`` naming the row, never a spec that is silently wrong.

torch is imported only here, and only when called: ``pip install "cnncalc[torch]"``.
"""
from __future__ import annotations

import importlib
import importlib.util
import itertools
import operator
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import CnnCalcError, Location

INSTALL_HINT = 'pip install "cnncalc[torch]"'
PROBE_BATCH = 2  # the probe's batch: 2 tells the batch axis apart from an axis of size 1


def _torch():
    try:
        import torch
        import torch.fx  # noqa: F401
    except ImportError as exc:
        raise CnnCalcError(f"importing a PyTorch model needs PyTorch, which cannot be imported ({exc}): "
                           f"{INSTALL_HINT}") from None
    return torch


# ============================================================================ entry points
def spec_from_torch(target: str, input_shape: tuple[int, ...]) -> dict:
    """'pkg.module:factory' or 'path/to/file.py:ClassName' (called with no arguments) -> spec data
    {"name": ..., "input": [C, *spatial], "layers": [...]} for cnncalc.load_spec; raises
    cnncalc.errors.CnnCalcError listing every module/function it cannot map (with its fx node
    name / module path)."""
    try:
        model, name = load_target(target)
        return spec_from_module(model, input_shape, name)
    except CnnCalcError as exc:  # located at the target: `net.py:Net: error: ...`
        raise type(exc)(exc.message, Location(file=str(target))) from None


def spec_from_module(model, input_shape, name: str | None = None) -> dict:
    """An ``nn.Module`` (on any device, the meta device included) and its per-sample input shape
    ``[C, *spatial]`` -> spec data; see the module docstring."""
    torch = _torch()
    name = str(name or type(model).__name__)
    try:
        return _spec_from_module(torch, model, input_shape, name)
    except CnnCalcError as exc:  # located at the model: `Net: error: ...`
        raise type(exc)(exc.message, exc.loc if exc.loc.file else Location(file=name)) from None


def _spec_from_module(torch, model, input_shape, name) -> dict:
    if not isinstance(model, torch.nn.Module):
        raise CnnCalcError(f"expected a torch.nn.Module, not {type(model).__name__}")
    shape = _input_shape(input_shape)
    states = [(module, module.training) for module in model.modules()]
    model.eval()  # trace the inference graph: training-only branches (aux heads) are left out
    try:
        gm = _trace(torch, model, name)
        inputs = [n for n in gm.graph.nodes if n.op == "placeholder"]
        required = [n.target.lstrip("*") for n in inputs if not n.args]
        if len(required) != 1:
            raise CnnCalcError(f"forward takes {len(required)} inputs without defaults "
                               f"({', '.join(required) or 'none'}); cnncalc imports models with one input")
        values = _probe(torch, gm, model, shape, name)
        importer = _Importer(torch, gm, values)
        layers = importer.run()
    finally:
        for module, training in states:
            module.training = training
    spec = {
        "name": name,
        "description": f"{name}, imported from PyTorch (torch.fx) at input {'x'.join(map(str, shape))}",
        "input": list(shape),
        "rounding": "floor",  # PyTorch floors sizes that are not whole
        "layers": layers,
    }
    _check(spec, model, importer)
    return spec


def load_target(target: str):
    """'pkg.module:factory' or 'path/to/file.py:ClassName' -> (the model, the factory's name)."""
    torch = _torch()
    where, sep, attribute = str(target).rpartition(":")
    if not sep or not where or not attribute:
        raise CnnCalcError(f"--torch takes 'package.module:factory' or 'path/to/file.py:ClassName', not {target!r}")
    if where.endswith(".py") or "/" in where or os.sep in where:
        module = _module_from_file(Path(where))
    else:
        try:
            module = importlib.import_module(where)
        except Exception as exc:  # anything the module raises while importing
            raise CnnCalcError(f"cannot import `{where}`: {type(exc).__name__}: {exc}") from None
    factory = module
    for part in attribute.split("."):
        if not hasattr(factory, part):
            known = sorted(n for n in dir(module) if not n.startswith("_"))
            raise CnnCalcError(f"`{where}` has no `{attribute}`" + (f" (it has: {', '.join(known[:12])}"
                                                                    f"{', ...' if len(known) > 12 else ''})"
                                                                    if known else ""))
        factory = getattr(factory, part)
    if not callable(factory):
        raise CnnCalcError(f"`{target}` is a {type(factory).__name__}, not a class or function that builds a model")
    try:
        model = factory()
    except Exception as exc:
        raise CnnCalcError(f"`{target}`: calling {attribute}() failed: {type(exc).__name__}: {exc} (it is called "
                           "with no arguments; write a small function that passes them)") from None
    if not isinstance(model, torch.nn.Module):
        raise CnnCalcError(f"`{target}`: {attribute}() returned a {type(model).__name__}, not a torch.nn.Module")
    return model, attribute.split(".")[-1]


def _module_from_file(path: Path):
    if not path.is_file():
        raise CnnCalcError(f"`{path}`: no such file")
    unique = f"_cnncalc_torch_import_{abs(hash(str(path.resolve())))}_{path.stem}"
    spec = importlib.util.spec_from_file_location(unique, path)
    if spec is None or spec.loader is None:
        raise CnnCalcError(f"`{path}` cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)  # its own imports of files next to it
    sys.modules[unique] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(unique, None)
        raise CnnCalcError(f"`{path}` fails to run: {type(exc).__name__}: {exc}") from None
    finally:
        try:
            sys.path.remove(folder)
        except ValueError:
            pass
    return module


def _input_shape(input_shape) -> tuple[int, ...]:
    """[C, *spatial] as a tuple; a string is read as every cnncalc shape (`3x224x224`, `2@16000`)."""
    if isinstance(input_shape, str):
        from ..notation import NotationError, read_shape

        try:
            input_shape = read_shape(input_shape).shape
        except NotationError as exc:
            raise CnnCalcError(str(exc)) from None
    try:
        shape = tuple(int(size) for size in input_shape)
    except (TypeError, ValueError):
        raise CnnCalcError(f"the input shape must be [C, *spatial] whole numbers, not {input_shape!r}") from None
    if not 1 <= len(shape) <= 4 or any(size < 1 for size in shape):
        raise CnnCalcError(f"the input shape must be [C, *spatial] (C, C x L, C x H x W or C x D x H x W) of "
                           f"positive sizes, not {list(shape)}")
    return shape


# ============================================================================ tracing and probing
_TORCHVISION_LEAVES = {"StochasticDepth", "Permute", "LayerNorm2d"}


def _trace(torch, model, name):
    class Tracer(torch.fx.Tracer):
        def is_leaf_module(self, module, qualified_name):
            if type(module).__name__ in _TORCHVISION_LEAVES and _torchvision_leaf(torch, module):
                return True
            if _module_class(torch, module) is not None:
                return True
            return super().is_leaf_module(module, qualified_name)

    tracer = Tracer()
    try:
        graph = tracer.trace(model)
    except Exception as exc:
        raise CnnCalcError(f"torch.fx cannot trace the model ({type(exc).__name__}: {exc}); its forward "
                           "must not branch on tensor values (symbolic tracing)") from None
    return torch.fx.GraphModule(tracer.root, graph, name)


def _torchvision_leaf(torch, module) -> bool:
    kind = type(module).__name__
    if kind == "LayerNorm2d":  # torchvision's (and timm's): nn.LayerNorm over the channels of NCHW
        return isinstance(module, torch.nn.LayerNorm) and len(module.normalized_shape) == 1
    if kind == "Permute":
        return isinstance(getattr(module, "dims", None), (list, tuple))
    return kind == "StochasticDepth" and hasattr(module, "p") and hasattr(module, "mode")


def _shape_of(torch, value):
    """A probe result as plain data: tensors as _Shape (with the batch axis), containers kept."""
    if isinstance(value, torch.Tensor):
        return _Shape(int(size) for size in value.shape)
    if isinstance(value, torch.Size):
        return tuple(int(size) for size in value)
    if isinstance(value, (tuple, list)):
        return type(value)(_shape_of(torch, v) for v in value) if type(value) in (tuple, list) \
            else tuple(_shape_of(torch, v) for v in value)
    if isinstance(value, dict):
        return {k: _shape_of(torch, v) for k, v in value.items()}
    return value


class _Shape(tuple):
    """A tensor's shape, batch axis first (what the probe records for a tensor)."""


class _ProbeError(Exception):
    def __init__(self, node, exc):
        super().__init__(str(exc))
        self.node, self.exc = node, exc


def _probe(torch, gm, model, shape, name) -> dict:
    """Run the graph on a batch of PROBE_BATCH: node -> shape (tensors) or value (ints, sizes).
    On the meta device first (shapes only, fast, no memory for activations), then for real."""

    class Recorder(torch.fx.Interpreter):
        def __init__(self, module):
            super().__init__(module)
            self.values = {}

        def run_node(self, node):
            try:
                result = super().run_node(node)
            except Exception as exc:
                raise _ProbeError(node, exc) from exc
            self.values[node] = _shape_of(torch, result)
            return result

    class Runner(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self.gm = module
            self.recorder = None

        def forward(self, x):
            self.recorder = Recorder(self.gm)
            self.recorder.run(x)
            return x

    tensors = list(itertools.chain(gm.named_parameters(remove_duplicate=False),
                                   gm.named_buffers(remove_duplicate=False)))
    devices = {t.device for _, t in tensors}
    meta_only = bool(devices) and devices == {torch.device("meta")}
    real = next((d for d in devices if d.type != "meta"), torch.device("cpu"))
    dtype = next((t.dtype for _, t in tensors if t.is_floating_point()), torch.float32)
    runner = Runner(gm)
    probe = [PROBE_BATCH, *shape]

    def on_meta():  # shapes only: no arithmetic, no memory for activations
        x = torch.empty(*probe, dtype=dtype, device="meta")
        if meta_only:
            runner(x)
        else:  # the parameters swapped for meta copies for the one call
            meta = {f"gm.{key}": torch.empty_like(t, device="meta") for key, t in tensors}
            torch.func.functional_call(runner, meta, (x,))

    def for_real():
        runner(torch.randn(*probe, dtype=dtype, device=real))

    with torch.no_grad():
        for attempt in ((on_meta,) if meta_only else (on_meta, for_real)):
            try:
                attempt()
                return runner.recorder.values
            except _ProbeError as exc:
                failure = (f"the model fails on an input of shape {probe} (batch {PROBE_BATCH}) at "
                           f"{_node_label(exc.node)}: {type(exc.exc).__name__}: {_first_line(exc.exc)}")
            except Exception as exc:
                failure = f"the model fails on an input of shape {probe}: {type(exc).__name__}: {_first_line(exc)}"
    raise CnnCalcError(failure)


def _first_line(exc) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _node_label(node) -> str:
    if node.op == "call_module":
        return f"`{node.target}`"
    if node.op not in ("call_function", "call_method"):
        return f"`{node.name}`"
    what = _function_name(node.target) if node.op == "call_function" else f".{node.target}()"
    return f"`{node.name}` ({what}{_inside(node)})"


def _function_name(target) -> str:
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__name__", None) or str(target)
    if module in ("_operator", "operator"):
        return f"operator.{name}"
    if module.startswith("torch.nn.functional"):
        return f"F.{name}"
    if module == "torch" or module.startswith(("torch._C", "torch.functional")):
        return f"torch.{name}"
    return f"{module}.{name}" if module else name


def _inside(node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path, kind = list(stack.values())[-1]
    kind_name = getattr(kind, "__name__", None) or str(kind).rsplit(".", 1)[-1].strip("'>")
    return f" in {path or 'the model'} ({kind_name})" if path else f" in the model ({kind_name})"


# ============================================================================ module classes
_MODULE_CLASSES = [
    "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
    "Linear", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LayerNorm", "GroupNorm",
    "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "LocalResponseNorm",
    "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d",
    "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d",
    "ReLU", "ReLU6", "Hardtanh", "Sigmoid", "Tanh", "GELU", "SiLU", "Hardswish", "Hardsigmoid", "Mish", "SELU",
    "ELU", "LeakyReLU", "PReLU", "Softmax", "LogSoftmax", "Softmax2d",
    "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout",
    "Identity", "Flatten", "Unflatten", "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d",
    "ZeroPad1d", "ZeroPad2d", "ZeroPad3d", "ConstantPad1d", "ConstantPad2d", "ConstantPad3d",
    "ReflectionPad1d", "ReflectionPad2d", "ReflectionPad3d", "ReplicationPad1d", "ReplicationPad2d",
    "ReplicationPad3d", "CircularPad1d", "CircularPad2d", "CircularPad3d",
    "PixelShuffle", "PixelUnshuffle", "ChannelShuffle",
]


def _module_class(torch, module):
    """The torch.nn class this importer maps ``module`` as: its own, or the nearest base class in
    the table whose ``forward`` it keeps (torchvision's Conv3DSimple is a Conv3d); None for a
    module whose forward is its own (traced through)."""
    for cls in type(module).__mro__:
        if cls.__module__.startswith("torch.nn") and cls.__name__ in _MODULE_CLASSES \
                and getattr(torch.nn, cls.__name__, None) is cls:
            return cls if type(module).forward is cls.forward else None
    return None


# ============================================================================ argument helpers
def _axes(value):
    """An int or a per-axis tuple -> one int when every axis is the same, else a list."""
    if isinstance(value, (tuple, list)):
        values = [int(v) for v in value]
        return values[0] if len(set(values)) == 1 else values
    return int(value)


def _maybe_axes(value):
    """_axes, keeping None entries (adaptive pools' None axes)."""
    if isinstance(value, (tuple, list)):
        values = [None if v is None else int(v) for v in value]
        return values[0] if len(set(values)) == 1 and values[0] is not None else values
    return int(value)


def _is_one(value) -> bool:
    return _axes(value) == 1


def _is_zero(value) -> bool:
    return _axes(value) == 0


def _pad_pairs(pad, rank):
    """F.pad's flat list (last axis first: left, right, top, bottom, ...) -> per-axis [before, after]
    for the ``rank`` spatial axes, or None when it pads the channel or batch axis."""
    pad = [int(p) for p in pad]
    if len(pad) % 2 or len(pad) // 2 > rank and any(pad[2 * rank:]):
        return None
    pairs = [[0, 0] for _ in range(rank)]
    for i in range(min(len(pad) // 2, rank)):
        pairs[rank - 1 - i] = [pad[2 * i], pad[2 * i + 1]]
    return pairs


def _pairs_value(pairs):
    """[[1, 1], [1, 1]] -> 1; [[1, 1], [2, 2]] -> [1, 2]; uneven pairs stay pairs."""
    if all(before == after for before, after in pairs):
        return _axes([before for before, _ in pairs])
    return pairs


def _number(value):
    value = float(value)
    return int(value) if value.is_integer() else value


def _shortest(value: float, dtype) -> float:
    """The shortest decimal that is the same float32 (or float16) number: 1e-06, not 9.99999997e-07."""
    import struct

    code = {"torch.float32": "f", "torch.float16": "e"}.get(str(dtype))
    if code is None:
        return value
    exact = struct.pack(code, value)
    for digits in range(1, 18):
        candidate = float(f"{value:.{digits}g}")
        if struct.pack(code, candidate) == exact:
            return candidate
    return value


def _eps(args: dict, eps) -> None:
    if eps is not None and float(eps) != 1e-5:
        args["eps"] = float(eps)


class _Unmappable(Exception):
    """A node with no cnncalc kind: the reason, said after its name."""


class _ShapeUnmappable(_Unmappable):
    """A node whose shapes cnncalc cannot follow (the batch axis moved, an axis other than the
    channels): after a node that could not be mapped, only a consequence of it."""


class _Attr(str):
    """The reference of a get_attr node: the parameter's or buffer's qualified name."""


# ============================================================================ the importer
class _Importer:
    def __init__(self, torch, gm, values):
        self.torch, self.gm, self.values = torch, gm, values
        self.F = torch.nn.functional
        self.modules = dict(gm.named_modules())
        self.layers: list[dict] = []
        self.expected: dict[str, tuple[tuple[int, ...], str]] = {}  # row name -> (shape, the node it is)
        self.ref: dict[Any, Any] = {}  # node -> row name of its output (a list for tuples), or _Attr
        self.last = "input"  # the output the next row reads without `from`
        self.names = {"input"}
        self.problems: list[str] = []
        self.after: list[str] = []  # nodes that fail on the outputs of nodes that failed: named, not explained
        self.failed: set = set()
        self.calls: Counter = Counter()  # module path -> calls
        self.attr_uses: Counter = Counter()  # parameter name -> rows that use it
        self.fused: dict[Any, tuple[Any, int]] = {}  # channel shuffle's last view -> (input node, groups)
        self.absorbed: set = set()
        self.functions = self._function_table()
        self.methods = self._method_table()

    # ------------------------------------------------------------------ walking
    def run(self) -> list[dict]:
        self._find_channel_shuffles()
        placeholders = 0
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                if _is_tensor(self.values.get(node)):
                    placeholders += 1
                    if placeholders > 1:
                        self._problem(node, f"`{node.name}` (a second tensor input of forward): cnncalc imports "
                                            "models with one input")
                    self.ref[node] = "input"
                continue
            if node.op == "get_attr":
                self.ref[node] = _Attr(node.target)
                continue
            if node.op == "output":
                self._output(node)
                continue
            if node in self.absorbed or not _has_tensor(self.values.get(node)):
                continue  # part of a fused pattern; or shape arithmetic (x.size(), ints): no tensor, no row
            try:
                self._map(node)
            except _Unmappable as exc:
                label = _node_label(node) if node.op != "call_module" else self._module_label(node)
                data = [n for n in self._tensor_inputs(node) if not isinstance(self.ref.get(n), _Attr)]
                if isinstance(exc, _ShapeUnmappable) and data and all(n in self.failed for n in data):
                    self.after.append(label)
                    self._problem(node, None)
                else:
                    self._problem(node, f"{label}: {exc}")
        self._shared_weights()
        if self.problems:
            count = len(self.problems)
            after = ("; and, working on what those give, " + ", ".join(self.after)) if self.after else ""
            raise CnnCalcError(f"{count} module{'s' if count != 1 else ''} or "
                               f"function{'s' if count != 1 else ''} cannot be mapped to cnncalc kinds: "
                               + "; ".join(self.problems) + after)
        if not self.layers:
            self._emit("identity", {}, self._name("output"), "input", None)
        return self.layers

    def _problem(self, node, text):
        if text is not None:
            self.problems.append(text)
        self.failed.add(node)
        value = self.values.get(node)
        if isinstance(value, (tuple, list)) and not isinstance(value, _Shape):
            self.ref[node] = [f"{node.name}[{i}]" for i in range(len(value))]
        else:
            self.ref[node] = self._name(node.target if node.op == "call_module" else node.name)

    def _module_label(self, node):
        return f"`{node.target}` ({type(self.modules[node.target]).__name__})"

    def _output(self, node):
        found = []
        self.torch.fx.node.map_arg(node.args, found.append)
        tensors = [n for n in found if _is_tensor(self.values.get(n)) and n in self.ref]
        if len(tensors) == 1 and not isinstance(self.ref[tensors[0]], _Attr) and self.ref[tensors[0]] != self.last:
            source = self.ref[tensors[0]]
            self._emit("identity", {}, self._name("output"), source, self.values[tensors[0]][1:], "the output")

    def _name(self, wanted: str) -> str:
        wanted = str(wanted) or "layer"
        if wanted == "input":
            wanted = "input_"
        name, number = wanted, 0
        while name in self.names:
            number += 1
            name = f"{wanted}_{number}"
        self.names.add(name)
        return name

    def _emit(self, kind, args, name, source, shape, what=None):
        """One row; ``source``: the row it reads (None for merges, whose `from` is in args)."""
        entry = {kind: dict(args)}
        entry["name"] = name
        if source is not None and source != self.last:
            entry["from"] = source
        self.layers.append(entry)
        self.last = name
        if shape is not None:
            self.expected[name] = (tuple(shape), what or name)
        return name

    # ------------------------------------------------------------------ inputs and values
    def _tensor_inputs(self, node):
        found = []
        self.torch.fx.node.map_arg((node.args, node.kwargs), found.append)
        return [n for n in found if _is_tensor(self.values.get(n))]

    def _source(self, n):
        ref = self.ref.get(n)
        if isinstance(ref, _Attr):
            raise _Unmappable(f"it uses the parameter or buffer `{ref}` as data, which no cnncalc kind does")
        if ref is None or isinstance(ref, list):
            raise _ShapeUnmappable(f"its input `{n.name}` has no cnncalc row")
        return ref

    def _value(self, arg):
        """An argument with fx nodes replaced by their probed values (x.size(0) -> 2)."""
        if isinstance(arg, self.torch.fx.Node):
            return self.values.get(arg)
        if isinstance(arg, (tuple, list)):
            return type(arg)(self._value(a) for a in arg)
        return arg

    def _arg(self, node, index, key, default=None):
        if key in node.kwargs:
            return self._value(node.kwargs[key])
        if len(node.args) > index:
            return self._value(node.args[index])
        return default

    def _one_input(self, node):
        tensors = [n for n in self._tensor_inputs(node) if not isinstance(self.ref.get(n), _Attr)]
        if len(tensors) != 1 or len(self._tensor_inputs(node)) != 1:
            raise _Unmappable(f"it takes {len(self._tensor_inputs(node))} tensors; cnncalc's kinds of this "
                              "operation take one")
        return tensors[0]

    # ------------------------------------------------------------------ dispatch
    def _map(self, node):
        if node.op == "call_function" and node.target is operator.getitem:
            return self._getitem(node)
        if node in self.fused:
            source, groups = self.fused[node]
            handler = lambda n: self._row(n, "channel_shuffle", {"groups": groups}, source)  # noqa: E731
        elif node.op == "call_module":
            module = self.modules[node.target]
            self.calls[node.target] += 1
            if not (type(module).__name__ in _TORCHVISION_LEAVES and _torchvision_leaf(self.torch, module)) \
                    and _module_class(self.torch, module) is None:
                self._unsupported_module(module)
            handler = lambda n: self._module(n, module)  # noqa: E731
        elif node.op == "call_function":
            handler = self.functions.get(node.target)
            if handler is None and getattr(node.target, "__name__", "") == "stochastic_depth" \
                    and str(getattr(node.target, "__module__", "")).startswith("torchvision"):
                handler = self._f_stochastic_depth
            if handler is None:
                raise _Unmappable("no cnncalc kind for this function")
        else:
            handler = self.methods.get(node.target) or self.methods.get(str(node.target).rstrip("_"))
            if handler is None:
                raise _Unmappable("no cnncalc kind for this tensor method")
        inputs = self._tensor_inputs(node)
        if not any(not isinstance(self.ref.get(n), _Attr) for n in inputs):
            raise _Unmappable("it makes a tensor that does not come from the network input (a constant or a "
                              "parameter), which cnncalc cannot express")
        out = self.values[node]
        for shape in (out if not isinstance(out, _Shape) else [out]):
            if _is_tensor(shape) and (not shape or shape[0] != PROBE_BATCH):
                given = " and ".join(str(list(self.values[n])) for n in inputs)
                raise _ShapeUnmappable(f"it gives {list(shape)} from {given} (batch {PROBE_BATCH}): it moves or "
                                       "mixes the batch axis, and cnncalc's shapes are per sample")
        return handler(node)

    def _row(self, node, kind, args, source_node, name=None):
        """One row for a one-input node: named after the node, reading ``source_node``."""
        name = name or self._name(node.name)
        self.ref[node] = self._emit(kind, args, name, self._source(source_node), self.values[node][1:],
                                    f"`{node.name}`")
        return self.ref[node]

    def _in(self, node, source=None):
        return self.values[source or self._one_input(node)][1:]

    def _out(self, node):
        return self.values[node][1:]

    # ------------------------------------------------------------------ modules
    def _module(self, node, module):
        torch = self.torch
        path = node.target
        kind_name = type(module).__name__
        if kind_name in _TORCHVISION_LEAVES and _torchvision_leaf(torch, module):
            cls_name = "torchvision." + kind_name
        else:
            cls_name = _module_class(torch, module).__name__
        source = self._one_input(node)
        x, y = self._in(node, source), self._out(node)
        kind, args = self._module_kind(node, module, cls_name, x, y)
        name = self._name(path)
        if kind == "conv" and module.padding_mode != "zeros":
            pairs = _conv_pad_pairs(module, len(x) - 1)
            mode = {"reflect": "reflect", "replicate": "replicate", "circular": "circular"}.get(module.padding_mode)
            if mode is None:
                raise _Unmappable(f"padding_mode {module.padding_mode!r} has no cnncalc pad mode")
            padded = (x[0], *(size + b + a for size, (b, a) in zip(x[1:], pairs)))
            pad_name = self._name(f"{path}.pad")
            self._emit("pad", {"padding": _pairs_value(pairs), "mode": mode}, pad_name, self._source(source), padded,
                       f"`{path}`'s {module.padding_mode} padding")
            args.pop("padding", None)
            self.ref[node] = self._emit(kind, args, name, pad_name, y, f"`{path}`")
            return
        if kind == "_reshape":
            kind, args = _reshape_kind(x, y)
        self.ref[node] = self._emit(kind, args, name, self._source(source), y, f"`{path}`")

    def _unsupported_module(self, module):
        kind = type(module).__name__
        reasons = {
            ("RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"): "recurrent layers are not supported",
            ("MultiheadAttention", "Transformer", "TransformerEncoder", "TransformerDecoder",
             "TransformerEncoderLayer", "TransformerDecoderLayer"):
                "attention and transformer blocks are not supported",
            ("Embedding", "EmbeddingBag"): "embeddings are not supported",
            ("Fold", "Unfold"): "Fold/Unfold are not supported",
            ("FractionalMaxPool2d", "FractionalMaxPool3d"): "fractional max pooling is not supported",
        }
        for names, reason in reasons.items():
            if kind in names:
                raise _Unmappable(reason)
        raise _Unmappable(f"no cnncalc kind for {type(module).__module__}.{kind}")

    def _module_kind(self, node, m, cls, x, y):  # noqa: C901 - one table of cases
        rank = len(x) - 1
        if cls in ("Conv1d", "Conv2d", "Conv3d"):
            args = {"filters": m.out_channels, "kernel": _axes(m.kernel_size)}
            if not _is_one(m.stride):
                args["stride"] = _axes(m.stride)
            if isinstance(m.padding, str):
                if m.padding == "same":
                    args["padding"] = "same"
            elif not _is_zero(m.padding):
                args["padding"] = _axes(m.padding)
            if not _is_one(m.dilation):
                args["dilation"] = _axes(m.dilation)
            if m.groups != 1:
                args["groups"] = m.groups
            if m.bias is None:
                args["bias"] = False
            return "conv", args
        if cls in ("ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"):
            args = {"filters": m.out_channels, "kernel": _axes(m.kernel_size)}
            stride, padding, dilation, kernel = (_per_axis(v, rank) for v in (m.stride, m.padding, m.dilation,
                                                                               m.kernel_size))
            output_padding = _per_axis(m.output_padding, rank)
            if self._arg(node, 1, "output_size") is not None:  # PyTorch chose output_padding for that size
                output_padding = [out - ((i - 1) * s - 2 * p + d * (k - 1) + 1)
                                  for out, i, s, p, d, k in zip(y[1:], x[1:], stride, padding, dilation, kernel)]
            for key, value, default in (("stride", stride, 1), ("padding", padding, 0),
                                        ("output_padding", output_padding, 0), ("dilation", dilation, 1)):
                if any(v != default for v in value):
                    args[key] = _axes(value)
            if m.groups != 1:
                args["groups"] = m.groups
            if m.bias is None:
                args["bias"] = False
            return "conv_transpose", args
        if cls == "Linear":
            args = {"features": m.out_features}
            if m.bias is None:
                args["bias"] = False
            if len(x) > 1:
                args["flatten"] = False  # nn.Linear works on the last axis
            return "linear", args
        if cls in ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d"):
            if not m.track_running_stats or m.running_mean is None:
                raise _Unmappable("batch norm without running statistics (track_running_stats=False) normalises "
                                  "by the batch's own; cnncalc's batchnorm keeps running mean and variance")
            args = {}
            _eps(args, m.eps)
            if not m.affine:
                args["affine"] = False
            return "batchnorm", args
        if cls == "torchvision.LayerNorm2d" or cls == "LayerNorm":
            args = {} if cls == "torchvision.LayerNorm2d" else \
                {"normalized_shape": _axes(m.normalized_shape) if len(m.normalized_shape) == 1
                 else [int(s) for s in m.normalized_shape]}
            if cls == "torchvision.LayerNorm2d" and tuple(m.normalized_shape) != (x[0],):
                raise _Unmappable(f"LayerNorm2d over {list(m.normalized_shape)} but the input has {x[0]} channels")
            _eps(args, m.eps)
            if not m.elementwise_affine:
                args["elementwise_affine"] = False
            elif getattr(m, "bias", None) is None:
                args["bias"] = False
            return "layernorm", args
        if cls == "GroupNorm":
            args = {"groups": m.num_groups}
            _eps(args, m.eps)
            if not m.affine:
                args["affine"] = False
            return "groupnorm", args
        if cls in ("InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d"):
            args = {}
            _eps(args, m.eps)
            if m.affine:
                args["affine"] = True
            if m.track_running_stats:
                args["track_running_stats"] = True
            return "instancenorm", args
        if cls == "LocalResponseNorm":
            return "lrn", {"size": m.size, "alpha": float(m.alpha), "beta": float(m.beta), "k": float(m.k)}
        if cls in ("MaxPool1d", "MaxPool2d", "MaxPool3d"):
            if m.return_indices:
                raise _Unmappable("max pooling with return_indices gives two tensors; cnncalc's maxpool gives one")
            return "maxpool", _pool_args(m.kernel_size, m.stride, m.padding, m.ceil_mode, dilation=m.dilation)
        if cls in ("AvgPool1d", "AvgPool2d", "AvgPool3d"):
            if getattr(m, "divisor_override", None):
                raise _Unmappable("average pooling with divisor_override has no cnncalc equivalent")
            return "avgpool", _pool_args(m.kernel_size, m.stride, m.padding, m.ceil_mode,
                                         count_include_pad=m.count_include_pad)
        if cls.startswith("AdaptiveAvgPool") or cls.startswith("AdaptiveMaxPool"):
            if getattr(m, "return_indices", False):
                raise _Unmappable("adaptive max pooling with return_indices gives two tensors")
            kind = "adaptive_avgpool" if "Avg" in cls else "adaptive_maxpool"
            return kind, {"output": _maybe_axes(m.output_size)}
        simple = {"ReLU": "relu", "ReLU6": "relu6", "Sigmoid": "sigmoid", "Tanh": "tanh", "SiLU": "silu",
                  "Hardswish": "hardswish", "Hardsigmoid": "hardsigmoid", "Mish": "mish", "SELU": "selu",
                  "Identity": "identity"}
        if cls in simple:
            return simple[cls], {}
        if cls == "GELU":
            return "gelu", {}  # approximate="tanh" has the same shapes and counts
        if cls == "Hardtanh":
            if (float(m.min_val), float(m.max_val)) == (0.0, 6.0):
                return "relu6", {}
            raise _Unmappable(f"Hardtanh({m.min_val}, {m.max_val}) has no cnncalc kind (only ReLU6's 0..6)")
        if cls == "ELU":
            return "elu", {} if float(m.alpha) == 1.0 else {"alpha": float(m.alpha)}
        if cls == "LeakyReLU":
            return "leaky_relu", {"negative_slope": float(m.negative_slope)}
        if cls == "PReLU":
            return "prelu", {"num_parameters": m.num_parameters, "init": float(getattr(m, "init", 0.25))}
        if cls in ("Softmax", "LogSoftmax", "Softmax2d"):
            dim = -3 if cls == "Softmax2d" else m.dim
            _softmax_dim(dim, len(x) + 1)
            return ("log_softmax" if cls == "LogSoftmax" else "softmax"), {}
        if cls in ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"):
            return "dropout", _dropout_args(m.p)
        if cls == "torchvision.StochasticDepth":
            return "drop_path", _drop_path_args(m.p, m.mode)
        if cls == "torchvision.Permute":
            return "permute", {"dims": _permute_dims(list(m.dims), len(x) + 1)}
        if cls in ("Flatten", "Unflatten"):
            if cls == "Flatten" and m.start_dim % (len(x) + 1) == 1 and m.end_dim % (len(x) + 1) == len(x):
                return "flatten", {}
            return "_reshape", {}
        if cls in ("Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d"):
            return "upsample", _upsample_args(m.mode, m.size, m.scale_factor, y)
        if "Pad" in cls:
            mode = {"Zero": "zero", "Constant": "zero", "Reflection": "reflect", "Replication": "replicate",
                    "Circular": "circular"}[cls.split("Pad")[0]]
            if cls.startswith("Constant") and float(m.value) != 0.0:
                raise _Unmappable(f"constant padding with value {m.value}; cnncalc pads with zeros")
            return "pad", _pad_args(m.padding, rank, mode)
        if cls == "PixelShuffle":
            return "pixel_shuffle", {"factor": m.upscale_factor}
        if cls == "PixelUnshuffle":
            return "pixel_unshuffle", {"factor": m.downscale_factor}
        if cls == "ChannelShuffle":
            return "channel_shuffle", {"groups": m.groups}
        raise _Unmappable(f"no cnncalc kind for torch.nn.{cls}")  # pragma: no cover - the table covers _MODULE_CLASSES

    # ------------------------------------------------------------------ functions and methods
    def _function_table(self):
        torch, F = self.torch, self.F
        table = {}

        def put(handler, *functions):
            for function in functions:
                if function is not None:
                    table[function] = handler

        for kind, functions in {
            "relu": (torch.relu, F.relu, torch.relu_, getattr(F, "relu_", None)),
            "relu6": (F.relu6,), "sigmoid": (torch.sigmoid, F.sigmoid), "tanh": (torch.tanh, F.tanh),
            "silu": (F.silu,), "hardswish": (F.hardswish,), "hardsigmoid": (F.hardsigmoid,), "mish": (F.mish,),
            "selu": (F.selu, torch.selu), "gelu": (F.gelu,),
        }.items():
            put(self._unary(kind), *functions)
        put(self._f_elu, F.elu)
        put(self._f_leaky_relu, F.leaky_relu)
        put(self._f_hardtanh, F.hardtanh)
        put(self._softmax("softmax", 1), F.softmax, torch.softmax)
        put(self._softmax("log_softmax", 1), F.log_softmax, torch.log_softmax)
        put(self._f_dropout, F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout,
            F.feature_alpha_dropout)
        put(self._f_max_pool, F.max_pool1d, F.max_pool2d, F.max_pool3d)
        put(self._f_avg_pool, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)
        put(self._f_adaptive("adaptive_avgpool"), F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d)
        put(self._f_adaptive("adaptive_maxpool"), F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d)
        put(self._f_interpolate, F.interpolate, getattr(F, "upsample", None))
        put(self._f_pad, F.pad)
        put(self._f_add, operator.add, operator.iadd, torch.add)
        put(self._f_mul, operator.mul, operator.imul, torch.mul)
        put(self._f_cat, torch.cat, getattr(torch, "concat", None), getattr(torch, "concatenate", None))
        put(self._f_flatten(1), torch.flatten)
        put(self._f_reshape, torch.reshape)
        put(self._f_permute(1), torch.permute)
        put(self._f_transpose(1), torch.transpose)
        put(self._f_squeeze(1), torch.squeeze)
        put(self._f_unsqueeze(1), torch.unsqueeze)
        put(self._f_split(1, "chunk"), torch.chunk)
        put(self._f_split(1, "split"), torch.split)
        put(self._f_mean(1), torch.mean)
        put(self._f_channel_shuffle, getattr(F, "channel_shuffle", None), getattr(torch, "channel_shuffle", None),
            getattr(torch, "native_channel_shuffle", None))
        put(self._f_pixel("pixel_shuffle"), F.pixel_shuffle, torch.pixel_shuffle)
        put(self._f_pixel("pixel_unshuffle"), F.pixel_unshuffle, torch.pixel_unshuffle)
        put(self._f_conv, F.conv1d, F.conv2d, F.conv3d)
        put(self._f_linear, F.linear)
        put(self._f_layer_norm, F.layer_norm)
        return table

    def _method_table(self):
        table = {kind: self._unary(kind) for kind in ("relu", "sigmoid", "tanh")}
        table.update({
            "softmax": self._softmax("softmax", 1), "log_softmax": self._softmax("log_softmax", 1),
            "add": self._f_add, "mul": self._f_mul, "view": self._f_reshape, "reshape": self._f_reshape,
            "flatten": self._f_flatten(1), "permute": self._f_permute(1), "transpose": self._f_transpose(1),
            "squeeze": self._f_squeeze(1), "unsqueeze": self._f_unsqueeze(1), "chunk": self._f_split(1, "chunk"),
            "split": self._f_split(1, "split"), "mean": self._f_mean(1),
            "contiguous": self._alias, "clone": self._alias, "detach": self._alias, "float": self._alias,
            "to": self._alias, "type_as": self._alias,
        })
        return table

    def _alias(self, node):
        """No row: the same values (contiguous, clone, detach, a dtype change)."""
        source = self._tensor_inputs(node)[0]
        if self.values[source] != self.values[node]:
            raise _ShapeUnmappable(f"it changes the shape {list(self.values[source])} -> {list(self.values[node])}")
        self.ref[node] = self._source(source)

    def _unary(self, kind):
        def handler(node):
            return self._row(node, kind, {}, self._one_input(node))
        return handler

    def _f_elu(self, node):
        alpha = float(self._arg(node, 1, "alpha", 1.0))
        return self._row(node, "elu", {} if alpha == 1.0 else {"alpha": alpha}, self._one_input(node))

    def _f_leaky_relu(self, node):
        return self._row(node, "leaky_relu", {"negative_slope": float(self._arg(node, 1, "negative_slope", 0.01))},
                         self._one_input(node))

    def _f_hardtanh(self, node):
        low, high = float(self._arg(node, 1, "min_val", -1.0)), float(self._arg(node, 2, "max_val", 1.0))
        if (low, high) != (0.0, 6.0):
            raise _Unmappable(f"hardtanh({low}, {high}) has no cnncalc kind (only ReLU6's 0..6)")
        return self._row(node, "relu6", {}, self._one_input(node))

    def _softmax(self, kind, index):
        def handler(node):
            source = self._one_input(node)
            _softmax_dim(self._arg(node, index, "dim"), len(self.values[source]))
            return self._row(node, kind, {}, source)
        return handler

    def _f_dropout(self, node):
        return self._row(node, "dropout", _dropout_args(self._arg(node, 1, "p", 0.5)), self._one_input(node))

    def _f_stochastic_depth(self, node):
        return self._row(node, "drop_path", _drop_path_args(self._arg(node, 1, "p"), self._arg(node, 2, "mode", "row")),
                         self._one_input(node))

    def _f_max_pool(self, node):
        if self._arg(node, 6, "return_indices", False):
            raise _Unmappable("max pooling with return_indices gives two tensors; cnncalc's maxpool gives one")
        args = _pool_args(self._arg(node, 1, "kernel_size"), self._arg(node, 2, "stride"),
                          self._arg(node, 3, "padding", 0), self._arg(node, 5, "ceil_mode", False),
                          dilation=self._arg(node, 4, "dilation", 1))
        return self._row(node, "maxpool", args, self._one_input(node))

    def _f_avg_pool(self, node):
        if self._arg(node, 6, "divisor_override") is not None:
            raise _Unmappable("average pooling with divisor_override has no cnncalc equivalent")
        args = _pool_args(self._arg(node, 1, "kernel_size"), self._arg(node, 2, "stride"),
                          self._arg(node, 3, "padding", 0), self._arg(node, 4, "ceil_mode", False),
                          count_include_pad=self._arg(node, 5, "count_include_pad", True))
        return self._row(node, "avgpool", args, self._one_input(node))

    def _f_adaptive(self, kind):
        def handler(node):
            if self._arg(node, 2, "return_indices", False):
                raise _Unmappable("adaptive max pooling with return_indices gives two tensors")
            return self._row(node, kind, {"output": _maybe_axes(self._arg(node, 1, "output_size"))},
                             self._one_input(node))
        return handler

    def _f_interpolate(self, node):
        args = _upsample_args(self._arg(node, 3, "mode", "nearest"), self._arg(node, 1, "size"),
                              self._arg(node, 2, "scale_factor"), self._out(node))
        if self._arg(node, 6, "antialias", False):
            raise _Unmappable("antialiased interpolation has no cnncalc equivalent")
        return self._row(node, "upsample", args, self._one_input(node))

    def _f_pad(self, node):
        source = self._one_input(node)
        mode = {"constant": "zero", "reflect": "reflect", "replicate": "replicate",
                "circular": "circular"}.get(self._arg(node, 2, "mode", "constant"))
        if mode is None:
            raise _Unmappable(f"padding mode {self._arg(node, 2, 'mode')!r} has no cnncalc pad mode")
        value = self._arg(node, 3, "value")
        if mode == "zero" and value not in (None, 0, 0.0):
            raise _Unmappable(f"constant padding with value {value}; cnncalc pads with zeros")
        return self._row(node, "pad", _pad_args(self._arg(node, 1, "pad"), len(self._in(node, source)) - 1, mode),
                         source)

    def _merge_inputs(self, node, verb):
        operands = list(node.args[:2]) + [node.kwargs[k] for k in ("other",) if k in node.kwargs]
        tensors = [a for a in operands if isinstance(a, self.torch.fx.Node) and _is_tensor(self.values.get(a))]
        if len(tensors) != len(operands) or len(tensors) != 2:
            constants = [repr(self._value(a)) for a in operands if a not in tensors]
            raise _Unmappable(f"it {verb} a constant ({', '.join(constants) or 'none'}); cnncalc's merges take "
                              "two tensors")
        return tensors

    def _f_add(self, node):
        if self._arg(node, 2, "alpha", 1) != 1:
            raise _Unmappable("torch.add with alpha != 1 has no cnncalc kind")
        return self._merge(node, "add", self._merge_inputs(node, "adds"))

    def _f_mul(self, node):
        a, b = self._merge_inputs(node, "multiplies by")
        attrs = [n for n in (a, b) if isinstance(self.ref.get(n), _Attr)]
        if len(attrs) == 1:  # a learned per-channel scale: ConvNeXt's layer_scale
            return self._layer_scale(node, attrs[0], b if attrs[0] is a else a)
        return self._merge(node, "mul", [a, b])

    def _merge(self, node, kind, tensors):
        shapes = [self.values[n][1:] for n in tensors]
        if len({len(s) for s in shapes}) != 1:
            written = " and ".join(str(list(s)) for s in shapes)
            raise _ShapeUnmappable(f"it broadcasts tensors of different ranks ({written}); "
                              f"cnncalc's {kind} needs the same number of axes")
        sources = [self._source(n) for n in tensors]
        self.ref[node] = self._emit(kind, {"from": sources}, self._name(node.name), None, self._out(node),
                                    f"`{node.name}`")

    def _layer_scale(self, node, attr, source):
        target = self.ref[attr]
        parameter = self._attribute(target)
        x = self.values[source][1:]
        wanted = (x[0], *(1 for _ in x[1:]))
        if not isinstance(parameter, self.torch.nn.Parameter):
            raise _Unmappable(f"it multiplies by the constant tensor `{target}` ({list(parameter.shape)}); cnncalc "
                              "multiplies by learned per-channel scales (layer_scale) or by other layers' outputs")
        if tuple(parameter.shape) != wanted:
            raise _Unmappable(f"it multiplies by the parameter `{target}` of shape {list(parameter.shape)}; cnncalc's "
                              f"layer_scale is a learned [C, 1, ...] per-channel scale ({list(wanted)} here)")
        self.attr_uses[target] += 1
        args = {}
        if parameter.device.type != "meta" and parameter.numel():
            first = float(parameter.detach().flatten()[0])
            if bool((parameter.detach() == first).all()):  # a constant start, as ConvNeXt's 1e-6: keep it
                args["init"] = _shortest(first, parameter.dtype)
        return self._row(node, "layer_scale", args, source, name=self._name(target))

    def _attribute(self, target):
        module = self.gm
        for part in target.split("."):
            module = getattr(module, part)
        return module

    def _f_cat(self, node):
        nodes = list(node.kwargs.get("tensors", node.args[0] if node.args else []))
        dim = self._arg(node, 1, "dim", 0)
        if not nodes or not all(isinstance(n, self.torch.fx.Node) and _is_tensor(self.values.get(n)) for n in nodes):
            raise _Unmappable("it concatenates something other than tensors")
        ndim = len(self.values[nodes[0]])
        if dim % ndim != 1:
            raise _ShapeUnmappable(f"it concatenates on dim {dim}; cnncalc's concat joins channels (dim 1)")
        self.ref[node] = self._emit("concat", {"from": [self._source(n) for n in nodes]}, self._name(node.name),
                                    None, self._out(node), f"`{node.name}`")

    def _f_flatten(self, index):
        def handler(node):
            source = self._one_input(node)
            ndim = len(self.values[source])
            start, end = self._arg(node, index, "start_dim", 0), self._arg(node, index + 1, "end_dim", -1)
            if start % ndim == 1 and end % ndim == ndim - 1:
                return self._row(node, "flatten", {}, source)
            return self._reshape(node, source)
        return handler

    def _f_reshape(self, node):
        return self._reshape(node, self._one_input(node))

    def _reshape(self, node, source):
        kind, args = _reshape_kind(self.values[source][1:], self._out(node))
        return self._row(node, kind, args, source)

    def _f_permute(self, index):
        def handler(node):
            source = self._one_input(node)
            dims = list(node.args[index:]) if "dims" not in node.kwargs else node.kwargs["dims"]
            dims = self._value(dims)
            if len(dims) == 1 and isinstance(dims[0], (list, tuple)):
                dims = list(dims[0])
            return self._row(node, "permute", {"dims": _permute_dims(list(dims), len(self.values[source]))}, source)
        return handler

    def _f_transpose(self, index):
        def handler(node):
            source = self._one_input(node)
            ndim = len(self.values[source])
            a, b = self._arg(node, index, "dim0") % ndim, self._arg(node, index + 1, "dim1") % ndim
            dims = list(range(ndim))
            dims[a], dims[b] = dims[b], dims[a]
            return self._row(node, "permute", {"dims": _permute_dims(dims, ndim)}, source)
        return handler

    def _f_squeeze(self, index):
        def handler(node):
            source = self._one_input(node)
            dim = self._arg(node, index, "dim")
            if isinstance(dim, int) and dim % len(self.values[source]) != 0:
                return self._row(node, "squeeze", {"dim": dim}, source)
            return self._reshape(node, source)
        return handler

    def _f_unsqueeze(self, index):
        def handler(node):
            source = self._one_input(node)
            dim = self._arg(node, index, "dim")
            if dim % (len(self.values[source]) + 1) == 0:
                raise _ShapeUnmappable("it adds an axis before the batch axis")
            return self._row(node, "unsqueeze", {"dim": dim}, source)
        return handler

    def _f_split(self, index, what):
        def handler(node):
            source = self._one_input(node)
            ndim = len(self.values[source])
            dim = self._arg(node, index + 1, "dim", 0)
            if dim % ndim != 1:
                raise _ShapeUnmappable(f"it cuts on dim {dim}; cnncalc's split cuts channels (dim 1)")
            pieces = list(self.values[node])
            names = {}
            for user in node.users:  # name each piece after the getitem that takes it
                if user.op == "call_function" and user.target is operator.getitem and isinstance(user.args[1], int):
                    names.setdefault(user.args[1] % len(pieces), user.name)
            names = [self._name(names.get(i, f"{node.name}.{i}")) for i in range(len(pieces))]
            split = self._name(node.name)
            entry = {"split": {"names": names, "sizes": [int(p[1]) for p in pieces]}, "name": split}
            if self._source(source) != self.last:
                entry["from"] = self._source(source)
            self.layers.append(entry)
            self.last = names[-1]  # the chain goes on from the last piece
            for piece_name, piece in zip(names, pieces):
                self.expected[piece_name] = (tuple(piece[1:]), f"`{node.name}` ({what})")
            self.ref[node] = names
        return handler

    def _getitem(self, node):
        source, index = node.args[0], node.args[1]
        pieces = self.ref.get(source)
        if isinstance(pieces, list) and isinstance(index, int):  # a piece of a split (or of a failed node's tuple)
            self.ref[node] = pieces[index]
            if source in self.failed:
                self.failed.add(node)
            return
        raise _Unmappable(f"indexing or slicing a tensor ([{index!r}]) has no cnncalc kind")

    def _f_mean(self, index):
        def handler(node):
            source = self._one_input(node)
            x = self.values[source]
            ndim = len(x)
            dims = self._arg(node, index, "dim")
            keepdim = bool(self._arg(node, index + 1, "keepdim", False))
            if dims is None or dims == [] or dims == ():
                raise _ShapeUnmappable("a mean over every axis mixes the batch; cnncalc's pools average spatial "
                                       "axes")
            dims = {d % ndim for d in (dims if isinstance(dims, (list, tuple)) else [dims])}
            if dims & {0, 1}:
                raise _ShapeUnmappable("a mean over the batch or channel axis has no cnncalc kind (its pools "
                                       "average spatial axes)")
            spatial = range(2, ndim)
            pooled = (x[1], *(1 if axis in dims else x[axis] for axis in spatial))
            if set(spatial) == dims:
                kind, args = "global_avgpool", {}
            else:
                kind, args = "adaptive_avgpool", {"output": [1 if axis in dims else None for axis in spatial]}
            if keepdim:
                return self._row(node, kind, args, source)
            pool_name = self._name(f"{node.name}.pool")
            self._emit(kind, args, pool_name, self._source(source), pooled, f"`{node.name}` (its average pool)")
            out = self._out(node)
            rest, rest_args = ("flatten", {}) if len(out) == 1 else _reshape_kind(pooled, out)
            self.ref[node] = self._emit(rest, rest_args, self._name(node.name), pool_name, out, f"`{node.name}`")
        return handler

    def _f_channel_shuffle(self, node):
        return self._row(node, "channel_shuffle", {"groups": int(self._arg(node, 1, "groups"))}, self._one_input(node))

    def _f_pixel(self, kind):
        def handler(node):
            factor = self._arg(node, 1, "upscale_factor" if kind == "pixel_shuffle" else "downscale_factor")
            return self._row(node, kind, {"factor": int(factor)}, self._one_input(node))
        return handler

    # functional layers whose weights are parameters of the model (get_attr nodes)
    def _parameters_of(self, node, *slots):
        """(index, key) argument slots -> the parameter names they hold (None where absent); any
        computed weight is unmappable."""
        names = []
        for index, key in slots:
            arg = node.kwargs.get(key, node.args[index] if len(node.args) > index else None)
            if arg is None:
                names.append(None)
            elif isinstance(arg, self.torch.fx.Node) and isinstance(self.ref.get(arg), _Attr):
                names.append(str(self.ref[arg]))
            else:
                raise _Unmappable(f"its `{key}` is computed in forward, not a parameter of the model; cnncalc "
                                  "counts a layer's own weights")
        for name in names:
            if name is not None:
                self.attr_uses[name] += 1
        return names

    def _data_input(self, node):
        tensors = [n for n in self._tensor_inputs(node) if not isinstance(self.ref.get(n), _Attr)]
        if len(tensors) != 1:
            raise _Unmappable(f"it takes {len(tensors)} input tensors besides its parameters")
        return tensors[0]

    def _owner(self, parameter: str) -> str:
        return parameter.rpartition(".")[0] or parameter

    def _f_conv(self, node):
        source = self._data_input(node)
        weight, bias = self._parameters_of(node, (1, "weight"), (2, "bias"))
        x = self.values[source][1:]
        rank = len(x) - 1
        shape = tuple(self._attribute(weight).shape)
        args = {"filters": shape[0], "kernel": _axes(shape[2:])}
        stride, padding = self._arg(node, 3, "stride", 1), self._arg(node, 4, "padding", 0)
        dilation, groups = self._arg(node, 5, "dilation", 1), self._arg(node, 6, "groups", 1)
        if not _is_one(_per_axis(stride, rank)):
            args["stride"] = _axes(_per_axis(stride, rank))
        if isinstance(padding, str):
            if padding == "same":
                args["padding"] = "same"
        elif not _is_zero(_per_axis(padding, rank)):
            args["padding"] = _axes(_per_axis(padding, rank))
        if not _is_one(_per_axis(dilation, rank)):
            args["dilation"] = _axes(_per_axis(dilation, rank))
        if groups != 1:
            args["groups"] = int(groups)
        if bias is None:
            args["bias"] = False
        return self._row(node, "conv", args, source, name=self._name(self._owner(weight)))

    def _f_linear(self, node):
        source = self._data_input(node)
        weight, bias = self._parameters_of(node, (1, "weight"), (2, "bias"))
        args = {"features": int(self._attribute(weight).shape[0])}
        if bias is None:
            args["bias"] = False
        if len(self.values[source]) > 2:
            args["flatten"] = False
        return self._row(node, "linear", args, source, name=self._name(self._owner(weight)))

    def _f_layer_norm(self, node):
        source = self._data_input(node)
        weight, bias = self._parameters_of(node, (2, "weight"), (3, "bias"))
        shape = self._arg(node, 1, "normalized_shape")
        shape = [int(s) for s in (shape if isinstance(shape, (list, tuple)) else [shape])]
        args = {"normalized_shape": shape[0] if len(shape) == 1 else shape}
        _eps(args, self._arg(node, 4, "eps", 1e-5))
        if weight is None:
            if bias is not None:
                raise _Unmappable("layer norm with a bias but no weight has no cnncalc form")
            args["elementwise_affine"] = False
        elif bias is None:
            args["bias"] = False
        owner = self._owner(weight) if weight else node.name
        return self._row(node, "layernorm", args, source, name=self._name(owner))

    # ------------------------------------------------------------------ patterns and checks
    def _find_channel_shuffles(self):
        """ShuffleNet's channel_shuffle written out (view [N, g, C/g, *S] -> transpose(1, 2) ->
        contiguous -> view [N, C, *S]) -> one `channel_shuffle` row, named after the last view
        (its rank-5 middle would not fit cnncalc's 4 axes on 3-D data, and one row says what it is)."""
        for first in self.gm.graph.nodes:
            if not self._is_reshape(first):
                continue
            inputs = self._tensor_inputs(first)
            if len(inputs) != 1:
                continue
            x, grouped = self.values.get(inputs[0]), self.values.get(first)
            if not (_is_tensor(x) and _is_tensor(grouped)) or len(x) < 2 or len(grouped) != len(x) + 1 \
                    or grouped[0] != x[0] or grouped[3:] != x[2:] or grouped[1] * grouped[2] != x[1]:
                continue
            chain, node = [first], first
            swap = _sole_user(node)
            if swap is None or not self._swaps_1_2(swap):
                continue
            chain.append(swap)
            node = _sole_user(swap)
            if node is not None and node.op == "call_method" and node.target == "contiguous":
                chain.append(node)
                node = _sole_user(node)
            if node is None or not self._is_reshape(node) or self.values.get(node) != x:
                continue
            self.fused[node] = (inputs[0], int(grouped[1]))
            self.absorbed.update(chain)

    def _is_reshape(self, node):
        if node.op == "call_method" and node.target in ("view", "reshape", "flatten"):
            return True
        return node.op == "call_function" and node.target in (self.torch.reshape, self.torch.flatten)

    def _swaps_1_2(self, node):
        value = self.values.get(node)
        if not _is_tensor(value):
            return False
        ndim = len(value)
        if (node.op == "call_method" and node.target == "transpose") or \
                (node.op == "call_function" and node.target is self.torch.transpose):
            dims = {self._arg(node, 1, "dim0") % ndim, self._arg(node, 2, "dim1") % ndim}
            return dims == {1, 2}
        if (node.op == "call_method" and node.target == "permute") or \
                (node.op == "call_function" and node.target is self.torch.permute):
            dims = self._value(list(node.args[1:]) if "dims" not in node.kwargs else node.kwargs["dims"])
            if len(dims) == 1 and isinstance(dims[0], (list, tuple)):
                dims = list(dims[0])
            return [d % ndim for d in dims] == [0, 2, 1, *range(3, ndim)]
        return False

    def _shared_weights(self):
        for path, count in self.calls.items():
            module = self.modules[path]
            own = sum(p.numel() for p in module.parameters())
            if count > 1 and own:
                self.problems.append(f"`{path}` ({type(module).__name__}) is called {count} times with the same "
                                     f"{own:,} weights; cnncalc's rows each have their own weights, so shared "
                                     "weights cannot be written")
        for target, count in self.attr_uses.items():
            if count > 1:
                self.problems.append(f"the parameter `{target}` is used by {count} layers; cnncalc's rows each have "
                                     "their own weights")

    def unused_parameters(self, model) -> list[str]:
        """Modules with parameters of their own that no row stands for (never called by forward)."""
        used = set(self.calls) | {self._owner(target) for target in self.attr_uses}
        unused = []
        for path, module in model.named_modules():
            own = sum(p.numel() for p in module.parameters(recurse=False))
            if own and path not in used:
                unused.append(f"`{path or type(model).__name__}` ({type(module).__name__}, {own:,} params)")
        return unused


# ============================================================================ small pure helpers
def _is_tensor(value) -> bool:
    return isinstance(value, _Shape)


def _has_tensor(value) -> bool:
    if isinstance(value, _Shape):
        return True
    if isinstance(value, (tuple, list)):
        return any(_has_tensor(v) for v in value)
    if isinstance(value, dict):
        return any(_has_tensor(v) for v in value.values())
    return False


def _sole_user(node):
    users = list(node.users)
    return users[0] if len(users) == 1 else None


def _per_axis(value, rank):
    if isinstance(value, (tuple, list)):
        values = [int(v) for v in value]
        return values * rank if len(values) == 1 else values
    return [int(value)] * rank


def _conv_pad_pairs(module, rank):
    """A conv's padding as [before, after] per axis (PyTorch's `same`: the odd pixel after)."""
    kernel, dilation = _per_axis(module.kernel_size, rank), _per_axis(module.dilation, rank)
    if module.padding == "same":
        totals = [d * (k - 1) for d, k in zip(dilation, kernel)]
        return [[t // 2, t - t // 2] for t in totals]
    if module.padding == "valid":
        return [[0, 0] for _ in range(rank)]
    return [[p, p] for p in _per_axis(module.padding, rank)]


def _pool_args(kernel, stride, padding, ceil_mode, dilation=None, count_include_pad=None) -> dict:
    args = {"kernel": _axes(kernel)}
    if stride not in (None, [], ()) and _axes(stride) != args["kernel"]:
        args["stride"] = _axes(stride)
    if not _is_zero(padding):
        args["padding"] = _axes(padding)
    if dilation is not None and not _is_one(dilation):
        args["dilation"] = _axes(dilation)
    if ceil_mode:
        args["ceil_mode"] = True
    if count_include_pad is False:
        args["count_include_pad"] = False
    return args


def _dropout_args(p) -> dict:
    p = float(p)
    if not 0 <= p < 1:
        raise _Unmappable(f"dropout p={p} is outside [0, 1)")
    return {} if p == 0.5 else {"p": p}


def _drop_path_args(p, mode) -> dict:
    p = float(p)
    if not 0 <= p < 1:
        raise _Unmappable(f"stochastic depth p={p} is outside [0, 1)")
    if mode not in ("row", "batch"):
        raise _Unmappable(f"stochastic depth mode {mode!r} is not row or batch")
    return {"p": p} if mode == "row" else {"p": p, "mode": mode}


def _softmax_dim(dim, ndim) -> None:
    if dim is None:  # PyTorch's legacy implicit dim
        dim = 0 if ndim in (0, 1, 3) else 1
    if dim % ndim != 1:
        raise _ShapeUnmappable(f"softmax over dim {dim} of a {ndim}-D tensor; cnncalc's softmax is over the channels "
                          "(dim 1)")


def _permute_dims(dims, ndim) -> list[int]:
    dims = [int(d) % ndim for d in dims]
    if len(dims) != ndim or dims[0] != 0:
        raise _ShapeUnmappable(f"permute {dims} moves the batch axis; cnncalc's shapes are per sample")
    return dims


def _reshape_kind(x, y):
    if len(y) == 1:
        return "flatten", {}
    if len(y) > 4:
        raise _ShapeUnmappable(f"it reshapes {list(x)} to {list(y)}, {len(y)} axes per sample; cnncalc's shapes "
                               "have at most 4")
    return "reshape", {"shape": [int(s) for s in y]}


def _upsample_args(mode, size, scale_factor, out) -> dict:
    if mode not in ("nearest", "linear", "bilinear", "bicubic", "trilinear"):
        raise _Unmappable(f"interpolation mode {mode!r} has no cnncalc upsample mode")
    args = {}
    if size is not None:
        args["size"] = _axes(out[1:])
    elif scale_factor is not None:
        args["scale_factor"] = [_number(s) for s in scale_factor] if isinstance(scale_factor, (list, tuple)) \
            else _number(scale_factor)
        if isinstance(args["scale_factor"], list) and len(set(args["scale_factor"])) == 1:
            args["scale_factor"] = args["scale_factor"][0]
    else:
        raise _Unmappable("interpolation without size or scale_factor")
    if mode != "nearest":
        args["mode"] = mode
    return args


def _pad_args(pad, rank, mode) -> dict:
    if isinstance(pad, int):
        pad = [pad] * (2 * rank)
    pairs = _pad_pairs(pad, rank)
    if pairs is None:
        raise _Unmappable(f"padding {list(pad)} pads the channel or batch axis; cnncalc pads spatial axes")
    if any(v < 0 for pair in pairs for v in pair):
        raise _Unmappable(f"negative padding {list(pad)} (cropping) has no cnncalc pad")
    args = {"padding": _pairs_value(pairs)}
    if mode != "zero":
        args["mode"] = mode
    return args


# ============================================================================ the check
def _check(spec, model, importer) -> None:
    """Analyse the spec: trainable params equal to the model's and every row's shape equal to
    PyTorch's, or a CnnCalcError naming what differs."""
    from ..api import analyze, load_spec

    try:
        report = analyze(load_spec(spec), rounding="floor")
    except CnnCalcError as exc:
        raise CnnCalcError(f"the imported spec does not analyze ({exc}); please report this as a bug of "
                           "cnncalc's PyTorch import") from None
    rows = {row.name: row for row in report.layers}
    for layer, (shape, what) in importer.expected.items():
        row = rows.get(layer)
        if row is None:
            raise CnnCalcError(f"the imported spec has no row `{layer}` for {what}; please report this as a bug "
                               "of cnncalc's PyTorch import")
        if tuple(row.output_shape) != tuple(shape):
            of = "" if what == f"`{layer}`" else f", for {what}"
            raise CnnCalcError(f"row `{layer}` ({row.kind}{of}) gives {list(row.output_shape)} but "
                               f"PyTorch gives {list(shape)} (per sample); please report this as a bug of cnncalc's "
                               "PyTorch import")
    trainable = sum(p.numel() for p in model.parameters())
    if report.totals.trainable_params != trainable:
        unused = importer.unused_parameters(model)
        why = (f"; modules never called by forward in eval mode (their parameters have no row): "
               f"{', '.join(unused)}" if unused else "")
        raise CnnCalcError(f"the imported spec has {report.totals.trainable_params:,} trainable params but the "
                           f"model has {trainable:,}{why}")
