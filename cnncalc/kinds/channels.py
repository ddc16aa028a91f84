"""Channel rearrangements without parameters: `channel_shuffle` (ShuffleNet, torch.nn.ChannelShuffle),
`pixel_shuffle` and `pixel_unshuffle` (sub-pixel convolution, torch.nn.PixelShuffle / PixelUnshuffle)."""
from __future__ import annotations

from fractions import Fraction
from typing import ClassVar

from pydantic import Field

from ..errors import ShapeError
from ..explain import axis_lines
from ..formulas import half
from .base import Formula, Leaf, Outcome, PosInt, PyTorchCode, RFStep, dims, spatial_rank


class ChannelShuffle(Leaf):
    """Splits the channels into `groups` and interleaves them: channel g*(C/G) + i goes to i*G + g.
    Only the channel order changes, so the receptive field is unchanged."""

    kind: ClassVar[str] = "channel_shuffle"
    primary: ClassVar[str] = "groups"
    groups: PosInt = Field(description="number of channel groups G to interleave (C must be divisible by G)")

    def infer(self, shape, ctx):
        spatial_rank(shape, "channel_shuffle")  # PyTorch wants more than [N, C]
        if shape[0] % self.groups:
            raise ShapeError(f"channel_shuffle cannot split {shape[0]} channels into {self.groups} groups: "
                             "the channels must be divisible by `groups`")
        return Outcome(shape=shape, hyper={"groups": self.groups})

    def pytorch(self, step):
        """torchvision's channel_shuffle function (view, transpose, view), written into the file."""
        return PyTorchCode(None, f"channel_shuffle({{x}}, {self.groups})", (("channel_shuffle", CHANNEL_SHUFFLE),))

    def onnx(self, step, graph):
        """Reshape to [N, G, C/G, *spatial], Transpose the two, Reshape back (torchvision's view,
        transpose, view)."""
        channels, spatial = step.input_shape[0], list(step.input_shape[1:])
        ndim = len(step.input_shape) + 2
        x = graph.node("Reshape", [graph.x, graph.constant([0, self.groups, channels // self.groups, *spatial],
                                                           label="shape")])
        x = graph.node("Transpose", [x], perm=[0, 2, 1, *range(3, ndim)])
        return graph.node("Reshape", [x, graph.constant([0, channels, *spatial], label="shape")])

    def output_storage(self, step):
        """view, transpose, view: a copy, unless a group or each group is one channel (then the
        transpose moves a size-1 axis and the result is a view where the input's layout allows)."""
        return "reshape" if self.groups in (1, step.input_shape[0]) else "new"

    def saved(self, step, grad):
        return []  # reshapes and a transpose keep nothing

    def memory_order(self, step, order):
        return tuple(range(len(step.output_shape)))  # the final reshape's copy is contiguous

    def forward(self, ops, xs, params, step):
        return ops.channel_shuffle(xs[0], self.groups)


def _image(shape, kind: str) -> None:
    """PyTorch's pixel (un)shuffle works on the last two axes and takes the third-last as the
    channels: that is C only for [C, H, W]; on [C, D, H, W] it would fold D, on [C, L] the batch."""
    if len(shape) != 3:
        raise ShapeError(f"{kind} needs a [C, H, W] input (2 spatial axes), got {list(shape)}: PyTorch's "
                         f"{kind} works on the last two axes and takes the axis before them as the channels")


class PixelShuffle(Leaf):
    """[C*r*r, H, W] -> [C, H*r, W*r]: each group of r*r channels becomes an r x r block of pixels."""

    kind: ClassVar[str] = "pixel_shuffle"
    primary: ClassVar[str] = "factor"
    factor: PosInt = Field(description="upscale factor r (PyTorch's upscale_factor)")

    def infer(self, shape, ctx):
        _image(shape, "pixel_shuffle")
        r = self.factor
        if shape[0] % (r * r):
            raise ShapeError(f"pixel_shuffle with factor {r} needs channels divisible by {r}*{r} = {r * r}, "
                             f"and the input has {shape[0]}")
        # as nearest upsampling (`unpool`): output pixel o sees input pixel o // r, and output 0's
        # centre lies (1 - r)/(2r) input pixels from input 0's
        step = RFStep(1, Fraction(1, r), Fraction(1 - r, 2 * r))
        return Outcome(shape=(shape[0] // (r * r), shape[1] * r, shape[2] * r), rf=(step, step),
                       hyper={"scale": (float(r), float(r))})

    def explain(self, step):
        c, r = step.input_shape[0], self.factor
        return [Formula("C2", "C1/(r*r)", f"{c}/({r}*{r})", str(step.output_shape[0])),
                *axis_lines([("{a}1*r", f"{i}*{r}", str(i * r)) for i in step.input_shape[1:]])]

    def pytorch(self, step):
        return PyTorchCode(f"nn.PixelShuffle({self.factor})")

    def onnx(self, step, graph):
        """DepthToSpace in CRD order, PyTorch's pixel shuffle."""
        return graph.node("DepthToSpace", [graph.x], blocksize=self.factor, mode="CRD")

    def saved(self, step, grad):
        return []  # a rearrangement keeps nothing

    def forward(self, ops, xs, params, step):
        return ops.pixel_shuffle(xs[0], self.factor)


class PixelUnshuffle(Leaf):
    """[C, H*r, W*r] -> [C*r*r, H, W]: each r x r block of pixels becomes r*r channels."""

    kind: ClassVar[str] = "pixel_unshuffle"
    primary: ClassVar[str] = "factor"
    factor: PosInt = Field(description="downscale factor r (PyTorch's downscale_factor)")

    def infer(self, shape, ctx):
        _image(shape, "pixel_unshuffle")
        r = self.factor
        if shape[1] % r or shape[2] % r:
            raise ShapeError(f"pixel_unshuffle with factor {r} needs H and W divisible by {r}, and the input "
                             f"is {dims(shape[1:])}")
        step = RFStep(r, r, half(r - 1))  # an output position sees an r x r block, as a k=r s=r pool
        return Outcome(shape=(shape[0] * r * r, shape[1] // r, shape[2] // r), rf=(step, step),
                       hyper={"kernel": (r, r), "stride": (r, r)})

    def explain(self, step):
        c, r = step.input_shape[0], self.factor
        return [Formula("C2", "C1*r*r", f"{c}*{r}*{r}", str(step.output_shape[0])),
                *axis_lines([("{a}1/r", f"{i}/{r}", str(i // r)) for i in step.input_shape[1:]])]

    def pytorch(self, step):
        return PyTorchCode(f"nn.PixelUnshuffle({self.factor})")

    def saved(self, step, grad):
        return []  # a rearrangement keeps nothing

    def forward(self, ops, xs, params, step):
        return ops.pixel_unshuffle(xs[0], self.factor)


CHANNEL_SHUFFLE = '''\
# ShuffleNet's channel shuffle, as torchvision writes it: the channels split into `groups` and
# interleaved (channel g*(C/G) + i goes to i*G + g).
def channel_shuffle(x, groups):
    n, c = x.shape[:2]
    return x.reshape(n, groups, c // groups, *x.shape[2:]).transpose(1, 2).reshape(x.shape)
'''
