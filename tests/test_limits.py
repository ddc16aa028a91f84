"""Every limit that protects cnncalc from hostile or absurd specs, with its exact message."""
from __future__ import annotations

import pytest

import cnncalc
from cnncalc.errors import CnnCalcError
from cnncalc.spec import build, loader
from cnncalc.spec.loader import load_bytes


def error_of(text: str, fmt: str = "yaml") -> CnnCalcError:
    with pytest.raises(CnnCalcError) as info:
        data, source = load_bytes(text.encode(), "net.yaml", fmt)
        cnncalc.analyze(build.build_spec(data, source))
    return info.value


def test_alias_bomb():
    lines = ["a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"]
    for level in "bcdefgh":
        previous = chr(ord(level) - 1)
        lines.append(f"{level}: &{level} [" + ", ".join([f"*{previous}"] * 10) + "]")
    error = error_of("\n".join(lines) + "\ninput: [1, 4]\nlayers: [relu]\n")
    assert str(error) == "net.yaml:7: g: expands to more than 2,000,000 values (alias bomb?); refusing to load it"


def test_recursive_alias():
    error = error_of("input: [1, 4]\nlayers: &l [relu, *l]\n")
    assert str(error) == "net.yaml:2: layers[1]: contains an alias that refers to itself"


def test_deep_data_nesting():
    error = error_of("input: [1, 4]\nlayers: " + "[" * 250 + "]" * 250 + "\n")
    assert error.message == "is nested more than 200 levels deep"


def test_deep_json_nesting():
    error = error_of('{"input": [1, 4], "layers": ' + "[" * 100000 + "]" * 100000 + "}", "json")
    assert str(error) == "net.yaml: is nested more than 200 levels deep"


def test_deep_composite_nesting():
    nested = "relu"
    for _ in range(40):
        nested = f"{{residual: {{layers: [{nested}]}}}}"
    error = error_of(f"input: [1, 4]\nlayers: [{nested}]\n")
    assert error.message == "composites are nested more than 32 levels deep"


def test_repeat_expansion_is_bounded_before_any_work():
    error = error_of("input: [1, 4]\nlayers:\n  - repeat: {times: 1000000, layers: [relu, relu]}\n")
    assert str(error) == ("net.yaml:2: layers: the spec expands to 2,000,000 layers (after `repeat`), more than "
                          "the limit of 1,000,000; check the `times` of its repeats")


def test_number_of_entries_in_a_file(monkeypatch):
    monkeypatch.setattr(build, "MAX_LAYERS", 5)
    error = error_of("input: [1, 4]\nlayers: [relu, relu, relu, relu, relu, relu]\n")
    assert str(error) == "net.yaml:2: layers[5]: the spec has more than 5 layer entries"


def test_file_size(monkeypatch, tmp_path):
    monkeypatch.setattr(loader, "MAX_FILE_BYTES", 2**20)
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * 2**20)
    with pytest.raises(CnnCalcError) as info:
        loader.load_file(big)
    assert info.value.message == "the file is larger than 1 MiB; refusing to read it"


def test_a_tensor_that_could_never_exist():
    error = error_of("input: [3, 100000000000, 100000000000]\nlayers:\n  - conv: {filters: 1000, kernel: 1}\n")
    assert str(error) == ("net.yaml:3: layers[0] (conv1): the output [1000, 100000000000, 100000000000] would "
                          "have 10,000,000,000,000,000,000,000,000 elements, more than any tensor library can "
                          "address; such a tensor could never exist")


def test_a_weight_tensor_that_could_never_exist():
    error = error_of("input: [100000000000]\nlayers:\n  - linear: 100000000000\n")
    assert str(error) == ("net.yaml:3: layers[0] (fc1): the layer would have 10,000,000,000,000,000,000,000 weights, "
                          "more than any tensor library can address; such a weight tensor could never exist")


def test_huge_but_possible_sizes_use_exact_integers():
    report = cnncalc.analyze(cnncalc.load_spec({"input": [1, 2**40], "layers": [{"conv": {"filters": 2, "kernel": 3}}]}))
    assert report.layers[0].output_shape == (2, 2**40 - 2)
    assert report.totals.macs == 3 * 2 * (2**40 - 2)
