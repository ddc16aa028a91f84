"""Receptive field of merges (add, concat, residual, branches): per axis the union of the inputs'
fields, never the field of one input.

The oracle is PyTorch's input-gradient footprint: the same network as a torch module, every
weight positive (so nothing cancels), max pools replaced by average pools of the same geometry
(a max pool routes its gradient to one pixel), a float64 input of ones, and the gradient of one
output pixel near the centre (summed over channels). The bounding box of the nonzero gradient
is the receptive field of that pixel: its size per axis is cnncalc's ``size``, its centre is
cnncalc's ``start + i * jump`` (``start`` is the centre of output 0's field). Inputs are large
enough that no field touches the border.

Each network is described once as a small tree (``Conv``, ``Pool``, ``Seq``, ``Cat``, ``Res``,
``Merge``) that writes itself both as a cnncalc spec and as a torch module. The engine-level
cases at the top need no torch; the torch cases skip without it.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from fractions import Fraction

import pytest

import cnncalc
from cnncalc.engine import union_rf
from cnncalc.report import ReceptiveField


# ---------------------------------------------------------------------------- network trees
def _pair(value):
    return tuple(value) if isinstance(value, (list, tuple)) else (value, value)


@dataclass
class Conv:
    """A bias-free conv; ``padding`` per axis may be a ``[before, after]`` pair."""

    filters: int
    kernel: int | tuple = 1
    stride: int | tuple = 1
    padding: int | tuple = 0
    dilation: int | tuple = 1
    name: str | None = None

    def spec(self):
        args = {"filters": self.filters, "kernel": _listed(self.kernel), "stride": _listed(self.stride),
                "padding": _listed(self.padding), "dilation": _listed(self.dilation), "bias": False}
        return [_named({"conv": args}, self.name)]

    def torch(self, cin, kit):
        pads = [p if isinstance(p, (list, tuple)) else (p, p) for p in _pair(self.padding)]
        conv = kit.nn.Conv2d(cin, self.filters, _pair(self.kernel), _pair(self.stride), 0, _pair(self.dilation),
                             bias=False)
        (top, bottom), (left, right) = pads
        return kit.nn.Sequential(kit.nn.ZeroPad2d((left, right, top, bottom)), conv), self.filters


@dataclass
class Pool:
    """A max or average pool; the torch side is always an average pool of the same window."""

    kernel: int
    stride: int
    padding: int = 0
    kind: str = "maxpool"
    name: str | None = None

    def spec(self):
        return [_named({self.kind: {"kernel": self.kernel, "stride": self.stride, "padding": self.padding}},
                       self.name)]

    def torch(self, cin, kit):
        return kit.nn.AvgPool2d(self.kernel, self.stride, self.padding), cin


@dataclass
class Seq:
    parts: list

    def spec(self):
        return [entry for part in self.parts for entry in part.spec()]

    def torch(self, cin, kit):
        modules = []
        for part in self.parts:
            module, cin = part.torch(cin, kit)
            modules.append(module)
        return kit.nn.Sequential(*modules), cin


@dataclass
class Cat:
    """cnncalc's `branches` (each path from the same input, concatenated on channels)."""

    paths: list
    name: str | None = None

    def spec(self):
        return [_named({"branches": [path.spec() for path in self.paths]}, self.name)]

    def torch(self, cin, kit):
        modules, couts = zip(*(path.torch(cin, kit) for path in self.paths))
        return kit.Cat(list(modules)), sum(couts)


@dataclass
class Res:
    """cnncalc's `residual`: main path plus shortcut (empty = identity)."""

    layers: list
    shortcut: list = field(default_factory=list)

    def spec(self):
        return [{"residual": {"layers": Seq(self.layers).spec(), "shortcut": Seq(self.shortcut).spec()}}]

    def torch(self, cin, kit):
        main, cout = Seq(self.layers).torch(cin, kit)
        shortcut = Seq(self.shortcut).torch(cin, kit)[0] if self.shortcut else kit.nn.Identity()
        return kit.Add([main, shortcut]), cout


