"""What every layer kind shares: field types, the result of inferring a layer (``Outcome``), the
structured worked formula (``Formula``), a parameter tensor's description (``Param``), and the
base classes. A kind is one subclass with a ``kind`` name; defining it registers it in ``KINDS``.

A leaf kind owns everything about itself: its hyper-parameters (pydantic fields), its shape rule,
counts and receptive-field step (``infer``), its worked formulas (``Outcome.explain``), the
parameter tensors it needs (``tensors``) and its forward computation (``forward``) written against
the op interface (``cnncalc.backends.ops`` for NumPy/CuPy arrays, ``torch_ops`` for torch).
"""
from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, NamedTuple, Protocol, Union

from annotated_types import Ge, Gt, Len, Lt
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, Strict

from ..errors import CnnCalcError, ShapeError
from ..formulas import Window


# ----------------------------------------------------------------------------- field types
PosInt = Annotated[int, Strict(), Gt(0)]
NonNegInt = Annotated[int, Strict(), Ge(0)]
PosNumber = Annotated[Union[Annotated[int, Strict()], Annotated[float, Strict()]], Gt(0)]
Axes = Union[PosInt, Annotated[list[PosInt], Len(1, 3)]]
NonNegAxes = Union[NonNegInt, Annotated[list[NonNegInt], Len(1, 3)]]
PadPair = Annotated[list[NonNegInt], Len(2, 2)]
Padding = Union[NonNegInt, Literal["same", "valid"], Annotated[list[Union[NonNegInt, PadPair]], Len(1, 3)]]
PoolPadding = Union[NonNegInt, Annotated[list[Union[NonNegInt, PadPair]], Len(1, 3)]]
Scale = Union[PosNumber, Annotated[list[PosNumber], Len(1, 3)]]
KeepAxes = Union[PosInt, Annotated[list[Union[PosInt, None]], Len(1, 3)]]  # null: keep that axis' size

AXES_HELP = "a positive whole number, or a list with one per spatial axis"


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True)
class RFStep:
    """How one spatial axis of the receptive field moves through a layer.

    size_out = size_in + (extent - 1) * jump_in;  jump_out = jump_in * stride;
    start_out = start_in + offset * jump_in   (offset: centre of output 0 in input units).
    """

    extent: int
    stride: int | Fraction
    offset: int | Fraction


GLOBAL = "global"  # the layer sees its whole input (linear, global pooling)


@dataclass
class Outcome:
    """What one leaf layer does to the shape that reaches it (per sample, exact ints)."""

    shape: tuple[int, ...]
    weights: int = 0
    biases: int = 0
    buffers: int = 0  # non-trainable state, e.g. batch-norm running mean/var
    macs: int = 0  # weight multiply-accumulates, bias excluded
    bias_muls: int = 0  # what the lecture's "+1" adds to MULs
    connections: int | None = None  # LeCun's count of input-to-output links incl. bias; None = macs + bias_muls
    rf: tuple[RFStep, ...] | str | None = None  # None: element-wise, unchanged
    hyper: dict[str, Any] = field(default_factory=dict)  # normalised kernel/stride/padding: display and forward


@dataclass(frozen=True)
class Formula:
    """One worked formula as data: `name = symbols = arithmetic = value`, e.g. name "params",
    symbols "(F*F*D1 + 1)*K", arithmetic "(5*5*3 + 1)*10", value "760". ``quantity`` says what
    it computes (a key `cnncalc check` knows: params, macs, muls_with_bias, connections, output),
    so nothing reads the text back. Empty symbols or arithmetic are left out of the text."""

    name: str
    symbols: str
    arithmetic: str
    value: str
    quantity: str = "output"

    def text(self) -> str:
        return " = ".join(part for part in (self.name, self.symbols, self.arithmetic, self.value) if part)


