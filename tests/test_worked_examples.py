"""Every worked example in shared/docs/formulas.md about shapes, params, MULs, memory and
receptive field, through the public API (cnncalc.load_spec + cnncalc.analyze)."""
from __future__ import annotations

import pytest

import cnncalc
from cnncalc.errors import CnnCalcError
from helpers import last, run


@pytest.mark.parametrize(
    "input_shape, layer, output",
    [
        pytest.param([1, 7, 7], {"conv": {"filters": 1, "kernel": 3, "stride": 1}}, [1, 5, 5], id="7x7 3x3 stride 1 gives 5x5"),
        pytest.param([1, 7, 7], {"conv": {"filters": 1, "kernel": 3, "stride": 2}}, [1, 3, 3], id="7x7 3x3 stride 2 gives 3x3"),
        pytest.param([1, 7, 7], {"conv": {"filters": 1, "kernel": 3, "padding": 1}}, [1, 7, 7], id="7x7 3x3 pad 1 keeps 7x7"),
        pytest.param([1, 7, 7], {"conv": {"filters": 1, "kernel": 3, "stride": 3, "padding": 1}}, [1, 3, 3], id="7x7 3x3 stride 3 pad 1 gives 3x3"),
        pytest.param("32x32x3", {"conv": {"filters": 10, "kernel": 5, "padding": 2}}, [10, 32, 32], id="32x32x3 ten 5x5 pad 2 gives 32x32x10"),
        pytest.param("32x32x3", {"conv": {"filters": 10, "kernel": 5}}, [10, 28, 28], id="32x32x3 ten 5x5 pad 0 gives 28x28x10"),
        pytest.param("5x5x1", {"conv": {"filters": 1, "kernel": 3}}, [1, 3, 3], id="5x5x1 3x3 no pad gives 3x3x1"),
        pytest.param("5x5x1", {"conv": {"filters": 1, "kernel": 3, "padding": 1}}, [1, 5, 5], id="5x5x1 3x3 pad 1 gives 5x5x1"),
        pytest.param("5x5x3", {"conv": {"filters": 2, "kernel": 3, "stride": 2, "padding": 1}}, [2, 3, 3], id="5x5x3 two 3x3 S2 P1 gives 3x3x2"),
        pytest.param("56x56x64", {"conv": {"filters": 32, "kernel": 1}}, [32, 56, 56], id="56x56x64 32 1x1 filters gives 56x56x32"),
        pytest.param("227x227x3", {"conv": {"filters": 96, "kernel": 11, "stride": 4}}, [96, 55, 55], id="AlexNet conv1 at 227 gives 55x55x96"),
        pytest.param([96, 55, 55], {"maxpool": {"kernel": 3, "stride": 2}}, [96, 27, 27], id="AlexNet 3x3 pool stride 2 gives 27x27x96"),
        pytest.param([1, 5], {"maxpool": {"kernel": 2, "stride": 2, "padding": 1, "ceil_mode": True}}, [1, 3], id="ceil_mode drops a window starting in the padding: 5 k2 s2 p1 gives 3"),
        pytest.param([1, 2, 2], {"conv_transpose": {"filters": 1, "kernel": 3, "stride": 2, "padding": 1}}, [1, 3, 3], id="transposed 3x3 s2 p1 on 2x2 gives 3x3"),
        pytest.param([1, 2, 2], {"conv_transpose": {"filters": 1, "kernel": 3, "stride": 2, "padding": 1, "output_padding": 1}}, [1, 4, 4], id="transposed 3x3 s2 p1 op1 on 2x2 gives 4x4"),
    ],
)
def test_output_shapes(input_shape, layer, output):
    assert last(input_shape, layer, rounding="strict")["output_shape"] == output


def test_stride_3_does_not_fit_a_7x7_input_under_strict_rounding():
    with pytest.raises(CnnCalcError) as info:
        run([1, 7, 7], {"conv": {"filters": 1, "kernel": 3, "stride": 3, "name": "conv2"}}, rounding="strict")
    assert "conv2" in str(info.value)
    assert "(7 - 3)/3 + 1 = 2.33 is not whole: a 3x3 filter at stride 3 does not fit a 7x7 input" in info.value.message
    assert "1 row and 1 column unused" in info.value.message


