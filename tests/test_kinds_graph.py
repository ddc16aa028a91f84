"""The graph vocabulary of modern CNNs: `mul` and broadcasting `add`, the `se` block, a plain named
`sequence`, `split` into named pieces, several named inputs; each against PyTorch."""
from __future__ import annotations

import numpy as np
import pytest

import cnncalc
from cnncalc.api import analyze_spec
from cnncalc.backends.forward import compare_outputs, run_forward
from cnncalc.backends.registry import load_backend
from cnncalc.errors import CnnCalcError

torch = pytest.importorskip("torch")
nn = torch.nn


def rows(spec):
    return cnncalc.analyze(spec).layers


def forward_agrees(spec, batch=2):
    """Every row runs in NumPy and torch, with the engine's shapes, and the two agree (float32 rule)."""
    plan = analyze_spec(spec).plan
    ours = run_forward(plan, load_backend("numpy"), batch=batch, keep=lambda step: True)
    theirs = run_forward(plan, load_backend("torch"), batch=batch, keep=lambda step: True)
    assert all(r.ok for r in ours + theirs), [(r.name, r.error, r.actual_shape) for r in ours + theirs if not r.ok]
    assert all(d.ok for d in compare_outputs(ours, theirs, 1e-4)), compare_outputs(ours, theirs, 1e-4)
    return plan, ours


# ----------------------------------------------------------------------------- mul and add
@pytest.mark.parametrize("kind, op", [("mul", torch.mul), ("add", torch.add)])
@pytest.mark.parametrize("first, second", [
    ([4, 6], [4, 1]),  # 1-D: a per-channel gate
    ([4, 5, 6], [4, 1, 1]),  # squeeze-and-excitation
    ([4, 1, 1], [4, 5, 6]),  # the gate first
    ([4, 5, 6], [1, 5, 1]),
    ([2, 3, 4, 5], [2, 1, 1, 1]),
])
def test_broadcasting_merges_follow_pytorch(kind, op, first, second):
    spec = {"inputs": {"a": first, "b": second}, "layers": [{kind: {"from": ["a", "b"]}}]}
    expected = op(torch.zeros(2, *first), torch.zeros(2, *second)).shape[1:]
    [row] = rows(spec)
    assert list(row.output_shape) == list(expected) and row.params == 0 and row.macs == 0
    plan, ours = forward_agrees(spec)
    rng = [np.random.default_rng((0, n)).standard_normal((2, *shape), dtype=np.float32)
           for n, shape in enumerate([first, second])]
    np.testing.assert_allclose(ours[0].output, op(*map(torch.from_numpy, rng)).numpy(), rtol=1e-6)


@pytest.mark.parametrize("kind, first, second, message", [
    ("mul", [4, 5, 6], [3, 1, 1], "cannot multiply tensors of different shapes: [4, 5, 6] x [3, 1, 1]"),
    ("add", [4, 5, 6], [4, 5, 5], "cannot add tensors of different shapes: [4, 5, 6] + [4, 5, 5]"),
    ("mul", [4, 5, 6], [4], "cannot multiply tensors of different ranks: [4, 5, 6] x [4]"),
])
def test_shapes_that_do_not_broadcast_are_a_located_error_naming_both(kind, first, second, message):
    spec = {"inputs": {"a": first, "b": second}, "layers": [{kind: {"from": ["a", "b"], "name": "m"}}]}
    with pytest.raises(CnnCalcError) as caught:
        cnncalc.analyze(spec)
    assert message in caught.value.message and caught.value.loc.path == "layers[0]"


# ----------------------------------------------------------------------------- squeeze-and-excitation
class SqueezeExcitation(nn.Module):
    """torchvision.ops.SqueezeExcitation, written out."""

    def __init__(self, channels, squeeze, activation=nn.ReLU, gate=nn.Sigmoid):
        super().__init__()
        self.avgpool, self.fc1, self.activation = nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, squeeze, 1), activation()
        self.fc2, self.scale_activation = nn.Conv2d(squeeze, channels, 1), gate()

    def forward(self, x):
        return x * self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))


@pytest.mark.parametrize("args, squeeze, gate", [
    ({"reduction": 4}, 4, nn.Sigmoid),
    ({"squeeze_channels": 3}, 3, nn.Sigmoid),
    ({"reduction": 32}, 1, nn.Sigmoid),  # at least one channel
    ({"squeeze_channels": 8, "gate": "hardsigmoid"}, 8, nn.Hardsigmoid),
])
def test_se_equals_torchvision_and_writing_it_out(args, squeeze, gate):
    spec = {"input": [16, 7, 7], "layers": [{"se": {**args, "name": "se"}}]}
    reference = SqueezeExcitation(16, squeeze, gate=gate)
    got = rows(spec)
    assert [r.name for r in got] == ["se.avgpool", "se.fc1", "se.activation", "se.fc2", "se.scale_activation", "se"]
    assert [r.kind for r in got][-1] == "mul" and list(got[-1].output_shape) == [16, 7, 7]
    assert sum(r.params for r in got) == sum(p.numel() for p in reference.parameters())
    written = {"input": [16, 7, 7], "layers": [
        {"identity": {"name": "x"}}, {"adaptive_avgpool": 1}, {"conv": {"filters": squeeze, "kernel": 1}}, "relu",
        {"conv": {"filters": 16, "kernel": 1}}, {args.get("gate", "sigmoid"): {"name": "gate"}},
        {"mul": {"from": ["x", "gate"]}}]}
    by_hand = rows(written)[1:]
    assert [(r.output_shape, r.params, r.macs) for r in by_hand] == [(r.output_shape, r.params, r.macs) for r in got]
    forward_agrees(spec)


