"""One reader of written quantities (cnncalc/units.py) behind all three places a user writes one:
the JSON Schema's budget pattern, `validate`'s budgets (the spec's `budgets:` and `--max-*`) and
`check`'s answers. Every spelling below means the same number on every route, and every rejected
spelling is rejected on every route."""
from __future__ import annotations

import json
import re
from fractions import Fraction

import pytest
from click.testing import CliRunner

from cnncalc import units
from cnncalc.check import parse_count
from cnncalc.cli import cli

ACCEPTED = [  # (as written, the number it means)
    ("1E6", 10**6),
    ("1e6", 10**6),
    ("1.2E-3K", Fraction(6, 5)),
    ("1e+3", 1000),
    ("1,000", 1000),
    ("122,304", 122_304),
    ("1_000", 1000),
    ("1000", 1000),
    (" 7 ", 7),
    (".5K", 500),
    ("25M", 25 * 10**6),
    ("5G", 5 * 10**9),
    ("1.5G", 1_500_000_000),
    ("1.5 MB", 1_500_000),
    ("500MB", 500 * 10**6),
    ("18.8 kB", 18_800),
    ("2GiB", 2**31),
    ("2 Gi", 2**31),
    ("3Ki", 3 * 1024),
    ("1T", 10**12),
    ("64 bytes", 64),
    ("1 byte", 1),
]
REJECTED = ["lots", "", "-3", "1,5", "1,0000", "1__000", "1 000", "1.", "1e", "e6", "1e1000", "K", "5i",
            "5Mi B x", "2 GiBs", "0x10", "1.2.3", "١٢"]  # the last: Arabic-Indic digits, which \d would take
# A network above every limit above: 10^12 + 1 params, an output of 4 x (10^12 + 1) bytes (float32).
HUGE = {"input": [1, 1], "layers": [{"linear": {"features": 10**12 + 1, "bias": False, "name": "fc"}}]}
MEMORY = 4 * (10**12 + 1)


def spelling_id(written) -> str:
    return repr(written)


# ----------------------------------------------------------------------------- route 1: the JSON Schema
@pytest.fixture(scope="module")
def budget_validator():
    jsonschema = pytest.importorskip("jsonschema")
    from cnncalc.schema import spec_schema

    return jsonschema.Draft202012Validator(spec_schema())


def schema_accepts(validator, written: str) -> bool:
    errors = list(validator.iter_errors({"input": [1, 8, 8], "layers": ["relu"], "budgets": {"max_params": written}}))
    assert all(list(error.absolute_path)[:1] == ["budgets"] for error in errors), errors  # nothing else is wrong
    return not errors


# ----------------------------------------------------------------------------- route 2: validate's budgets
def stated_limit(message: str, source: str) -> int:
    """The limit a budget problem names: `exceed the budget of 25M (25,000,000)` or `... of 1,000`."""
    match = re.search(rf"exceed {re.escape(source)} of (?:.+ \(([\d,]+)\)|([\d,]+))$", message)
    assert match, message
    return int((match[1] or match[2]).replace(",", ""))


def validate_json(tmp_path, budget, *options) -> dict:
    path = tmp_path / "net.json"  # JSON keeps every spelling a string (YAML would read 1_000 as an int)
    path.write_text(json.dumps({**HUGE, "budgets": {"max_params": budget}} if budget is not None else HUGE))
    result = CliRunner().invoke(cli, ["validate", str(path), "--format", "json", *options])
    return {"exit_code": result.exit_code, "stderr": result.stderr,
            "data": json.loads(result.stdout) if result.exit_code in (0, 1) else None}


# ----------------------------------------------------------------------------- route 3: check's answers
def check_answer(tmp_path, written: str):
    """`written` as the answer for fc's `memory` (the quantity whose answers may end in B)."""
    spec = tmp_path / "net.json"
    spec.write_text(json.dumps(HUGE))
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps({"fc": {"memory": written}}))
    return CliRunner().invoke(cli, ["check", str(spec), "--answers", str(answers), "--format", "json"])


