"""Assignments (`ask`, `points`) and gradebooks: `cnncalc check` gives points per question, and marks
a folder of submissions (right, partly wrong, malformed, empty) into one row each."""
from __future__ import annotations

import csv
import io
import json
import textwrap
from fractions import Fraction
from pathlib import Path

import pytest
from click.testing import CliRunner

from cnncalc.api import load_spec
from cnncalc.check import analyze_blocks, questions_of
from cnncalc.cli import cli

HOMEWORK = """\
name: homework-3
input: 32x32x1
layout: hwc
ask: [output, params]
points: {output: 1, params: 2}
layers:
  - conv: {filters: 6, kernel: 5, name: C1}
  - tanh: {ask: []}
  - maxpool: {kernel: 2, name: S2, ask: [output]}
  - conv: {filters: 16, kernel: 5, name: C3, ask: [output, params, macs], points: {macs: 3}}
  - flatten: {ask: []}
  - {linear: 10, name: OUT, points: 0.5}
"""
# Questions: C1 output 1 + params 2; S2 output 1; C3 output 1 + params 2 + macs 3; OUT output 0.5 +
# params 0.5 (the layer's one number wins over the top level's): 11 points. Correct values: C1
# 28x28x6 and 156, S2 14x14x6, C3 10x10x16, 2,416 and 240,000, OUT 10 and 16,010.
MAX_POINTS = 11

SUBMISSIONS = {
    "all_right.csv": "layer,output,params,macs\nC1,28x28x6,156,\nS2,14x14x6,,\nC3,10x10x16,2416,240000\n"
                     "OUT,10,16010,\n",
    # C1 params are the weights alone (150): wrong; S2 unanswered; C3 params wrong, macs right as 240K;
    # an unreadable OUT params is that question wrong; an unknown layer and a question not asked earn nothing
    "partly.yaml": "C1: {output: 28x28x6, params: 150}\nC3: {output: 10x10x16, params: 2400, macs: 240K}\n"
                   "OUT: {output: 10, params: abc}\nC9: {output: 3}\ntanh1: {params: 0}\n",
    # two answers to C1 output, one wrong: no points for it; 6x28x28 is the same shape read as C x H x W
    "hedged.json": json.dumps({"C1": {"output": "6@28x28", "shape": "28x28x5", "params": 156}}),
    "empty.csv": "",
    "header_only.csv": "layer,output,params\n",
    "bad_header.csv": "layer,outptu\nC1,28x28x6\n",
    "broken.yaml": "C1: [unclosed\n",
    "not_a_mapping.yaml": "- C1\n- S2\n",
}
EXPECTED_POINTS = {  # file -> (points, per layer C1, S2, C3, OUT)
    "all_right.csv": (11, [3, 1, 6, 1]),
    "partly.yaml": (5.5, [1, 0, 4, 0.5]),
    "hedged.json": (2, [2, 0, 0, 0]),
    "empty.csv": (0, [0, 0, 0, 0]),
    "header_only.csv": (0, [0, 0, 0, 0]),
}
ERRORS = {
    "bad_header.csv": "unknown quantity `outptu`; did you mean `output`? (line 1)",
    "broken.yaml": "is not valid YAML",
    "not_a_mapping.yaml": "an answers file must be a mapping",
}


def check(*args: str):
    return CliRunner(env={"COLUMNS": "250"}).invoke(cli, ["check", *args])


@pytest.fixture
def homework(tmp_path) -> Path:
    spec = tmp_path / "homework.yaml"
    spec.write_text(HOMEWORK)
    return spec


@pytest.fixture
def submissions(tmp_path) -> Path:
    folder = tmp_path / "submissions"
    folder.mkdir()
    for name, text in SUBMISSIONS.items():
        (folder / name).write_text(text)
    return folder


def spec_with(tmp_path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(text))
    return path