@dataclass(frozen=True)
class Param:
    """One parameter tensor a layer needs, in PyTorch's layout: its shape, how to fill it
    randomly ("he", "bias", "zeros", "ones", "scale", "shift", or "constant" with a value), its
    fan-in and its layout in words."""

    shape: tuple[int, ...]
    fill: str
    fan_in: float = 1.0
    layout: str = ""


@dataclass(frozen=True)
class Constant(Param):
    """A parameter tensor PyTorch starts at one value (fill "constant"): PReLU's slopes, a layer scale.
    The forward pass uses that value, so its output is the PyTorch module's as constructed."""

    fill: str = "constant"
    value: float = 0.0


@dataclass(frozen=True)
class PyTorchCode:
    """How one row is written in an exported PyTorch file (`cnncalc export --to pytorch`).

    ``module``: the constructor of the submodule that carries the row's name, e.g.
    ``nn.Conv2d(3, 64, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3), bias=False)``; None for a
    row computed in ``forward`` alone (add, concat, flatten, permute, a split piece). ``call``: the
    forward expression, a template in which ``{m}`` is that submodule, ``{x}`` the first input,
    ``{x0}``, ``{x1}``, ... each input and ``{xs}`` all of them, comma-separated. ``helpers``:
    ``(name, source)`` of the small classes or functions the code needs where PyTorch has none
    (LeNet-5's subsampling, a connection table), written once into the file. ``parameter``: instead
    of a submodule, the constructor of an nn.Parameter set at the row's name on the module that
    holds it (torchvision's ``CNBlock.layer_scale``); ``{m}`` is then that parameter."""

    module: str | None = None
    call: str = "{m}({x})"
    helpers: tuple[tuple[str, str], ...] = ()
    parameter: str | None = None


COMPUTE = "compute"  # Saved.dtype: the dtype the layer computes in (its input's, or autocast's)
PARAMETER = "parameter"  # Saved.dtype: the parameters' dtype (float32 master weights under autocast)


@dataclass(frozen=True)
class Saved:
    """One tensor PyTorch's autograd keeps for a layer's backward in training mode (what
    ``torch.autograd.graph.saved_tensors_hooks`` sees), as the layer's kind states it; the counting
    (cnncalc/training.py) finds its storage, so a storage that several layers save counts once.

    ``source``: "input" (input ``index`` as the op receives it, after autocast's cast if any;
    ``reshape``: made "contiguous" first, or reshaped ("flatten": [N, -1]; "rows": [-1, last axis]),
    a view when its layout allows, else a copy), "output", "new" (a
    tensor the op makes: ``elements`` for the whole batch, of ``dtype``: COMPUTE, PARAMETER or a
    fixed name such as "int64", "bool" or ``statistics_dtype``'s) or "weight" (the weight, ``elements``
    values: a parameter, not an activation, unless autocast runs the layer in half precision:
    then its cached half copy is what is saved). ``what`` names it in a few words."""

    source: str
    index: int = 0
    elements: int = 0
    dtype: str = COMPUTE
    what: str = ""
    reshape: str | None = None

    @classmethod
    def input(cls, index: int = 0, reshape: str | None = None) -> "Saved":
        if index == 0 and reshape is None:
            return FIRST_INPUT
        return cls("input", index=index, what="input", reshape=reshape)

    @classmethod
    def output(cls) -> "Saved":
        return OUTPUT

    @classmethod
    def new(cls, elements: int, dtype: str = COMPUTE, what: str = "") -> "Saved":
        return cls("new", elements=elements, dtype=dtype, what=what)

    @classmethod
    def weight(cls, elements: int) -> "Saved":
        return cls("weight", elements=elements, what="weight")


FIRST_INPUT = Saved("input", what="input")  # the most common two, made once
OUTPUT = Saved("output", what="output")


class Autograd(NamedTuple):
    """What a kind is told when it states what it saves for backward (``Layer.saved``). A named
    tuple: one is made per row, and large specs have a million rows."""

    batch: int
    device: str  # "cuda" or "cpu": where PyTorch trains; a few ops save differently on each
    needs_grad: tuple[bool, ...]  # per input: whether it requires grad
    compute: str  # the dtype the layer computes in
    amp: str | None = None  # autocast's half dtype ("float16", "bfloat16"), None without autocast
    shapes: tuple[tuple[int, ...], ...] = ()  # per input, its per-sample shape