# ----------------------------------------------------------------------------- the tables
@pytest.mark.parametrize("written, value", ACCEPTED, ids=[spelling_id(w) for w, _ in ACCEPTED])
def test_an_accepted_spelling_means_the_same_on_every_route(tmp_path, budget_validator, written, value):
    assert units.read_quantity(written).value == value
    # 1. The JSON Schema accepts it as a budget.
    assert schema_accepts(budget_validator, written)
    # 2. validate: the spec's budget and --max-params both read it as the same limit (whole numbers).
    whole = int(value)
    from_spec = validate_json(tmp_path, written)
    [problem] = from_spec["data"]["problems"]
    assert problem["kind"] == "budget" and stated_limit(problem["message"], "the budget") == whole
    from_option = validate_json(tmp_path, None, "--max-params", written)
    [problem] = from_option["data"]["problems"]
    assert stated_limit(problem["message"], "--max-params") == whole
    # 3. check: the answer has the same value (a memory answer may end in B).
    assert parse_count(written, 1000, allow_bytes=True).value == value
    result = check_answer(tmp_path, written)
    assert result.exit_code in (0, 1), result.output  # read and marked (right or wrong), not unusable
    [marked] = json.loads(result.stdout)["results"]
    assert (marked["answer"], marked["expected"]) == (written, MEMORY)


@pytest.mark.parametrize("written", REJECTED, ids=[spelling_id(w) for w in REJECTED])
def test_a_rejected_spelling_is_rejected_on_every_route(tmp_path, budget_validator, written):
    with pytest.raises(ValueError, match="cannot read"):
        units.read_quantity(written)
    # 1. The JSON Schema refuses it.
    assert not schema_accepts(budget_validator, written)
    # 2. validate: a parse problem of the spec's budget; a bad option is unusable input.
    from_spec = validate_json(tmp_path, written)
    [problem] = from_spec["data"]["problems"]
    assert problem["kind"] == "parse" and "cannot read" in problem["message"]
    from_option = validate_json(tmp_path, None, "--max-params", written)
    assert from_option["exit_code"] == 2 and "cannot read" in from_option["stderr"]
    # 3. check: an answer that cannot be read is unusable input.
    with pytest.raises(ValueError, match="cannot read"):
        parse_count(written, 1000, allow_bytes=True)
    result = check_answer(tmp_path, written)
    assert result.exit_code == 2 and "memory: cannot read" in result.stderr


def test_the_exact_count_written_out_is_right_in_every_notation(tmp_path):
    """The answers route end to end: 4 x (10^12 + 1) bytes written five ways is right, and one
    byte more is wrong (whole numbers written out are compared exactly)."""
    for written in ("4000000000004", "4,000,000,000,004", "4_000_000_000_004 B", "4.000000000004E12",
                    "4.000000000004TB"):
        result = check_answer(tmp_path, written)
        assert result.exit_code == 0, (written, result.output)
    for written in ("4000000000005", "4,000,000,000,005", "4_000_000_000_005 B"):
        assert check_answer(tmp_path, written).exit_code == 1, written


def test_the_issue_cases_agree():
    """`max_params: 1E6` passed the schema and failed validate; `1,000` split them too."""
    assert units.parse_quantity("1E6") == units.parse_quantity("1e6") == 10**6
    assert units.parse_quantity("1,000") == units.parse_quantity("1_000") == 1000


def test_the_schema_pattern_is_the_readers_without_python_only_syntax():
    from cnncalc.schema import QUANTITY_PATTERN

    assert QUANTITY_PATTERN == units.QUANTITY_PATTERN
    assert "(?P<" not in QUANTITY_PATTERN and "\\d" not in QUANTITY_PATTERN  # ECMA 262: no named groups; [0-9]
    assert re.sub(r"\(\?P<\w+>", "(", units.QUANTITY.pattern) == QUANTITY_PATTERN


def test_answers_keep_their_k_and_bytes_rules():
    assert parse_count("1K", 1024, allow_bytes=False).value == 1024  # K = 1024 only where asked (check --k 1024)
    assert units.parse_quantity("1K") == 1000  # budgets: K = 1000
    assert parse_count("1Ki", 1000, allow_bytes=False).value == 1024
    with pytest.raises(ValueError):
        parse_count("12 B", 1000, allow_bytes=False)  # bytes only for memory answers
    number = parse_count("73M", 1000, allow_bytes=False)
    assert (number.rounded, number.unit, number.last_place) == (True, "M", 10**6)
    assert parse_count("2GiB", 1000, allow_bytes=True).unit == "Gi"