def test_floor_rounding_warns_and_floors_like_pytorch():
    report = run([3, 224, 224], {"conv": {"filters": 96, "kernel": 11, "stride": 4}})
    assert report.to_dict()["layers"][0]["output_shape"] == [96, 54, 54]
    (warning,) = report.warnings
    assert "(224 - 11)/4 + 1 = 54.25 is not whole" in warning.message
    assert "rounded down to 54x54" in warning.message


def test_torchvision_alexnet_conv1_pads_2_and_floors_55_25_to_55():
    report = run([3, 224, 224], {"conv": {"filters": 96, "kernel": 11, "stride": 4, "padding": 2}})
    assert report.layers[0].output_shape == (96, 55, 55)
    assert "(224 - 11 + 2*2)/4 + 1 = 55.25 is not whole" in report.warnings[0].message


def test_ceil_rounding_rounds_up():
    row = last([1, 7, 7], {"conv": {"filters": 1, "kernel": 3, "stride": 3}}, rounding="ceil")
    assert row["output_shape"] == [1, 3, 3]


def test_32x32x3_ten_5x5_filters_have_760_params():
    row = last("32x32x3", {"conv": {"filters": 10, "kernel": 5, "padding": 2}})
    assert (row["weights"], row["biases"], row["params"]) == (750, 10, 760)


def test_1x1_conv_56x56x64_to_32_has_2080_params():
    assert last("56x56x64", {"conv": {"filters": 32, "kernel": 1}})["params"] == 65 * 32


LENET = [
    {"conv": {"filters": 6, "kernel": 5, "name": "C1"}},
    {"maxpool": {"kernel": 2, "name": "S2"}},
    {"conv": {"filters": 16, "kernel": 5, "name": "C3"}},
    {"maxpool": {"kernel": 2, "name": "S4"}},
    {"conv": {"filters": 120, "kernel": 5, "name": "C5"}},
    "flatten",
    {"linear": {"features": 84, "name": "F6"}},
    {"linear": {"features": 10, "name": "output"}},
]


def test_lenet5_lecture_table():
    report = run([1, 32, 32], *LENET, rounding="strict").to_dict()
    rows = {r["name"]: (r["output_shape"], r["params"]) for r in report["layers"]}
    assert rows == {
        "C1": ([6, 28, 28], 156), "S2": ([6, 14, 14], 0), "C3": ([16, 10, 10], 2416), "S4": ([16, 5, 5], 0),
        "C5": ([120, 1, 1], 48120), "flatten1": ([120], 0), "F6": ([84], 10164), "output": ([10], 850),
    }
    assert report["totals"]["params"] == 61706


def test_lenet5_c1_connections_count_the_bias():
    row = run([1, 32, 32], *LENET).to_dict()["layers"][0]
    assert row["muls_with_bias"] == (5 * 5 + 1) * 6 * 28 * 28 == 122304
    assert row["macs"] == 5 * 5 * 6 * 28 * 28
    assert row["flops"] == 2 * row["macs"]


def test_contract_row_for_lenet_c1():
    row = run([1, 32, 32], *LENET).to_dict()["layers"][0]
    expected = {"index": 0, "path": "layers[0]", "name": "C1", "kind": "conv", "input_shape": [1, 32, 32],
                "output_shape": [6, 28, 28], "weights": 150, "biases": 6, "params": 156, "trainable_params": 156,
                "macs": 117600, "muls_with_bias": 122304, "flops": 235200, "activations": 4704,
                "activation_bytes": 18816, "receptive_field": {"size": [5, 5], "jump": [1, 1], "start": [2, 2]}}
    assert {k: row[k] for k in expected} == expected


def test_inception_5x5_branch_and_its_bottleneck():
    direct = last([192, 28, 28], {"conv": {"filters": 32, "kernel": 5, "padding": 2, "bias": False}})
    assert direct["weights"] == 153600
    assert direct["macs"] == 153600 * 28 * 28 == 120_422_400  # "120M"
    bottleneck = run([192, 28, 28], {"conv": {"filters": 16, "kernel": 1, "bias": False}},
                     {"conv": {"filters": 32, "kernel": 5, "padding": 2, "bias": False}}).totals
    assert bottleneck.trainable_params == 15872
    assert bottleneck.macs == 15872 * 28 * 28 == 12_443_648  # "12.4M"