def statistics_dtype(grad: Autograd, with_parameters: bool) -> str:
    """The dtype of the means and inverse deviations batch, group and layer norm keep: float32 for
    a half input on CUDA, or on the CPU when the op also takes float32 parameters (autocast's master
    weights: PyTorch's mixed-type kernels); the input's dtype otherwise."""
    if grad.compute in ("float16", "bfloat16") and (grad.device == "cuda" or (with_parameters and grad.amp)):
        return "float32"
    return grad.compute


def product_saved(grad: Autograd) -> list[Saved]:
    """x0 * x1 * ... as PyTorch multiplies them, pair by pair: each product keeps each factor for the
    other's gradient, when the other requires grad; past the first pair the running product is a
    new tensor (the shapes broadcast)."""
    saved, running_needs, shape = [], grad.needs_grad[0], grad.shapes[0]
    for index in range(1, len(grad.needs_grad)):
        if running_needs:
            saved.append(Saved.input(index))
        if grad.needs_grad[index]:
            saved.append(Saved.input(0) if index == 1 else
                         Saved.new(grad.batch * math.prod(shape), COMPUTE, "running product"))
        shape = tuple(map(max, shape, grad.shapes[index]))
        running_needs = running_needs or grad.needs_grad[index]
    return saved


def py_literal(value) -> str:
    """A Python literal for a generated file: tuples as ``(3, 3)`` / ``(3,)``, lists as lists, floats
    exactly (repr)."""
    if isinstance(value, list):
        return "[" + ", ".join(py_literal(v) for v in value) + "]"
    if isinstance(value, tuple):
        items = ", ".join(py_literal(v) for v in value)
        return f"({items},)" if len(value) == 1 else f"({items})"
    if isinstance(value, str):
        import json

        return json.dumps(value)  # a valid Python string literal too
    if isinstance(value, float) and not math.isfinite(value):
        return f'float("{value}")'
    return repr(value)


def py_arguments(*positional, **keywords) -> str:
    """``3, 64, kernel_size=(7, 7)``: the positional values, then the keywords whose value is not
    the ``SKIP`` marker (a kind leaves out what equals PyTorch's default)."""
    parts = [py_literal(v) for v in positional]
    parts += [f"{key}={py_literal(v)}" for key, v in keywords.items() if v is not SKIP]
    return ", ".join(parts)


SKIP = object()  # py_arguments: leave this keyword out (it is PyTorch's default)


def unless(value, default):
    """``value``, or SKIP when it equals PyTorch's ``default`` (a tuple default matches every axis)."""
    if isinstance(value, (tuple, list)) and not isinstance(default, (tuple, list)):
        return SKIP if all(v == default for v in value) else tuple(value)
    return SKIP if value == default else value


def torch_rank(shape: tuple[int, ...]) -> int:
    """The N of PyTorch's ``nn.*Nd`` for a per-sample shape [C, *spatial]: its spatial axes, 1 when flat."""
    return max(1, len(shape) - 1)


def pad_arguments(pairs) -> tuple[int, ...]:
    """(before, after) per axis -> the flat tuple F.pad and nn.ZeroPad*d take, last axis first."""
    return tuple(amount for pair in reversed(tuple(pairs)) for amount in pair)


def is_symmetric(pairs) -> bool:
    return all(before == after for before, after in pairs)


class Context(Protocol):
    """What a layer may ask of the engine while inferring."""

    def resolve(self, windows: list[Window], what: str) -> tuple[int, ...]:
        """Output sizes of sliding windows under the rounding policy (may raise or warn)."""

    def spatial_size(self, ref: str) -> tuple[int, ...]:
        """The spatial sizes of an earlier named output (``input``: the network input)."""


