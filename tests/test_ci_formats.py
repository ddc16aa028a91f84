"""`cnncalc validate --format github|sarif|junit`: each format read back by its consumer's own rules
(GitHub's workflow-command parser, the official SARIF 2.1.0 JSON Schema, an XML parser), with every
finding on the file and line the text format names."""
from __future__ import annotations

import hashlib
import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

from cnncalc.cli import cli
from cnncalc.errors import Location
from cnncalc.render.ci_formats import github_command
from cnncalc.validate import FINDING_KINDS, Problem

TESTS = Path(__file__).parent
CASES = TESTS / "cases"
# Vendored from github.com/oasis-tcs/sarif-spec, sarif-2.1/schema/sarif-schema-2.1.0.json at commit
# e0583813964ec43cea53b6b531b402866095ed1f (identical to Schemata/sarif-schema-2.1.0.json of ffa72eb,
# "Update the github copies of the schemata to match the Approved Errata"); see tests/data/README.md.
SARIF_SCHEMA = TESTS / "data" / "sarif-schema-2.1.0.json"
SARIF_SCHEMA_SHA256 = "c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e"
TEXT_LINE = re.compile(r"^(?P<file>[^:]+)(?::(?P<line>\d+))?: (?P<rest>.*)$")


@pytest.fixture(autouse=True)
def in_cases(monkeypatch):
    monkeypatch.chdir(CASES)  # file names as given: validate/...
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)


def validate(*args: str):
    return CliRunner().invoke(cli, ["validate", *args])


def text_findings(*args: str) -> list[tuple[str, int | None, str]]:
    """(file, line, `layer: message`) of every problem, as the text format prints it."""
    found = []
    for line in validate(*args).stdout.splitlines():
        match = TEXT_LINE.match(line)
        found.append((match["file"], int(match["line"]) if match["line"] else None, match["rest"]))
    return found


# ----------------------------------------------------------------------------- github
def parse_workflow_command(line: str) -> tuple[str, dict, str] | None:
    """A line as the Actions runner reads it: actions/runner src/Runner.Common/ActionCommand.cs,
    TryParseV2 (the `::` syntax), with its UnescapeProperty / UnescapeData, ported line by line."""
    registered = {"error", "warning", "notice"}
    message = line.lstrip()
    if not message.startswith("::"):
        return None
    end = message.find("::", 2)
    if end < 0:
        return None
    info = message[2:end]
    space = info.find(" ")
    name = info if space < 0 else info[:space]
    if name not in registered:
        return None
    properties = {}
    if space > 0:
        for item in (p for p in info[space + 1:].strip().split(",") if p):
            pair = [part for part in item.split("=", 1) if part]
            if len(pair) == 2:
                properties[pair[0].lower()] = _unescape(pair[1], property=True)
    return name, properties, _unescape(message[end + 2:], property=False)


def _unescape(text: str, property: bool) -> str:
    mappings = [("\r", "%0D"), ("\n", "%0A")] + ([(":", "%3A"), (",", "%2C")] if property else []) + [("%", "%25")]
    for token, replacement in mappings:  # the runner's order: %25 last
        text = text.replace(replacement, token)
    return text


def test_github_annotations_are_the_text_findings_on_their_lines():
    commands = [parse_workflow_command(line) for line in validate("validate", "--format", "github").stdout.splitlines()]
    expected = text_findings("validate")
    assert len(commands) == len(expected) == 5
    for (name, properties, data), (file, line, rest) in zip(commands, expected):
        assert name == "error"
        assert properties["file"] == file and properties.get("line") == (str(line) if line else None)
        assert data == rest
    kinds = [properties["title"] for _, properties, _ in commands]
    assert kinds == ["cnncalc parse", "cnncalc budget", "cnncalc expect", "cnncalc fit", "cnncalc fit"]


def test_github_exit_codes_are_validates():
    assert validate("validate", "--format", "github").exit_code == 1
    clean = validate("validate/good.yaml", "validate/good.json", "--format", "github")
    assert (clean.exit_code, clean.stdout) == (0, "")
    missing = validate("validate/missing.yaml", "--format", "github")
    assert (missing.exit_code, missing.stderr) == (2, "validate/missing.yaml: error: no such file or directory\n")