@dataclass
class Merge:
    """Top-level `add` / `concat` of paths that all start at the network input (`from: input`),
    each path's last output named `p0`, `p1`, ...; `crop` centre-crops as U-Net does."""

    kind: str
    paths: list
    crop: bool = False

    def spec(self):
        layers = []
        for i, path in enumerate(self.paths):
            entries = [dict(entry) for entry in path.spec()]
            entries[0]["from"] = "input"
            entries[-1]["name"] = f"p{i}"
            layers += entries
        args = {"from": [f"p{i}" for i in range(len(self.paths))]}
        if self.crop:
            args["crop"] = True
        return layers + [{self.kind: args, "name": "merged"}]

    def torch(self, cin, kit):
        modules, couts = zip(*(path.torch(cin, kit) for path in self.paths))
        if self.kind == "add":
            return kit.Add(list(modules)), couts[0]
        return kit.Cat(list(modules), crop=self.crop), sum(couts)


def _listed(value):
    return list(value) if isinstance(value, tuple) else value


def _named(entry, name):
    return {**entry, "name": name} if name else entry


# ---------------------------------------------------------------------------- Inception-v3
def inception_e(scale=1, name=None):
    """torchvision's InceptionE (Mixed_7b, Mixed_7c): 1x1; 1x1 -> (1x3 | 3x1); 1x1 -> 3x3 ->
    (1x3 | 3x1); avg pool 3x3 s1 p1 -> 1x1. Channels divided by ``scale``."""
    c = _scaler(scale)

    def split():  # the 1x3 and 3x1 convs side by side, concatenated (torch.cat in InceptionE.forward)
        return Cat([Seq([Conv(c(384), (1, 3), padding=(0, 1))]), Seq([Conv(c(384), (3, 1), padding=(1, 0))])])

    return Cat([
        Seq([Conv(c(320), 1)]),                                                 # branch1x1
        Seq([Conv(c(384), 1), split()]),                                        # branch3x3_1, 2a | 2b
        Seq([Conv(c(448), 1), Conv(c(384), 3, padding=1), split()]),            # branch3x3dbl_1, _2, 3a | 3b
        Seq([Pool(3, 1, 1, kind="avgpool"), Conv(c(192), 1)]),                  # avg_pool, branch_pool
    ], name=name)


def inception_a(pool_features, scale, name):
    c = _scaler(scale)
    return Cat([
        Seq([Conv(c(64), 1)]),
        Seq([Conv(c(48), 1), Conv(c(64), 5, padding=2)]),
        Seq([Conv(c(64), 1), Conv(c(96), 3, padding=1), Conv(c(96), 3, padding=1)]),
        Seq([Pool(3, 1, 1, kind="avgpool"), Conv(c(pool_features), 1)]),
    ], name=name)


def inception_b(scale, name):
    c = _scaler(scale)
    return Cat([
        Seq([Conv(c(384), 3, stride=2)]),
        Seq([Conv(c(64), 1), Conv(c(96), 3, padding=1), Conv(c(96), 3, stride=2)]),
        Seq([Pool(3, 2)]),
    ], name=name)


def inception_c(c7, scale, name):
    c = _scaler(scale)
    row, col = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
    return Cat([
        Seq([Conv(c(192), 1)]),
        Seq([Conv(c(c7), 1), Conv(c(c7), **row), Conv(c(192), **col)]),
        Seq([Conv(c(c7), 1), Conv(c(c7), **col), Conv(c(c7), **row), Conv(c(c7), **col), Conv(c(192), **row)]),
        Seq([Pool(3, 1, 1, kind="avgpool"), Conv(c(192), 1)]),
    ], name=name)


def inception_d(scale, name):
    c = _scaler(scale)
    return Cat([
        Seq([Conv(c(192), 1), Conv(c(320), 3, stride=2)]),
        Seq([Conv(c(192), 1), Conv(c(192), (1, 7), padding=(0, 3)), Conv(c(192), (7, 1), padding=(3, 0)),
             Conv(c(192), 3, stride=2)]),
        Seq([Pool(3, 2)]),
    ], name=name)


