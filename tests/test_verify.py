"""`cnncalc verify` and the forward executor: the analytic engine's shapes against real arrays.

The property test draws random specs over every layer kind, layer by layer (each layer is drawn
for the shape that reaches it, so every spec is valid), runs them on the NumPy backend and
asserts that every row's actual shape is the engine's; where PyTorch is installed the same
weights run through torch.nn.functional and the outputs must agree within float32 tolerance.
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnncalc
import cnncalc.api
from cnncalc.api import analyze_spec
from cnncalc.backends.forward import compare_outputs, run_forward
from cnncalc.backends.registry import load_backend
from cnncalc.cli import cli
from cnncalc.errors import CnnCalcError

try:
    import torch  # noqa: F401

    TORCH = load_backend("torch")
except ImportError:
    TORCH = None
NUMPY = load_backend("numpy")
TOLERANCE = 1e-4  # relative to max(1, max |torch output|): float32 sums in a different order
MAX_ELEMENTS = 3000  # per sample and row: keeps each example a few milliseconds
PROPERTY = settings(max_examples=500, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


# ----------------------------------------------------------------------------- drawing specs
def axes(rank: int, values: st.SearchStrategy) -> st.SearchStrategy:
    """One value for all spatial axes, or a list with one per axis."""
    return st.one_of(values, st.lists(values, min_size=rank, max_size=rank))


def pairs(rank: int, most: int) -> st.SearchStrategy:
    """Asymmetric padding: [before, after] per axis."""
    return st.lists(st.lists(st.integers(0, most), min_size=2, max_size=2), min_size=rank, max_size=rank)


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def conv(draw, c, rank):
    if draw(st.integers(0, 4)) == 0:  # LeNet-5's C3: each filter sees a chosen subset of the inputs
        table = draw(st.lists(st.lists(st.integers(0, c - 1), min_size=1, max_size=c, unique=True),
                              min_size=1, max_size=4))
        return {"conv": {"filters": len(table), "kernel": draw(axes(rank, st.integers(1, 3))),
                         "connection_table": table, "bias": draw(st.booleans())}}
    groups = draw(st.sampled_from(divisors(c)))
    return {"conv": {
        "filters": groups * draw(st.integers(1, 3)), "groups": groups,
        "kernel": draw(axes(rank, st.integers(1, 3))), "stride": draw(axes(rank, st.integers(1, 2))),
        "dilation": draw(axes(rank, st.integers(1, 2))), "bias": draw(st.booleans()),
        "padding": draw(st.one_of(st.integers(0, 2), st.sampled_from(["same", "valid"]), pairs(rank, 2))),
    }}


def conv_transpose(draw, c, rank):
    groups = draw(st.sampled_from(divisors(c)))
    stride = draw(st.lists(st.integers(1, 2), min_size=rank, max_size=rank))
    dilation = draw(st.lists(st.integers(1, 2), min_size=rank, max_size=rank))
    return {"conv_transpose": {
        "filters": groups * draw(st.integers(1, 2)), "groups": groups, "stride": stride, "dilation": dilation,
        "kernel": draw(axes(rank, st.integers(1, 3))), "bias": draw(st.booleans()),
        "output_padding": [draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation)],
        "padding": draw(st.one_of(st.integers(0, 1), pairs(rank, 1))),
    }}


def pool(draw, kind, rank):
    kernel = draw(st.lists(st.integers(1, 3), min_size=rank, max_size=rank))
    most = min(kernel) // 2  # PyTorch: padding at most half the kernel
    args = {"kernel": kernel[0] if len(set(kernel)) == 1 and draw(st.booleans()) else kernel,
            "ceil_mode": draw(st.booleans()), "padding": draw(st.one_of(st.integers(0, most), pairs(rank, most)))}
    if draw(st.booleans()):
        args["stride"] = draw(axes(rank, st.integers(1, 3)))
    if kind == "maxpool":
        args["dilation"] = draw(axes(rank, st.integers(1, 2)))
    else:
        args["count_include_pad"] = draw(st.booleans())
    return {kind: args}


def upsample(draw, rank):
    modes = ["nearest", "linear", "bilinear", "trilinear"] + (["bicubic"] if rank == 2 else [])
    args = {"mode": draw(st.sampled_from(modes))}
    if draw(st.booleans()):
        args["scale_factor"] = draw(axes(rank, st.sampled_from([1, 2, 3, 0.5, 1.5, 2.5])))
    else:
        args["size"] = draw(axes(rank, st.integers(1, 7)))
    return {"upsample": args}


def residual(draw, c, rank):
    if draw(st.booleans()):  # identity shortcut: a size-keeping main path
        return {"residual": {"layers": [{"conv": {"filters": c, "kernel": 3, "padding": "same"}}, "relu"],
                             "after": draw(st.sampled_from([[], ["relu"]]))}}
    filters = draw(st.integers(1, 4))
    return {"residual": {"layers": [{"conv": {"filters": filters, "kernel": 3, "stride": 2, "padding": 1}}],
                         "shortcut": [{"conv": {"filters": filters, "kernel": 1, "stride": 2}}]}}


def branches(draw, c, rank):
    paths = [[{"conv": {"filters": draw(st.integers(1, 3)), "kernel": 1}}],
             [{"conv": {"filters": draw(st.integers(1, 3)), "kernel": 3, "padding": "same"}}, "relu"],
             [{"maxpool": {"kernel": 3, "stride": 1, "padding": 1}}],
             []]  # the identity
    return {"branches": draw(st.lists(st.sampled_from(paths), min_size=1, max_size=3))}


def reshape(draw, shape):
    """A per-sample shape holding the same values (1 to 4 axes); one size may be -1 (inferred)."""
    left, sizes = math.prod(shape), []
    for _ in range(draw(st.integers(0, 3))):
        sizes.append(draw(st.sampled_from(divisors(left))))
        left //= sizes[-1]
    sizes.append(left)
    if draw(st.booleans()):
        sizes[draw(st.integers(0, len(sizes) - 1))] = -1
    return sizes


def broadcastable(a, b) -> bool:
    return len(a) == len(b) and all(x == y or 1 in (x, y) for x, y in zip(a, b))


def merge(draw, kind, current, outputs):
    """add / mul / concat of the current output with an earlier named one that fits."""
    shape = outputs[current]
    if kind in ("add", "mul"):
        partners = [name for name, other in outputs.items() if broadcastable(other, shape)]
        return {kind: {"from": [current, draw(st.sampled_from(partners))]}}
    partners = [name for name, other in outputs.items() if len(other) == len(shape)]
    partner = draw(st.sampled_from(partners))
    crop = outputs[partner][1:] != shape[1:] or draw(st.booleans())
    return {"concat": {"from": [current, partner], "crop": crop}}


def split(draw, c, current):
    """Pieces named after the layer before (unique in the spec); the next layer reads the last."""
    if draw(st.booleans()):
        chunks = draw(st.integers(1, c))
        size = -(-c // chunks)
        count = c // size + (1 if c % size else 0)
        return {"split": {"chunks": chunks, "names": [f"{current}_p{i}" for i in range(count)]}}
    cut = draw(st.integers(0, c))
    sizes = [size for size in (cut, c - cut) if size]
    return {"split": {"sizes": sizes, "names": [f"{current}_p{i}" for i in range(len(sizes))]}}


SIMPLE = ["flatten", "dropout", "relu", "relu6", "sigmoid", "tanh", "gelu", "softmax", "identity",
          "global_avgpool", "global_maxpool"]


ANY_SHAPE = ["silu", "hardswish", "hardsigmoid", "mish", "selu", "log_softmax"]  # no arguments, any input


def layer_for(draw, shape, current, outputs):
    """One layer entry for an input of ``shape``; spatial kinds only where there are spatial axes."""
    c, rank = shape[0], len(shape) - 1
    kinds = ["batchnorm", "layernorm", "groupnorm", "lrn", "leaky_relu", "add", "mul", "concat", "split", "sequence", *SIMPLE[:9], *ANY_SHAPE,
             "elu", "prelu", "drop_path", "layer_scale", "linear", "reshape", "permute", "squeeze",
             *(["unsqueeze"] if rank < 3 else [])]
    if rank:  # first: hypothesis shrinks towards the start of the list
        kinds = ["conv", "conv_transpose", "maxpool", "avgpool", "subsample", "adaptive_avgpool", "adaptive_maxpool", "upsample",
                 "unpool", "pad", "depthwise_separable", "residual", "branches", "se", "instancenorm", "channel_shuffle",
                 *(["pixel_shuffle", "pixel_unshuffle"] * 3 if rank == 2 else []), *SIMPLE[9:], *kinds]
    kind = draw(st.sampled_from(kinds))
    build = {
        "conv": lambda: conv(draw, c, rank),
        "conv_transpose": lambda: conv_transpose(draw, c, rank),
        "maxpool": lambda: pool(draw, "maxpool", rank),
        "avgpool": lambda: pool(draw, "avgpool", rank),
        "subsample": lambda: {"subsample": {"kernel": draw(axes(rank, st.integers(1, 3))),
                                            "stride": draw(axes(rank, st.integers(1, 3)))}},
        "adaptive_avgpool": lambda: {"adaptive_avgpool": draw(axes(rank, st.integers(1, 4)))},
        "adaptive_maxpool": lambda: {"adaptive_maxpool": draw(axes(rank, st.integers(1, 4)))},
        "linear": lambda: {"linear": {"features": draw(st.integers(1, 6)), "bias": draw(st.booleans()),
                                      "flatten": draw(st.booleans())}},
        "channel_shuffle": lambda: {"channel_shuffle": draw(st.sampled_from(divisors(c)))},
        "pixel_shuffle": lambda: {"pixel_shuffle": draw(st.sampled_from([r for r in (1, 2, 3) if c % (r * r) == 0]))},
        "pixel_unshuffle": lambda: {"pixel_unshuffle": draw(st.sampled_from(
            [r for r in (1, 2, 3) if shape[1] % r == 0 and shape[2] % r == 0]))},
        "permute": lambda: {"permute": [0, *draw(st.permutations(range(1, rank + 2)))]},
        "reshape": lambda: {"reshape": reshape(draw, shape)},
        "squeeze": lambda: {"squeeze": draw(st.one_of(st.integers(1, rank + 1), st.integers(-rank - 1, -1)))},
        "unsqueeze": lambda: {"unsqueeze": draw(st.one_of(st.integers(1, rank + 2), st.integers(-rank - 2, -1)))},
        "batchnorm": lambda: {"batchnorm": {"eps": draw(st.sampled_from([1e-5, 1e-3])),
                                            "affine": draw(st.booleans())}},
        "lrn": lambda: {"lrn": {"size": draw(st.integers(1, 5)), "alpha": draw(st.sampled_from([1e-4, 0.1, 1.0])),
                                "beta": draw(st.sampled_from([0.75, 0.5])), "k": draw(st.sampled_from([1.0, 2.0]))}},
        "leaky_relu": lambda: {"leaky_relu": draw(st.sampled_from([0.01, 0.2]))},
        "upsample": lambda: upsample(draw, rank),
        "pad": lambda: {"pad": {"padding": draw(st.one_of(st.integers(0, 2), st.lists(
            st.one_of(st.integers(0, 2), st.lists(st.integers(0, 2), min_size=2, max_size=2)),
            min_size=rank, max_size=rank))), "mode": draw(st.sampled_from(["zero", "reflect", "replicate", "circular"]))}},
        "unpool": lambda: {"unpool": {"factor": draw(axes(rank, st.integers(1, 3))),
                                      "mode": draw(st.sampled_from(["nearest", "bed_of_nails"]))}},
        "depthwise_separable": lambda: {"depthwise_separable": {
            "filters": draw(st.integers(1, 4)), "kernel": draw(st.sampled_from([1, 3])),
            "stride": draw(st.integers(1, 2)), "multiplier": draw(st.integers(1, 2))}},
        "residual": lambda: residual(draw, c, rank),
        "branches": lambda: branches(draw, c, rank),
        "add": lambda: merge(draw, "add", current, outputs),
        "mul": lambda: merge(draw, "mul", current, outputs),
        "layernorm": lambda: {"layernorm": {
            "normalized_shape": draw(st.sampled_from([None, *(list(shape[i:]) for i in range(len(shape)))])),
            "eps": draw(st.sampled_from([1e-3, 0.1])), "elementwise_affine": draw(st.booleans()),
            "bias": draw(st.booleans())}},
        "groupnorm": lambda: {"groupnorm": {"groups": draw(st.sampled_from(divisors(c))),
                                            "eps": draw(st.sampled_from([1e-3, 0.1])), "affine": draw(st.booleans())}},
        "instancenorm": lambda: {"instancenorm": {"eps": draw(st.sampled_from([1e-3, 0.1])),
                                                  "affine": draw(st.booleans()),
                                                  "track_running_stats": draw(st.booleans())}},
        "elu": lambda: {"elu": draw(st.sampled_from([1.0, 0.5, 2.0]))},
        "prelu": lambda: {"prelu": {"num_parameters": draw(st.sampled_from([1, c])),
                                    "init": draw(st.sampled_from([0.25, -0.5, 1.5]))}},
        "drop_path": lambda: {"drop_path": {"p": draw(st.sampled_from([0.0, 0.2, 0.5])),
                                            "mode": draw(st.sampled_from(["row", "batch"]))}},
        "layer_scale": lambda: {"layer_scale": draw(st.sampled_from([1e-6, 0.5, 2.0]))},
        "se": lambda: {"se": {"reduction": draw(st.integers(1, 4)), "gate": draw(st.sampled_from(["sigmoid", "relu"]))}},
        "split": lambda: split(draw, c, current),
        "sequence": lambda: {"sequence": [draw(st.sampled_from(["relu", "tanh", "batchnorm"])), "identity"]},
        "concat": lambda: merge(draw, "concat", current, outputs),
    }
    return build[kind]() if kind in build else kind


def analysed(spec: dict):
    """The report, or None when the engine rejects the spec or a row is too big for a quick test."""
    try:
        report = cnncalc.analyze(cnncalc.load_spec(spec))
    except CnnCalcError:
        return None
    if any(math.prod(row.output_shape) > MAX_ELEMENTS for row in report.layers):
        return None
    return report


@st.composite
def specs(draw, most_layers: int = 4):
    rank = draw(st.integers(1, 3))
    sizes = draw(st.lists(st.integers(1, {1: 12, 2: 8, 3: 5}[rank]), min_size=rank, max_size=rank))
    spec = {"name": "drawn", "input": [draw(st.integers(1, 4)), *sizes], "layers": []}
    outputs = {"input": tuple(spec["input"])}  # named top-level outputs -> shape
    wanted = draw(st.integers(1, most_layers))
    for attempt in range(4 * wanted):
        if len(spec["layers"]) == wanted:
            break
        current = spec["layers"][-1]["name"] if spec["layers"] else "input"
        entry = layer_for(draw, outputs[current], current, outputs)
        name = f"l{len(spec['layers'])}"
        candidate = {**spec, "layers": [*spec["layers"], {**_as_mapping(entry), "name": name}]}
        report = analysed(candidate)
        if report is not None:
            spec = candidate
            outputs[name] = tuple(report.layers[-1].output_shape)
    if not spec["layers"]:
        spec["layers"] = ["relu"]
    return spec


def _as_mapping(entry) -> dict:
    return {entry: None} if isinstance(entry, str) else dict(entry)


def kinds_of(spec: dict) -> set[str]:
    return {row.kind for row in cnncalc.analyze(cnncalc.load_spec(spec)).layers}


# ----------------------------------------------------------------------------- the property
@PROPERTY
@given(spec=specs(), batch=st.integers(1, 2), seed=st.integers(0, 2**16))
def test_engine_shapes_equal_numpy_shapes_and_numpy_equals_torch(spec, batch, seed):
    plan = analyze_spec(spec).plan
    ours = run_forward(plan, NUMPY, batch=batch, seed=seed, keep=lambda row: True)
    wrong = [(r.name, r.kind, r.inferred_shape, r.actual_shape, r.error) for r in ours if not r.ok]
    assert not wrong and len(ours) == len(plan.steps), f"{spec}: {wrong}"
    if TORCH is None:
        return
    theirs = run_forward(plan, TORCH, batch=batch, seed=seed, keep=lambda row: True)
    assert all(r.ok for r in theirs), f"{spec}: {[(r.name, r.actual_shape, r.error) for r in theirs if not r.ok]}"
    differences = [d for d in compare_outputs(ours, theirs, TOLERANCE) if not d.ok]
    assert not differences, f"{spec}: {differences}"


def test_the_drawn_specs_cover_every_layer_kind():
    """The strategy reaches every leaf kind (so the property test covers every kind's forward)."""
    from cnncalc.kinds import KINDS, Composite

    leaves = {kind for kind, cls in KINDS.items() if not issubclass(cls, Composite)}
    seen: set[str] = set()

    @settings(max_examples=1200, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(specs())
    def collect(spec):
        seen.update(kinds_of(spec))

    collect()
    assert leaves <= seen, f"never drawn: {leaves - seen}"  # (seen also holds `split`, a composite's rows)


# ----------------------------------------------------------------------------- the executor

@pytest.mark.parametrize("layer, input_shape, expected", [
    ({"conv": {"filters": 6, "kernel": [3, 5], "groups": 2}}, [4, 9, 9], {"weight": (6, 2, 3, 5), "bias": (6,)}),
    ({"conv_transpose": {"filters": 6, "kernel": 4, "groups": 3, "bias": False}}, [3, 5, 5],
     {"weight": (3, 2, 4, 4)}),
    ({"linear": 10}, [2, 3, 4], {"weight": (10, 24), "bias": (10,)}),
    ({"batchnorm": {"affine": False}}, [5, 2], {"running_mean": (5,), "running_var": (5,)}),
], ids=["conv [K, C/G, *k]", "conv_transpose [C_in, K/G, *k]", "linear [out, in] after flattening",
        "batchnorm running statistics only"])
def test_parameters_have_pytorch_layouts(layer, input_shape, expected):
    from cnncalc.backends.parameters import SeededParameters

    plan = analyze_spec({"input": input_shape, "layers": [layer]}).plan
    params = SeededParameters(seed=0)(plan.steps[0], (1, *input_shape))
    assert {name: a.shape for name, a in params.items()} == expected
    assert all(a.dtype == np.float32 for a in params.values())


def test_random_weights_are_seeded_per_row_and_keep_deep_nets_finite():
    spec = replace(cnncalc.load_spec("vgg16"), input=(3, 64, 64))  # 16 weight layers, no batch norm: the scaling must hold alone
    plan = analyze_spec(spec).plan

    def last_output(seed):
        return run_forward(plan, NUMPY, seed=seed, keep=lambda row: row.index == len(plan.steps) - 1)[-1].output

    first, again, other = last_output(3), last_output(3), last_output(4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert np.isfinite(first).all() and 1e-3 < np.abs(first).max() < 1e3  # He scaling: no blow-up, no vanishing
    lenet = analyze_spec("lenet5").plan
    assert all(result.output is None for result in run_forward(lenet, NUMPY))  # nothing kept unless asked


def test_outputs_are_freed_after_their_last_reader():
    from cnncalc.backends.forward import last_readers

    report = cnncalc.analyze(cnncalc.load_spec("resnet18"))
    last = last_readers(report.layers)
    add = next(row for row in report.layers if row.kind == "add")
    assert last[-1] == 0  # the input is read by conv1 only
    assert all(last[i] >= add.index for i in add.inputs)  # a residual's input lives until the add


# ----------------------------------------------------------------------------- the command
def invoke(*args):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize("model, shape", [
    ("lenet5", None), ("resnet18", "3x64x64"), ("resnet50", "3x64x64"), ("mobilenet_v2", "3x64x64"),
    ("googlenet", "3x64x64"), ("vgg11_lrn", "3x64x64"), ("dcgan_generator", None), ("audio_cnn_1d", None),
    ("unet_padded", "1x64x64"), ("c3d", "3x16x32x32"),
])
def test_verify_zoo_specs_at_reduced_input(model, shape):
    result = invoke("verify", model, "--format", "json", *(["--input", shape] if shape else []))
    assert result.exit_code == 0, result.output + result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["mismatches"] == 0 and data["not_run"] == 0
    assert len(data["layers"]) == len(cnncalc.analyze(cnncalc.load_spec(model)).layers)
    if shape:
        assert "x".join(map(str, data["input_shape"])) == shape


def test_verify_json_fields():
    data = json.loads(invoke("verify", "lenet5", "--format", "json", "--seed", "7", "--batch", "2").stdout)
    assert set(data) == {"spec", "file", "backend", "device", "batch", "seed", "input_shape", "layers", "ok",
                         "mismatches", "not_run", "seconds", "estimated_bytes", "memory_limit_bytes",
                         "warnings", "notes", "rounded", "inputs", "kernels"}  # extended, never renamed
    assert data["inputs"] == {"input": [1, 32, 32]}
    assert data["kernels"].startswith("NumPy")  # what computed the NumPy backend's ops
    assert (data["backend"], data["device"], data["batch"], data["seed"]) == ("numpy", "cpu", 2, 7)
    assert set(data["layers"][0]) == {"index", "name", "kind", "inferred_shape", "actual_shape", "ok", "seconds"}
    assert data["layers"][0]["actual_shape"] == [6, 28, 28]
    assert data["seconds"] == pytest.approx(sum(layer["seconds"] for layer in data["layers"]))


def test_verify_table_lists_every_layer_and_the_verdict():
    result = invoke("verify", "lenet5")
    assert result.exit_code == 0
    assert "C1" in result.output and "6x28x28" in result.output
    assert "all 12 layers match the analysis" in result.output


@pytest.fixture
def wrong_row(monkeypatch):
    """The engine claims a wrong shape for row 3 (as an engine bug would)."""
    import cnncalc.api

    honest = cnncalc.api.analyze_spec

    def lying_analyze(*args, **kwargs):
        analysis = honest(*args, **kwargs)
        analysis.report.layers[3].output_shape = (16, 11, 11)
        analysis.plan.steps[3] = replace(analysis.plan.steps[3], output_shape=(16, 11, 11))
        return analysis

    monkeypatch.setattr(cnncalc.api, "analyze_spec", lying_analyze)


def test_an_injected_mismatch_exits_1(wrong_row):
    result = invoke("verify", "lenet5", "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["mismatches"] == 1
    bad = [layer for layer in data["layers"] if not layer["ok"]]
    assert bad == [{**bad[0], "name": "C3", "inferred_shape": [16, 11, 11], "actual_shape": [16, 10, 10]}]


def test_an_injected_mismatch_is_marked_in_the_table(wrong_row):
    result = invoke("verify", "lenet5")
    assert result.exit_code == 1
    assert "MISMATCH" in result.output and "1 of 12 layers do not match" in result.output


def test_a_layer_the_backend_cannot_compute_stops_the_run_with_exit_1(monkeypatch):
    from cnncalc.backends import ops

    def broken(*args):
        raise ValueError("operands could not be broadcast")

    monkeypatch.setattr(ops, "max_pool", broken)
    result = invoke("verify", "lenet5", "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["layers"][-1]["name"] == "S2" and "could not be broadcast" in data["layers"][-1]["error"]
    assert data["not_run"] == 12 - 3


def test_memory_refusal_offers_a_smaller_batch_and_input():
    result = invoke("verify", "vgg11", "--batch", "64", "--max-memory", "1GB")
    assert result.exit_code == 2
    message = result.stderr
    assert "vgg11.yaml: error: the run needs about" in message and "more than the limit of 1.00 GB" in message
    assert "--max-memory 1GB" in message and "a smaller --input such as 3x112x112" in message
    batch = int(message.split("try --batch ")[1].split()[0])
    assert 1 <= batch < 64
    assert invoke("verify", "vgg11", "--batch", str(batch), "--max-memory", "1GB", "--input", "3x32x32",
                  "--format", "json").exit_code == 0


def test_the_batch_offered_is_the_largest_that_fits():
    from cnncalc.backends.memory import MemoryLimitError, check_memory, estimate_memory, fitting_batch

    limit = 2 * 10**9

    def estimate(batch):
        return estimate_memory(cnncalc.analyze(cnncalc.load_spec("vgg16"), batch=batch))

    batch = fitting_batch(estimate(256), limit)
    assert estimate(batch).total <= limit < estimate(batch + 1).total
    check_memory(estimate(batch), limit, "test", None)
    with pytest.raises(MemoryLimitError):
        check_memory(estimate(batch + 1), limit, "test", None)


def test_memory_estimate_peaks_where_the_largest_weights_are_drawn():
    from cnncalc.backends.memory import estimate_memory

    report = cnncalc.analyze(cnncalc.load_spec("vgg16"), batch=2)
    estimate = estimate_memory(report)
    # fc6 runs with its own weights (drawn just before it) and what it reads and writes alive
    assert estimate.row == "fc6"
    assert estimate.weights == (25088 * 4096 + 4096) * 4
    assert estimate.activations == (25088 + 4096) * 2 * 4
    assert 0 < estimate.scratch < estimate.total // 100  # bookkeeping and a 0.5% allowance
    assert estimate.total < 138_357_544 * 4  # all the weights are never alive at once


def test_the_default_limit_is_half_the_available_memory():
    from cnncalc.backends.memory import default_limit, host_available_bytes

    available = host_available_bytes()
    assert available and available > 0
    assert default_limit(8 * 2**30)[0] == 4 * 2**30
    assert default_limit(None)[0] is None


@pytest.mark.parametrize("backend, library, message", [
    ("torch", "torch", "the torch backend needs PyTorch: pip install torch"),
    ("numpy", "numpy", "the numpy backend needs NumPy: pip install numpy"),
    ("cupy", "cupy", "the cupy backend needs CuPy and a CUDA GPU: pip install cupy-cuda12x"),
])
def test_a_missing_library_is_one_clear_sentence(monkeypatch, backend, library, message):
    monkeypatch.setitem(sys.modules, library, None)  # `import library` now fails
    for module in (f"cnncalc.backends.{backend}_backend", "cnncalc.backends.ops", "cnncalc.backends.numpy_backend"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    result = invoke("verify", "lenet5", "--backend", backend)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"--backend {backend}: error: {message}"


def test_cuda_without_a_gpu_is_a_clear_message():
    if TORCH is None:
        pytest.skip("PyTorch is not installed")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; tests/test_backend_gpu.py covers it")
    result = invoke("verify", "lenet5", "--backend", "torch", "--device", "cuda")
    assert result.exit_code == 2
    assert "--device cuda needs a CUDA GPU" in result.stderr and "use --device cpu" in result.stderr
    result = invoke("verify", "lenet5", "--backend", "numpy", "--device", "cuda")
    assert result.exit_code == 2 and "numpy backend runs on the CPU only" in result.stderr


@pytest.fixture
def terminal(monkeypatch):
    """Pretend stdout is a terminal and every run is slow; record the progress bars made."""
    from cnncalc.commands import verify

    bars = []

    class Bar:
        def __init__(self):
            self.updates = []
            bars.append(self)

        def start(self):
            pass

        def stop(self):
            pass

        def add_task(self, description, total, completed=0):
            self.total = total
            return 0

        def update(self, task, completed, description):
            self.updates.append(completed)

    monkeypatch.setattr(verify, "_stdout_is_terminal", lambda: True)
    monkeypatch.setattr(verify, "PROGRESS_DELAY_S", 0.0)
    monkeypatch.setattr(verify, "make_bar", Bar)
    return bars


def test_a_slow_run_on_a_terminal_shows_layer_k_of_n(terminal):
    assert invoke("verify", "lenet5").exit_code == 0
    assert len(terminal) == 1 and terminal[0].total == 12 and terminal[0].updates[-1] == 12


def test_no_progress_bar_for_json(terminal):
    result = invoke("verify", "lenet5", "--format", "json")
    assert result.exit_code == 0 and terminal == []
    json.loads(result.stdout)  # nothing but the JSON on stdout


def test_no_progress_bar_when_stdout_is_not_a_terminal():
    from cnncalc.commands.verify import _progress

    assert _progress("table") is None  # pytest captures stdout: not a terminal


def test_a_quick_run_shows_no_bar():
    from cnncalc.commands.verify import DelayedProgress

    now = [0.0]
    progress = DelayedProgress(delay=1.0, clock=lambda: now[0])
    progress(1, 10, "conv1")
    now[0] = 0.9
    progress(2, 10, "conv2")
    assert progress.bar is None


def test_input_override_is_read_in_the_spec_layout_and_bad_ones_exit_2():
    assert invoke("verify", "lenet5", "--input", "1x64x64").exit_code == 0
    result = invoke("verify", "lenet5", "--input", "banana")
    assert result.exit_code == 2 and "--input: error: cannot read the volume" in result.stderr
    result = invoke("verify", "vgg16", "--input", "3x8x8")
    assert result.exit_code == 2 and "pool" in result.stderr  # the window no longer fits: located error


# ----------------------------------------------------------------------------- explicit numbers
def write_spec(tmp_path, weights, input_values=None, name="spec.yaml"):
    import yaml

    spec = {"input": [1, 4, 4], "layers": [{"conv": {"filters": 1, "kernel": 3, "bias": False,
                                                     "weights": weights, "name": "c"}}]}
    if input_values is not None:
        spec["input_values"] = input_values
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_weights_and_input_from_npy_and_json_files(tmp_path):
    np.save(tmp_path / "w.npy", np.ones((1, 1, 3, 3), dtype=np.float32))
    (tmp_path / "x.json").write_text(json.dumps(np.arange(16.0).reshape(1, 4, 4).tolist()))
    path = write_spec(tmp_path, "w.npy", "x.json")
    result = invoke("run", str(path), "--format", "json")
    assert result.exit_code == 0, result.stderr
    x = np.arange(16.0).reshape(4, 4)
    expected = [[[x[i:i + 3, j:j + 3].sum() for j in range(2)] for i in range(2)]]
    assert json.loads(result.stdout)["output"] == expected


@pytest.mark.parametrize("weights, message", [
    ([[[1, 0, -1], [1, 0, -1], [1, 0, -1]]], "`weights` has shape [1, 3, 3] but this conv needs "
                                              "[K, C/groups, *kernel] = [1, 1, 3, 3]"),
    ([[[[1, 0], [1, 0, -1]]]], "`weights` must be nested lists of numbers with the same length"),
    ("missing.npy", "does not exist (paths are relative to the spec file)"),
    ("weights.txt", "must be a .npy or .json file"),
], ids=["wrong shape", "ragged", "missing file", "unknown file type"])
def test_bad_explicit_weights_are_located_errors(tmp_path, weights, message):
    path = write_spec(tmp_path, weights)
    result = invoke("run", str(path))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{path}:")  # file:line: layers[0] (c): error: ...
    assert "layers[0] (c): error:" in result.stderr and message in result.stderr


def test_the_bad_weights_line_is_the_weights_key(tmp_path):
    path = write_spec(tmp_path, [[[1, 2, 3]]])
    line = next(i for i, text in enumerate(path.read_text().splitlines(), start=1) if "weights" in text)
    assert f"{path}:{line}: layers[0] (c): error:" in invoke("run", str(path)).stderr


def test_input_values_of_the_wrong_shape_exit_2(tmp_path):
    path = write_spec(tmp_path, [[[[1, 0, -1]] * 3]], input_values=[[1, 2], [3, 4]])
    result = invoke("run", str(path))
    assert result.exit_code == 2
    assert "`input_values` has shape [2, 2] but `input` is [1, 4, 4]" in result.stderr


def test_biases_given_for_a_layer_without_bias_exit_2(tmp_path):
    import yaml

    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump({"input": [2], "layers": [{"linear": {"features": 1, "bias": False,
                                                                         "weights": [[1, 1]], "biases": [1]}}]}))
    result = invoke("run", str(path))
    assert result.exit_code == 2 and "`biases` are given but the layer has `bias: false`" in result.stderr


def test_run_without_input_values_uses_a_seeded_random_input():
    first = json.loads(invoke("run", "lenet5", "--format", "json", "--seed", "1").stdout)
    again = json.loads(invoke("run", "lenet5", "--format", "json", "--seed", "1").stdout)
    assert first["input"] == "random normal (seed 1)" and first["output"] == again["output"]
    assert first["shape"] == [10] and len(first["output"]) == 10


def test_run_layer_and_all(tmp_path):
    data = json.loads(invoke("run", "lenet5", "--layer", "S2", "--format", "json").stdout)
    assert (data["layer"], data["shape"]) == ("S2", [6, 14, 14])
    assert np.asarray(data["output"]).shape == (6, 14, 14)
    data = json.loads(invoke("run", "lenet5", "--all", "--format", "json").stdout)
    assert [layer["layer"] for layer in data["layers"]][:3] == ["C1", "tanh1", "S2"] and data["layer"] == "OUTPUT"
    result = invoke("run", "lenet5", "--layer", "C33")
    assert result.exit_code == 2 and "no layer is called `C33`; did you mean C3" in result.stderr


def test_run_prints_big_outputs_as_statistics():
    result = invoke("run", "lenet5", "--layer", "C1")
    assert result.exit_code == 0 and "4,704 numbers: min" in result.output


@pytest.mark.skipif(TORCH is None, reason="PyTorch is not installed")
def test_cross_check_reports_the_difference_per_layer_and_exits_1_above_tolerance(monkeypatch):
    data = json.loads(invoke("run", "resnet18", "--cross-check", "torch", "--format", "json").stdout)
    check = data["cross_check"]
    assert check["ok"] is True and len(check["layers"]) == 69
    assert max(layer["relative"] for layer in check["layers"]) < TOLERANCE

    from cnncalc.backends import torch_ops

    monkeypatch.setattr(torch_ops, "tanh", lambda x: torch_ops.torch.tanh(x) + 1e-2)
    result = invoke("run", "lenet5", "--cross-check", "torch")
    assert result.exit_code == 1
    assert "cross-check against torch" in result.output and "OVER" in result.output


def test_cross_check_against_the_same_backend_is_refused():
    result = invoke("run", "lenet5", "--cross-check", "numpy")
    assert result.exit_code == 2 and "against itself" in result.output + result.stderr