# ----------------------------------------------------------------------------- helpers
def per_axis(value, rank: int, key: str) -> tuple:
    """An int for all axes, or a list with exactly one value per spatial axis."""
    if isinstance(value, list):
        if len(value) != rank:
            raise ShapeError(f"`{key}` has {len(value)} values but the input has {rank} spatial axes")
        return tuple(value)
    return (value,) * rank


def spatial_rank(shape: tuple[int, ...], kind: str, minimum: int = 1) -> int:
    rank = len(shape) - 1
    if rank < minimum:
        raise ShapeError(
            f"{kind} needs an input with spatial axes [C, *spatial], got {list(shape)}; "
            "it cannot follow flatten or linear"
        )
    return rank


def pad_pairs(padding, rank: int) -> tuple[tuple[int, int], ...]:
    """int | per-axis list of int or [before, after] -> ((before, after), ...)."""
    if padding == "valid":
        return ((0, 0),) * rank
    return tuple((p, p) if isinstance(p, int) else (p[0], p[1]) for p in per_axis(padding, rank, "padding"))


def axes_text(values) -> str:
    values = tuple(values)
    return str(values[0]) if len(set(values)) == 1 else "x".join(map(str, values))


def dims(values) -> str:
    return "x".join(map(str, values))


def largest_row_l1(weight, groups: int = 1) -> float:
    """The largest L1 norm of a weight row (a conv filter, a linear output): its max-norm gain."""
    import numpy

    rows = numpy.abs(weight).reshape(weight.shape[0], -1).sum(axis=1)
    return float(rows.max()) if rows.size else 0.0


def averaged_length(step) -> int:
    """Input values one output of an average pool combines: its window, or the input spread over the output."""
    window = math.prod(step.hyper["kernel"]) if "kernel" in step.hyper else 1
    spread = math.ceil(math.prod(step.input_shape[1:]) / max(1, math.prod(step.output_shape[1:])))
    return max(1, window, spread)


def is_channels_last(order: tuple[int, ...]) -> bool:
    """Whether per-sample axes in this memory order (outermost first) are channels last: the spatial
    axes in turn, then C."""
    return len(order) > 1 and order == (*range(1, len(order)), 0)


def check_positive(shape: tuple[int, ...], what: str | Callable[[], str]) -> None:
    """``what`` may be a function that words the cause: only a failing layer pays for the wording."""
    if any(size <= 0 for size in shape[1:]):
        raise ShapeError(f"output size reaches zero or less ({dims(shape[1:])}): {what() if callable(what) else what}")