def test_depthwise_separable_vs_regular_conv():
    # The lecture's example: a 6x6x2 input, no padding, 4x4 output with 4 channels.
    regular = last([2, 6, 6], {"conv": {"filters": 4, "kernel": 3, "bias": False}})
    assert regular["output_shape"] == [4, 4, 4]
    assert (regular["weights"], regular["macs"]) == (72, 1152)
    report = run([2, 6, 6], {"depthwise_separable": {"filters": 4, "kernel": 3, "bias": False}})
    assert report.layers[-1].output_shape == (4, 4, 4)  # no padding by default, as `conv`
    separable = report.totals
    assert (separable.trainable_params, separable.macs) == (26, 416)  # 3*3*2 + 1*1*2*4; (18 + 8)*4*4


@pytest.mark.parametrize("depth", [1, 16, 64, 512])
def test_three_3x3_layers_vs_one_7x7(depth):
    conv = {"conv": {"filters": depth, "kernel": 3}}
    stacked = run([depth, 32, 32], conv, conv, conv)
    single = run([depth, 32, 32], {"conv": {"filters": depth, "kernel": 7}})
    assert stacked.totals.params == 3 * (9 * depth + 1) * depth
    assert single.totals.params == (49 * depth + 1) * depth
    assert stacked.layers[-1].output_shape == single.layers[-1].output_shape
    assert stacked.to_dict()["layers"][-1]["receptive_field"]["size"] == [7, 7]
    assert single.to_dict()["layers"][-1]["receptive_field"]["size"] == [7, 7]


@pytest.mark.parametrize("layers, kernel", [(1, 3), (2, 3), (3, 3), (5, 5), (4, 7)])
def test_receptive_field_of_stacked_stride_1_layers(layers, kernel):
    report = run([1, 64, 64], *[{"conv": {"filters": 1, "kernel": kernel}}] * layers)
    assert report.to_dict()["layers"][-1]["receptive_field"]["size"] == [1 + layers * (kernel - 1)] * 2


def test_receptive_field_recurrence_with_strides_and_dilation():
    # conv k3 s2 -> r 3, j 2; conv k3 d2 -> r = 3 + 4*2 = 11, j 2; pool k2 s2 -> r = 11 + 1*2 = 13, j 4
    report = run([1, 64, 64], {"conv": {"filters": 1, "kernel": 3, "stride": 2}},
                 {"conv": {"filters": 1, "kernel": 3, "dilation": 2}}, {"maxpool": 2}).to_dict()
    assert [r["receptive_field"]["size"][0] for r in report["layers"]] == [3, 11, 13]
    assert [r["receptive_field"]["jump"][0] for r in report["layers"]] == [2, 2, 4]


def test_three_3x3x64_conv_activations_and_training_memory():
    conv = {"conv": {"filters": 64, "kernel": 3, "padding": 1}}
    totals = run("224x224x3", conv, conv, conv).to_dict()["totals"]
    assert totals["activations"] == 3 * 224 * 224 * 64 == 9_633_792
    assert totals["training_activation_bytes"] == 77_070_336  # x4 bytes x2 for gradients: 77.07 MB = 73.5 MiB


def test_batch_and_dtype_scale_activation_memory():
    conv = {"conv": {"filters": 64, "kernel": 3, "padding": 1}}
    totals = run("224x224x3", conv, batch=8, dtype="float16").to_dict()["totals"]
    assert totals["activations"] == 8 * 224 * 224 * 64
    assert totals["activation_bytes"] == 2 * 8 * 224 * 224 * 64


@pytest.mark.parametrize("optimizer, copies", [("sgd", 2), ("momentum", 3), ("adam", 4)])
def test_training_memory_counts_optimizer_state(optimizer, copies):
    totals = run([10], {"linear": 10}, optimizer=optimizer).totals
    assert totals.param_bytes + totals.gradient_bytes + totals.optimizer_state_bytes == copies * 110 * 4


