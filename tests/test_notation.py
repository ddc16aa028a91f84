"""One reading of every shape notation: the notation module, and each observed misreading as the
command a user would type (issue: numbers you can trust)."""
from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

import cnncalc
from cnncalc.cli import cli
from cnncalc.notation import LAYOUTS, NotationError, read_shape, shape_text

LAYOUT_KEYS = list(LAYOUTS)


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def layer_json(*args: str) -> dict:
    result = invoke("layer", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def spec_json(tmp_path, text: str, *options: str) -> dict:
    spec = tmp_path / "net.yaml"
    spec.write_text(textwrap.dedent(text))
    result = invoke("table", str(spec), "--format", "json", *options)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# ----------------------------------------------------------------------------- the module
shapes = st.integers(1, 3).flatmap(lambda rank: st.lists(st.integers(1, 600), min_size=rank + 1, max_size=rank + 1))


@given(shape=shapes, layout=st.sampled_from(LAYOUT_KEYS))
@settings(max_examples=400, deadline=None)
def test_any_shape_written_in_a_chosen_layout_reads_back_as_itself(shape, layout):
    text = shape_text(shape, layout)
    assert read_shape(text, layout).shape == tuple(shape)
    assert read_shape(shape, layout).shape == tuple(shape)  # lists are [C, *spatial] in every layout
    assert read_shape(text.replace("x", "X"), layout).shape == tuple(shape)
    assert read_shape(text.replace("x", " × "), layout).shape == tuple(shape)


@given(shape=shapes, layout=st.sampled_from(LAYOUT_KEYS))
@settings(max_examples=400, deadline=None)
def test_a_string_read_without_a_chosen_layout_is_the_written_tensor_or_says_how_it_was_read(shape, layout):
    """With no layout chosen, a reading is chw, or it comes with a note, or it is refused."""
    text = shape_text(shape, layout)
    if "@" in text:
        assert read_shape(text).shape == tuple(shape)
        return
    try:
        reading = read_shape(text)
    except NotationError as exc:
        assert "--layout hwc" in str(exc) and "--layout whd" in str(exc)
        return
    if reading.note is None:
        assert reading.shape == LAYOUTS["chw"].read([int(v) for v in text.split("x")])
    assert shape_text(reading.shape, reading.layout) == text or reading.note


@pytest.mark.parametrize("text, shape, layout, noted", [
    ("3x224x224", (3, 224, 224), "chw", False),
    ("224x224x3", (3, 224, 224), "hwc", True),
    ("32x32x3", (3, 32, 32), "hwc", True),
    ("28x28x6", (6, 28, 28), "hwc", True),
    ("6x28x28", (6, 28, 28), "chw", False),
    ("1x1x120", (120, 1, 1), "hwc", True),
    ("120x1x1", (120, 1, 1), "chw", False),
    ("5x5x1", (1, 5, 5), "hwc", True),
    ("3x3x3", (3, 3, 3), "chw", False),
    ("3x224x160", (3, 224, 160), "chw", False),
    ("28x28", (1, 28, 28), "chw", True),
    ("7x7", (1, 7, 7), "chw", True),
    ("6@28x28", (6, 28, 28), "chw", False),
    ("2@100", (2, 100), "chw", False),
    ("84", (84,), "chw", False),
    ("1X1X120", (120, 1, 1), "hwc", True),
    ("28×28×6", (6, 28, 28), "hwc", True),
    ("112x112x112x3", (3, 112, 112, 112), "hwc", True),
])
def test_strings_with_no_layout_chosen(text, shape, layout, noted):
    reading = read_shape(text)
    assert (reading.shape, reading.layout, reading.note is not None) == (shape, layout, noted)


@pytest.mark.parametrize("text, hwc, whd", [
    ("32x16x3", "3x32x16", "3x16x32"),
    ("8x4x1", "1x8x4", "1x4x8"),
    ("224x160x3", "3x224x160", "3x160x224"),
    ("16x112x112x3", "3x16x112x112", "3x112x112x16"),
])
def test_channels_last_with_unequal_sides_is_refused_with_both_readings(text, hwc, whd):
    with pytest.raises(NotationError) as info:
        read_shape(text)
    message = str(info.value)
    assert f"x C (Keras) it is {hwc}" in message and f"(the lecture) it is {whd}" in message
    assert "--layout hwc" in message and "--layout whd" in message


@pytest.mark.parametrize("text, layout, shape", [
    ("8x4x1", "whd", (1, 4, 8)),  # the lecture: W = 8, H = 4
    ("8x4x1", "hwc", (1, 8, 4)),  # Keras: H = 8, W = 4
    ("8x4x1", "chw", (8, 4, 1)),  # as chosen, with a note that it is unusual
    ("8x4", "whd", (1, 4, 8)),
    ("8x4", "hwc", (1, 8, 4)),
    ("6@4x8", "whd", (6, 8, 4)),  # LeCun's C@, spatial sizes in the layout's order
    ("3x224x224", "hwc", (224, 3, 224)),  # as chosen, with a note
])
def test_a_chosen_layout_is_followed(text, layout, shape):
    assert read_shape(text, layout).shape == shape


def test_an_unusual_reading_in_a_chosen_layout_says_so():
    note = read_shape("3x224x224", "hwc").note
    assert "224 channels of 3x224" in note and "3 channels of 224x224" in note and "224x224x3" in note


# ----------------------------------------------------------------------------- observed 1: two numbers
def test_two_numbers_on_the_command_line_are_one_channel():
    pool = layer_json("maxpool", "--input", "4x4", "--kernel", "2")
    assert pool["output_shape"] == [1, 2, 2]
    conv = layer_json("conv", "--input", "7x7", "--filters", "1", "--kernel", "3", "--stride", "2")
    assert (conv["output_shape"], conv["params"]) == ([1, 3, 3], 10)


def test_the_two_number_reading_is_said():
    result = invoke("layer", "maxpool", "--input", "4x4", "--kernel", "2")
    assert "read `4x4` as H x W with one channel (1x4x4 in C x H x W)" in result.output
    assert "1x2x2" in result.output


def test_a_two_number_spec_input_is_one_channel(tmp_path):
    data = spec_json(tmp_path, """\
        input: 28x28
        layers: [{conv: {filters: 6, kernel: 5}}]
        """)
    assert (data["layers"][0]["output_shape"], data["totals"]["params"]) == ([6, 24, 24], 156)
    assert "one channel" in data["notes"][0]["message"]


# ----------------------------------------------------------------------------- observed 2: lists
@pytest.mark.parametrize("options", [[], ["--layout", "hwc"], ["--layout", "whd"]])
@pytest.mark.parametrize("layout", ["", "layout: hwc\n", "layout: whd\n"])
def test_lists_are_channels_first_whatever_the_layout(tmp_path, layout, options):
    data = spec_json(tmp_path, f"input: [3, 32, 32]\n{layout}layers: [conv 8 k3 p1]\n", *options)
    assert data["totals"]["params"] == 224
    assert data["input_shape"] == [3, 32, 32]


def test_a_list_that_looks_channels_last_is_read_as_a_list_and_said(tmp_path):
    data = spec_json(tmp_path, "input: [224, 224, 3]\nlayers: [relu]\n")
    assert data["input_shape"] == [224, 224, 3]
    assert "lists are always [C, *spatial]" in data["notes"][0]["message"]
    assert "[3, 224, 224]" in data["notes"][0]["message"]


# ----------------------------------------------------------------------------- observed 3: one meaning
def test_the_same_string_means_the_same_tensor_in_layer_and_in_a_spec(tmp_path):
    conv = layer_json("conv", "--input", "3x224x224", "--filters", "64", "--kernel", "3", "--padding", "1")
    assert (conv["input_shape"], conv["params"]) == ([3, 224, 224], 1792)
    data = spec_json(tmp_path, """\
        input: 32x32x3
        layers: [{conv: {filters: 10, kernel: 5, padding: 2}}]
        """)
    assert (data["input_shape"], data["totals"]["params"]) == ([3, 32, 32], 760)
    assert data["conventions"]["layout"] == "hwc"  # shown back as written
    lecture = layer_json("conv", "--input", "32x32x3", "--filters", "10", "--kernel", "5", "--padding", "2")
    assert (lecture["input_shape"], lecture["params"]) == ([3, 32, 32], 760)


def test_a_channels_last_reading_is_said_on_stderr_for_machine_formats():
    result = invoke("layer", "conv", "--input", "32x32x3", "--filters", "10", "--kernel", "5", "--format", "json")
    assert "note: read `32x32x3` as H x W x C = W x H x D: 3 channels of 32x32" in result.stderr
    json.loads(result.stdout)


# ----------------------------------------------------------------------------- observed 4: W x H x D
def explain(*args: str) -> str:
    result = invoke("layer", "conv", "--filters", "1", "--explain", *args)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_lecture_notation_is_width_first():
    text = explain("--input", "8x4x1", "--kernel", "3x1", "--layout", "whd")
    assert "H2 = (H1 - F)/S + 1 = (4 - 3)/1 + 1 = 2" in text
    assert "W2 = (W1 - F)/S + 1 = (8 - 1)/1 + 1 = 8" in text
    assert "8x4x1 -> 8x2x1" in text
    assert "receptive field: 1x3 input pixels" in text  # W x H, as the shapes


def test_keras_notation_is_height_first():
    text = explain("--input", "8x4x1", "--kernel", "3x1", "--layout", "hwc")
    assert "H2 = (H1 - F)/S + 1 = (8 - 3)/1 + 1 = 6" in text
    assert "8x4x1 -> 6x4x1" in text


def test_pytorch_notation_with_per_axis_kernel():
    text = explain("--input", "1x4x8", "--kernel", "3x1")
    assert "H2 = (H1 - F)/S + 1 = (4 - 3)/1 + 1 = 2" in text and "1x4x8 -> 1x2x8" in text


def test_unequal_sides_written_channels_last_without_a_layout_are_refused():
    result = invoke("layer", "conv", "--input", "8x4x1", "--filters", "1", "--kernel", "3x1")
    assert result.exit_code == 2
    assert "--layout hwc" in result.stderr and "--layout whd" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("layout, written, conv_out, pool_out", [
    ("whd", "8x4x1", "8x2x2", "4x2x2"),
    ("hwc", "4x8x1", "2x8x2", "2x4x2"),
    ("chw", "1x4x8", "2x2x8", "2x2x4"),
])
def test_non_square_lecture_case_in_every_layout(tmp_path, layout, written, conv_out, pool_out):
    """W = 8, H = 4, one channel; a 3x1 kernel (PyTorch order: 3 rows, 1 column), then a 1x2 pool."""
    spec = tmp_path / "net.yaml"
    spec.write_text(f"input: {written}\nlayout: {layout}\nlayers:\n"
                    "  - conv: {filters: 2, kernel: [3, 1], name: c1}\n"
                    "  - maxpool: {kernel: [1, 2], name: p1}\n")
    table = invoke("table", str(spec), "--format", "csv", "--columns", "name,input,output,params")
    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines()[1:] == [f"c1,{written},{conv_out},8", f"p1,{conv_out},{pool_out},0"]
    answers = tmp_path / "answers.yaml"
    answers.write_text(f"c1: {{output: {conv_out}, params: 8}}\np1: {{output: {pool_out}}}\n")
    marked = invoke("check", str(spec), "--answers", str(answers), "--format", "json")
    assert marked.exit_code == 0, marked.output
    assert [r["correct"] for r in json.loads(marked.stdout)["results"]] == [True, True, True]
    explained = invoke("explain", str(spec), "--layer", "c1").stdout
    assert "H2 = (H1 - F)/S + 1 = (4 - 3)/1 + 1 = 2" in explained
    assert "W2 = (W1 - F)/S + 1 = (8 - 1)/1 + 1 = 8" in explained


# ----------------------------------------------------------------------------- 1X1X120 and friends
def test_upper_case_and_times_signs_are_read_everywhere():
    assert layer_json("conv", "--input", "1X1X120", "--filters", "84", "--kernel", "1")["params"] == 120 * 84 + 84
    assert layer_json("conv", "--input", "3x32x32", "--filters", "4", "--kernel", "3X3")["params"] == 112
    assert layer_json("conv", "--input", "3×32×32", "--filters", "4", "--kernel", "3×3")["params"] == 112
    spec = cnncalc.load_spec({"input": "3x32x32", "layers": ["conv 4 k3X3", "conv 4 3×3" if False else "conv 4 k3×3"]})
    assert cnncalc.analyze(spec).totals.params == 112 + 148


@pytest.mark.parametrize("text", ["[3, 32, 32]", "(3,32,32)", " [3 x 32 x 32] "])
def test_a_list_typed_as_text_is_a_list(text):
    assert read_shape(text).shape == (3, 32, 32)
    assert read_shape(text, "whd").shape == (3, 32, 32)
    assert layer_json("conv", "--input", text, "--filters", "8", "--kernel", "3")["params"] == 224