def test_github_warnings_and_notes_do_not_fail_the_run(tmp_path):
    spec = tmp_path / "net.yaml"
    spec.write_text("input: 32x32x3\nlayers:\n  - conv: {filters: 4, kernel: 3, stride: 2}\n")
    result = validate(str(spec), "--rounding", "floor", "--format", "github")
    assert result.exit_code == 0
    commands = [parse_workflow_command(line) for line in result.stdout.splitlines()]
    assert [(name, p["line"], p["title"]) for name, p, _ in commands] == [
        ("notice", "1", "cnncalc reading"), ("warning", "3", "cnncalc rounded")]
    assert commands[0][2].startswith("input: read `32x32x3` as H x W x C")
    assert commands[1][2].startswith("layers[0] (conv1): (32 - 3)/2 + 1 = 15.50 is not whole")
    assert commands[1][2].endswith("; accepted by --rounding floor, which the spec does not declare")
    assert result.stderr.endswith("cnncalc validate: 1 file, no problems, 1 warning, 1 note\n")
    # A spec that declares the rounding it relies on gets no warning; strict makes it a problem.
    spec.write_text("input: [3, 32, 32]\nrounding: floor\nlayers:\n  - conv: {filters: 4, kernel: 3, stride: 2}\n")
    assert validate(str(spec), "--rounding", "floor", "--format", "github").stdout == ""
    strict = validate(str(spec), "--rounding", "strict", "--format", "github")
    assert strict.exit_code == 1 and strict.stdout.startswith(f"::error file={_escaped(spec)},line=4,")


def _escaped(path: Path) -> str:
    return str(path).replace("%", "%25").replace(":", "%3A").replace(",", "%2C")


def test_github_escapes_a_real_multi_line_message_and_odd_names(tmp_path):
    folder = tmp_path / "a,b:c%d"
    folder.mkdir()
    spec = folder / "net.yaml"
    spec.write_bytes(b"input: [1, 8, 8]\nlayers:\n  - conv: {filters: 1, kernel: 1, name: \"a\x01b\"}\n")
    result = validate(str(spec), "--format", "github")
    line = result.stdout.rstrip("\n")
    assert "\n" not in line and ",b:c%d" not in line  # the YAML error's second line and the path are escaped
    name, properties, data = parse_workflow_command(line)
    assert (name, properties["file"]) == ("error", str(spec))
    assert data.startswith("is not valid YAML: unacceptable character #x0001") and "\n  in " in data


@settings(max_examples=200, deadline=None)
@given(file=st.text(min_size=1), title_text=st.text(), message=st.text(), line=st.none() | st.integers(1, 10**6))
def test_github_escaping_round_trips_through_the_runners_parser(file, title_text, message, line):
    path = "/" + file.replace("\x00", "")
    problem = Problem("fit", Location(file=path, line=line, path=title_text or None), message)
    parsed = parse_workflow_command(github_command(problem, Path("/nowhere")))
    assert parsed is not None
    name, properties, data = parsed
    assert name == "error"
    assert properties["file"] == Path(os.path.abspath(path)).as_posix()  # outside the workspace: absolute
    assert data == (f"{title_text}: {message}" if title_text else message)
    assert properties.get("line") == (str(line) if line else None)


def test_paths_are_relative_to_the_actions_workspace(monkeypatch):
    monkeypatch.setenv("GITHUB_WORKSPACE", str(TESTS))
    commands = [parse_workflow_command(line) for line in validate("validate", "--format", "github").stdout.splitlines()]
    assert commands[0][1]["file"] == "cases/validate/broken.yaml"


# ----------------------------------------------------------------------------- sarif
@pytest.fixture(scope="module")
def sarif_validator():
    import jsonschema

    raw = SARIF_SCHEMA.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == SARIF_SCHEMA_SHA256  # the vendored file is the official one
    schema = json.loads(raw)
    assert schema["id"].endswith("/sarif-schema-2.1.0.json")
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)


def sarif(*args: str) -> dict:
    result = validate(*args, "--format", "sarif")
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def test_sarif_is_valid_against_the_official_schema(sarif_validator):
    log = sarif("validate", "--max-params", "150")  # a CLI budget: a finding without a line
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in sarif_validator.iter_errors(log)]
    assert errors == []
    broken = json.loads(json.dumps(log))
    broken["runs"][0]["results"][0]["level"] = "fatal"  # not a SARIF level: the check can fail
    assert list(sarif_validator.iter_errors(broken))