def test_googlenet_conv1_and_inception_3a_counts():
    conv1 = last([3, 224, 224], {"conv": {"filters": 64, "kernel": 7, "stride": 2, "padding": 3, "bias": False}})
    assert conv1["output_shape"] == [64, 112, 112]
    assert (conv1["weights"], conv1["macs"]) == (9408, 118_013_952)
    inception = {"branches": [
        [{"conv": {"filters": 64, "kernel": 1, "bias": False}}],
        [{"conv": {"filters": 96, "kernel": 1, "bias": False}}, {"conv": {"filters": 128, "kernel": 3, "padding": 1, "bias": False}}],
        [{"conv": {"filters": 16, "kernel": 1, "bias": False}}, {"conv": {"filters": 32, "kernel": 5, "padding": 2, "bias": False}}],
        [{"maxpool": {"kernel": 3, "stride": 1, "padding": 1}}, {"conv": {"filters": 32, "kernel": 1, "bias": False}}],
    ], "name": "inception_3a"}
    report = run([192, 28, 28], inception)
    assert report.layers[-1].output_shape == (256, 28, 28)
    assert report.totals.trainable_params == 163_328  # the paper's "159K" in K = 1024 units
    assert report.totals.macs == 163_328 * 28 * 28  # "128M"


def test_vgg_notation_and_one_line_forms_match_the_mapping_form():
    short = run([3, 32, 32], "conv3-64", "maxpool", "conv 32 k3 s1 p1", "FC-10").to_dict()["layers"]
    long = run([3, 32, 32], {"conv": {"filters": 64, "kernel": 3, "padding": 1}}, {"maxpool": {"kernel": 2, "stride": 2}},
               {"conv": {"filters": 32, "kernel": 3, "padding": 1}}, {"linear": 10}).to_dict()["layers"]
    assert short == long


def test_load_spec_accepts_a_mapping_and_returns_a_spec():
    spec = cnncalc.load_spec({"input": [1, 8, 8], "layers": ["relu"]})
    assert spec.input == (1, 8, 8)


LENET_C3_TABLE = [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5, 0], [5, 0, 1],
                  [0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5], [3, 4, 5, 0], [4, 5, 0, 1], [5, 0, 1, 2],
                  [0, 1, 3, 4], [1, 2, 4, 5], [0, 2, 3, 5], [0, 1, 2, 3, 4, 5]]


def test_lenet5_original_trainable_subsampling_and_connections():
    """The lecture's LeNet-5 counts: S2 has 2*6 = 12 trainable variables and
    (2*2 + 1)*14*14*6 = 5,880 connections; the paper's total is 340,908 connections."""
    report = run([1, 32, 32], {"conv": {"filters": 6, "kernel": 5, "name": "C1"}}, {"subsample": 2, "name": "S2"},
                 {"conv": {"filters": 16, "kernel": 5, "connection_table": LENET_C3_TABLE, "name": "C3"}},
                 {"subsample": 2, "name": "S4"}, {"conv": {"filters": 120, "kernel": 5, "name": "C5"}},
                 {"linear": {"features": 84, "name": "F6"}}, {"linear": {"features": 10, "bias": False}})
    rows = {r.name: (r.output_shape, r.params, r.connections) for r in report.layers}
    assert rows["C1"] == ((6, 28, 28), 156, 122_304)
    assert rows["S2"] == ((6, 14, 14), 12, 5_880)
    assert rows["C3"] == ((16, 10, 10), 1_516, 151_600)
    assert rows["S4"] == ((16, 5, 5), 32, 2_000)
    assert rows["C5"] == ((120, 1, 1), 48_120, 48_120)
    assert rows["F6"] == ((84,), 10_164, 10_164)
    assert sum(r.connections for r in report.layers) == 340_908


def test_vgg16_activation_sum_of_the_cs231n_walk_through():
    """The walk-through lists the input and every conv, pool and FC output (ReLUs are in place):
    15,237,608 values, about 61 MB at 4 bytes (its summary line's "24M" is wrong)."""
    report = cnncalc.analyze(cnncalc.load_spec("vgg16"))
    listed = [r for r in report.layers if r.kind in ("conv", "maxpool", "linear")]
    input_values = 3 * 224 * 224
    assert input_values + sum(r.activations for r in listed) == 15_237_608
    assert 4 * (input_values + sum(r.activations for r in listed)) == 60_950_432
