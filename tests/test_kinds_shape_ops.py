"""The channel and shape kinds (`channel_shuffle`, `pixel_shuffle`, `pixel_unshuffle`, `permute`,
`reshape`, `squeeze`, `unsqueeze`) and `linear` with `flatten: false`: shapes, params and MACs
against PyTorch (MACs as torch.utils.flop_counter counts them), the NumPy and torch forward passes
against PyTorch's modules and tensor methods, the receptive field, and located errors."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import cnncalc
from cnncalc.api import analyze_spec
from cnncalc.backends.forward import run_forward
from cnncalc.backends.registry import load_backend
from cnncalc.errors import CnnCalcError

torch = pytest.importorskip("torch")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

nn = torch.nn


def torchvision_channel_shuffle(x, groups):
    """torchvision.models.shufflenetv2.channel_shuffle, written out (torchvision is not installed)."""
    batch, channels, height, width = x.size()
    x = x.view(batch, groups, channels // groups, height, width)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(batch, -1, height, width)


def torch_macs(fn, x) -> int:
    """Multiply-accumulates as torch.utils.flop_counter counts them (FLOPs / 2)."""
    with FlopCounterMode(display=False) as counter:
        fn(x)
    return counter.get_total_flops() // 2


def forward_outputs(analysis, x: np.ndarray) -> list[np.ndarray]:
    """The last row's output ([1, ...]) on the NumPy and the torch backend."""
    outputs = []
    for backend in ("numpy", "torch"):
        rows = run_forward(analysis.plan, load_backend(backend), input_values=x, keep=lambda step: True)
        assert all(r.ok for r in rows), [(r.name, r.inferred_shape, r.actual_shape, r.error) for r in rows]
        outputs.append(rows[-1].output)
    return outputs


def assert_like_torch(layers, shape, fn, exact=True):
    """cnncalc's shape, params and MACs of ``layers`` on [C, *spatial] ``shape`` equal PyTorch's for
    ``fn`` on a batch of one, and both backends compute what ``fn`` computes."""
    analysis = analyze_spec({"input": list(shape), "layers": layers})
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        expected = fn(torch.from_numpy(x[None]))
        macs = torch_macs(fn, torch.from_numpy(x[None]))
    report = analysis.report
    assert list(report.layers[-1].output_shape) == list(expected.shape[1:])
    assert report.totals.macs == macs
    for out in forward_outputs(analysis, x):
        if exact:
            np.testing.assert_array_equal(out, expected.numpy())
        else:
            np.testing.assert_allclose(out, expected.numpy(), rtol=1e-5, atol=1e-5)
    return report


# ----------------------------------------------------------------------------- channel kinds
@pytest.mark.parametrize("shape, groups", [
    ([8, 4, 4], 2), ([12, 3, 5], 3), ([6, 2, 2], 6), ([4, 3, 3], 1), ([6, 7], 2), ([8, 2, 3, 3], 4),
], ids=["2 groups", "3 groups", "one channel per group", "one group", "1-D", "3-D"])
def test_channel_shuffle_is_torch_channel_shuffle(shape, groups):
    report = assert_like_torch([{"channel_shuffle": groups}], shape, nn.ChannelShuffle(groups))
    assert (report.totals.params, report.layers[0].hyper["groups"]) == (0, groups)
    if len(shape) == 3:  # ShuffleNet V2's own function
        assert_like_torch([{"channel_shuffle": {"groups": groups}}], shape,
                          lambda x: torchvision_channel_shuffle(x, groups))


@pytest.mark.parametrize("shape, factor, expected", [
    ([8, 3, 3], 2, [2, 6, 6]), ([9, 2, 4], 3, [1, 6, 12]), ([4, 5, 5], 1, [4, 5, 5]), ([32, 1, 1], 4, [2, 4, 4]),
])
def test_pixel_shuffle_is_torch_pixel_shuffle(shape, factor, expected):
    report = assert_like_torch([{"pixel_shuffle": factor}], shape, nn.PixelShuffle(factor))
    assert list(report.layers[0].output_shape) == expected and report.totals.params == 0