def test_se_in_1d_and_3d():
    for shape in ([6, 9], [6, 3, 4, 5]):
        spec = {"input": shape, "layers": [{"se": {"reduction": 2, "activation": "gelu"}}]}
        assert list(rows(spec)[-1].output_shape) == shape
        forward_agrees(spec)


@pytest.mark.parametrize("args, message", [
    ({}, "needs exactly one of `squeeze_channels` and `reduction`"),
    ({"reduction": 2, "squeeze_channels": 3}, "needs exactly one of"),
    ({"reduction": 2, "activation": "conv"}, "`se.activation` must name an element-wise kind"),
])
def test_se_errors(args, message):
    with pytest.raises(CnnCalcError) as caught:
        cnncalc.analyze({"input": [8, 4, 4], "layers": ["relu", {"se": args}]})
    assert message in caught.value.message and caught.value.loc.path == "layers[1]"


# ----------------------------------------------------------------------------- sequence
def test_a_sequence_names_its_layers_once_and_folds_to_one_row():
    fire = {"sequence": {"name": "features.3", "layers": [
        {"conv": {"filters": 16, "kernel": 1, "name": "squeeze"}}, {"relu": {"name": "squeeze_activation"}},
        {"branches": [[{"conv": {"filters": 64, "kernel": 1, "name": "expand1x1"}}],
                      [{"conv": {"filters": 64, "kernel": 3, "padding": 1, "name": "expand3x3"}}]]}]}}
    spec = {"input": [96, 54, 54], "layers": [fire, "relu"]}
    report = cnncalc.analyze(spec)
    assert [r.name for r in report.layers][:2] == ["features.3.squeeze", "features.3.squeeze_activation"]
    assert "features.3.branches1.expand3x3" in [r.name for r in report.layers]
    from cnncalc.report import fold_to_depth

    folded = fold_to_depth(report, 0)
    assert [r.name for r in folded.layers] == ["features.3", "relu1"]
    assert folded.layers[0].params == 16 * 96 + 16 + 64 * 16 + 64 + 64 * 16 * 9 + 64


def test_from_inside_nested_composites_finds_the_nearest_name():
    spec = {"input": [4, 6, 6], "layers": [{"sequence": {"name": "outer", "layers": [
        {"conv": {"filters": 4, "kernel": 1, "name": "x"}},
        {"sequence": {"name": "inner", "layers": ["relu", {"add": {"from": ["relu1", "x"]}}]}}]}}]}
    assert [r.name for r in rows(spec)] == ["outer.x", "outer.inner.relu1", "outer.inner.add1"]


# ----------------------------------------------------------------------------- split
@pytest.mark.parametrize("channels, args, pieces", [
    (116, {"chunks": 2}, [58, 58]),
    (7, {"chunks": 2}, [4, 3]),  # torch.chunk: ceil(C / chunks) each, the last smaller
    (6, {"chunks": 4}, [2, 2, 2]),  # ... and fewer pieces than asked
    (10, {"sizes": [2, 3, 5]}, [2, 3, 5]),
])
def test_split_is_torch_chunk_and_split(channels, args, pieces):
    names = [f"x{i}" for i in range(len(pieces))]
    x = torch.zeros(1, channels, 3, 3)
    expected = x.chunk(args["chunks"], dim=1) if "chunks" in args else x.split(args["sizes"], dim=1)
    assert [t.shape[1] for t in expected] == pieces
    spec = {"input": [channels, 3, 3], "layers": [{"split": {**args, "names": names}},
                                                  {"conv": {"filters": 2, "kernel": 1, "from": names[0]}}]}
    got = rows(spec)
    assert [(r.name, r.kind, r.output_shape[0]) for r in got[:-1]] == [(n, "split", p) for n, p in zip(names, pieces)]
    plan, ours = forward_agrees(spec)
    x = np.random.default_rng((0, 0)).standard_normal((2, channels, 3, 3), dtype=np.float32)
    expected = torch.from_numpy(x).chunk(args["chunks"], 1) if "chunks" in args else torch.from_numpy(x).split(args["sizes"], 1)
    for result, piece in zip(ours, expected):
        np.testing.assert_array_equal(result.output, piece.numpy())


def test_shufflenet_unit_with_split_concat_and_shuffle_runs():
    spec = {"input": [8, 6, 6], "layers": [
        {"split": {"chunks": 2, "names": ["x1", "x2"]}},
        {"conv": {"filters": 4, "kernel": 1, "from": "x2", "name": "b"}},
        {"concat": {"from": ["x1", "b"]}}]}
    assert [list(r.output_shape) for r in rows(spec)] == [[4, 6, 6], [4, 6, 6], [4, 6, 6], [8, 6, 6]]
    forward_agrees(spec)