# ----------------------------------------------------------------------------- the spec keys
def test_questions_come_from_ask_with_their_points(homework):
    spec = load_spec(str(homework))
    questions = questions_of(spec, analyze_blocks(spec).blocks)
    assert [(q.layer, q.quantity, q.points) for q in questions] == [
        ("C1", "output", 1), ("C1", "params", 2), ("S2", "output", 1), ("C3", "output", 1), ("C3", "params", 2),
        ("C3", "macs", 3), ("OUT", "output", Fraction(1, 2)), ("OUT", "params", Fraction(1, 2))]


def test_a_composite_is_asked_as_a_block_and_its_own_rows_follow_the_top_level(tmp_path):
    spec = load_spec(str(spec_with(tmp_path, """\
        input: 3x8x8
        ask: [params]
        points: 0.1
        layers:
          - residual: {layers: [conv 3 k3 p1], name: res, ask: [output, params], points: {output: 0.2}}
          - depthwise_separable: {filters: 4, name: ds, ask: [macs]}
          - repeat: {times: 2, name: R, layers: [conv 4 k1]}
        """)))
    questions = questions_of(spec, analyze_blocks(spec).blocks)
    assert [(q.layer, q.quantity, q.points) for q in questions] == [
        ("res", "output", Fraction(1, 5)), ("res", "params", Fraction(1, 10)),  # the block as a whole
        ("res.conv1", "params", Fraction(1, 10)),  # its own layer: the top level's question
        ("ds", "macs", Fraction(1, 10)),
        ("ds.depthwise", "params", Fraction(1, 10)), ("ds.pointwise", "params", Fraction(1, 10)),
        ("R.0.conv1", "params", Fraction(1, 10)), ("R.1.conv1", "params", Fraction(1, 10)),  # every repetition
    ]
    assert sum(q.points for q in questions) == Fraction(9, 10)  # exact: no 0.30000000000000004


@pytest.mark.parametrize("top, layer, message, line", [
    ("ask: [outptu]", "", "ask[0]: error: unknown quantity `outptu`; did you mean `output`?", 2),
    ("ask: output", "", "ask: error: `ask` must be a list of quantities like [output, params], not 'output'", 2),
    ("ask: [output, shape]", "", "ask[1]: error: `ask` names `output` twice", 2),
    ("ask: [output]\npoints: {params: 2}", "", "points.params: error: `points` weighs `params`, which no layer "
                                               "asks (asked: output)", 3),
    ("ask: [output]\npoints: {output: -1}", "", "points.output: error: `points.output` must be a number of points "
                                                "(0 or more, e.g. 2 or 0.5), not -1", 3),
    ("ask: [output]\npoints: yes", "", "points: error: `points` must be a number of points", 3),
    ("points: 2", "", "points: error: `points` without `ask`: say which quantities are asked", 2),
    ("ask: [output]", ", points: {macs: 1}", "layers[0].conv.points.macs: error: `points` weighs `macs`, which "
                                             "this layer does not ask (asked: output)", 4),
    ("", ", aks: [params]", "layers[0].conv.aks: error: `conv` has no key `aks`; did you mean `ask`?", 4),
    ("", ", ask: [parms]", "layers[0].conv.ask[0]: error: unknown quantity `parms`; did you mean `params`?", 4),
], ids=["unknown quantity", "not a list", "named twice (alias)", "points for no question", "negative points",
        "points not a number", "points without ask", "layer points not asked", "typo of ask", "typo in a layer's ask"])