def inception_v3(scale=1):
    """torchvision's Inception-v3 feature extractor up to Mixed_7c (BN/ReLU left out: they do not
    move the receptive field), channels divided by ``scale``."""
    c = _scaler(scale)
    return Seq([
        Conv(c(32), 3, stride=2), Conv(c(32), 3), Conv(c(64), 3, padding=1), Pool(3, 2),
        Conv(c(80), 1), Conv(c(192), 3), Pool(3, 2),
        inception_a(32, scale, "Mixed_5b"), inception_a(64, scale, "Mixed_5c"), inception_a(64, scale, "Mixed_5d"),
        inception_b(scale, "Mixed_6a"),
        inception_c(128, scale, "Mixed_6b"), inception_c(160, scale, "Mixed_6c"),
        inception_c(160, scale, "Mixed_6d"), inception_c(192, scale, "Mixed_6e"),
        inception_d(scale, "Mixed_7a"),
        inception_e(scale=scale, name="Mixed_7b"), inception_e(scale=scale, name="Mixed_7c"),
    ])


def _scaler(scale):
    return lambda channels: max(1, channels // scale)


# ---------------------------------------------------------------------------- cnncalc side
def analyze(net, size, channels=2):
    spec = {"name": "t", "input": [channels, *_pair(size)], "layers": net.spec()}
    return cnncalc.analyze(cnncalc.load_spec(spec))


def field_of(report, name=None) -> ReceptiveField:
    rows = report.layers if name is None else [r for r in report.layers if r.name == name]
    return rows[-1].receptive_field


# ---------------------------------------------------------------------------- engine-level cases (no torch)
ROW_1x5 = Conv(2, (1, 5), padding=(0, 2))
COL_3x1 = Conv(2, (3, 1), padding=(1, 0))


@pytest.mark.parametrize("kind", ["add", "concat"])
@pytest.mark.parametrize("order", ["1x5_then_3x1", "3x1_then_1x5"])
def test_merge_of_1x5_and_3x1_is_3x5(kind, order):
    paths = [Seq([ROW_1x5]), Seq([COL_3x1])]
    report = analyze(Merge(kind, paths if order == "1x5_then_3x1" else paths[::-1]), 16)
    rf = field_of(report, "merged")
    assert rf.size == (3, 5) and rf.jump == (1, 1) and rf.start == (0, 0)


def test_branches_and_residual_of_1x5_and_3x1_are_3x5():
    branches = analyze(Cat([Seq([ROW_1x5]), Seq([COL_3x1])]), 16)
    residual = analyze(Res([ROW_1x5], [COL_3x1]), 16)
    assert field_of(branches).size == (3, 5)
    assert field_of(residual).size == (3, 5)


def test_union_takes_the_bounding_interval_of_shifted_fields():
    # k3 with 2 pixels of padding before (rows) / after (columns): fields [-2, 0] and [0, 2];
    # the centred 3x3 path covers [-1, 1]: the union is 4 pixels with its centre between pixels.
    shifted = Conv(2, 3, padding=((2, 0), (0, 2)))
    rf = field_of(analyze(Merge("concat", [Seq([shifted]), Seq([Conv(2, 3, padding=1)])]), 16), "merged")
    assert rf.size == (4, 4)
    assert rf.start == (Fraction(-1, 2), Fraction(1, 2))


# 16x16 input. Path 0: 4x3 kernel, columns padded: 13x16 outputs, output 0 sees rows [0, 3] and
# columns [-1, 1]. Path 1 the transpose: 16x13, rows [-1, 1], columns [0, 3]. `crop` cuts both to
# 13x13, dropping (16 - 13) // 2 = 1 leading column of path 0 and row of path 1, whose output 0
# then sees [0, 2] there: the union is rows [0, 3], columns [0, 3] (without the shift: 5x5).
CROP = Merge("concat", [Seq([Conv(2, (4, 3), padding=(0, 1))]), Seq([Conv(2, (3, 4), padding=(1, 0))])], crop=True)


def test_concat_crop_aligns_the_fields_before_the_union():
    rf = field_of(analyze(CROP, 16), "merged")
    assert rf.size == (4, 4) and rf.start == (Fraction(3, 2), Fraction(3, 2))


def test_residual_with_strided_shortcut():
    # main: 3x3 s2 p1 (size 3, jump 2, centre 0) then 3x3 p1 (size 3 + 2*2 = 7); shortcut 1x1 s2
    rf = field_of(analyze(Res([Conv(2, 3, 2, 1), Conv(2, 3, padding=1)], [Conv(2, 1, 2)]), 16))
    assert rf.size == (7, 7) and rf.jump == (2, 2) and rf.start == (0, 0)


def test_dilated_branches_take_the_widest_per_axis():
    net = Cat([Seq([Conv(2, 3, padding=1)]), Seq([Conv(2, (3, 1), padding=(2, 0), dilation=2)]),
               Seq([Conv(2, (1, 3), padding=(0, 3), dilation=3)])])
    assert field_of(analyze(net, 16)).size == (5, 7)


def test_inception_e_alone_and_stacked():
    assert field_of(analyze(inception_e(scale=16), 12)).size == (5, 5)  # was [5, 3]: 1x3 | 3x1 gave one axis
    both = analyze(Seq([inception_e(scale=16, name="Mixed_7b"), inception_e(scale=16, name="Mixed_7c")]), 12)
    assert field_of(both, "Mixed_7b").size == (5, 5)
    assert field_of(both, "Mixed_7c").size == (9, 9)


def test_inception_v3_mixed_7c_is_1311_square():
    report = analyze(inception_v3(scale=16), 299, channels=3)
    assert field_of(report, "Mixed_7a").size == (1055, 1055)
    assert field_of(report, "Mixed_7b").size == (1183, 1183)  # each InceptionE adds 4 jumps of 32
    assert field_of(report, "Mixed_7c").size == (1311, 1311)  # was [1311, 1183]
    assert field_of(report, "Mixed_7c").jump == (32, 32)


def test_union_rf_helper():
    a = ReceptiveField((1, 5), (1, 1), (0, 0))
    b = ReceptiveField((3, 1), (1, 1), (0, 0))
    assert union_rf([a, b]) == union_rf([b, a]) == ReceptiveField((3, 5), (1, 1), (0, 0))
    assert union_rf([a]) is a and union_rf([a, a]) is a
    whole = union_rf([a, b])
    assert all(type(v) is int for v in (*whole.size, *whole.start))  # whole fields stay ints
    # unequal jumps (not produced by a valid network): the larger per axis, independent of order
    c = ReceptiveField((3, 3), (2, 1), (1, 1))  # rows [0, 2], columns [0, 2]; a: rows [0, 0], columns [-2, 2]
    assert union_rf([a, c]) == union_rf([c, a]) == ReceptiveField((3, 5), (2, 1), (1, 0))
    # fractional fields (after upsampling) stay exact; in pixel edges: rows a [-1/2, 1/2], d [-1/2, 3/2];
    # columns a [-5/2, 5/2], d [2 - 5/4, 2 + 5/4] = [3/4, 13/4] -> union [-5/2, 13/4]: 23/4 wide, centre 3/8
    d = ReceptiveField((2, Fraction(5, 2)), (1, Fraction(1, 2)), (Fraction(1, 2), 2))
    assert union_rf([a, d]) == ReceptiveField((2, Fraction(23, 4)), (1, 1), (Fraction(1, 2), Fraction(3, 8)))
    flat = ReceptiveField((), (), ())
    assert union_rf([flat, flat]) == flat


def test_flat_merge_still_works():
    spec = {"name": "t", "input": [2, 8, 8], "layers": [
        {"conv": {"filters": 2, "kernel": 3}, "name": "c"}, "flatten",
        {"linear": 4, "name": "a"}, {"linear": 4, "from": "a", "name": "b"},
        {"concat": {"from": ["a", "b"]}, "name": "ab"}, {"add": {"from": ["a", "b"]}, "name": "sum"}]}
    report = cnncalc.analyze(cnncalc.load_spec(spec))
    rows = {r.name: r for r in report.layers}
    assert rows["ab"].output_shape == (8,) and rows["sum"].output_shape == (4,)
    assert rows["ab"].receptive_field.size == rows["b"].receptive_field.size


def test_flat_input_merge():
    spec = {"name": "t", "input": [6], "layers": [{"linear": 4, "name": "a"}, {"linear": 4, "name": "b"},
                                                  {"add": {"from": ["a", "b"]}}]}
    assert cnncalc.analyze(cnncalc.load_spec(spec)).layers[-1].receptive_field.size == ()


# ---------------------------------------------------------------------------- PyTorch's gradient footprint
@functools.cache
def _kit():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Add(nn.Module):
        def __init__(self, paths):
            super().__init__()
            self.paths = nn.ModuleList(paths)

        def forward(self, x):
            return sum(path(x) for path in self.paths)

    class Cat(nn.Module):
        def __init__(self, paths, crop=False):
            super().__init__()
            self.paths, self.crop = nn.ModuleList(paths), crop

        def forward(self, x):
            outs = [path(x) for path in self.paths]
            if self.crop:  # centre crop, the odd pixel cut at the end (U-Net)
                h, w = min(o.shape[2] for o in outs), min(o.shape[3] for o in outs)
                outs = [o[:, :, (o.shape[2] - h) // 2:(o.shape[2] - h) // 2 + h,
                          (o.shape[3] - w) // 2:(o.shape[3] - w) // 2 + w] for o in outs]
            return torch.cat(outs, 1)

    class Kit:
        pass

    kit = Kit()
    kit.torch, kit.nn, kit.Add, kit.Cat = torch, nn, Add, Cat
    return kit


def footprint(net, size, channels=2):
    """Per axis (extent, centre, output index) of the input-gradient of one output pixel near
    the centre, and the input size; asserts the field is not clipped by the borders."""
    kit = _kit()
    torch = kit.torch
    module, _ = net.torch(channels, kit)
    module = module.double()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.rand(p.shape, generator=generator, dtype=p.dtype) + 0.5)
    x = torch.ones(1, channels, *_pair(size), dtype=torch.float64, requires_grad=True)
    out = module(x)
    index = tuple(n // 2 for n in out.shape[2:])
    out[(0, slice(None), *index)].sum().backward()
    hit = x.grad[0].abs().sum(0) > 0
    axes = []
    for axis, n in enumerate(hit.shape):
        covered = hit.any(dim=1 - axis).nonzero().flatten().tolist()
        first, last = covered[0], covered[-1]
        assert first > 0 and last < n - 1, "the field reaches the border: enlarge the input"
        axes.append((last - first + 1, Fraction(first + last, 2), index[axis]))
    return axes


CASES = {
    "add_1x5_3x1": (Merge("add", [Seq([ROW_1x5]), Seq([COL_3x1])]), 17, "merged"),
    "concat_1x5_3x1": (Merge("concat", [Seq([ROW_1x5]), Seq([COL_3x1])]), 17, "merged"),
    "add_3x1_1x5": (Merge("add", [Seq([COL_3x1]), Seq([ROW_1x5])]), 17, "merged"),
    "concat_shifted_fields": (Merge("concat", [Seq([Conv(2, 3, padding=((2, 0), (0, 2)))]),
                                               Seq([Conv(2, 3, padding=1)])]), 17, "merged"),
    "concat_crop": (CROP, 17, "merged"),
    "branches_per_axis_kernels": (Cat([Seq([Conv(2, (1, 7), padding=(0, 3))]), Seq([Conv(2, (5, 1), padding=(2, 0))]),
                                       Seq([Conv(2, 1), Conv(2, (3, 1), padding=(1, 0)), Conv(2, (1, 3), padding=(0, 1))])]),
                                  21, None),
    "branches_after_stride": (Seq([Conv(2, 3, 2), Cat([Seq([Conv(2, (1, 5), padding=(0, 2))]),
                                                       Seq([Conv(2, (3, 1), padding=(1, 0))])])]), 31, None),
    "residual_strided_shortcut": (Res([Conv(2, 3, 2, 1), Conv(2, 3, padding=1)], [Conv(2, 1, 2)]), 33, None),
    "residual_strided_1xk_main": (Res([Conv(2, (1, 3), 2, (0, 1)), Conv(2, (1, 5), padding=(0, 2))],
                                      [Conv(2, (3, 1), 2, (1, 0))]), 33, None),
    "dilated_branches": (Cat([Seq([Conv(2, 3, padding=1)]), Seq([Conv(2, (3, 1), padding=(2, 0), dilation=2)]),
                              Seq([Conv(2, (1, 3), padding=(0, 3), dilation=3)])]), 21, None),
    "dilated_then_dense_branches": (Seq([Conv(2, 3, padding=2, dilation=2),
                                         Cat([Seq([Conv(2, 3, padding=1)]), Seq([Conv(2, 1)])])]), 21, None),
    "inception_e_mixed_7b": (inception_e(scale=32), 17, None),
    "inception_e_7b_7c": (Seq([inception_e(scale=32), inception_e(scale=32)]), 21, None),
    "stem_then_inception_e_7b_7c": (Seq([Conv(2, 3, 2), Pool(3, 2), Conv(2, (1, 3), 2, (0, 1)),
                                         inception_e(scale=32, name="Mixed_7b"),
                                         inception_e(scale=32, name="Mixed_7c")]), 97, None),
    "nested_residual_in_branches": (Cat([Seq([Res([Conv(2, (1, 5), padding=(0, 2))])]),
                                         Seq([Res([Conv(2, (3, 1), padding=(1, 0))], [Conv(2, 3, padding=1)])])]),
                                    17, None),
}


@pytest.mark.parametrize("case", CASES)
def test_receptive_field_matches_torch_gradient_footprint(case):
    net, size, name = CASES[case]
    rf = field_of(analyze(net, size), name)
    measured = footprint(net, size)
    assert tuple(extent for extent, _, _ in measured) == rf.size
    assert tuple(centre for _, centre, _ in measured) == tuple(
        st + i * j for st, j, (_, _, i) in zip(rf.start, rf.jump, measured))


def test_inception_v3_mixed_7c_matches_torch_gradient_footprint():
    """The whole feature extractor (channels / 32), on an input wide enough for the 1311-pixel
    field of Mixed_7c's centre pixel: PyTorch's footprint is 1311 x 1311 too."""
    net, size = inception_v3(scale=32), 1439
    rf = field_of(analyze(net, size, channels=1), "Mixed_7c")
    measured = footprint(net, size, channels=1)
    assert rf.size == (1311, 1311)
    assert tuple(extent for extent, _, _ in measured) == rf.size
    assert tuple(centre for _, centre, _ in measured) == tuple(
        st + i * j for st, j, (_, _, i) in zip(rf.start, rf.jump, measured))


def test_fully_connected_layers_after_the_first_keep_its_field():
    """fc6 already sees the whole last map; fc7 and fc8 see no more input pixels than fc6."""
    from cnncalc import analyze

    rows = {row.name: row for row in analyze("alexnet").layers}
    fields = [tuple(rows[name].receptive_field.size) for name in ("fc6", "fc7", "fc8")]
    assert fields[0] == fields[1] == fields[2] == (355, 355)


# ---------------------------------------------------------------------------- alignment of merged fields
# (paths of a top-level Merge, the offset cnncalc reports in input pixels per axis (H, W), or None: aligned)
ALIGNMENT_CASES = {
    "even_and_odd_kernels_at_stride_2": (Merge("add", [Seq([Conv(2, 2, 2)]), Seq([Conv(2, 3, 2, 1)])]), 16,
                                         ("-0.5 input pixels on every axis", "off the grid")),
    "pool_and_padded_conv_at_stride_2": (Merge("concat", [Seq([Conv(2, 3, 2, 1)]), Seq([Pool(2, 2, kind="avgpool")])]),
                                         16, ("+0.5 input pixels on every axis", "off the grid")),
    "asymmetric_padding": (Merge("concat", [Seq([Conv(2, 3, padding=((2, 0), (0, 2)))]),
                                            Seq([Conv(2, 3, padding=1)])]), 17, ("+1 (H), -1 (W) input pixels",
                                                                                "the same grid, shifted")),
    "same_padding_kernels": (Merge("add", [Seq([ROW_1x5]), Seq([COL_3x1]), Seq([Conv(2, 1)])]), 17, None),
    "strided_shortcut": (Merge("add", [Seq([Conv(2, 3, 2, 1), Conv(2, 3, padding=1)]), Seq([Conv(2, 1, 2)])]), 33,
                         None),
    "stride_then_pool_or_conv": (Merge("concat", [Seq([Pool(3, 2, 1), Conv(2, 1)]), Seq([Conv(2, 3, 2, 1)])]), 33,
                                 None),
}


def _report_warnings(net, size):
    return [m.message for m in analyze(net, size).misaligned]


@pytest.mark.parametrize("case", ALIGNMENT_CASES)
def test_misaligned_merges_are_warned_and_aligned_ones_are_not(case):
    net, size, expected = ALIGNMENT_CASES[case]
    found = _report_warnings(net, size)
    if expected is None:
        assert found == []
        return
    [message] = found
    assert all(part in message for part in expected), message
    assert "`p1`" in message and "`p0`" in message


@pytest.mark.parametrize("case", ALIGNMENT_CASES)
def test_alignment_matches_torch_gradient_footprints(case):
    """Each path alone, as PyTorch sees it: the centre of the same output pixel's input-gradient
    footprint. Aligned paths have equal centres; misaligned ones differ by the reported offset."""
    net, size, expected = ALIGNMENT_CASES[case]
    centres = [tuple(centre for _, centre, _ in footprint(path, size)) for path in net.paths]
    report = analyze(net, size)
    fields = {row.name: row.receptive_field for row in report.layers}
    index = [tuple(i for _, _, i in footprint(path, size)) for path in net.paths]
    predicted = [tuple(st + i * j for st, j, i in zip(fields[f"p{k}"].start, fields[f"p{k}"].jump, index[k]))
                 for k in range(len(net.paths))]
    assert centres == predicted
    assert (len(set(centres)) == 1) == (expected is None)


def test_broadcast_gates_and_global_branches_have_no_grid_to_misalign():
    """An SE gate ([C, 1, 1]) widens the field to the whole image but keeps the main path's
    position; a globally pooled branch upsampled back (ASPP's image pooling) has no position."""
    spec = {"input": [8, 32, 32], "layers": [
        {"residual": {"layers": [{"conv": {"filters": 8, "kernel": 3, "padding": 1}},
                                 {"se": {"squeeze_channels": 2}}, {"conv": {"filters": 8, "kernel": 1}}]}},
        {"conv": {"filters": 8, "kernel": 3, "padding": 1}, "name": "local"},
        {"global_avgpool": None, "from": "local", "name": "pooled"},
        {"upsample": {"size": [32, 32]}, "name": "up"},
        {"concat": {"from": ["local", "up"]}},
    ]}
    assert cnncalc.analyze(cnncalc.load_spec(spec)).misaligned == []


def test_zoo_networks_are_aligned():
    """Every zoo network merges aligned fields (ResNet's strided shortcuts, Inception's padded
    branches, U-Net's centre crops, EfficientNet's SE gates, FCN's upsampling)."""
    from cnncalc import zoo

    for name in zoo.model_names():
        assert cnncalc.analyze(name).misaligned == [], name


def test_validate_warns_and_require_aligned_makes_it_a_problem(tmp_path):
    from click.testing import CliRunner

    from cnncalc.cli import cli

    path = tmp_path / "odd.yaml"
    path.write_text("input: 2x16x16\nrounding: floor\nlayers:\n  - conv: {filters: 2, kernel: 2, stride: 2, name: a}\n"
                    "  - conv: {filters: 2, kernel: 3, stride: 2, padding: 1, from: input, name: b}\n"
                    "  - add: {from: [a, b]}\n")
    runner = CliRunner()
    warned = runner.invoke(cli, ["validate", str(path), "--format", "json"])
    assert warned.exit_code == 0, warned.output
    required = runner.invoke(cli, ["validate", str(path), "--require-aligned"])
    assert required.exit_code == 1
    assert f"{path}:6: layers[2] (add1): the merged inputs are not aligned" in required.stdout
    table = runner.invoke(cli, ["table", str(path), "--format", "json"])
    assert json.loads(table.stdout)["misaligned"][0]["line"] == 6