@pytest.mark.parametrize("shape, factor, expected", [
    ([2, 4, 4], 2, [8, 2, 2]), ([1, 6, 3], 3, [9, 2, 1]), ([3, 6, 8], 2, [12, 3, 4]), ([2, 5, 5], 1, [2, 5, 5]),
])
def test_pixel_unshuffle_is_torch_pixel_unshuffle(shape, factor, expected):
    report = assert_like_torch([{"pixel_unshuffle": {"factor": factor}}], shape, nn.PixelUnshuffle(factor))
    assert list(report.layers[0].output_shape) == expected and report.totals.params == 0


def test_pixel_unshuffle_undoes_pixel_shuffle():
    assert_like_torch([{"pixel_shuffle": 2}, {"pixel_unshuffle": 2}], [8, 3, 5], lambda x: x)


def test_pixel_shuffle_moves_the_receptive_field_as_nearest_unpooling_and_unshuffle_as_pooling():
    def fields(*layers):
        rows = cnncalc.analyze({"input": [16, 8, 8], "layers": ["conv 16 k3 p1", *layers, "conv 16 k3"]}).layers
        return [r.receptive_field for r in rows[1:]]

    assert fields({"pixel_shuffle": 2}) == fields({"unpool": 2})
    assert fields({"pixel_unshuffle": 2}) == fields({"maxpool": {"kernel": 2, "stride": 2}})


# ----------------------------------------------------------------------------- shape kinds
@pytest.mark.parametrize("shape, dims", [
    ([3, 4, 5], [0, 2, 3, 1]), ([4, 5, 3], [0, 3, 1, 2]), ([2, 3, 4, 5], [0, 4, 1, 2, 3]), ([3, 7], [0, 2, 1]),
    ([3, 4, 5], [0, -1, 1, 2]), ([3, 4, 5], [0, 1, 2, 3]), ([5], [0, 1]),
], ids=["channels last", "channels first", "3-D", "1-D", "negative", "unchanged", "flat"])
def test_permute_is_torch_permute(shape, dims):
    report = assert_like_torch([{"permute": dims}], shape, lambda x: torch.permute(x, dims))
    assert report.totals.params == 0


@pytest.mark.parametrize("shape, target", [
    ([3, 4, 4], [48]), ([3, 4, 4], [-1]), ([3, 4, 4], 48), ([48], [3, 4, -1]), ([2, 3, 4], [4, -1, 2]),
    ([8, 2, 2], [2, 4, 2, 2]), ([8, 2, 2], [8, 2, 2]),
], ids=["flat", "flat inferred", "scalar", "unflatten", "inferred middle", "to 3-D", "unchanged"])
def test_reshape_is_torch_reshape_per_sample(shape, target):
    sizes = target if isinstance(target, list) else [target]
    report = assert_like_torch([{"reshape": target}], shape, lambda x: x.reshape(1, *sizes))
    assert report.totals.params == 0
    assert_like_torch([{"reshape": {"shape": target}}], shape, lambda x: x.view(1, *sizes))


@pytest.mark.parametrize("shape, dim", [
    ([1, 4, 4], 1), ([3, 1, 4], 2), ([3, 1, 4], -2), ([3, 4, 1], -1), ([1, 1, 2, 2], 2),
    ([3, 4, 4], 1), ([3, 4, 4], -1), ([5], 1),
], ids=["channels", "middle", "negative", "last", "3-D", "size 3 stays", "size 4 stays", "flat stays"])
def test_squeeze_is_torch_squeeze(shape, dim):
    assert_like_torch([{"squeeze": dim}], shape, lambda x: torch.squeeze(x, dim))


