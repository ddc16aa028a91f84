"""ONNX models -> cnncalc spec data (`cnncalc import MODEL.onnx`, and every command's SPEC ending
in `.onnx`).

How a file is read:

1. **Without its weights.** An ONNX file carries its weights (VGG-16's is 553 MB), and only their
   shapes matter here. The file is memory-mapped and its protobuf fields walked: every
   initializer whose values take more than ``DATA_KEPT`` bytes is copied without them (name,
   type, dims and external-data references stay), so the weights are never read, not even
   paged in; external-data files are never opened. What is left (the graph, small constants
   such as Reshape shapes or Clip bounds) is parsed by the ``onnx`` package. A file that ends
   early or is not protobuf is one located error.
2. **ONNX's shapes, for a cross-check.** ``onnx.shape_inference.infer_shapes`` runs on that light
   model (its input fixed by `--input` where the file leaves it dynamic).
3. **cnncalc's shapes.** The nodes are mapped in graph order to cnncalc layer entries; each entry
   goes through the spec builder and the engine as it is made, so the shapes every later
   decision uses (Shape arithmetic, Split pieces, SAME padding, axes) are cnncalc's own. Every
   output is compared with ONNX's inferred shape where ONNX knows it: a difference is an error
   naming the node. Every layer's parameters are compared with the elements of the
   initializers it consumes (each use counts, as the exporter may share equal initializers).
4. **Nothing counted as zero.** An op cnncalc cannot map is collected, with its node name and
   why; all of them are listed in one error. ``partial=True`` keeps the layers before the first.

Layer names: PyTorch's exporter names nodes by module scope (``/layer1/layer1.0/conv1/Conv``),
which gives the module's qualified name (``layer1.0.conv1``); a scope holding one layer is
named by it, several get ``scope.kind`` (``layer1.0.add``). Other producers' node names are kept
(or the weights' ``X.weight`` prefix, or ``kind_index``).

``onnx`` (and numpy, which it needs) is imported only here, when an ONNX file is read.
"""
from __future__ import annotations

import math
import mmap
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CnnCalcError, Location, SpecError
from ..spec.loader import file_errors

DATA_KEPT = 4096  # bytes of one initializer's values kept in memory; larger ones keep only their dims
MAX_FOLDED = 1_000_000  # elements of a constant computed here (shape arithmetic)
MAX_SIDE_FIELD = 64 * 2**20  # a top-level field other than the graph larger than this is not ONNX
INSTALL = 'reading ONNX files needs the onnx package: pip install "cnncalc[onnx]"'


@dataclass
class Imported:
    """What reading an ONNX file gives: the spec data, and what `cnncalc import` tells."""

    data: dict
    file: str
    producer: str  # "ONNX IR 9, opset 20, pytorch 2.13.0"
    nodes: int
    notes: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)  # "nodes[3] Einsum (/Einsum): why"
    stopped_at: int | None = None  # the first unsupported node's index, when `partial`


def read_onnx(path: str | Path, input_shape: tuple[int, ...] | None = None, partial: bool = False) -> Imported:
    """Spec data for the ONNX file ``path``. ``input_shape`` ([C, *spatial]) fixes a dynamic
    input (or replaces a static one). Raises SpecError (located at the file, the input or the
    node) for anything that cannot be read or mapped; with ``partial``, unsupported ops instead
    end the layers before the first of them (``Imported.unsupported`` lists them all)."""
    path = Path(path)
    file = str(path)
    where = Location(file=file)
    try:
        import numpy
        import onnx
    except ImportError:
        raise SpecError(INSTALL, where) from None
    raw = _light_bytes(path)
    model = onnx.ModelProto()
    try:
        model.ParseFromString(raw)
    except Exception as exc:  # google.protobuf's DecodeError, or a RuntimeError from the C++ parser
        raise SpecError(f"is not a valid ONNX model (protobuf: {exc or type(exc).__name__})", where) from None
    del raw
    if not model.HasField("graph") or model.ir_version <= 0:
        raise SpecError("is not an ONNX model: it has no graph (or no IR version)", where)
    if not model.graph.node:
        raise SpecError("is an ONNX model without nodes; there is nothing to analyse", where)
    converter = _Converter(onnx, numpy, model, file, input_shape, partial)
    return converter.run()


def load_onnx_file(path: str | Path):
    """(spec data, source map) for ``cnncalc.spec.loader.load_file``: a `.onnx` SPEC in any command."""
    from ..spec.loader import SourceMap

    imported = read_onnx(path)
    return imported.data, SourceMap(imported.file)


# ============================================================================ reading without the weights
class _Malformed(Exception):
    def __init__(self, message: str, truncated: bool = False):
        super().__init__(message)
        self.truncated = truncated


def _light_bytes(path: Path) -> bytes:
    """The file's protobuf with large initializer values left out (see the module's docstring)."""
    with file_errors(path, "an ONNX file") as where:
        handle = open(path, "rb")
    with handle:
        try:
            buffer = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError):  # an empty file, or one that cannot be mapped (a pipe)
            try:
                buffer = handle.read()
            except OSError as exc:
                raise SpecError(f"cannot be read ({exc.strerror or exc})", where) from None
    if not len(buffer):
        raise SpecError("is empty; an ONNX file holds a protobuf ModelProto", where)
    try:
        return _Wire(buffer).model()
    except _Malformed as exc:
        verb = "is truncated or damaged" if exc.truncated else "is not a valid ONNX file"
        raise SpecError(f"{verb}: {exc}", where) from None
    finally:
        if isinstance(buffer, mmap.mmap):
            buffer.close()