# ----------------------------------------------------------------------------- base classes
class Layer(BaseModel):
    """Fields every layer takes."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, defer_build=True)

    name: str | None = Field(None, description="the layer's name; default: kind + running number")
    from_: str | None = Field(None, alias="from", description="take the input from this named output")
    expect: dict[str, Any] | None = Field(None, description="expected values to check (output, params, ...)")

    kind: ClassVar[str]
    family: ClassVar[str] = ""  # prefix of default names (conv1, pool2, fc3); "" = the kind
    primary: ClassVar[str | None] = None  # the key a scalar shorthand sets (`linear: 10`)

    _path: tuple = PrivateAttr(default=())

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs):
        super().__pydantic_init_subclass__(**kwargs)
        if "kind" in vars(cls):  # a concrete kind: defining it registers it
            KINDS.register(cls)

    @property
    def is_composite(self) -> bool:
        return False

    def row_count(self) -> int:
        """Rows this entry adds to a report, repeats expanded (for limits, without walking)."""
        return 1

    def children(self) -> list["Layer"]:
        """The layers written inside this one (composites only)."""
        return []

    @property
    def path(self) -> tuple:
        """Where the layer is in the spec's data, e.g. ("layers", 3, "branches", 1, 0)."""
        return self.__pydantic_private__["_path"]  # direct: pydantic's __getattr__ is slow in hot loops

    # What a row needs beyond its counts; a row of a composite is its merge (add or concat).
    def explain(self, step) -> list["Formula"]:
        """The worked formulas of the row ``step`` (a plan step: its input and output shapes and
        normalised ``hyper``), made only when asked: most runs show none."""
        return []

    def tensors(self, step, x_shape: tuple[int, ...]) -> dict[str, Param]:
        """The parameter tensors the forward pass needs, from the *actual* input shape ``[N, C, ...]``
        (never from the engine's formulas, which the forward pass checks)."""
        return {}

    # How the layer treats float32 differences, for `run --cross-check` (cnncalc/backends/forward.py).
    saturating: ClassVar[bool] = False  # a bounded output: its own rounding is relative to the output alone
    # The math a GPU may run in TF32 for it ("convolution": cuDNN, "matmul": cuBLAS), when PyTorch allows.
    gpu_math: ClassVar[str | None] = None
    sums_inputs: ClassVar[bool] = False  # the differences of its inputs add up (add)
    multiplies_inputs: ClassVar[bool] = False  # each input's difference is scaled by the others (mul)

    def float_gain(self, step, arrays: dict) -> float:
        """The most a difference d in the inputs can change an output (max norm), per unit d."""
        return 1.0

    def reduction_length(self, step) -> int:
        """How many input values one output value combines (its own rounding grows with it)."""
        return 1

    def rounding_factor(self, step, n: int) -> float:
        """How many eps of the magnitude one output's rounding is worth: sqrt(n), a random walk."""
        return math.sqrt(n)

    # How the row is written as PyTorch code (cnncalc/export/pytorch.py walks the plan and asks each row).
    def pytorch(self, step) -> PyTorchCode:  # pragma: no cover - abstract
        """The row as PyTorch code: its submodule's constructor (or None) and its forward expression,
        from the row's normalised ``step.hyper`` and shapes (per sample, ``[C, *spatial]``)."""
        raise NotImplementedError(f"{self.kind} cannot be written as PyTorch code")

    def pytorch_state(self, step, arrays: dict) -> dict:
        """The exported submodule's state_dict entries (names relative to it; "" for a row written as
        a parameter) from the arrays that ``tensors`` describes; the same arrays by default, since
        those use PyTorch's names and layouts."""
        return dict(arrays)

    # How the row is written as ONNX nodes (cnncalc/export/onnx.py walks the plan and asks each row).
    def onnx(self, step, graph) -> str:
        """Adds the row's nodes and initializers to ``graph`` (cnncalc.export.onnx.OnnxGraph: its
        inputs are ``graph.inputs``) and returns the name of its output tensor."""
        from ..export.onnx import unsupported

        raise unsupported(step)

    # What PyTorch's autograd keeps for the row's backward in training mode (cnncalc/training.py
    # counts it; the oracle is saved_tensors_hooks on the exported module, tests/test_training_memory.py).
    def saved(self, step, grad: Autograd) -> list[Saved]:
        """The tensors the row's ops save, as the exported PyTorch code runs them, when the row records
        autograd history (an input requires grad, or the row has trainable parameters)."""
        raise CnnCalcError(f"cnncalc does not know what PyTorch saves for the backward of `{self.kind}`, so it "
                           "cannot count its training memory")

    def output_storage(self, step) -> str:
        """Where the output lives: "new" (a tensor of its own), "view" (in its input's storage: a
        permute, a slice, the identity) or "reshape" (in its input's storage when the input's layout
        allows a view, else in a copy)."""
        return "new"

    def view_strides(self, step, strides: tuple[int, ...]) -> tuple[int, ...]:
        """A "view" output's per-sample strides, from its input's: the same axes by default (a slice,
        the identity); a permute, squeeze or unsqueeze moves them."""
        return strides

    def storage_elements(self, step) -> int | None:
        """Per sample, the elements of the tensor the output is a cut of (a cropped transposed
        convolution keeps the uncropped one alive); None: the output's own."""
        return None

    def autocast(self, step, device: str) -> str:
        """How torch.autocast runs the row on ``device`` ("cuda", "cpu"): "half" (its inputs cast to
        the half dtype: autocast's lower-precision list), "float32" (cast to float32: its float32 list)
        or "follow" (in its inputs' dtype, promoted as PyTorch promotes)."""
        return "follow"

    def output_dtype(self, step, grad: Autograd) -> str:
        """The output's dtype: the dtype the row computes in, unless its ops promote further."""
        return grad.compute

    def memory_order(self, step, order: tuple[int, ...]) -> tuple[int, ...]:
        """The output's per-sample axes ([C, *spatial] numbers) from outermost to innermost in
        memory, for a "new" output, from the input's. Convolutions, pooling and normalisation keep a
        channels-last input channels last (PyTorch's memory formats) and write anything else
        contiguous; a later reshape copies what its layout does not let it view."""
        rank = len(step.output_shape)
        return order if len(order) == rank and is_channels_last(order) else tuple(range(rank))

    def forward(self, ops, xs: list, params: dict, step):  # pragma: no cover - abstract
        """The output array from the input arrays ``xs`` (``[N, C, *spatial]``), computed with the op
        interface ``ops``; ``params`` from ``tensors``; ``step.hyper`` holds the normalised sizes."""
        raise NotImplementedError(f"{self.kind} has no forward computation")