@pytest.mark.parametrize("shape, dim", [
    ([3, 4], 1), ([3, 4], 3), ([3, 4], -1), ([3, 4], -3), ([5], 2), ([5], -1), ([2, 3, 4], 2),
], ids=["first", "last", "negative last", "negative first", "flat", "flat negative", "3 axes"])
def test_unsqueeze_is_torch_unsqueeze(shape, dim):
    assert_like_torch([{"unsqueeze": dim}], shape, lambda x: torch.unsqueeze(x, dim))


def test_shape_kinds_carry_the_receptive_field_unchanged():
    layers = ["conv 4 k3", {"permute": [0, 2, 3, 1]}, {"reshape": [-1, 4]}, {"unsqueeze": 1}, {"squeeze": 1},
              {"channel_shuffle": 2}]
    rows = cnncalc.analyze({"input": [2, 8, 8], "layers": layers}).layers
    assert all(r.receptive_field == rows[0].receptive_field for r in rows)


@settings(max_examples=150, deadline=None)
@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=4), dim=st.integers(-6, 6),
       squeeze=st.booleans())
def test_squeeze_and_unsqueeze_agree_with_pytorch_or_say_why_not(shape, dim, squeeze):
    x = torch.zeros(1, *shape)
    try:
        expected = list((x.squeeze(dim) if squeeze else x.unsqueeze(dim)).shape)
    except (IndexError, RuntimeError):
        expected = None
    kind = "squeeze" if squeeze else "unsqueeze"
    try:
        got = list(cnncalc.analyze({"input": shape, "layers": [{kind: dim}]}).layers[0].output_shape)
    except CnnCalcError as exc:
        # besides what PyTorch refuses: the batch axis, and shapes cnncalc cannot hold (1 to 4 axes per sample)
        ndim = len(shape) + (1 if squeeze else 2)
        assert expected is None or dim % ndim == 0 or len(expected) - 1 not in range(1, 5), str(exc)
        return
    assert [1, *got] == expected


@settings(max_examples=150, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4),
       target=st.lists(st.sampled_from([-1, 1, 2, 3, 4, 6, 8]), min_size=1, max_size=4))
def test_reshape_agrees_with_pytorch_or_says_why_not(shape, target):
    try:
        expected = list(torch.zeros(1, *shape).reshape(1, *target).shape)
    except RuntimeError:
        expected = None
    try:
        got = list(cnncalc.analyze({"input": shape, "layers": [{"reshape": target}]}).layers[0].output_shape)
    except CnnCalcError:
        assert expected is None
        return
    assert [1, *got] == expected