@pytest.mark.parametrize("args, message", [
    ({"chunks": 2, "names": ["a"]}, "8 channels split into 2 pieces ([4, 4]), but `names` gives 1"),
    ({"sizes": [3, 4], "names": ["a", "b"]}, "`sizes` [3, 4] add up to 7, but the input has 8 channels"),
    ({"names": ["a"]}, "needs exactly one of `sizes` and `chunks`"),
])
def test_split_errors(args, message):
    with pytest.raises(CnnCalcError) as caught:
        cnncalc.analyze({"input": [8, 4, 4], "layers": [{"split": args}]})
    assert message in caught.value.message and caught.value.loc.path == "layers[0]"


# ----------------------------------------------------------------------------- several inputs
def test_several_named_inputs_are_merged_later_as_pytorch_does():
    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.head = nn.Linear(4 * 8 * 8 + 10, 2)

        def forward(self, image, meta):
            return self.head(torch.cat([self.conv(image).flatten(1), meta], dim=1))

    spec = {"name": "two", "inputs": {"image": "3x8x8", "meta": [10]}, "layers": [
        {"conv": {"filters": 4, "kernel": 3, "padding": 1}}, "flatten",
        {"concat": {"from": ["flatten1", "meta"]}}, {"linear": {"features": 2, "name": "head"}}]}
    report = cnncalc.analyze(spec)
    assert report.to_dict()["inputs"] == {"image": [3, 8, 8], "meta": [10]}
    assert report.totals.params == sum(p.numel() for p in TwoInputs().parameters())
    assert report.totals.input_bytes == (3 * 8 * 8 + 10) * 4
    assert list(report.layers[-1].output_shape) == [2]
    forward_agrees(spec)


@pytest.mark.parametrize("data, message", [
    ({"input": [3, 8, 8], "inputs": {"a": [3, 8, 8]}, "layers": ["relu"]}, "not both"),
    ({"inputs": [3, 8, 8], "layers": ["relu"]}, "`inputs` must map names to shapes"),
    ({"inputs": {"input": [3, 8, 8]}, "layers": ["relu"]}, "other than `input`"),
    ({"layers": ["relu"]}, "the spec has no `input`"),
])
def test_inputs_errors(data, message):
    with pytest.raises(CnnCalcError) as caught:
        cnncalc.load_spec(data)
    assert message in caught.value.message


# ----------------------------------------------------------------------------- upsample to a named size
@pytest.mark.parametrize("shape", [[3, 64, 64], [3, 50, 70]])
def test_upsample_to_the_input_size_as_fcn_resizes_back(shape):
    spec = {"input": shape, "layers": ["conv 4 k3 s2 p1", {"upsample": {"size": "input", "mode": "bilinear"}}]}
    [_, up] = rows(spec)
    expected = torch.nn.functional.interpolate(torch.zeros(1, 4, *rows(spec)[0].output_shape[1:]), size=shape[1:],
                                               mode="bilinear", align_corners=False).shape[1:]
    assert list(up.output_shape) == list(expected) == [4, *shape[1:]]
    forward_agrees(spec)


def test_upsample_to_an_unknown_name_is_a_located_error():
    with pytest.raises(CnnCalcError) as caught:
        cnncalc.analyze({"input": [3, 8, 8], "layers": [{"upsample": {"size": "nope"}}]})
    assert "`size: nope` names no earlier layer" in caught.value.message and caught.value.loc.path == "layers[0]"


def test_a_broadcast_gate_widens_the_receptive_field_but_keeps_the_resolution():
    """After squeeze-and-excitation every output sees the whole input; the next 3x3 conv still
    moves the field by its own stride (the jump of the full-size path, not of the 1x1 gate)."""
    spec = {"input": [8, 32, 32], "layers": ["conv 8 k3 s2 p1", {"se": {"reduction": 2, "name": "se"}}, "conv 8 k3 p1"]}
    report = cnncalc.analyze(spec)
    by_name = {r.name: r.receptive_field for r in report.layers}
    assert by_name["se"].jump == (2, 2) and by_name["se"].size[0] >= 32
    assert by_name["conv2"].jump == (2, 2) and by_name["conv2"].size[0] == by_name["se"].size[0] + 4


def test_a_branches_merge_row_can_have_its_own_name_as_densenet_needs():
    """torchvision's denselayerN outputs its new features; the concat is _DenseBlock's torch.cat."""
    layer = {"branches": {"name": "denselayer1", "merge_name": "cat", "paths": [[], [
        {"conv": {"filters": 32, "kernel": 3, "padding": 1, "name": "conv2"}}]]}}
    spec = {"input": [64, 8, 8], "layers": [layer, {"conv": {"filters": 4, "kernel": 1, "from": "denselayer1.cat"}}]}
    got = {r.name: list(r.output_shape) for r in rows(spec)}
    assert got == {"denselayer1.conv2": [32, 8, 8], "denselayer1.cat": [96, 8, 8], "conv1": [4, 8, 8]}
    forward_agrees(spec)