def test_sarif_has_one_rule_per_kind_and_results_on_the_text_lines():
    log = sarif("validate")
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [rule["id"] for rule in rules] == list(FINDING_KINDS)
    assert {"parse", "fit", "expect", "budget", "rounded", "reading"} <= set(FINDING_KINDS)
    assert all(rule["shortDescription"]["text"] and rule["fullDescription"]["text"] for rule in rules)
    assert [rule["defaultConfiguration"]["level"] for rule in rules] == [k.level for k in FINDING_KINDS.values()]
    assert [FINDING_KINDS[kind].level for kind in ("parse", "fit", "expect", "budget", "rounded", "reading")] == \
        ["error"] * 4 + ["warning", "note"]
    expected = text_findings("validate")
    assert len(run["results"]) == len(expected) == 5
    for result, (file, line, rest) in zip(run["results"], expected):
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] == "error"
        assert result["message"]["text"] == rest
        physical = result["locations"][0]["physicalLocation"]
        assert physical["artifactLocation"] == {"uri": file, "uriBaseId": "%SRCROOT%"}
        assert physical["region"] == {"startLine": line}
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == CASES.resolve().as_uri() + "/"
    expect = run["results"][2]
    assert (expect["ruleId"], expect["locations"][0]["logicalLocations"]) == (
        "expect", [{"name": "c1", "fullyQualifiedName": "layers[0]"}])


def test_sarif_finding_without_a_line_has_no_region_and_paths_outside_are_file_uris(tmp_path):
    spec = tmp_path / "my net.yaml"
    spec.write_text((CASES / "validate" / "good.yaml").read_text())
    run = sarif(str(spec), "--max-params", "100")["runs"][0]
    [result] = run["results"]
    assert result["ruleId"] == "budget"
    assert result["locations"][0]["physicalLocation"] == {"artifactLocation": {"uri": spec.as_uri()}}
    assert "%20" in spec.as_uri()


def test_sarif_levels_of_warnings_and_notes(tmp_path):
    spec = tmp_path / "net.yaml"
    spec.write_text("input: 32x32x3\nlayers:\n  - conv: {filters: 4, kernel: 3, stride: 2}\n")
    results = sarif(str(spec), "--rounding", "floor")["runs"][0]["results"]
    assert [(r["ruleId"], r["level"], r["locations"][0]["physicalLocation"]["region"]["startLine"])
            for r in results] == [("reading", "note", 1), ("rounded", "warning", 3)]


# ----------------------------------------------------------------------------- junit
def junit(*args: str) -> tuple[int, ET.Element]:
    result = validate(*args, "--format", "junit")
    return result.exit_code, ET.fromstring(result.stdout.encode())


def test_junit_one_case_per_spec_one_failure_per_problem():
    code, root = junit("validate")
    assert code == 1
    [suite] = root.findall("testsuite")
    cases = suite.findall("testcase")
    files = ["broken.yaml", "budget.yaml", "expect.yaml", "good.json", "good.yaml", "misfit.yaml"]
    assert [case.get("name") for case in cases] == [f"validate/{name}" for name in files]
    assert [len(case.findall("failure")) for case in cases] == [1, 1, 1, 0, 0, 2]
    for element in (root, suite):
        assert (element.get("tests"), element.get("failures"), element.get("errors")) == ("6", "4", "0")
    failures = [f for case in cases for f in case.findall("failure")]
    expected = text_findings("validate")
    assert [f.get("type") for f in failures] == ["parse", "budget", "expect", "fit", "fit"]
    for failure, (file, line, rest) in zip(failures, expected):
        assert failure.text == f"{file}:{line}: {rest}"
        assert failure.get("message") == rest


def test_junit_clean_run_and_warnings_in_system_out(tmp_path):
    code, root = junit("validate/good.yaml")
    assert code == 0 and root.get("failures") == "0" and root.find("testsuite/testcase").find("failure") is None
    spec = tmp_path / "net.yaml"
    spec.write_text("input: [3, 32, 32]\nlayers:\n  - conv: {filters: 4, kernel: 3, stride: 2}\n")
    code, root = junit(str(spec), "--rounding", "floor")
    out = root.find("testsuite/testcase/system-out").text.splitlines()
    assert code == 0 and len(out) == 1 and out[0].startswith(f"{spec}:3: layers[0] (conv1): warning: (32 - 3)/2 + 1")


def test_junit_stays_well_formed_with_characters_xml_cannot_hold(tmp_path):
    spec = tmp_path / "ctl.json"
    spec.write_text('{"input": [1, 8, 8], "layers": [{"conv": {"filters": 1, "kernel": 3, "stride": 2, '
                    '"name": "a\\u0001b"}}]}')
    code, root = junit(str(spec))
    failure = root.find("testsuite/testcase/failure")
    assert code == 1 and "layers[0] (a\\x01b)" in failure.text
