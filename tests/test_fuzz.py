"""Hostile input: whatever cnncalc is fed, the outcome is a result or one located error line
with exit 2 (1 for findings) — never a traceback, never a hang.

CI runs a fixed budget of examples; `FUZZ_EXAMPLES=20000 python -m pytest tests/test_fuzz.py`
runs a longer campaign (see bench/README.md for the atheris harness).
"""
from __future__ import annotations

import copy
import json
import os
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnncalc.cli import cli

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=timedelta(seconds=10), derandomize="FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SPECS = Path(__file__).parent.parent / "specs"
SMALL_ZOO = ["lenet5", "alexnet", "vgg11", "resnet18", "mobilenet_v2", "dcgan_generator", "audio_cnn_1d"]

numbers = st.one_of(st.integers(-3, 20), st.integers(-(2**70), 2**70), st.sampled_from([0, 1, -1, 2**63, 10**30]),
                    st.floats(allow_nan=True, allow_infinity=True))
scalars = st.one_of(numbers, st.booleans(), st.none(), st.text(max_size=12),
                    st.sampled_from(["same", "valid", "conv", "relu", "input", "3x3", "32x32x3", "~", "&a", "*a"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)


def run_cli(args: list[str]):
    result = CliRunner().invoke(cli, args, catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"cnncalc {' '.join(args)} raised {result.exception!r}") from result.exception
    assert result.exit_code in (0, 1, 2), (args, result.exit_code, result.output)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
        assert len(errors) == 1, result.stderr
    return result


def run_on_text(content: bytes | str, suffix: str, commands=(("table", "--format", "json"), ("explain",))):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"spec{suffix}"
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
        before = path.read_bytes()
        for command in commands:
            run_cli([command[0], str(path), *command[1:]])
        assert path.read_bytes() == before  # never modified


def mutate(data, path: list, value):
    """Replace (or delete, when value is the DELETE marker) the element at path."""
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


DELETE = object()


def paths_of(data, prefix=()):
    yield list(prefix)
    if isinstance(data, dict):
        for key, value in data.items():
            yield from paths_of(value, prefix + (key,))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from paths_of(value, prefix + (index,))


ZOO_DATA = {name: yaml.safe_load((SPECS / f"{name}.yaml").read_text()) for name in SMALL_ZOO
            if (SPECS / f"{name}.yaml").exists()}


@FUZZ
@given(st.data())
def test_mutated_zoo_specs(data):
    name = data.draw(st.sampled_from(sorted(ZOO_DATA)))
    spec = copy.deepcopy(ZOO_DATA[name])
    for _ in range(data.draw(st.integers(1, 3))):
        candidates = [p for p in paths_of(spec) if p]
        if not candidates:
            break
        path = data.draw(st.sampled_from(candidates))
        mutate(spec, path, data.draw(st.one_of(values, st.just(DELETE))))
    fmt = data.draw(st.sampled_from([".yaml", ".json"]))
    text = yaml.safe_dump(spec) if fmt == ".yaml" else json.dumps(spec, default=str)
    run_on_text(text, fmt, commands=(("table", "--format", "json"), ("explain",), ("validate",),
                                     ("check", "--sheet", "solution", "--format", "csv")))


@FUZZ
@given(st.dictionaries(st.sampled_from(["name", "input", "layers", "layout", "budgets", "x"]), values, max_size=5))
def test_random_top_level_structures(spec):
    run_on_text(json.dumps(spec, default=str), ".json")


@FUZZ
@given(st.lists(st.one_of(values, st.sampled_from(["conv 8 k3", "conv3-64", "FC-10", "maxpool", "relu", "flatten",
                                                    "conv 8 k3 s2 p9", "conv -1", "linear 0"])), max_size=6),
       st.sampled_from([[3, 16, 16], [1, 8], [2, 4, 4, 4], "16x16x3", [3, 10**12, 10**12], [], [0, 3]]))
def test_random_layer_lists(layers, input_shape):
    numpy = pytest.importorskip("numpy")  # noqa: F841 - verify needs the NumPy backend
    run_on_text(json.dumps({"input": input_shape, "layers": layers}, default=str), ".json",
                commands=(("table", "--format", "json"), ("validate", "--format", "json"),
                          ("verify", "--format", "json", "--max-memory", "200MB")))


option_values = st.one_of(st.integers(-5, 40).map(str), st.sampled_from(["same", "valid", "3x3", "0", "-1", "2.5",
                                                                         "[[0,1],[1,0]]", "abc", "", "99999999999"]))


@FUZZ
@given(st.sampled_from(["conv", "pool", "conv_transpose", "linear", "avgpool", "upsample", "bogus"]),
       st.dictionaries(st.sampled_from(["--input", "--filters", "--kernel", "--stride", "--padding", "--dilation",
                                        "--groups", "--output-padding", "--features", "--scale-factor"]),
                       option_values, max_size=6))
def test_layer_command_options(kind, options):
    args = ["layer", kind, *[part for pair in options.items() for part in pair], "--format", "json"]
    run_cli(args if "--input" in options else args + ["--input", "32x32x3"])


@FUZZ
@given(st.sampled_from(["conv", "pool", "conv_transpose", "avgpool", "bogus"]),
       st.sampled_from(["padding", "stride", "kernel", "dilation", "output_padding", "input", "size"]),
       st.dictionaries(st.sampled_from(["--input", "--output", "--kernel", "--stride", "--padding", "--dilation"]),
                       option_values, max_size=5))
def test_solve_command_options(kind, find, options):
    run_cli(["solve", kind, "--find", find, *[part for pair in options.items() for part in pair], "--format", "json"])


@FUZZ
@given(st.text(max_size=300))
def test_arbitrary_text_as_yaml_and_toml(text):
    run_on_text(text, ".yaml", commands=(("table",),))
    run_on_text(text, ".toml", commands=(("table",),))


@FUZZ
@given(st.binary(max_size=200))
def test_arbitrary_bytes(raw):
    run_on_text(raw, ".yaml", commands=(("table",),))


@pytest.mark.parametrize("text", [
    "a: &a [1, 2]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
    "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
    "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
    "h: [*g, *g, *g, *g, *g, *g, *g, *g, *g]\ninput: [3, 8, 8]\nlayers: [relu]\n",
    "input: [3, 8, 8]\nlayers: &l [relu, *l]\n",
    "input: !!python/object/apply:os.system ['echo hacked']\nlayers: [relu]\n",
    "input: [3, 8, 8]\nlayers:\n" + "".join("  " * (i + 1) + "- residual:\n" + "  " * (i + 2) + "  layers:\n"
                                           for i in range(60)),
], ids=["billion laughs", "recursive alias", "python object tag", "deep nesting"])
def test_hostile_yaml(text):
    result = run_cli(["table", _write(text)])
    assert result.exit_code == 2


def _write(text: str) -> str:
    handle = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    handle.write(text)
    handle.close()
    return handle.name