class Leaf(Layer):
    """A layer that computes: one row of a report, one step of a forward pass."""

    def infer(self, shape: tuple[int, ...], ctx: Context) -> Outcome:  # pragma: no cover - abstract
        raise NotImplementedError


class Elementwise(Leaf):
    """Same shape out as in, no parameters (activations, dropout)."""

    def infer(self, shape, ctx):
        return Outcome(shape=shape)

    def memory_order(self, step, order):
        return order  # element-wise ops write their output laid out as their input


class Composite(Layer):
    """Structure only: ``walk`` steps the engine through the layers written inside."""

    @property
    def is_composite(self) -> bool:
        return True

    def walk(self, engine, x, scope, name: str):  # pragma: no cover - abstract
        raise NotImplementedError


class KindRegistry(Mapping):
    """Kind name -> class. Defining a kind registers it; looking one up imports only the module
    that defines it, found by reading the modules' `kind: ClassVar[str] = "..."` lines. Building
    every pydantic model up front would spend start-up time on kinds a spec never uses. Listing
    the registry (iterating, len) imports every module. A test keeps the index equal to the
    registry."""

    DECLARATION = re.compile(r'^\s+kind: ClassVar\[str\] = "(\w+)"', re.MULTILINE)

    def __init__(self, package: Path):
        self.package = package
        self.defined: dict[str, type[Layer]] = {}
        self._index: dict[str, str] | None = None
        self._complete = False

    def register(self, cls: type["Layer"]) -> None:
        self.defined[cls.kind] = cls

    def modules(self) -> list[Path]:
        return [path for path in sorted(self.package.glob("*.py")) if not path.stem.startswith("_")]

    def index(self) -> dict[str, str]:
        """kind name -> module name, from the source text (no imports)."""
        if self._index is None:
            self._index = {}
            for path in self.modules():
                for kind in self.DECLARATION.findall(path.read_text(encoding="utf-8")):
                    self._index[kind] = path.stem
        return self._index

    def __getitem__(self, name: str) -> type["Layer"]:
        cls = self.defined.get(name)
        if cls is None:
            module = self.index().get(name)
            if module is None:
                raise KeyError(name)
            importlib.import_module(f"{__package__}.{module}")
            cls = self.defined[name]
        return cls

    def load_all(self) -> None:
        if not self._complete:
            for path in self.modules():
                importlib.import_module(f"{__package__}.{path.stem}")
            self._complete = True

    def __iter__(self):
        self.load_all()
        return iter(self.defined)

    def __len__(self) -> int:
        self.load_all()
        return len(self.defined)


KINDS = KindRegistry(Path(__file__).parent)