class _Wire:
    """Protobuf's wire format, just enough to copy a ModelProto without big tensor values."""

    TENSOR_DATA = {4, 5, 6, 7, 9, 10, 11}  # float, int32, string, int64, raw, double, uint64 data

    def __init__(self, buffer):
        self.buffer = buffer
        self.size = len(buffer)

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        buffer, result, shift = self.buffer, 0, 0
        while True:
            if pos >= end:
                raise _Malformed(f"a number at byte {pos:,} runs past the end"
                                 + (f" of the file ({self.size:,} bytes)" if end == self.size else " of its message"),
                                 truncated=end == self.size)
            byte = buffer[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result, pos
            shift += 7
            if shift > 63:
                raise _Malformed(f"a malformed number at byte {pos:,}")

    def fields(self, start: int, end: int, what: str):
        """(number, wire type, field start, value start, value end) of each field in [start, end)."""
        pos = start
        while pos < end:
            first = pos
            tag, pos = self.varint(pos, end)
            number, wire = tag >> 3, tag & 7
            if number == 0 or wire in (3, 4, 6, 7):
                raise _Malformed(f"no protobuf field can start at byte {first:,} (tag {tag}) in the {what}")
            if wire == 0:
                value = pos
                _, pos = self.varint(pos, end)
            elif wire == 1:
                value, pos = pos, pos + 8
            elif wire == 5:
                value, pos = pos, pos + 4
            else:
                length, value = self.varint(pos, end)
                pos = value + length
            if pos > end:
                part = FIELD_NAMES.get((what, number), f"field {number} of the {what}")
                if end == self.size:
                    raise _Malformed(f"{part} runs to byte {pos:,}, but the file ends at byte {self.size:,}",
                                     truncated=True)
                raise _Malformed(f"{part} runs past the end of its message (byte {pos:,})")
            yield number, wire, first, value, pos

    def model(self) -> bytes:
        out = bytearray()
        for number, wire, first, value, end in self.fields(0, self.size, "model"):
            if number == 7 and wire == 2:  # ModelProto.graph
                out += _tag(7, 2) + _varint_bytes_of(self.graph(value, end))
            else:
                if end - first > MAX_SIDE_FIELD:
                    raise _Malformed(f"field {number} of the model holds {end - first:,} bytes; an ONNX model keeps "
                                     "its weights in the graph")
                out += self.buffer[first:end]
        return bytes(out)

    def graph(self, start: int, end: int) -> bytes:
        out = bytearray()
        for number, wire, first, value, stop in self.fields(start, end, "graph"):
            if number == 5 and wire == 2:  # GraphProto.initializer
                out += _tag(5, 2) + _varint_bytes_of(self.tensor(value, stop))
            else:
                out += self.buffer[first:stop]
        return bytes(out)

    def tensor(self, start: int, end: int) -> bytes:
        spans = list(self.fields(start, end, "initializer"))
        data = sum(stop - value for number, _, _, value, stop in spans if number in self.TENSOR_DATA)
        if data <= DATA_KEPT:
            return self.buffer[start:end]
        return b"".join(self.buffer[first:stop] for number, _, first, _, stop in spans
                        if number not in self.TENSOR_DATA)


FIELD_NAMES = {("model", 7): "the graph", ("model", 8): "the opset list", ("graph", 1): "a node",
               ("graph", 5): "an initializer", ("graph", 11): "an input", ("graph", 12): "an output",
               ("graph", 13): "a value_info", ("initializer", 9): "an initializer's raw data"}


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _tag(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _varint_bytes_of(payload: bytes) -> bytes:
    return _varint(len(payload)) + payload


# ============================================================================ values flowing through the graph
@dataclass(frozen=True)
class _Act:
    """An activation: the output of a layer (or a network input), by its internal reference."""

    ref: str
    tensor: Any  # cnncalc.engine.Tensor

    @property
    def shape(self) -> tuple[int, ...]:
        return self.tensor.shape


@dataclass
class _Crop:
    """A centre crop of an activation's spatial axes (a Slice), which only a Concat may read: it
    becomes cnncalc's `concat` with `crop: true`, as U-Net's skip connections."""

    source: _Act
    shape: tuple[int, ...]  # [C, *spatial] after the crop
    starts: tuple[int, ...]  # per spatial axis, the first row/column kept of the source


@dataclass
class _Known:
    """A tensor known without running the network: an initializer (dims; values when small), a
    Constant, or shape arithmetic computed here."""

    dims: tuple[int, ...]
    array: Any = None  # numpy array, when the values are known
    proto: Any = None  # the TensorProto, whose values are read on demand
    name: str | None = None  # the initializer's name

    @property
    def elements(self) -> int:
        return math.prod(self.dims)


class _Unsupported(Exception):
    """An op (or a use of one) cnncalc cannot map: listed, never counted as zero."""


@dataclass
class _Record:
    """How one spec entry gets its final name."""

    ident: str
    node: int
    scope: str | None  # the PyTorch module scope; None when the node name is not scoped
    label: str  # within a scope of several layers: the kind, numbered as PyTorch numbers (`relu`, `relu_1`)
    fallback: str  # the name for unscoped nodes
    part: str | None = None  # a second layer of one node: named `FIRST.part`
    pieces: list[tuple[str, str]] = field(default_factory=list)  # split: (internal ref, suffix)


_WEIGHT_SUFFIXES = (".weight", ".bias", ".running_mean", ".running_var", ".scale")


class _Converter:
    def __init__(self, onnx, numpy, model, file: str, input_shape, partial: bool):
        self.onnx, self.np, self.model, self.file, self.partial = onnx, numpy, model, file, partial
        self.graph = model.graph
        self.opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=1)
        self.nodes = list(self.graph.node)
        self.values: dict[str, Any] = {}
        self.poisoned: set[str] = set()
        self.skip: dict[int, str] = {}  # node index -> why: folded into an earlier layer
        self.entries: list[dict] = []
        self.records: list[_Record] = []
        self.notes: list[str] = []
        self.unsupported: list[tuple[int, str]] = []
        self.consumers: dict[str, list[int]] = {}
        self.producer: dict[str, int] = {}
        for index, node in enumerate(self.nodes):
            for name in node.input:
                if name:
                    self.consumers.setdefault(name, []).append(index)
            for name in node.output:
                if name:
                    self.producer[name] = index
        self.graph_outputs = {o.name for o in self.graph.output}
        self.initializers = {t.name: t for t in self.graph.initializer}
        self.node_index = -1
        self._input_shape = input_shape
        self.inferred: dict[str, list] = {}
        self.batch_noted = False
        self.done: set[int] = set()  # nodes converted ahead of their turn (constants)
        self.unreliable: set[str] = set()  # tensors whose ONNX-inferred shapes follow a known mistake of ONNX's

    # ------------------------------------------------------------------ the run
    def run(self) -> Imported:
        self.setup_inputs(self._input_shape)
        self.inferred = self.infer_shapes()
        first_unsupported = None
        for index, node in enumerate(self.nodes):
            self.node_index = index
            if index in self.done:  # a constant computed early, for an earlier node
                continue
            if index in self.skip:  # folded into an earlier node's layer; poisoned if that one failed
                if any(name not in self.values for name in node.output if name):
                    self.poisoned.update(node.output)
                continue
            if any(name in self.poisoned for name in node.input if name):
                self.poisoned.update(node.output)
                if not self.known_op(node):
                    self.unsupported.append((index, self.describe(node, "")))
                continue
            if any(name in self.unreliable for name in node.input):
                self.unreliable.update(node.output)
            entries_before = len(self.entries)
            try:
                self.convert(node)
            except _Unsupported as exc:
                self.unsupported.append((index, self.describe(node, str(exc))))
                self.poisoned.update(node.output)
                if first_unsupported is None:
                    first_unsupported = (index, entries_before)
            except CnnCalcError as exc:
                if first_unsupported is not None:  # already failing: an error downstream of it is no news
                    self.poisoned.update(node.output)
                    continue
                raise SpecError(exc.message, self.where(index)) from None
        if self.unsupported and not self.partial:
            index = self.unsupported[0][0]
            listed = "; ".join(text for _, text in self.unsupported)
            count = len(self.unsupported)
            raise SpecError(f"{count} ONNX op{'s' if count > 1 else ''} cnncalc cannot map (none is counted as "
                            f"zero): {listed}; `cnncalc import --partial` keeps the layers before the first",
                            self.where(index))
        stopped_at = None
        if first_unsupported is not None:
            stopped_at, keep = first_unsupported
            del self.entries[keep:]
            del self.records[keep:]
        if not self.entries:
            raise SpecError("no node of the model maps to a cnncalc layer"
                            + (f" before the first unsupported op (nodes[{stopped_at}])" if stopped_at is not None
                               else ""), Location(file=self.file))
        return Imported(self.spec_data(), self.file, self.made_by(), len(self.nodes), self.notes,
                        [text for _, text in self.unsupported], stopped_at)

    def describe(self, node, why: str) -> str:
        index = self.node_index
        text = f"nodes[{index}] {node.op_type}" + (f" ({node.name})" if node.name else "")
        if node.domain not in ("", "ai.onnx"):
            text += f" of domain {node.domain}"
        return f"{text}: {why}" if why else text

    def where(self, index: int) -> Location:
        node = self.nodes[index]
        return Location(self.file, None, f"nodes[{index}]", node.name or node.op_type)

    def made_by(self) -> str:
        model = self.model
        made = " ".join(part for part in (model.producer_name, model.producer_version) if part)
        return f"ONNX IR {model.ir_version}, opset {self.opset}" + (f", {made}" if made else "")

    # ------------------------------------------------------------------ inputs
    def setup_inputs(self, override) -> None:
        from ..engine import Engine, Scope, network_input
        from ..spec.build import Spec, _Builder
        from ..spec.loader import SourceMap

        graph_inputs = [i for i in self.graph.input if i.name not in self.initializers]
        if not graph_inputs:
            raise SpecError("the model has no input (every graph input is an initializer)", Location(file=self.file))
        shapes: dict[str, tuple[int, ...]] = {}
        refs: list[str] = []
        self.batch = 1
        for number, value in enumerate(graph_inputs):
            where = Location(self.file, None, f"inputs[{number}]", value.name)
            tensor_type = value.type.tensor_type if value.type.HasField("tensor_type") else None
            if tensor_type is None or not tensor_type.HasField("shape"):
                raise SpecError("the input has no tensor shape; cnncalc needs [N, C, *spatial]", where)
            dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor_type.shape.dim]
            if len(dims) < 2:
                raise SpecError(f"the input is {self.dims_text(dims)}; cnncalc needs a batch axis and at least one "
                                "more, [N, C, *spatial]", where)
            if number == 0 and override is not None:
                if len(override) != len(dims) - 1:
                    raise SpecError(f"--input gives {len(override)} axes, but the input {self.dims_text(dims)} has "
                                    f"{len(dims) - 1} besides the batch", where)
                dims = [dims[0], *override]
                for dim, size in zip(list(tensor_type.shape.dim)[1:], override):
                    dim.Clear()
                    dim.dim_value = size
                for output in self.graph.output:  # their declared shapes followed the old input
                    if output.type.HasField("tensor_type"):
                        output.type.tensor_type.ClearField("shape")
                del self.graph.value_info[:]
            per_sample = dims[1:]
            if any(not isinstance(d, int) or d <= 0 for d in per_sample):
                letters = ["C", *{1: "L", 2: "HW", 3: "DHW"}.get(len(per_sample) - 1, "S" * (len(per_sample) - 1))]
                hint = "x".join(str(d) if isinstance(d, int) and d > 0 else letter
                                for d, letter in zip(per_sample, letters))
                raise SpecError(f"the input's size is dynamic ({self.dims_text(dims)}); give it with --input "
                                f"and numbers for its sizes, e.g. `cnncalc table {self.file} --input {hint}` or "
                                f"`cnncalc import {self.file} --input {hint} -o spec.yaml` (the batch axis may stay "
                                "dynamic)", where)
            if number == 0:
                batch = dims[0]
                self.batch = batch if isinstance(batch, int) and batch > 0 else 1
                self.batch_known = isinstance(batch, int) and batch > 0
            if len(per_sample) > 4:
                raise SpecError(f"the input {self.dims_text(dims)} has {len(per_sample)} axes per sample; cnncalc's "
                                "shapes have at most 4 ([C, D, H, W])", where)
            ref = "input" if number == 0 else self.input_name(value.name, shapes)
            shapes[ref] = tuple(per_sample)
            refs.append(ref)
        spec_inputs = dict(shapes)
        if len(shapes) > 1:  # `inputs` may not call one `input`: the first keeps its ONNX name there
            first = self.input_name(graph_inputs[0].name, shapes)
            spec_inputs = {first: shapes["input"], **{k: v for k, v in shapes.items() if k != "input"}}
        self.spec_inputs = spec_inputs
        stub = Spec(name="onnx", input=shapes["input"], layers=[], inputs=spec_inputs, source=SourceMap(self.file),
                    rounding="floor")
        self.engine = Engine(stub, "floor", 1, "float32", "sgd", rounding_chosen="spec")
        self.builder = _Builder(SourceMap(self.file))
        self.scope = Scope()
        tensors = [network_input(shape, -1 - n) for n, shape in enumerate(spec_inputs.values())]
        self.engine.outputs.update(zip(spec_inputs, tensors))
        self.engine.outputs.setdefault("input", tensors[0])
        for ref, value, tensor in zip(refs, graph_inputs, tensors):
            act = _Act(ref, tensor)
            self.values[value.name] = act
        self.first_input = self.values[graph_inputs[0].name]
        self.last = self.first_input
        self.reserved = {"input", *spec_inputs}
        for initializer in self.graph.initializer:
            self.values[initializer.name] = _Known(tuple(initializer.dims), proto=initializer, name=initializer.name)

    @staticmethod
    def input_name(name: str, taken) -> str:
        clean = re.sub(r"[^A-Za-z0-9_.\-]", "_", name) or "x"
        if clean == "input" or clean in taken:
            clean = f"{clean}_{len(taken)}"
        return clean

    def dims_text(self, dims) -> str:
        return "[" + ", ".join(str(d) for d in dims) + "]"

    # ------------------------------------------------------------------ ONNX's own shapes
    def infer_shapes(self) -> dict[str, list]:
        try:
            inferred = self.onnx.shape_inference.infer_shapes(self.model, check_type=False, strict_mode=False,
                                                              data_prop=True)
        except Exception as exc:  # ONNX could not infer: nothing to compare with
            self.notes.append(f"ONNX's shape inference failed ({str(exc).splitlines()[0] if str(exc) else exc!r}); "
                              "shapes are cnncalc's alone, not cross-checked")
            return {}
        shapes = {}
        for value in [*inferred.graph.value_info, *inferred.graph.output]:
            tensor_type = value.type.tensor_type if value.type.HasField("tensor_type") else None
            if tensor_type is None or not tensor_type.HasField("shape"):
                continue
            shapes[value.name] = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
        return shapes

    # ------------------------------------------------------------------ one node
    def known_op(self, node) -> bool:
        """Whether cnncalc maps ``node``'s op on a computed tensor at all (for nodes after an
        unsupported one, which are not converted)."""
        return node.domain in ("", "ai.onnx") and (node.op_type in HANDLERS or node.op_type in ("Shape", "Size"))

    def convert(self, node) -> None:
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            raise _Unsupported("an op of another domain (a custom op)")
        present = [name for name in node.input if name]
        values = [self.lookup(name) for name in present]
        if any(v is None for v in values):
            missing = [name for name, v in zip(present, values) if v is None]
            raise _Unsupported(f"its input `{missing[0]}` is produced by no earlier node")
        if op == "Constant":
            return self.bind(node, 0, self.constant(node))
        if op in ("Shape", "Size") and values and isinstance(values[0], _Act):
            return self.bind(node, 0, self.shape_of(node, values[0]))
        if op in FOLDABLE and values and all(isinstance(v, _Known) for v in values):
            return self.fold(node, values)
        handler = HANDLERS.get(op)
        if handler is None:
            raise _Unsupported("")
        getattr(self, handler)(node)

    # ------------------------------------------------------------------ emitting layers
    def emit(self, node, kind: str, args: dict, inputs: list[_Act], weights: list[_Known] = (), part: str | None = None,
             pieces: list[str] | None = None) -> _Act:
        """One spec entry for ``node``: built, then stepped through the engine (its shape is
        cnncalc's); its parameters must be what ``weights`` hold. ``part``: a second layer of the
        same node (named after the first, `NAME.part`)."""
        ident = f"@{len(self.entries)}"
        body: dict[str, Any] = {"name": ident}
        if kind in ("add", "mul", "concat"):
            body["from"] = [a.ref for a in inputs]
        elif inputs[0] is not self.last:
            body["from"] = inputs[0].ref
        if pieces is not None:
            body["names"] = [f"{ident}.{i}" for i in range(len(pieces))]
        body.update(args)
        entry = {kind: body}
        rows_before = len(self.engine.rows)
        layer = self.builder.layer(entry, ("layers", len(self.entries)), 0)
        tensor = self.engine.step(layer, inputs[0].tensor, self.scope)
        rows = self.engine.rows[rows_before:]
        counted = sum(r.weights + r.biases + r.buffers for r in rows)
        held = sum(w.elements for w in weights)
        if counted != held:
            shapes = ", ".join(f"{w.name or 'constant'} {list(w.dims)}" for w in weights) or "none"
            raise SpecError(f"cnncalc's `{kind}` counts {counted:,} parameters, but the initializers it reads hold "
                            f"{held:,} ({shapes})")
        self.entries.append(entry)
        self.records.append(_Record(ident, self.node_index, _scope_of(node.name), kind, self.fallback_name(node, kind),
                                    part=part))
        act = _Act(ident, tensor)
        self.last = act
        if pieces is not None:
            self.records[-1].pieces = [(f"{ident}.{i}", f".{i}") for i in range(len(pieces))]
        return act

    def fallback_name(self, node, kind: str) -> str:
        """The node's own name; for an automatic one (`Conv_12`, or none) its weights' module name
        (`conv1.weight` -> `conv1`), as older PyTorch exports have them."""
        if node.name and not re.fullmatch(rf"{re.escape(node.op_type)}(_\d+)?", node.name):
            return node.name
        for name in node.input:
            known = self.values.get(name)
            if isinstance(known, _Known) and known.name and known.name.endswith(_WEIGHT_SUFFIXES):
                return known.name.rsplit(".", 1)[0]
        return node.name or f"{kind}_{self.node_index}"

    def bind(self, node, index: int, value, also: tuple[tuple[int, ...], str] | None = None) -> None:
        """The node's output ``index`` is ``value``; an activation is checked against ONNX's shape
        (``also``: another shape ONNX's inference may give, known to be its own mistake, and the note
        that says so)."""
        name = node.output[index]
        if isinstance(value, _Act):
            self.cross_check(name, value.shape, also)
        self.values[name] = value

    def cross_check(self, name: str, shape: tuple[int, ...], also=None) -> None:
        onnx_dims = self.inferred.get(name)
        if not onnx_dims or name in self.unreliable:
            return

        def agrees(sizes) -> bool:
            ours = [self.batch if self.batch_known else None, *sizes]
            return len(onnx_dims) == len(ours) and all(a is None or b is None or a == b
                                                       for a, b in zip(onnx_dims, ours))

        if agrees(shape):
            return
        if also is not None and agrees(also[0]):
            self.unreliable.add(name)  # and what ONNX inferred from it
            self.notes.append(f"nodes[{self.node_index}] ({self.nodes[self.node_index].name}): {also[1]}")
            return
        show = lambda dims: "[" + ", ".join("N" if d is None else str(d) for d in dims) + "]"
        ours = [self.batch if self.batch_known else None, *shape]
        raise SpecError(f"cnncalc computes {show(ours)} for the output `{name}`, but ONNX's shape inference "
                        f"gives {show(onnx_dims)}")

    # ------------------------------------------------------------------ reading inputs and attributes
    def attrs(self, node) -> dict:
        helper, numpy_helper = self.onnx.helper, self.onnx.numpy_helper
        out = {}
        for attribute in node.attribute:
            value = helper.get_attribute_value(attribute)
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            elif attribute.type == self.onnx.AttributeProto.TENSOR:
                value = numpy_helper.to_array(value)
            elif isinstance(value, list):
                value = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
            out[attribute.name] = value
        return out

    def input(self, node, index: int):
        """The value of input ``index``, or None when absent."""
        if index >= len(node.input) or not node.input[index]:
            return None
        return self.lookup(node.input[index])

    def lookup(self, name: str, depth: int = 0):
        """The value of tensor ``name``; a constant made by a later node (shape arithmetic that the
        exporter put after its first reader) is computed now. None when unknown."""
        value = self.values.get(name)
        if value is not None or depth > 64:
            return value
        index = self.producer.get(name)
        if index is None or index in self.done or index <= self.node_index:  # an earlier node failed: unknown
            return None
        node = self.nodes[index]
        if node.domain not in ("", "ai.onnx") or not (
                node.op_type in FOLDABLE or node.op_type in ("Constant", "Shape", "Size")):
            return None
        inputs = [self.lookup(i, depth + 1) for i in node.input if i]
        if any(v is None for v in inputs) or (node.op_type in FOLDABLE and node.op_type not in ("Shape", "Size")
                                               and not all(isinstance(v, _Known) for v in inputs)):
            return None
        current = self.node_index
        self.node_index = index
        try:
            self.convert(node)
        except (_Unsupported, CnnCalcError):
            return None
        finally:
            self.node_index = current
        self.done.add(index)
        return self.values.get(name)

    def act(self, node, index: int = 0) -> _Act:
        value = self.input(node, index)
        if isinstance(value, _Crop):
            raise _Unsupported(f"its input {index} is a Slice of the spatial axes (a crop); cnncalc reads such a "
                               "slice only as U-Net's centre crop before a channel Concat (`concat` with `crop`)")
        if not isinstance(value, _Act):
            raise _Unsupported(f"its input {index} is a constant, not computed from the network input")
        return value

    def weight(self, node, index: int, what: str, optional: bool = False) -> _Known | None:
        value = self.input(node, index)
        if value is None:
            if optional:
                return None
            raise _Unsupported(f"it has no {what}")
        if not isinstance(value, _Known):
            raise _Unsupported(f"its {what} is computed in the graph, not an initializer")
        return value

    def values_of(self, known: _Known, what: str):
        """The numbers of a constant input (a Reshape's shape, Clip's bounds)."""
        if known.array is not None:
            return known.array
        proto = known.proto
        if proto is None or not _has_values(proto):
            raise _Unsupported(f"its {what} ({known.name or 'a constant'}) has no values in the file "
                               "(large or external data, which cnncalc does not read)")
        known.array = self.onnx.numpy_helper.to_array(proto)
        return known.array

    def const(self, node, index: int, what: str, default=None):
        value = self.input(node, index)
        if value is None:
            return default
        if isinstance(value, _Act):
            raise _Unsupported(f"its {what} is computed from the network input at run time")
        return self.values_of(value, what)

    def ints(self, node, index: int, what: str, default=None):
        array = self.const(node, index, what)
        return default if array is None else [int(v) for v in array.reshape(-1)]

    # ------------------------------------------------------------------ constants and shape arithmetic
    def constant(self, node) -> _Known:
        attrs = self.attrs(node)
        np = self.np
        if "value" in attrs:
            array = attrs["value"]
        elif "value_float" in attrs:
            array = np.array(attrs["value_float"], dtype=np.float32)
        elif "value_floats" in attrs:
            array = np.array(attrs["value_floats"], dtype=np.float32)
        elif "value_int" in attrs:
            array = np.array(attrs["value_int"], dtype=np.int64)
        elif "value_ints" in attrs:
            array = np.array(attrs["value_ints"], dtype=np.int64)
        else:
            raise _Unsupported("a Constant of a kind cnncalc does not read (sparse or strings)")
        return _Known(tuple(array.shape), array=array)

    def shape_of(self, node, act: _Act) -> _Known:
        np = self.np
        full = [self.batch, *act.shape]
        if node.op_type == "Size":
            return _Known((), array=np.array(math.prod(full), dtype=np.int64))
        attrs = self.attrs(node)
        start, end = attrs.get("start", 0), attrs.get("end", len(full))
        array = np.array(full[slice(start, end)], dtype=np.int64)
        if not self.batch_known and start in (0, -len(full)) and not self.batch_noted:
            self.batch_noted = True
            self.notes.append(f"nodes[{self.node_index}] ({node.name}): the batch size is dynamic; shape arithmetic "
                              "(Shape nodes) takes batch 1")
        return _Known(tuple(array.shape), array=array)

    def fold(self, node, values: list[_Known]) -> None:
        """An op on constants computed here (shape arithmetic); Identity, Cast and Transpose also
        pass a weight on by its dims when its values are not in memory."""
        np, op = self.np, node.op_type
        if op == "Identity":  # an alias (exporters share equal initializers through Identity nodes)
            return self.bind(node, 0, values[0])
        if op in ("Cast", "Transpose") and values[0].array is None and \
                (values[0].proto is None or not _has_values(values[0].proto) or values[0].elements > MAX_FOLDED):
            dims = values[0].dims
            if op == "Transpose":
                perm = self.attrs(node).get("perm", list(range(len(dims)))[::-1])
                dims = tuple(dims[p] for p in perm)
            return self.bind(node, 0, _Known(dims, name=values[0].name))
        if any(v.elements > MAX_FOLDED for v in values):
            raise _Unsupported(f"{op} of constants too large to compute here")
        arrays = [self.values_of(v, "constant input") for v in values]
        present = [name for name in node.input if name]
        full = [None] * len(node.input)
        for name, array in zip(present, arrays):
            full[list(node.input).index(name)] = array
        try:
            results = _fold(np, op, full, self.attrs(node), self.opset, self.onnx)
        except _Unsupported:
            raise
        except Exception as exc:
            raise _Unsupported(f"computing it from its constant inputs failed ({exc})") from None
        for index, array in enumerate(results):
            array = np.asarray(array)
            if array.size > MAX_FOLDED:
                raise _Unsupported(f"{op} makes a constant of {array.size:,} values")
            self.bind(node, index, _Known(tuple(array.shape), array=array))

    # ------------------------------------------------------------------ helpers for the layer handlers
    def sole_consumer(self, name: str):
        """(index, node) of the one node reading ``name``, or None (also when it is a graph output)."""
        users = self.consumers.get(name, [])
        if len(users) != 1 or name in self.graph_outputs:
            return None
        return users[0], self.nodes[users[0]]

    def peek(self, name: str):
        """The numbers of tensor ``name`` when it is a constant (an initializer with its values, a
        Constant node or shape arithmetic, even later in the graph), else None: for patterns."""
        value = self.lookup(name, depth=1)
        if not isinstance(value, _Known):
            return None
        try:
            return self.values_of(value, "value")
        except _Unsupported:
            return None

    def is_scalar(self, name: str, number: float) -> bool:
        array = self.peek(name)
        return array is not None and array.size == 1 and math.isclose(float(array.reshape(-1)[0]), number,
                                                                      rel_tol=1e-5)

    def follow(self, name: str, op: str, other=None):
        """(index, node) of the sole reader of ``name`` when it is an ``op`` whose other input
        satisfies ``other`` (a tensor name, or a test of one), else None."""
        found = self.sole_consumer(name)
        if found is None or found[1].op_type != op:
            return None
        inputs = list(found[1].input)
        if other is not None:
            if len(inputs) != 2 or name not in inputs:
                return None
            rest = inputs[1] if inputs[0] == name else inputs[0]
            if not (rest == other if isinstance(other, str) else other(rest)):
                return None
        return found

    def used(self, node, index: int) -> bool:
        return index < len(node.output) and bool(node.output[index]) and (
            node.output[index] in self.consumers or node.output[index] in self.graph_outputs)

    def pads(self, attrs: dict, sizes, kernel, strides, dilations) -> list[tuple[int, int]]:
        rank = len(sizes)
        auto = attrs.get("auto_pad", "NOTSET") or "NOTSET"
        if auto == "NOTSET":
            flat = attrs.get("pads", [0] * 2 * rank)
            if len(flat) != 2 * rank:
                raise _Unsupported(f"`pads` {flat} does not hold a begin and an end for each of {rank} spatial axes")
            pairs = list(zip(flat[:rank], flat[rank:]))
        elif auto == "VALID":
            pairs = [(0, 0)] * rank
        elif auto in ("SAME_UPPER", "SAME_LOWER"):
            pairs = []
            for size, k, s, d in zip(sizes, kernel, strides, dilations):
                total = max(0, (math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size)
                small, large = total // 2, total - total // 2
                pairs.append((small, large) if auto == "SAME_UPPER" else (large, small))
        else:
            raise _Unsupported(f"auto_pad {auto!r}")
        if any(p < 0 for pair in pairs for p in pair):
            raise _Unsupported(f"negative padding {pairs} (a crop)")
        return [(int(a), int(b)) for a, b in pairs]

    def axis(self, value: int, ndim: int) -> int:
        if not -ndim <= value < ndim:
            raise _Unsupported(f"axis {value} is out of range for a {ndim}-D tensor")
        return value + ndim if value < 0 else value

    # ============================================================================ op handlers
    def op_conv(self, node) -> None:
        attrs = self.attrs(node)
        x = self.act(node)
        w = self.weight(node, 1, "weight")
        b = self.weight(node, 2, "bias", optional=True)
        rank = len(x.shape) - 1
        if rank < 1 or len(w.dims) != rank + 2:
            raise _Unsupported(f"a weight of shape {list(w.dims)} on an input of shape {self.full(x)}")
        kernel = list(attrs.get("kernel_shape", w.dims[2:]))
        strides = attrs.get("strides", [1] * rank)
        dilations = attrs.get("dilations", [1] * rank)
        groups = attrs.get("group", 1)
        if node.op_type == "ConvTranspose":
            return self.conv_transpose(node, attrs, x, w, b, kernel, strides, dilations, groups)
        pads = self.pads(attrs, x.shape[1:], kernel, strides, dilations)
        if w.dims[1] * groups != x.shape[0]:
            raise SpecError(f"the weight {list(w.dims)} with group {groups} takes {w.dims[1] * groups} input "
                            f"channels, but the input has {x.shape[0]}")
        args: dict[str, Any] = {"filters": int(w.dims[0]), "kernel": _axes(kernel)}
        _set_unless(args, "stride", _axes(strides), 1)
        _set_unless(args, "padding", _padding(pads), 0)
        _set_unless(args, "dilation", _axes(dilations), 1)
        _set_unless(args, "groups", int(groups), 1)
        if b is None:
            args["bias"] = False
        self.bind(node, 0, self.emit(node, "conv", args, [x], [w] + ([b] if b else [])))

    def conv_transpose(self, node, attrs, x, w, b, kernel, strides, dilations, groups) -> None:
        rank = len(kernel)
        if w.dims[0] != x.shape[0]:
            raise SpecError(f"the weight {list(w.dims)} takes {w.dims[0]} input channels, but the input has "
                            f"{x.shape[0]}")
        output_padding = list(attrs.get("output_padding", [0] * rank))
        auto = attrs.get("auto_pad", "NOTSET") or "NOTSET"
        wanted = attrs.get("output_shape")
        if wanted is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
            sizes = x.shape[1:]
            wanted = list(wanted)[-rank:] if wanted is not None else [i * s for i, s in zip(sizes, strides)]
            pads = []
            for size, k, s, d, op, out in zip(sizes, kernel, strides, dilations, output_padding, wanted):
                total = s * (size - 1) + op + (k - 1) * d + 1 - out
                if total < 0:
                    raise _Unsupported(f"output_shape {wanted} needs more than output_padding adds")
                half = total // 2
                pads.append((half, total - half) if auto == "SAME_UPPER" else (total - half, half))
        elif auto == "VALID":
            pads = [(0, 0)] * rank
        else:
            pads = self.pads(attrs, x.shape[1:], kernel, strides, dilations)
        args: dict[str, Any] = {"filters": int(w.dims[1] * groups), "kernel": _axes(kernel)}
        _set_unless(args, "stride", _axes(strides), 1)
        _set_unless(args, "padding", _padding(pads), 0)
        _set_unless(args, "output_padding", _axes(output_padding), 0)
        _set_unless(args, "dilation", _axes(dilations), 1)
        _set_unless(args, "groups", int(groups), 1)
        if b is None:
            args["bias"] = False
        self.bind(node, 0, self.emit(node, "conv_transpose", args, [x], [w] + ([b] if b else [])))

    def op_pool(self, node) -> None:
        attrs = self.attrs(node)
        x = self.act(node)
        rank = len(x.shape) - 1
        if rank < 1:
            raise _Unsupported(f"pooling a flat input {self.full(x)}")
        if node.op_type == "MaxPool" and self.used(node, 1):
            raise _Unsupported("its second output (the indices of the maxima) is used")
        kernel = attrs.get("kernel_shape")
        if kernel is None:
            raise _Unsupported("it has no kernel_shape")
        strides = attrs.get("strides", [1] * rank)
        dilations = attrs.get("dilations", [1] * rank)
        pads = self.pads(attrs, x.shape[1:], kernel, strides, dilations)
        args: dict[str, Any] = {"kernel": _axes(kernel)}
        if list(strides) != list(kernel):  # cnncalc's stride defaults to the kernel, ONNX's to 1
            args["stride"] = _axes(strides)
        _set_unless(args, "padding", _padding(pads), 0)
        if node.op_type == "MaxPool":
            _set_unless(args, "dilation", _axes(dilations), 1)
            kind = "maxpool"
        else:
            if any(d != 1 for d in dilations):
                raise _Unsupported(f"average pooling with dilations {list(dilations)}")
            kind = "avgpool"
            if not attrs.get("count_include_pad", 0) and any(p for pair in pads for p in pair):
                args["count_include_pad"] = False
        also = None
        if attrs.get("ceil_mode", 0):
            args["ceil_mode"] = True
            also = _kept_last_window(x.shape, kernel, strides, pads, dilations)
        self.bind(node, 0, self.emit(node, kind, args, [x]), also)

    def op_global_pool(self, node) -> None:
        x = self.act(node)
        kind = "global_avgpool" if node.op_type == "GlobalAveragePool" else "global_maxpool"
        self.bind(node, 0, self.emit(node, kind, {}, [x]))

    def reduce_axes(self, node, ndim: int) -> list[int]:
        attrs = self.attrs(node)
        axes = attrs.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = self.ints(node, 1, "axes")
        if axes is None:
            if attrs.get("noop_with_empty_axes", 0):
                raise _Unsupported("a reduction over no axes")
            axes = list(range(ndim))
        return sorted({self.axis(a, ndim) for a in axes})

    def op_reduce(self, node) -> None:
        attrs = self.attrs(node)
        x = self.act(node)
        ndim = len(x.shape) + 1
        axes = self.reduce_axes(node, ndim)
        if node.op_type == "ReduceMean" and self.layer_norm_pattern(node, x, axes):
            return
        if axes != list(range(2, ndim)) or ndim < 3:
            raise _Unsupported(f"a reduction over axes {axes}; cnncalc has it over all spatial axes "
                               f"({list(range(2, ndim))}) as global pooling")
        kind = "global_avgpool" if node.op_type == "ReduceMean" else "global_maxpool"
        out = self.emit(node, kind, {}, [x])
        if not attrs.get("keepdims", 1):
            out = self.emit(node, "flatten", {}, [out], part="flatten")
        self.bind(node, 0, out)

    def layer_norm_pattern(self, node, x: _Act, axes: list[int]) -> bool:
        """LayerNorm as exports before opset 17 write it: mean -> x - mean -> ^2 -> mean -> + eps ->
        sqrt -> (x - mean)/sqrt -> * weight -> + bias. True when matched (and emitted)."""
        ndim = len(x.shape) + 1
        if not axes or axes != list(range(axes[0], ndim)) or axes[0] == 0 or \
                not self.attrs(node).get("keepdims", 1):
            return False
        source = node.input[0]
        sub = self.follow(node.output[0], "Sub")
        if sub is None or list(sub[1].input) != [source, node.output[0]]:
            return False
        centred = sub[1].output[0]
        readers = self.consumers.get(centred, [])
        if len(readers) != 2 or centred in self.graph_outputs:
            return False
        pow_ = next(((i, self.nodes[i]) for i in readers if self.nodes[i].op_type == "Pow"), None)
        div = next(((i, self.nodes[i]) for i in readers if self.nodes[i].op_type == "Div"), None)
        if pow_ is None or div is None or list(pow_[1].input)[0] != centred or \
                not self.is_scalar(pow_[1].input[1], 2.0) or list(div[1].input)[0] != centred:
            return False
        variance = self.follow(pow_[1].output[0], "ReduceMean")
        if variance is None or self.reduce_axes(variance[1], ndim) != axes:
            return False
        eps_node = self.follow(variance[1].output[0], "Add", lambda n: self.peek(n) is not None)
        sqrt = eps_node and self.follow(eps_node[1].output[0], "Sqrt")
        if not sqrt or self.follow(sqrt[1].output[0], "Div", centred) != div:
            return False
        eps_name = [n for n in eps_node[1].input if n != variance[1].output[0]][0]
        eps = _f32(float(self.peek(eps_name).reshape(-1)[0]))
        last, weights = div, []
        normalized = [int(d) for d in x.shape[axes[0] - 1:]]

        def learned(name: str) -> bool:
            value = self.lookup(name, depth=1)
            return isinstance(value, _Known) and value.name is not None and value.elements == math.prod(normalized)

        scale = self.follow(div[1].output[0], "Mul", learned)
        if scale:
            weights.append(self.lookup([n for n in scale[1].input if n != div[1].output[0]][0], depth=1))
            last = scale
            shift = self.follow(scale[1].output[0], "Add", learned)
            if shift:
                weights.append(self.lookup([n for n in shift[1].input if n != scale[1].output[0]][0], depth=1))
                last = shift
        for index, _ in (sub, pow_, variance, eps_node, sqrt, div, *([scale] if scale else []),
                         *([last] if last is not div and last is not scale else [])):
            self.skip[index] = "part of layer norm"
        args: dict[str, Any] = {"normalized_shape": normalized[0] if len(normalized) == 1 else normalized}
        _set_unless(args, "eps", eps, 1e-5)
        if not weights:
            args["elementwise_affine"] = False
        elif len(weights) == 1:
            args["bias"] = False
        self.bind(last[1], 0, self.emit(node, "layernorm", args, [x], weights))
        return True

    def op_gemm(self, node) -> None:
        attrs = self.attrs(node)
        x = self.act(node)
        w = self.weight(node, 1, "weight (B)")
        b = self.weight(node, 2, "bias (C)", optional=True)
        if attrs.get("transA", 0):
            raise _Unsupported("transA=1 (the input transposed)")
        if len(x.shape) != 1 or len(w.dims) != 2:
            raise _Unsupported(f"Gemm of {self.full(x)} and {list(w.dims)}")
        features, inputs = (w.dims[0], w.dims[1]) if attrs.get("transB", 0) else (w.dims[1], w.dims[0])
        if inputs != x.shape[0]:
            raise SpecError(f"the weight {list(w.dims)} takes {inputs} features, but the input has {x.shape[0]}")
        if b is not None and b.elements != features:
            raise _Unsupported(f"the bias {list(b.dims)} is broadcast to {features} outputs; cnncalc counts one "
                               "bias per output")
        args: dict[str, Any] = {"features": int(features)}
        if b is None:
            args["bias"] = False
        self.bind(node, 0, self.emit(node, "linear", args, [x], [w] + ([b] if b else [])))

    def op_matmul(self, node) -> None:
        a, b = self.input(node, 0), self.input(node, 1)
        if not isinstance(a, _Act) or not isinstance(b, _Known):
            raise _Unsupported("a product of two computed tensors (attention?)" if isinstance(b, _Act)
                               else "a constant times the input (W @ x)")
        if len(b.dims) != 2:
            raise _Unsupported(f"a product with a weight of shape {list(b.dims)}")
        if b.dims[0] != a.shape[-1]:
            raise SpecError(f"the weight {list(b.dims)} takes {b.dims[0]} features, but the input's last axis has "
                            f"{a.shape[-1]}")
        features = int(b.dims[1])
        bias, out_node = None, node
        follower = self.sole_consumer(node.output[0])
        if follower is not None:
            index, add = follower
            if add.op_type == "Add" and len(add.input) == 2:
                other = add.input[1] if add.input[0] == node.output[0] else add.input[0]
                candidate = self.values.get(other)
                if isinstance(candidate, _Known) and candidate.dims in ((features,), (1, features)):
                    bias, out_node = candidate, add
                    self.skip[index] = "the bias of a linear layer"
        args: dict[str, Any] = {"features": features}
        if bias is None:
            args["bias"] = False
        if len(a.shape) > 1:
            args["flatten"] = False
        out = self.emit(node, "linear", args, [a], [b] + ([bias] if bias else []))
        self.bind(out_node, 0, out)
        if out_node is not node:
            self.values[node.output[0]] = out  # (read by nothing else)

    def op_flatten(self, node) -> None:
        x = self.act(node)
        ndim = len(x.shape) + 1
        axis = self.axis(self.attrs(node).get("axis", 1), ndim)
        if axis == 0 or any(size != 1 for size in x.shape[:axis - 1]):
            raise _Unsupported(f"Flatten at axis {axis} of {self.full(x)} folds axes into the batch")
        self.bind(node, 0, self.emit(node, "flatten", {}, [x]))

    def op_reshape(self, node) -> None:
        x = self.act(node)
        target = self.ints(node, 1, "shape")
        if target is None:
            target = list(self.attrs(node).get("shape", []))
        full = [self.batch, *x.shape]
        if not self.attrs(node).get("allowzero", 0):
            target = [full[i] if v == 0 and i < len(full) else v for i, v in enumerate(target)]
        elements = math.prod(x.shape)
        if target and target[0] == self.batch and (self.batch != 1 or -1 in target[1:]
                                                   or math.prod(target[1:]) == elements):
            per_sample = target[1:]
        elif target and target[0] == -1 and -1 not in target[1:] and math.prod(target[1:]) == elements:
            per_sample = target[1:]
        else:
            raise _Unsupported(f"Reshape of {self.full(x)} to {target} does not keep the batch axis first")
        if not per_sample:
            raise _Unsupported(f"Reshape to {target} leaves no axis besides the batch")
        if len(per_sample) == 1 and len(x.shape) > 1 and per_sample[0] in (-1, elements):
            out = self.emit(node, "flatten", {}, [x])
        else:
            out = self.emit(node, "reshape", {"shape": [int(v) for v in per_sample]}, [x])
        self.bind(node, 0, out)

    def op_transpose(self, node) -> None:
        x = self.act(node)
        ndim = len(x.shape) + 1
        perm = list(self.attrs(node).get("perm", list(range(ndim))[::-1]))
        if sorted(perm) != list(range(ndim)) or perm[0] != 0:
            raise _Unsupported(f"Transpose {perm} of {self.full(x)} moves the batch axis")
        self.bind(node, 0, self.emit(node, "permute", {"dims": [int(p) for p in perm]}, [x]))

    def op_squeeze(self, node) -> None:
        x = self.act(node)
        axes = self.attrs(node).get("axes")
        if axes is None:
            axes = self.ints(node, 1, "axes")
        ndim = len(x.shape) + 1
        if axes is None:
            axes = [i for i, size in enumerate([self.batch, *x.shape]) if size == 1]
        axes = sorted({self.axis(a, ndim) for a in axes}, reverse=True)
        if 0 in axes:
            raise _Unsupported(f"Squeeze of {self.full(x)} removes the batch axis")
        out = x
        for number, axis in enumerate(axes):
            if out.shape[axis - 1] != 1:
                raise SpecError(f"cannot squeeze axis {axis} of {self.full(out)}: its size is not 1")
            out = self.emit(node, "squeeze", {"dim": axis}, [out], part=str(number) if number else None)
        self.bind(node, 0, out)

    def op_unsqueeze(self, node) -> None:
        x = self.act(node)
        axes = self.attrs(node).get("axes")
        if axes is None:
            axes = self.ints(node, 1, "axes")
        if not axes:
            raise _Unsupported("Unsqueeze without axes")
        ndim = len(x.shape) + 1 + len(axes)
        axes = sorted({self.axis(a, ndim) for a in axes})
        if 0 in axes:
            raise _Unsupported(f"Unsqueeze of {self.full(x)} puts a new axis before the batch")
        out = x
        for number, axis in enumerate(axes):
            out = self.emit(node, "unsqueeze", {"dim": axis}, [out], part=str(number) if number else None)
        self.bind(node, 0, out)

    def op_activation(self, node) -> None:
        x = self.act(node)
        kind = ACTIVATIONS[node.op_type]
        self.bind(node, 0, self.emit(node, kind, {}, [x]))

    def op_gated(self, node) -> None:
        """Sigmoid and HardSigmoid: SiLU (x * sigmoid(x)) and hardswish (x * hardsigmoid(x)) when a
        Mul by their own input is their only reader."""
        attrs = self.attrs(node)
        x = self.act(node)
        if node.op_type == "HardSigmoid":
            alpha, beta = attrs.get("alpha", 0.2), attrs.get("beta", 0.5)
            if not (math.isclose(alpha, 1 / 6, rel_tol=1e-6) and math.isclose(beta, 0.5, rel_tol=1e-6)):
                raise _Unsupported(f"HardSigmoid with alpha {_f32(alpha)} and beta {_f32(beta)}; cnncalc's "
                                   "hardsigmoid is PyTorch's, alpha 1/6 and beta 0.5")
        fused = self.gate_of(node, node.input[0])
        if node.op_type == "Sigmoid":
            kind = "silu" if fused else "sigmoid"
        else:
            kind = "hardswish" if fused else "hardsigmoid"
        self.bind(fused or node, 0, self.emit(node, kind, {}, [x]))

    def gate_of(self, node, x_name: str):
        """The Mul that multiplies ``x_name`` by this node's output, when it is that output's only reader."""
        follower = self.sole_consumer(node.output[0])
        if follower is None:
            return None
        index, mul = follower
        if mul.op_type == "Mul" and sorted(mul.input) == sorted([x_name, node.output[0]]) and x_name != node.output[0]:
            self.skip[index] = "the product of a gated activation"
            return mul
        return None

    def op_softplus(self, node) -> None:
        """Mish as PyTorch's older exports write it: x * tanh(softplus(x))."""
        x = self.act(node)
        follower = self.sole_consumer(node.output[0])
        if follower is not None and follower[1].op_type == "Tanh":
            tanh_index, tanh = follower
            mul = self.gate_of(tanh, node.input[0])
            if mul is not None:
                self.skip[tanh_index] = "part of mish"
                return self.bind(mul, 0, self.emit(node, "mish", {}, [x]))
        raise _Unsupported("Softplus by itself (cnncalc has it only inside mish, x * tanh(softplus(x)))")

    def op_leaky(self, node) -> None:
        x = self.act(node)
        alpha = _f32(self.attrs(node).get("alpha", 0.01))
        args = {} if alpha == 0.01 else {"negative_slope": alpha}
        self.bind(node, 0, self.emit(node, "leaky_relu", args, [x]))

    def op_elu(self, node) -> None:
        x = self.act(node)
        alpha = _f32(self.attrs(node).get("alpha", 1.0))
        self.bind(node, 0, self.emit(node, "elu", {} if alpha == 1.0 else {"alpha": alpha}, [x]))

    def op_selu(self, node) -> None:
        x = self.act(node)
        attrs = self.attrs(node)
        alpha, gamma = attrs.get("alpha", 1.67326319217681884765625), attrs.get("gamma", 1.05070102214813232421875)
        if not (math.isclose(alpha, 1.6732632, rel_tol=1e-6) and math.isclose(gamma, 1.0507010, rel_tol=1e-6)):
            raise _Unsupported(f"Selu with alpha {alpha} and gamma {gamma}; cnncalc's selu is PyTorch's")
        self.bind(node, 0, self.emit(node, "selu", {}, [x]))

    def op_gelu(self, node) -> None:
        x = self.act(node)
        if self.attrs(node).get("approximate", "none") != "none":
            self.notes.append(f"nodes[{self.node_index}] ({node.name}): GELU's tanh approximation is written as "
                              "`gelu` (the same shape and counts)")
        self.bind(node, 0, self.emit(node, "gelu", {}, [x]))

    def op_prelu(self, node) -> None:
        x = self.act(node)
        slope = self.weight(node, 1, "slope")
        channels = x.shape[0]
        squeezed = tuple(d for d in slope.dims)
        while squeezed and squeezed[0] == 1 and len(squeezed) > 1:
            squeezed = squeezed[1:]
        if slope.elements == 1:
            args = {}
        elif slope.elements == channels and squeezed[0] == channels and all(d == 1 for d in squeezed[1:]):
            args = {"num_parameters": int(channels)}
        else:
            raise _Unsupported(f"PRelu slopes of shape {list(slope.dims)}; cnncalc has one slope, or one per channel")
        self.bind(node, 0, self.emit(node, "prelu", args, [x], [slope]))

    def op_clip(self, node) -> None:
        x = self.act(node)
        attrs = self.attrs(node)
        if self.opset < 11:
            low, high = attrs.get("min"), attrs.get("max")
        else:
            low = self.const(node, 1, "minimum")
            high = self.const(node, 2, "maximum")
            low = None if low is None else float(low.reshape(-1)[0])
            high = None if high is None else float(high.reshape(-1)[0])
        if low == 0 and high == 6:
            kind = "relu6"
        elif low == 0 and (high is None or math.isinf(high) or high >= 3.4e38):
            kind = "relu"
        else:
            raise _Unsupported(f"Clip to [{low}, {high}]; cnncalc has relu ([0, inf)) and relu6 ([0, 6])")
        self.bind(node, 0, self.emit(node, kind, {}, [x]))

    def op_softmax(self, node) -> None:
        x = self.act(node)
        ndim = len(x.shape) + 1
        default = -1 if self.opset >= 13 else 1
        axis = self.axis(self.attrs(node).get("axis", default), ndim)
        if self.opset < 13 and ndim > 2 and axis == 1:
            raise _Unsupported(f"{node.op_type} (opset {self.opset}) over every value of {self.full(x)} at once; "
                               "cnncalc's is over the channels")
        if axis != 1:
            raise _Unsupported(f"{node.op_type} over axis {axis} of {self.full(x)}; cnncalc's is over the channels "
                               "(axis 1)")
        kind = "softmax" if node.op_type == "Softmax" else "log_softmax"
        self.bind(node, 0, self.emit(node, kind, {}, [x]))

    def op_dropout(self, node) -> None:
        x = self.act(node)
        if self.used(node, 1):
            raise _Unsupported("its mask output is used")
        ratio = self.attrs(node).get("ratio") if self.opset < 12 else None
        if self.opset >= 12:
            array = self.const(node, 1, "ratio")
            ratio = None if array is None else float(array.reshape(-1)[0])
        ratio = 0.5 if ratio is None else _f32(ratio)
        self.bind(node, 0, self.emit(node, "dropout", {} if ratio == 0.5 else {"p": ratio}, [x]))

    def op_identity(self, node) -> None:
        x = self.act(node)
        self.bind(node, 0, self.emit(node, "identity", {}, [x]))

    def op_arith(self, node) -> None:
        """Add, Mul and Sum of computed tensors; Mul by a per-channel initializer is a layer scale."""
        values = [self.input(node, i) for i in range(len(node.input))]
        acts = [v for v in values if isinstance(v, _Act)]
        if len(acts) == len(values) and acts:
            kind = "mul" if node.op_type == "Mul" else "add"
            return self.bind(node, 0, self.emit(node, kind, {}, acts))
        if node.op_type == "Mul" and len(values) == 2 and len(acts) == 1:
            x = acts[0]
            scale = values[1] if values[0] is x else values[0]
            if scale.name and _per_channel(scale.dims, x.shape):
                return self.bind(node, 0, self.emit(node, "layer_scale", {}, [x], [scale]))
        constants = [list(v.dims) for v in values if isinstance(v, _Known)]
        raise _Unsupported(f"{node.op_type} with a constant operand {constants[0] if constants else ''}; cnncalc "
                           "has no kind for arithmetic with constants")

    def op_div(self, node) -> None:
        """GELU as exports before opset 20 write it: x/sqrt(2) -> Erf -> +1 -> x*() -> *0.5."""
        x = self.input(node, 0)
        if isinstance(x, _Act) and self.is_scalar(node.input[1], math.sqrt(2)):
            erf = self.follow(node.output[0], "Erf")
            add = erf and self.follow(erf[1].output[0], "Add", lambda n: self.is_scalar(n, 1.0))
            mul = add and self.follow(add[1].output[0], "Mul", node.input[0])
            half = mul and self.follow(mul[1].output[0], "Mul", lambda n: self.is_scalar(n, 0.5))
            if half:
                for index, _ in (erf, add, mul, half):
                    self.skip[index] = "part of gelu"
                return self.bind(half[1], 0, self.emit(node, "gelu", {}, [x]))
        raise _Unsupported("cnncalc has no kind for division (only inside GELU's x*(1 + erf(x/sqrt(2)))/2)")

    def op_sub(self, node) -> None:
        raise _Unsupported("cnncalc has no kind for subtraction")

    def op_slice(self, node) -> None:
        """Slices of a tensor's channels that tile them, as PyTorch exports torch.chunk or
        torch.split: one `split`, each Slice a piece. A centre crop of the spatial axes waits for
        the Concat that reads it (``_Crop``)."""
        given = self.input(node, 0)
        if isinstance(given, (_Act, _Crop)) and not self.slice_axes(node, [self.batch, *given.shape]):
            self.values[node.output[0]] = given  # a Slice that keeps every axis whole (x[:, :, 0:H, 0:W])
            return
        crop = self.centre_crop(node, given) if isinstance(given, (_Act, _Crop)) else None
        if crop is not None:
            self.cross_check(node.output[0], crop.shape)
            self.values[node.output[0]] = crop
            return
        x = self.act(node)
        source = node.input[0]
        siblings = [i for i in self.consumers.get(source, []) if self.nodes[i].op_type == "Slice"]
        ranges = []
        for index in siblings:
            sibling = self.nodes[index]
            start, stop = self.channel_range(sibling, x)
            ranges.append((start, stop, index))
        ranges.sort()
        channels, at = x.shape[0], 0
        for start, stop, _ in ranges:
            if start != at or stop <= start:
                break
            at = stop
        if at != channels or len({(a, b) for a, b, _ in ranges}) != len(ranges):
            shown = ", ".join(f"[{a}:{b}]" for a, b, _ in ranges)
            raise _Unsupported(f"slices {shown} of {channels} channels that do not cut them into whole pieces; "
                               "cnncalc has `split` (pieces that tile the channels), no slice")
        self.emit(node, "split", {"sizes": [b - a for a, b, _ in ranges]}, [x], pieces=[b - a for a, b, _ in ranges])
        ident = self.records[-1].ident
        for number, (_, _, index) in enumerate(ranges):
            if index != self.node_index:
                self.skip[index] = "a piece of a split"
            ref = f"{ident}.{number}"
            self.bind(self.nodes[index], 0, _Act(ref, self.engine.outputs[ref]))

    def centre_crop(self, node, x) -> _Crop | None:
        """A Slice that keeps batch and channels and cuts spatial axes with step 1, of an
        activation or of another such crop (exporters slice one axis at a time), as a ``_Crop``
        when the result is a centre crop of the activation (the odd row or column cut at the
        end, as `concat`'s `crop`); None otherwise."""
        cuts = self.slice_axes(node, [self.batch, *x.shape])
        if not cuts or any(axis < 2 or step != 1 for axis, _, _, step in cuts):
            return None
        source = x.source if isinstance(x, _Crop) else x
        shape = list(x.shape)
        starts = list(x.starts if isinstance(x, _Crop) else (0,) * (len(shape) - 1))
        for axis, start, end, _ in cuts:
            shape[axis - 1] = end - start
            starts[axis - 2] += start
        for have, want, start in zip(source.shape[1:], shape[1:], starts):
            if want <= 0 or (want < have and start != (have - want) // 2):
                return None
        return _Crop(source, tuple(shape), tuple(starts))

    def slice_axes(self, node, full: list[int]) -> list[tuple[int, int, int, int]]:
        """(axis, start, end, step) of each axis a Slice cuts, clamped as ONNX clamps them; axes
        it keeps whole are left out."""
        if self.opset < 10:
            attrs = self.attrs(node)
            starts, ends, axes, steps = attrs.get("starts"), attrs.get("ends"), attrs.get("axes"), None
        else:
            starts, ends = self.ints(node, 1, "starts"), self.ints(node, 2, "ends")
            axes, steps = self.ints(node, 3, "axes"), self.ints(node, 4, "steps")
        axes = list(range(len(starts))) if axes is None else [self.axis(a, len(full)) for a in axes]
        steps = [1] * len(starts) if steps is None else steps
        cuts = []
        for start, end, axis, step in zip(starts, ends, axes, steps):
            size = full[axis]
            start = min(max(start + size if start < 0 else start, 0), size)
            end = min(max(end + size if end < 0 else end, 0), size)
            if (start, end, step) != (0, size, 1):
                cuts.append((axis, start, end, step))
        return cuts

    def channel_range(self, node, x: _Act) -> tuple[int, int]:
        """(start, stop) of a Slice that cuts only the channels, with step 1; else _Unsupported."""
        full = [self.batch, *x.shape]
        found = (0, full[1])
        for axis, start, end, step in self.slice_axes(node, full):
            if axis == 1 and step == 1:
                found = (start, end)
            else:
                raise _Unsupported(f"a slice of axis {axis} (from {start} to {end}, step {step}) of {full}; cnncalc "
                                   "has `split` for whole pieces of the channels, no other slice")
        return found

    def op_concat(self, node) -> None:
        values = [self.input(node, i) for i in range(len(node.input)) if node.input[i]]
        if not all(isinstance(v, (_Act, _Crop)) for v in values):
            raise _Unsupported("a concatenation with a constant tensor")
        ndim = len(values[0].shape) + 1
        axis = self.axis(self.attrs(node).get("axis", 1), ndim)
        if axis != 1:
            raise _Unsupported(f"Concat on axis {axis}; cnncalc concatenates channels (axis 1)")
        if not any(isinstance(v, _Crop) for v in values):
            self.bind(node, 0, self.emit(node, "concat", {}, values))
            return
        # U-Net: every input cropped to the smallest spatial size, which `concat`'s `crop` does itself
        if len({v.shape[1:] for v in values}) != 1:
            raise _Unsupported("a Concat of inputs whose spatial sizes differ after their crops")
        sources = [v.source if isinstance(v, _Crop) else v for v in values]
        if tuple(map(min, *(s.shape[1:] for s in sources))) != values[0].shape[1:]:
            raise _Unsupported("a crop to a size smaller than every input's; `concat` with `crop` crops to the "
                               "smallest input")
        self.bind(node, 0, self.emit(node, "concat", {"crop": True}, sources))

    def op_split(self, node) -> None:
        x = self.act(node)
        attrs = self.attrs(node)
        ndim = len(x.shape) + 1
        axis = self.axis(attrs.get("axis", 0), ndim)
        if axis != 1:
            raise _Unsupported(f"Split on axis {axis}; cnncalc splits channels (axis 1)")
        outputs = len(node.output)
        sizes = attrs.get("split")
        if sizes is None:
            sizes = self.ints(node, 1, "split sizes")
        channels = x.shape[0]
        if sizes is None:
            count = attrs.get("num_outputs", outputs)
            piece = math.ceil(channels / count)
            sizes = [piece] * (channels // piece) + ([channels % piece] if channels % piece else [])
        sizes = [int(s) for s in sizes]
        if len(sizes) != outputs or sum(sizes) != channels or min(sizes) <= 0:
            raise SpecError(f"Split of {channels} channels into {sizes} does not give its {outputs} outputs")
        self.emit(node, "split", {"sizes": sizes}, [x], pieces=sizes)
        ident = self.records[-1].ident
        for index in range(outputs):
            ref = f"{ident}.{index}"
            self.bind(node, index, _Act(ref, self.engine.outputs[ref]))

    def op_batchnorm(self, node) -> None:
        x = self.act(node)
        if any(self.used(node, i) for i in range(1, len(node.output))):
            raise _Unsupported("its training outputs (running mean and variance) are used")
        weights = [self.weight(node, i, what) for i, what in
                   ((1, "scale"), (2, "bias"), (3, "running mean"), (4, "running variance"))]
        eps = _f32(self.attrs(node).get("epsilon", 1e-5))
        self.bind(node, 0, self.emit(node, "batchnorm", {} if eps == 1e-5 else {"eps": eps}, [x], weights))

    def op_instancenorm(self, node) -> None:
        x = self.act(node)
        weights = [self.weight(node, 1, "scale"), self.weight(node, 2, "bias")]
        eps = _f32(self.attrs(node).get("epsilon", 1e-5))
        args: dict[str, Any] = {"affine": True}
        _set_unless(args, "eps", eps, 1e-5)
        self.bind(node, 0, self.emit(node, "instancenorm", args, [x], weights))

    def op_layernorm(self, node) -> None:
        x = self.act(node)
        if any(self.used(node, i) for i in range(1, len(node.output))):
            raise _Unsupported("its mean or inverse deviation output is used")
        attrs = self.attrs(node)
        ndim = len(x.shape) + 1
        axis = self.axis(attrs.get("axis", -1), ndim)
        if axis == 0:
            raise _Unsupported("a layer norm over the batch axis")
        scale = self.weight(node, 1, "scale")
        bias = self.weight(node, 2, "bias", optional=True)
        normalized = [int(d) for d in x.shape[axis - 1:]]
        args: dict[str, Any] = {"normalized_shape": normalized[0] if len(normalized) == 1 else normalized}
        _set_unless(args, "eps", _f32(attrs.get("epsilon", 1e-5)), 1e-5)
        if bias is None:
            args["bias"] = False
        self.bind(node, 0, self.emit(node, "layernorm", args, [x], [scale] + ([bias] if bias else [])))

    def op_groupnorm(self, node) -> None:
        x = self.act(node)
        attrs = self.attrs(node)
        groups = attrs.get("num_groups")
        scale, bias = self.weight(node, 1, "scale"), self.weight(node, 2, "bias")
        if scale.elements != x.shape[0]:
            raise _Unsupported(f"a group norm with a scale per group ({list(scale.dims)}, opset 18's); cnncalc's "
                               "groupnorm has one per channel")
        args: dict[str, Any] = {"groups": int(groups)}
        _set_unless(args, "eps", _f32(attrs.get("epsilon", 1e-5)), 1e-5)
        self.bind(node, 0, self.emit(node, "groupnorm", args, [x], [scale, bias]))

    def op_lrn(self, node) -> None:
        x = self.act(node)
        attrs = self.attrs(node)
        args: dict[str, Any] = {"size": int(attrs["size"])}
        _set_unless(args, "alpha", _f32(attrs.get("alpha", 1e-4)), 1e-4)
        _set_unless(args, "beta", _f32(attrs.get("beta", 0.75)), 0.75)
        _set_unless(args, "k", _f32(attrs.get("bias", 1.0)), 1.0)
        self.bind(node, 0, self.emit(node, "lrn", args, [x]))

    def op_resize(self, node) -> None:
        x = self.act(node)
        attrs = self.attrs(node)
        rank = len(x.shape) - 1
        ndim = rank + 2
        if rank < 1:
            raise _Unsupported(f"resizing a flat input {self.full(x)}")
        if node.op_type == "Upsample" or self.opset < 11:
            scales = attrs.get("scales")
            if scales is None:
                scales = self.const(node, 1, "scales")
            sizes = None
        else:
            scales = self.const(node, 2, "scales")
            sizes = self.const(node, 3, "sizes")
        if scales is not None and getattr(scales, "size", len(scales)) == 0:
            scales = None
        if sizes is not None and sizes.size == 0:
            sizes = None
        axes = attrs.get("axes")
        if sizes is not None:
            sizes = [int(v) for v in sizes.reshape(-1)]
            if axes is not None:
                full = [self.batch, *x.shape]
                for axis, size in zip(axes, sizes):
                    full[self.axis(axis, ndim)] = size
                sizes = full
            if attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch":
                raise _Unsupported(f"keep_aspect_ratio_policy {attrs['keep_aspect_ratio_policy']!r}")
            if len(sizes) != ndim or sizes[0] != self.batch or sizes[1] != x.shape[0]:
                raise _Unsupported(f"resizing {self.full(x)} to {sizes} changes the batch or the channels")
            args: dict[str, Any] = {"size": _axes(sizes[2:])}
        elif scales is not None:
            scales = [float(v) for v in (scales.reshape(-1) if hasattr(scales, "reshape") else scales)]
            if axes is not None:
                full = [1.0] * ndim
                for axis, scale in zip(axes, scales):
                    full[self.axis(axis, ndim)] = scale
                scales = full
            if len(scales) != ndim or scales[0] != 1 or scales[1] != 1:
                raise _Unsupported(f"resizing {self.full(x)} by {scales} changes the batch or the channels")
            factors = [_number(_f32(s)) for s in scales[2:]]
            args = {"scale_factor": factors[0] if len(set(factors)) == 1 else factors}
        else:
            raise _Unsupported("it has neither scales nor sizes")
        mode = attrs.get("mode", "nearest")
        if mode == "nearest":
            pass
        elif mode in ("linear", "bilinear", "trilinear"):
            args["mode"] = {1: "linear", 2: "bilinear", 3: "trilinear"}[rank]
        elif mode in ("cubic", "bicubic") and rank == 2:
            args["mode"] = "bicubic"
        else:
            raise _Unsupported(f"mode {mode!r} on {rank} spatial axes")
        self.bind(node, 0, self.emit(node, "upsample", args, [x]))

    def op_pad(self, node) -> None:
        x = self.act(node)
        attrs = self.attrs(node)
        ndim = len(x.shape) + 1
        if self.opset < 11:
            pads, value = list(attrs.get("pads", [])), attrs.get("value", 0.0)
        else:
            pads = self.ints(node, 1, "pads", [])
            array = self.const(node, 2, "constant value")
            value = 0.0 if array is None or array.size == 0 else float(array.reshape(-1)[0])
        axes = self.ints(node, 3, "axes") if self.opset >= 18 else None
        axes = list(range(ndim)) if axes is None else [self.axis(a, ndim) for a in axes]
        if len(pads) != 2 * len(axes):
            raise _Unsupported(f"pads {pads} for {len(axes)} axes")
        pairs = {axis: (pads[i], pads[i + len(axes)]) for i, axis in enumerate(axes)}
        if any(pairs.get(axis, (0, 0)) != (0, 0) for axis in (0, 1)):
            raise _Unsupported(f"padding the batch or the channels ({pads})")
        spatial = [pairs.get(axis, (0, 0)) for axis in range(2, ndim)]
        if not spatial:
            raise _Unsupported(f"padding a flat input {self.full(x)}")
        if any(p < 0 for pair in spatial for p in pair):
            raise _Unsupported(f"negative pads {pads} (a crop)")
        mode = attrs.get("mode", "constant")
        modes = {"constant": "zero", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}
        if mode not in modes:
            raise _Unsupported(f"mode {mode!r}")
        if mode == "constant" and value != 0:
            raise _Unsupported(f"padding with the constant {value}; cnncalc pads with zeros")
        args: dict[str, Any] = {"padding": _padding(spatial)}
        if mode != "constant":
            args["mode"] = modes[mode]
        self.bind(node, 0, self.emit(node, "pad", args, [x]))

    def op_depth_to_space(self, node) -> None:
        x = self.act(node)
        attrs = self.attrs(node)
        if attrs.get("mode", "DCR") != "CRD":
            raise _Unsupported("DepthToSpace in DCR order (TensorFlow's); cnncalc's pixel_shuffle is PyTorch's "
                               "CRD order")
        self.bind(node, 0, self.emit(node, "pixel_shuffle", {"factor": int(attrs["blocksize"])}, [x]))

    def full(self, act: _Act) -> list:
        return [self.batch, *act.shape]

    # ------------------------------------------------------------------ the spec
    def spec_data(self) -> dict:
        names = self.final_names()
        layers = [_renamed(entry, names) for entry in self.entries]
        data: dict[str, Any] = {"name": Path(self.file).stem}
        if len(self.spec_inputs) == 1:
            data["input"] = list(next(iter(self.spec_inputs.values())))
        else:
            data["inputs"] = {name: list(shape) for name, shape in self.spec_inputs.items()}
        data["rounding"] = "floor"  # ONNX, as PyTorch, floors sizes that are not whole (ceil_mode is per layer)
        data["layers"] = layers
        return data

    def final_names(self) -> dict[str, str]:
        per_scope = Counter(r.scope for r in self.records if r.scope and r.part is None)
        first_of_node: dict[int, str] = {}
        names: dict[str, str] = {}
        taken = set(self.reserved)

        def unique(base: str) -> str:
            base = base.strip() or "layer"
            name, number = base, 2
            while name in taken:
                name, number = f"{base}_{number}", number + 1
            taken.add(name)
            return name

        numbers: Counter = Counter()  # kind labels count per scope: add, add_1, add_2 (PyTorch's way)
        for record in self.records:
            if record.part is not None and record.node in first_of_node:
                base = f"{first_of_node[record.node]}.{record.part}"
            elif record.scope is None:
                base = record.fallback
            elif record.scope and per_scope[record.scope] == 1:
                base = record.scope
            else:
                number = numbers[record.scope, record.label]
                numbers[record.scope, record.label] += 1
                label = record.label + (f"_{number}" if number else "")
                base = f"{record.scope}.{label}" if record.scope else label
            names[record.ident] = name = unique(base)
            first_of_node.setdefault(record.node, name)
            for ref, suffix in record.pieces:
                names[ref] = unique(name + suffix)
        return names


# ============================================================================ tables and small helpers
HANDLERS = {
    "Conv": "op_conv", "ConvTranspose": "op_conv",
    "MaxPool": "op_pool", "AveragePool": "op_pool",
    "GlobalAveragePool": "op_global_pool", "GlobalMaxPool": "op_global_pool",
    "ReduceMean": "op_reduce", "ReduceMax": "op_reduce",
    "Gemm": "op_gemm", "MatMul": "op_matmul",
    "Flatten": "op_flatten", "Reshape": "op_reshape", "Transpose": "op_transpose",
    "Squeeze": "op_squeeze", "Unsqueeze": "op_unsqueeze",
    "Relu": "op_activation", "Tanh": "op_activation", "HardSwish": "op_activation", "Mish": "op_activation",
    "Sigmoid": "op_gated", "HardSigmoid": "op_gated", "Softplus": "op_softplus",
    "LeakyRelu": "op_leaky", "Elu": "op_elu", "Selu": "op_selu", "Gelu": "op_gelu", "PRelu": "op_prelu",
    "Clip": "op_clip", "Softmax": "op_softmax", "LogSoftmax": "op_softmax",
    "Dropout": "op_dropout", "Identity": "op_identity",
    "Add": "op_arith", "Mul": "op_arith", "Sum": "op_arith",
    "Concat": "op_concat", "Split": "op_split",
    "BatchNormalization": "op_batchnorm", "InstanceNormalization": "op_instancenorm",
    "LayerNormalization": "op_layernorm", "GroupNormalization": "op_groupnorm", "LRN": "op_lrn",
    "Resize": "op_resize", "Upsample": "op_resize", "Pad": "op_pad",
    "DepthToSpace": "op_depth_to_space", "Slice": "op_slice", "Div": "op_div", "Sub": "op_sub",
}
ACTIVATIONS = {"Relu": "relu", "Tanh": "tanh", "HardSwish": "hardswish", "Mish": "mish"}
# Ops computed here when every input is a constant (shape arithmetic, Constant-fed Reshape/Resize).
FOLDABLE = {"Identity", "Cast", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Reshape", "Transpose",
            "Add", "Sub", "Mul", "Div", "Floor", "Ceil", "Sqrt", "Neg", "Abs", "Min", "Max", "Pow", "Mod",
            "ConstantOfShape", "Range", "Equal", "Less", "Greater", "Where", "Expand", "ReduceProd", "Not",
            "Flatten"}


def _fold(np, op: str, inputs: list, attrs: dict, opset: int, onnx) -> list:
    """The outputs of ``op`` on constant numpy inputs (None: an absent optional input)."""
    x = inputs[0] if inputs else None

    def axes_from(index: int):
        if "axes" in attrs:
            return list(attrs["axes"])
        if len(inputs) > index and inputs[index] is not None:
            return [int(v) for v in inputs[index].reshape(-1)]
        return None

    if op == "Identity":
        return [x]
    if op == "Cast":
        return [x.astype(onnx.helper.tensor_dtype_to_np_dtype(attrs["to"]))]
    if op == "Gather":
        return [np.take(x, inputs[1].astype(np.int64), axis=attrs.get("axis", 0))]
    if op == "Unsqueeze":
        axes = axes_from(1)
        rank = x.ndim + len(axes)
        for axis in sorted(a + rank if a < 0 else a for a in axes):
            x = np.expand_dims(x, axis)
        return [x]
    if op == "Squeeze":
        axes = axes_from(1)
        return [np.squeeze(x) if axes is None else np.squeeze(x, axis=tuple(axes))]
    if op == "Concat":
        return [np.concatenate([i for i in inputs if i is not None], axis=attrs.get("axis", 0))]
    if op == "Slice":
        if opset < 10:
            starts, ends, axes, steps = attrs["starts"], attrs["ends"], attrs.get("axes"), None
        else:
            starts, ends = inputs[1].reshape(-1).tolist(), inputs[2].reshape(-1).tolist()
            axes = inputs[3].reshape(-1).tolist() if len(inputs) > 3 and inputs[3] is not None else None
            steps = inputs[4].reshape(-1).tolist() if len(inputs) > 4 and inputs[4] is not None else None
        axes = list(range(len(starts))) if axes is None else axes
        steps = [1] * len(starts) if steps is None else steps
        index = [slice(None)] * x.ndim
        for start, end, axis, step in zip(starts, ends, axes, steps):
            index[axis] = slice(int(max(min(start, 2**62), -2**62)), int(max(min(end, 2**62), -2**62)), int(step))
        return [x[tuple(index)]]
    if op == "Reshape":
        shape = [int(v) for v in inputs[1].reshape(-1)]
        if not attrs.get("allowzero", 0):
            shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
        return [x.reshape(shape)]
    if op == "Flatten":
        axis = attrs.get("axis", 1)
        axis = axis + x.ndim if axis < 0 else axis
        return [x.reshape(int(np.prod(x.shape[:axis])), -1)]
    if op == "Transpose":
        return [np.transpose(x, attrs.get("perm"))]
    if op in ("Add", "Sub", "Mul", "Div", "Pow", "Mod", "Min", "Max", "Equal", "Less", "Greater"):
        a, b = inputs[0], inputs[1]
        if op == "Div" and np.issubdtype(a.dtype, np.integer):
            return [(np.trunc(a / b)).astype(a.dtype)]
        function = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Pow": np.power,
                    "Mod": np.fmod if attrs.get("fmod", 0) else np.mod, "Min": np.minimum, "Max": np.maximum,
                    "Equal": np.equal, "Less": np.less, "Greater": np.greater}[op]
        result = a
        for other in inputs[1:] if op in ("Min", "Max") else [b]:
            result = function(result, other)
        return [np.asarray(result).astype(a.dtype) if op not in ("Equal", "Less", "Greater") else result]
    if op in ("Floor", "Ceil", "Sqrt", "Neg", "Abs", "Not"):
        return [{"Floor": np.floor, "Ceil": np.ceil, "Sqrt": np.sqrt, "Neg": np.negative, "Abs": np.abs,
                 "Not": np.logical_not}[op](x)]
    if op == "ConstantOfShape":
        value = attrs.get("value")
        value = np.zeros(1, dtype=np.float32) if value is None else value
        shape = [int(v) for v in x.reshape(-1)]
        if math.prod(shape) > MAX_FOLDED:
            raise _Unsupported(f"ConstantOfShape of {shape}: too large to compute here")
        return [np.full(shape, value.reshape(-1)[0], dtype=value.dtype)]
    if op == "Range":
        return [np.arange(inputs[0].item(), inputs[1].item(), inputs[2].item()).astype(inputs[0].dtype)]
    if op == "Where":
        return [np.where(inputs[0], inputs[1], inputs[2])]
    if op == "Expand":
        shape = [int(v) for v in inputs[1].reshape(-1)]
        return [x * np.ones(shape, dtype=x.dtype)]
    if op == "ReduceProd":
        axes = axes_from(1)
        keep = bool(attrs.get("keepdims", 1))
        return [np.prod(x, axis=None if axes is None else tuple(axes), keepdims=keep)]
    raise _Unsupported(f"{op} of constants")


def _kept_last_window(shape, kernel, strides, pads, dilations):
    """(the shape with a last window that starts in the end padding kept, the note) when ceil_mode
    drops such a window somewhere: the ONNX spec drops it, as PyTorch does, while ONNX's shape
    inference (onnx 1.23) still counts it."""
    kept, dropped = [shape[0]], False
    for size, k, s, (before, after), d in zip(shape[1:], kernel, strides, pads, dilations):
        count = -(-(size + before + after - (d * (k - 1) + 1)) // s) + 1
        if (count - 1) * s >= size + before:
            dropped = True
        kept.append(count)
    if not dropped:
        return None
    return tuple(kept), ("ceil_mode drops a last window that would start in the end padding, as the ONNX spec and "
                         "PyTorch do; ONNX's shape inference keeps it (one more output), which cnncalc does not follow")


def _has_values(proto) -> bool:
    if proto.data_location == 1:  # EXTERNAL: never read
        return False
    return bool(proto.raw_data or proto.float_data or proto.int32_data or proto.int64_data or proto.double_data
                or proto.uint64_data or proto.string_data) or math.prod(proto.dims) == 0


def _scope_of(name: str) -> str | None:
    """The module scope of a PyTorch node name: "/layer1/layer1.0/conv1/Conv" -> "layer1.0.conv1",
    "/features/denseblock1/denselayer1/Concat" -> "features.denseblock1.denselayer1", "/Flatten"
    -> ""; None for names that are not scoped so."""
    if not name.startswith("/") or name.endswith("/"):
        return None
    segments = name[1:].split("/")
    parts: list[str] = []
    for segment in segments[:-1]:
        if parts and segment.startswith(parts[-1] + "."):  # "layer1" then "layer1.0": a child of a container
            parts[-1] = segment
        else:
            parts.append(segment)
    return ".".join(parts)


def _renamed(entry: dict, names: dict[str, str]) -> dict:
    (kind, body), = entry.items()
    body = dict(body)
    body["name"] = names[body["name"]]
    if "from" in body:
        body["from"] = ([names.get(r, r) for r in body["from"]] if isinstance(body["from"], list)
                        else names.get(body["from"], body["from"]))
    if "names" in body:  # split: the pieces' own names
        body["names"] = [names[r] for r in body["names"]]
    return {kind: body}


def _axes(values) -> int | list[int]:
    values = [int(v) for v in values]
    return values[0] if values and len(set(values)) == 1 else values


def _padding(pairs) -> int | list:
    if all(a == b for a, b in pairs):
        return _axes([a for a, _ in pairs])
    return [[int(a), int(b)] for a, b in pairs]


def _set_unless(args: dict, key: str, value, default) -> None:
    if value != default:
        args[key] = value


def _f32(value: float) -> float:
    """A float32 attribute as the short decimal it was written as (1e-05, not 9.99999974738e-06)."""
    import numpy

    return float(str(numpy.float32(value)))


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _per_channel(dims: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    """Whether a constant of ``dims`` scales each channel of a [C, *spatial] sample ([C, 1, 1], [1, C, 1, 1], [C])."""
    dims = tuple(dims)
    while len(dims) > len(shape) and dims[0] == 1:
        dims = dims[1:]
    if len(dims) == 1 and len(shape) == 1:
        return dims[0] == shape[0]
    return len(dims) == len(shape) and dims[0] == shape[0] and all(d == 1 for d in dims[1:])