# ----------------------------------------------------------------------------- linear on the last axis
class ConvNeXtMLP(nn.Module):
    """ConvNeXt's inverted-bottleneck MLP: channels last, Linear C -> 4C, GELU, Linear 4C -> C, back."""

    def __init__(self, channels: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(channels, 4 * channels), nn.Linear(4 * channels, channels)

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        return self.fc2(nn.functional.gelu(self.fc1(x))).permute(0, 3, 1, 2)


def explicit(layer: nn.Linear) -> dict:
    """A linear module's weights as spec keys, so cnncalc runs the very same numbers."""
    return {"weights": layer.weight.detach().tolist(), "biases": layer.bias.detach().tolist()}


def test_convnext_mlp_through_a_channels_last_linear():
    torch.manual_seed(0)
    block = ConvNeXtMLP(8).eval()
    layers = [{"permute": [0, 2, 3, 1]},
              {"linear": {"features": 32, "flatten": False, **explicit(block.fc1)}}, "gelu",
              {"linear": {"features": 8, "flatten": False, **explicit(block.fc2)}},
              {"permute": [0, 3, 1, 2]}]
    report = assert_like_torch(layers, [8, 5, 5], block, exact=False)
    assert report.totals.params == sum(p.numel() for p in block.parameters()) == 2 * 8 * 32 + 32 + 8
    fc1 = report.layers[1]
    assert list(fc1.output_shape) == [5, 5, 32] and fc1.macs == 5 * 5 * 8 * 32
    assert fc1.receptive_field == report.layers[0].receptive_field  # each position alone


@pytest.mark.parametrize("shape, features, bias", [
    ([3, 7], 5, True), ([2, 3, 4, 6], 4, False), ([4, 4, 3], 1, True),
], ids=["1-D: the last axis is L", "3-D, no bias", "one feature"])
def test_linear_flatten_false_is_nn_linear_on_the_last_axis(shape, features, bias):
    torch.manual_seed(1)
    layer = nn.Linear(shape[-1], features, bias=bias).eval()
    weights = {"weights": layer.weight.detach().tolist()}
    if bias:
        weights["biases"] = layer.bias.detach().tolist()
    report = assert_like_torch([{"linear": {"features": features, "flatten": False, "bias": bias, **weights}}],
                               shape, layer, exact=False)
    assert report.totals.params == sum(p.numel() for p in layer.parameters())


def test_linear_flatten_false_on_a_flat_input_is_the_usual_linear():
    def row(**options):
        spec = {"input": [3, 4, 4], "layers": ["flatten", {"linear": {"features": 10, **options}}]}
        return cnncalc.analyze(spec).layers[-1]

    default, last_axis = row(), row(flatten=False)
    assert last_axis.to_dict() == default.to_dict()
    assert default.receptive_field.size == (4, 4)  # the whole 4x4 map, as before


def test_linear_keeps_flattening_by_default():
    rows = cnncalc.analyze({"input": [3, 4, 4], "layers": [{"linear": 10}]}).layers
    assert (list(rows[0].output_shape), rows[0].params, rows[0].macs) == ([10], 48 * 10 + 10, 480)


# ----------------------------------------------------------------------------- explanations
@pytest.mark.parametrize("shape, layer", [
    ([8, 3, 5], {"pixel_shuffle": 2}), ([2, 6, 4], {"pixel_unshuffle": 2}), ([3, 4, 4], {"reshape": [4, -1]}),
    ([5, 5, 8], {"linear": {"features": 32, "flatten": False}}),
    ([5, 5, 8], {"linear": {"features": 32, "flatten": False, "bias": False}}),
])
def test_explanations_compute_what_they_claim(shape, layer):
    analysis = analyze_spec({"input": shape, "layers": [layer]})
    row, formulas = analysis.report.layers[0], analysis.plan.steps[0].formulas()
    assert formulas
    for formula in formulas:
        if formula.arithmetic:
            assert eval(formula.arithmetic) == int(formula.value), formula.text()  # noqa: S307 - our own arithmetic
    claimed = {f.quantity: int(f.value) for f in formulas if f.quantity in ("params", "macs")}
    assert claimed.get("params", row.params) == row.params and claimed.get("macs", row.macs) == row.macs


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("shape, layer, message", [
    ([6, 4, 4], {"channel_shuffle": 4}, r"cannot split 6 channels into 4 groups"),
    ([12], {"channel_shuffle": 2}, r"channel_shuffle needs an input with spatial axes"),
    ([6, 4, 4], {"pixel_shuffle": 2}, r"factor 2 needs channels divisible by 2\*2 = 4, and the input has 6"),
    ([8, 2, 4, 4], {"pixel_shuffle": 2}, r"pixel_shuffle needs a \[C, H, W\] input .* got \[8, 2, 4, 4\]"),
    ([8, 4], {"pixel_shuffle": 2}, r"pixel_shuffle needs a \[C, H, W\] input"),
    ([16], {"pixel_unshuffle": 2}, r"pixel_unshuffle needs a \[C, H, W\] input"),
    ([2, 5, 4], {"pixel_unshuffle": 2}, r"needs H and W divisible by 2, and the input is 5x4"),
    ([3, 4, 4], {"permute": [0, 2, 1]}, r"has 3 entries, but the input \[3, 4, 4\] is a 4-D tensor"),
    ([3, 4, 4], {"permute": [0, 1, 1, 2]}, r"is not an order of the axes 0..3"),
    ([3, 4, 4], {"permute": [1, 0, 2, 3]}, r"moves the batch axis"),
    ([3, 4, 4], {"reshape": [5, -1]}, r"cannot reshape \[3, 4, 4\] \(48 values\) into \[5, -1\]: 48 is not divisible by 5"),
    ([3, 4, 4], {"reshape": [1, 3, 4, 4, 1]}, r"would give \[1, 3, 4, 4, 1\], 5 axes per sample"),
    ([3, 4, 4], {"reshape": [8, 8]}, r"cannot reshape \[3, 4, 4\] \(48 values\) into \[8, 8\], which holds 64"),
    ([3, 4, 4], {"reshape": [-1, -1]}, r"at most one -1"),
    ([3, 4, 4], {"reshape": [0, 48]}, r"positive sizes"),
    ([3, 4, 4], {"squeeze": 0}, r"`dim` 0 is the batch axis"),
    ([3, 4, 4], {"squeeze": -4}, r"`dim` -4 is the batch axis"),
    ([3, 4, 4], {"squeeze": 4}, r"`dim` 4 is out of range for the input \[3, 4, 4\], a 4-D tensor"),
    ([1], {"squeeze": 1}, r"would remove the only per-sample axis"),
    ([3, 4], {"unsqueeze": 0}, r"`dim` 0 is the batch axis"),
    ([3, 4], {"unsqueeze": 4}, r"`dim` 4 is out of range for unsqueeze of \[3, 4\]"),
    ([3, 4, 4, 4], {"unsqueeze": 1}, r"would give \[1, 3, 4, 4, 4\]"),
])
def test_bad_arguments_are_located_errors(shape, layer, message):
    spec = {"input": shape, "layers": ["identity", {**layer, "name": "bad"}]}
    with pytest.raises(CnnCalcError, match=message) as caught:
        cnncalc.analyze(spec)
    assert (caught.value.loc.path, caught.value.loc.name) == ("layers[1]", "bad")


@pytest.mark.parametrize("shape, layer, refused_by_torch", [
    ([6, 4, 4], {"channel_shuffle": 4}, lambda x: nn.ChannelShuffle(4)(x)),
    ([12], {"channel_shuffle": 2}, lambda x: nn.ChannelShuffle(2)(x)),
    ([6, 4, 4], {"pixel_shuffle": 2}, lambda x: nn.PixelShuffle(2)(x)),
    ([2, 5, 4], {"pixel_unshuffle": 2}, lambda x: nn.PixelUnshuffle(2)(x)),
    ([3, 4, 4], {"permute": [0, 2, 1]}, lambda x: x.permute(0, 2, 1)),
    ([3, 4, 4], {"reshape": [5, -1]}, lambda x: x.reshape(1, 5, -1)),
    ([3, 4, 4], {"squeeze": 4}, lambda x: x.squeeze(4)),
    ([3, 4], {"unsqueeze": 4}, lambda x: x.unsqueeze(4)),
])
def test_what_pytorch_refuses_cnncalc_refuses(shape, layer, refused_by_torch):
    with pytest.raises((RuntimeError, IndexError)):
        refused_by_torch(torch.zeros(1, *shape))
    with pytest.raises(CnnCalcError):
        cnncalc.analyze({"input": shape, "layers": [layer]})


def test_the_kinds_live_in_their_modules():
    from cnncalc.kinds import KINDS

    modules = {kind: KINDS[kind].__module__ for kind in
               ("channel_shuffle", "pixel_shuffle", "pixel_unshuffle", "permute", "reshape", "squeeze", "unsqueeze")}
    assert modules == {**{k: "cnncalc.kinds.channels" for k in ("channel_shuffle", "pixel_shuffle", "pixel_unshuffle")},
                       **{k: "cnncalc.kinds.reshape" for k in ("permute", "reshape", "squeeze", "unsqueeze")}}