def test_assignment_keys_are_validated_with_located_errors(tmp_path, top, layer, message, line):
    spec = spec_with(tmp_path, f"input: 3x8x8\n{top}\nlayers:\n  - conv: {{filters: 4, kernel: 3{layer}}}\n")
    result = CliRunner().invoke(cli, ["table", str(spec)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{spec}:{line}: {message}")


def test_the_schema_accepts_an_assignment_and_rejects_typos(homework):
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    from cnncalc.schema import spec_schema

    validator = jsonschema.Draft202012Validator(spec_schema())
    data = yaml.safe_load(HOMEWORK)
    data["layers"][-1] = {"linear": 10, "name": "OUT", "points": 0.5}
    assert list(validator.iter_errors(data)) == []
    for typo in ({"ask": ["outptu"]}, {"points": {"parms": 1}}, {"points": -1}, {"aks": ["output"]}):
        assert list(validator.iter_errors({**data, **typo})), typo
    inside = {**data, "layers": [{"conv": {"filters": 1, "kernel": 1, "ask": ["outpt"]}}]}
    assert list(validator.iter_errors(inside))


# ----------------------------------------------------------------------------- one answers file
def test_one_file_gives_points_per_question_and_unanswered_rows(homework, submissions):
    result = check(str(homework), "--answers", str(submissions / "hedged.json"), "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    rows = [(r["layer"], r["quantity"], r["answer"], r["correct"], r["points"], r["max_points"])
            for r in data["results"]]
    assert rows == [
        ("C1", "output", "28x28x5", False, 0, 1),  # the wrong one of its two answers decides
        ("C1", "params", 156, True, 2, 2),
        ("S2", "output", None, False, 0, 1), ("C3", "output", None, False, 0, 1),
        ("C3", "params", None, False, 0, 2), ("C3", "macs", None, False, 0, 3),
        ("OUT", "output", None, False, 0, 0.5), ("OUT", "params", None, False, 0, 0.5),
    ]
    assert (data["points"], data["max_points"], data["unanswered"]) == (2, MAX_POINTS, 6)
    assert data["results"][2]["message"] == "no answer: output = 14x14x6"
    assert data["results"][2]["formula"] == "W2 = H2 = (W1 - F)/S + 1 = (28 - 2)/2 + 1 = 14 -> 14x14x6"


def test_the_table_has_a_points_column_and_a_points_total(homework, submissions):
    result = check(str(homework), "--answers", str(submissions / "partly.yaml"))
    assert result.exit_code == 2  # one file alone: an unreadable answer is unusable input, as before
    assert "OUT: error: params: cannot read 'abc'" in result.stderr
    result = check(str(homework), "--answers", str(submissions / "all_right.csv"), "--format", "markdown")
    assert result.exit_code == 0, result.output
    assert "| C3 | macs | 240000 | 240,000 | right | 3/3 | MACs = F*F*D1*K*W2*H2 = 5*5*6*16*10*10 = 240000 |" \
        in result.stdout
    assert "11 of 11 points; 8 right, 0 wrong." in result.stdout


def test_answers_not_asked_are_shown_but_earn_nothing(homework, tmp_path):
    answers = tmp_path / "a.yaml"
    answers.write_text("C1: {output: 28x28x6, params: 156, macs: 117600}\n")
    data = json.loads(check(str(homework), "--answers", str(answers), "--format", "json").stdout)
    extra = data["results"][-1]
    assert (extra["layer"], extra["quantity"], extra["correct"], extra["points"]) == ("C1", "macs", True, None)
    assert extra["message"] == "not asked, no points: right"
    assert data["points"] == 3


def test_without_ask_one_file_is_marked_exactly_as_before(tmp_path):
    spec = spec_with(tmp_path, "input: 3x8x8\nlayers:\n  - conv: {filters: 4, kernel: 3, name: c}\n")
    answers = tmp_path / "a.yaml"
    answers.write_text("c: {params: 112}\n")
    data = json.loads(check(str(spec), "--answers", str(answers), "--format", "json").stdout)
    assert sorted(data) == ["conventions", "name", "results", "right", "spec", "wrong"]
    assert "points" not in data["results"][0]


# ----------------------------------------------------------------------------- gradebooks
def test_a_folder_of_submissions_is_one_row_each_with_exact_points(homework, submissions):
    result = check(str(homework), "--answers", str(submissions), "--format", "json")
    assert result.exit_code == 1  # three files could not be read; the others are all marked
    data = json.loads(result.stdout)
    rows = {Path(s["file"]).name: s for s in data["submissions"]}
    assert sorted(rows) == sorted(SUBMISSIONS)
    for name, (points, layers) in EXPECTED_POINTS.items():
        row = rows[name]
        assert (row["points"], row["max_points"], row["error"]) == (points, MAX_POINTS, None), name
        assert [row["layers"][layer]["points"] for layer in ("C1", "S2", "C3", "OUT")] == layers, name
    for name, error in ERRORS.items():
        assert rows[name]["points"] is None and rows[name]["error"].startswith(error), (name, rows[name]["error"])
    assert data["max_points"] == MAX_POINTS
    assert [q["max_points"] for q in data["submissions"][0]["layers"].values()] == [3, 1, 6, 1]


def test_each_question_of_a_submission_says_its_state_and_feedback(homework, submissions):
    data = json.loads(check(str(homework), "--answers", str(submissions), "--format", "json").stdout)
    partly = next(s for s in data["submissions"] if s["file"].endswith("partly.yaml"))
    states = [(q["layer"], q["quantity"], q["state"], q["points"]) for q in partly["questions"]]
    assert states == [("C1", "output", "right", 1), ("C1", "params", "wrong", 0), ("S2", "output", "unanswered", 0),
                      ("C3", "output", "right", 1), ("C3", "params", "wrong", 0), ("C3", "macs", "right", 3),
                      ("OUT", "output", "right", 0.5), ("OUT", "params", "wrong", 0)]
    assert (partly["right"], partly["wrong"], partly["unanswered"]) == (4, 3, 1)
    feedback = {(q["layer"], q["quantity"]): q["feedback"] for q in partly["questions"]}
    assert feedback[("C1", "params")] == ("params = (F*F*D1 + 1)*K = (5*5*1 + 1)*6 = 156; right counting weights "
                                          "only, without biases (as GoogLeNet's table does): ask for `weights`")
    assert feedback[("OUT", "params")].startswith("params = (N_in + 1)*N_out = (1600 + 1)*10 = 16010; cannot be "
                                                  "read: params: cannot read 'abc'")
    assert feedback[("C1", "output")] is None
    assert [(e["layer"], e["quantity"]) for e in partly["extra"]] == [("C9", None), ("tanh1", "params")]


def test_the_summary_counts_who_missed_each_question(homework, submissions):
    data = json.loads(check(str(homework), "--answers", str(submissions), "--format", "json").stdout)
    stats = {(q["layer"], q["quantity"]): (q["right"], q["wrong"], q["unanswered"]) for q in data["questions"]}
    # five submissions were read: all_right, partly, hedged, empty, header_only
    assert stats[("C1", "output")] == (2, 1, 2)
    assert stats[("C1", "params")] == (2, 1, 2)
    assert stats[("C3", "macs")] == (2, 0, 3)
    assert stats[("OUT", "params")] == (1, 1, 3)
    summary = data["summary"]
    assert (summary["submissions"], summary["marked"], summary["errors"]) == (8, 5, 3)
    assert summary["mean_points"] == pytest.approx((11 + 5.5 + 2) / 5)
    assert summary["most_missed"][0] == {"layer": "S2", "quantity": "output", "missed": 4, "of": 5}


def test_the_csv_gradebook_is_plain_numbers_for_a_spreadsheet(homework, submissions, tmp_path):
    target = submissions / "grades.csv"  # inside the folder: written, and not read as a submission
    result = check(str(homework), "--answers", str(submissions / "*.csv"), "--format", "csv", "--output", str(target))
    assert result.exit_code == 1
    rows = list(csv.reader(io.StringIO(target.read_text())))
    assert rows[0] == ["file", "C1", "S2", "C3", "OUT", "points", "max_points", "error"]
    by_file = {Path(row[0]).name: row[1:] for row in rows[1:]}
    assert by_file == {
        "all_right.csv": ["3", "1", "6", "1", "11", "11", ""],
        "bad_header.csv": ["", "", "", "", "", "11", "unknown quantity `outptu`; did you mean `output`? (line 1)"],
        "empty.csv": ["0", "0", "0", "0", "0", "11", ""],
        "header_only.csv": ["0", "0", "0", "0", "0", "11", ""],
    }
    first = target.read_text()
    check(str(homework), "--answers", str(submissions / "*.csv"), "--format", "csv", "--output", str(target))
    assert target.read_text() == first  # the earlier gradebook, now in the folder, is not read as a submission
    assert check(str(homework), "--answers", str(submissions / "all_right.csv"), "--answers",
                 str(submissions / "empty.csv"), "--format", "csv").exit_code == 0  # every file read


def test_markdown_and_table_gradebooks_show_maxima_most_missed_and_feedback(homework, submissions):
    markdown = check(str(homework), "--answers", str(submissions), "--format", "markdown").stdout
    assert "| file | C1 /3 | S2 /1 | C3 /6 | OUT /1 | points /11 | error |" in markdown
    assert "8 submissions, 8 questions, 11 points in all; mean 3.70; 3 could not be read" in markdown
    assert "| S2 output | 4 of 5 | 0 | 4 | 14x14x6 |" in markdown
    assert ("- C3 params: `2400`; correct: 2,416 (params = (F*F*D1 + 1)*K = (5*5*6 + 1)*16 = 2416; right counting "
            "weights only") in markdown
    table = check(str(homework), "--answers", str(submissions)).stdout
    assert "most missed questions" in table and "points /11" in table


def test_a_gradebook_needs_questions_and_files(homework, submissions, tmp_path):
    plain = spec_with(tmp_path, "input: 3x8x8\nlayers:\n  - conv 4 k3\n")
    result = check(str(plain), "--answers", str(submissions))
    assert result.exit_code == 2 and "a gradebook needs questions, and the spec asks none" in result.stderr
    empty = tmp_path / "nothing"
    empty.mkdir()
    result = check(str(homework), "--answers", str(empty))
    assert result.exit_code == 2 and "the folder has no answers files" in result.stderr
    result = check(str(homework), "--answers", str(tmp_path / "none" / "*.csv"))
    assert result.exit_code == 2 and "the pattern matches no file" in result.stderr


# ----------------------------------------------------------------------------- sheets
def test_an_assignment_sheet_lists_what_is_asked(homework, tmp_path):
    blank = check(str(homework), "--sheet", "blank", "--format", "csv")
    assert blank.stdout == "layer,output,params,macs\nC1,,,\nS2,,,\nC3,,,\nOUT,,,\n"
    solution = check(str(homework), "--sheet", "solution", "--format", "markdown").stdout
    assert "8 questions, 11 points in all (—: not asked)." in solution
    assert "| S2 | 14x14x6 | — | — |" in solution and "| C3 | 10x10x16 | 2,416 | 240,000 |" in solution
    filled = tmp_path / "filled.csv"
    filled.write_text(check(str(homework), "--sheet", "solution", "--format", "csv").stdout)
    result = check(str(homework), "--answers", str(filled), "--format", "json")
    assert result.exit_code == 0 and json.loads(result.stdout)["points"] == MAX_POINTS
    ordinary = check(str(homework), "--sheet", "blank", "--columns", "output", "--format", "csv").stdout
    assert ordinary.splitlines()[:3] == ["layer,output", "C1,", "tanh1,"]  # --columns: every layer, as before


def test_an_error_in_a_layers_points_names_the_line_of_the_weight(tmp_path):
    spec = spec_with(tmp_path, """\
        input: 3x8x8
        layers:
          - conv:
              filters: 4
              kernel: 3
              ask: [output]
              points:
                output: 1
                macs: 2
        """)
    result = CliRunner().invoke(cli, ["check", str(spec), "--sheet", "blank"])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{spec}:9: layers[0].conv.points.macs: error: `points` weighs `macs`")
