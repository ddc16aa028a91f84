"""`cnncalc validate`'s findings in the formats CI systems read, so they show on the spec's line:

  github  GitHub Actions workflow commands (`::error file=F,line=L,title=T::message`), which the
          runner turns into annotations on the pull request
  sarif   SARIF 2.1.0, for GitHub code scanning (`github/codeql-action/upload-sarif`) and other
          SARIF viewers: one rule per finding kind
  junit   JUnit XML (GitLab, Jenkins): one test case per spec file, one failure per problem

Problems are errors (`::error`, SARIF level error, a JUnit failure); the findings that are no
problem are warnings and notes (`::warning` / `::notice`, SARIF warning / note, the test case's
system-out). Paths are made relative to the repository: $GITHUB_WORKSPACE when set (Actions),
else the current directory, as those tools resolve them.

Only the standard library; nothing here runs the analysis.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SOURCE_ROOT = "%SRCROOT%"  # the SARIF uriBaseId of the repository root
GITHUB_LEVELS = {"error": "error", "warning": "warning", "note": "notice"}
# XML 1.0 cannot hold these characters at all, escaped or not (a parse error may quote one).
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def render(run, fmt: str) -> str:
    base = repository_root()
    return {"github": github_commands, "sarif": sarif_text, "junit": junit_xml}[fmt](run, base)


# ----------------------------------------------------------------------------- paths
def repository_root() -> Path:
    """Where the paths of annotations are relative to: the Actions workspace, else here."""
    return Path(os.path.abspath(os.environ.get("GITHUB_WORKSPACE") or os.getcwd()))


def repository_path(file: str, base: Path) -> str:
    """``file`` (as the user gave it) relative to ``base`` with forward slashes; absolute when it
    lies outside ``base``."""
    absolute = Path(os.path.abspath(file))
    try:
        return absolute.relative_to(base).as_posix()
    except ValueError:
        return absolute.as_posix()


def _located(finding, base: Path):
    """The finding's location with its file as the repository path."""
    loc = finding.loc
    return replace(loc, file=repository_path(loc.file, base)) if loc.file else loc


def _layer(loc) -> str:
    """`layers[3] (conv1)`, `conv1`, or '' when the finding belongs to no layer."""
    if loc.path and loc.name:
        return f"{loc.path} ({loc.name})"
    return loc.path or loc.name or ""


def _text(finding) -> str:
    """The message with its layer in front: what a reader needs beside the file and line."""
    layer = _layer(finding.loc)
    return f"{layer}: {finding.message}" if layer else finding.message


# ----------------------------------------------------------------------------- github
def escape_data(text: str) -> str:
    """The runner's escaping of a workflow command's message (actions/runner ActionCommand.cs)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """The same for property values, which also end at `,` and `::`."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_command(finding, base: Path) -> str:
    loc = _located(finding, base)
    properties = {"file": loc.file, "line": loc.line, "title": f"cnncalc {finding.kind}"}
    written = ",".join(f"{key}={escape_property(str(value))}" for key, value in properties.items()
                       if value is not None)
    return f"::{GITHUB_LEVELS[finding.level]} {written}::{escape_data(_text(finding))}"


def github_commands(run, base: Path) -> str:
    return "".join(github_command(finding, base) + "\n" for finding in run.findings)


# ----------------------------------------------------------------------------- sarif
def sarif_log(run, base: Path) -> dict:
    from .. import __version__
    from ..validate import FINDING_KINDS

    rule_index = {kind: index for index, kind in enumerate(FINDING_KINDS)}
    rules = [{"id": kind.id, "name": kind.name, "shortDescription": {"text": kind.short},
              "fullDescription": {"text": kind.full}, "help": {"text": kind.full},
              "defaultConfiguration": {"level": kind.level}} for kind in FINDING_KINDS.values()]
    results = [_sarif_result(finding, rule_index[finding.kind], base) for finding in run.findings]
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "cnncalc", "version": __version__, "semanticVersion": __version__,
                                "rules": rules}},
            "originalUriBaseIds": {SOURCE_ROOT: {"uri": _folder_uri(base)}},
            "results": results,
        }],
    }


def _sarif_result(finding, index: int, base: Path) -> dict:
    loc = finding.loc
    path = repository_path(loc.file, base) if loc.file else None
    physical: dict = {}
    if path is not None:
        if Path(path).is_absolute():  # outside the repository: a file URI
            physical["artifactLocation"] = {"uri": Path(path).as_uri()}
        else:
            physical["artifactLocation"] = {"uri": _uri(path), "uriBaseId": SOURCE_ROOT}
    if loc.line is not None:
        physical["region"] = {"startLine": loc.line}
    location: dict = {"physicalLocation": physical} if physical else {}
    if loc.path or loc.name:
        location["logicalLocations"] = [{key: value for key, value in
                                         (("name", loc.name or loc.path), ("fullyQualifiedName", loc.path))
                                         if value}]
    result = {"ruleId": finding.kind, "ruleIndex": index, "level": finding.level,
              "message": {"text": _text(finding)}}
    if location:
        result["locations"] = [location]
    return result


def _folder_uri(folder: Path) -> str:
    """SARIF requires a base URI to end in a slash."""
    uri = folder.as_uri()
    return uri if uri.endswith("/") else uri + "/"


def _uri(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")


def sarif_text(run, base: Path) -> str:
    return json.dumps(sarif_log(run, base), indent=2, ensure_ascii=False) + "\n"


# ----------------------------------------------------------------------------- junit
def junit_xml(run, base: Path) -> str:
    """One <testcase> per spec file (its repository path), one <failure> per problem; warnings
    and notes go to the test case's <system-out>. `failures` counts the failing test cases."""
    import xml.etree.ElementTree as ET

    by_file: dict[str, list] = {repository_path(str(f), base): [] for f in run.files}
    for finding in run.findings:
        by_file.setdefault(repository_path(finding.loc.file, base), []).append(finding)
    failing = sum(any(f.level == "error" for f in found) for found in by_file.values())
    counts = {"tests": str(len(by_file)), "failures": str(failing), "errors": "0", "skipped": "0"}
    suites = ET.Element("testsuites", {"name": "cnncalc validate", **counts})
    suite = ET.SubElement(suites, "testsuite", {"name": "cnncalc validate", **counts})
    for file, found in by_file.items():
        case = ET.SubElement(suite, "testcase", {"classname": "cnncalc.validate", "name": file, "file": file})
        for problem in (f for f in found if f.level == "error"):
            failure = ET.SubElement(case, "failure", {"type": problem.kind, "message": _xml(_text(problem))})
            failure.text = _xml(str(_located(problem, base)) + ": " + problem.message)
        advisory = [f for f in found if f.level != "error"]
        if advisory:
            out = ET.SubElement(case, "system-out")
            out.text = "".join(_xml(f"{_located(f, base)}: {f.level}: {f.message}") + "\n" for f in advisory)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _xml(text: str) -> str:
    """Text XML 1.0 can hold: a character it cannot is written as \\xNN."""
    return NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
