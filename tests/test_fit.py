"""`cnncalc fit SPEC --memory M`: the largest batch whose training fits, on constructed cases whose
answer is known by hand, its JSON contract and its search (``cnncalc.training.largest_batch``)."""
from __future__ import annotations

import functools
import json

import pytest
import yaml
from click.testing import CliRunner

import cnncalc
from cnncalc.cli import cli
from cnncalc.training import largest_batch

# One linear layer, 4 -> 2 without bias, float32, sgd: weights 8 * 4 B, gradients 8 * 4 B; autograd
# keeps the input (4 floats a sample; the weight is a parameter); while its backward runs, the
# output's gradient (2 floats a sample) is alive (the input needs none). Peak(b) = 64 + 24 b.
LINEAR = {"name": "one linear", "input": [4], "layers": [{"linear": {"features": 2, "bias": False}}]}


def peak(batch: int) -> int:
    return 64 + 24 * batch


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "linear.yaml"
    path.write_text(yaml.safe_dump(LINEAR))
    return str(path)


def fit(*arguments):
    return CliRunner().invoke(cli, ["fit", *map(str, arguments)])


def test_the_hand_count_is_cnncalcs():
    for batch in (1, 2, 10):
        assert cnncalc.analyze(LINEAR, batch=batch).totals.training_memory["peak"] == peak(batch)


@pytest.mark.parametrize("limit, batch", [
    (peak(10), 10),  # exactly at the limit: fits
    (peak(10) - 1, 9),  # one byte short of batch 10
    (peak(10) + 23, 10),  # one byte short of batch 11
    (peak(1), 1),
    (peak(123_456), 123_456),
])
def test_the_largest_batch_that_fits(spec_file, limit, batch):
    result = fit(spec_file, "--memory", limit, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["batch"], data["memory_limit"]) == (batch, limit)
    assert data["training_memory"]["peak"] == peak(batch) <= limit < peak(batch + 1) == data["next_batch_peak"]


def test_not_even_one_sample_is_batch_0_and_exit_1(spec_file):
    result = fit(spec_file, "--memory", peak(1) - 1, "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["batch"] == 0 and data["training_memory"]["peak"] == peak(1)  # what one sample would need
    text = fit(spec_file, "--memory", peak(1) - 1)
    assert text.exit_code == 1 and "not even one sample fits" in text.output and f"{peak(1)} B" in text.output


def test_the_json_contract(spec_file):
    data = json.loads(fit(spec_file, "--memory", "1KiB", "--format", "json").stdout)
    assert {"batch", "memory_limit", "training_memory"} <= set(data)
    assert set(data["training_memory"]) == {"weights", "gradients", "optimizer", "saved_activations", "weight_copies",
                                            "peak_transient", "peak"}
    assert data["memory_limit"] == 1024 and data["batch"] == (1024 - 64) // 24


@pytest.mark.parametrize("written, size", [("80GiB", 80 * 2**30), ("24GB", 24 * 10**9), ("512MiB", 512 * 2**20),
                                           ("3MB", 3 * 10**6), ("123456", 123456), ("1.5 GiB", 3 * 2**29)])
def test_sizes_are_read_by_the_projects_quantity_reader(spec_file, written, size):
    data = json.loads(fit(spec_file, "--memory", written, "--format", "json").stdout)
    assert data["memory_limit"] == size and data["batch"] == (size - 64) // 24


def test_a_device_gives_the_memory_when_memory_is_absent(spec_file, tmp_path):
    from cnncalc.roofline import find_device

    data = json.loads(fit(spec_file, "--device", "h100-sxm", "--format", "json").stdout)
    assert data["memory_limit"] == find_device("h100-sxm").memory_bytes == 80 * 10**9
    assert data["batch"] == (80 * 10**9 - 64) // 24
    own = tmp_path / "devices.yaml"
    own.write_text(yaml.safe_dump({"devices": {"tiny": {
        "name": "a tiny card", "peak_flops": {"float32": "1T"}, "memory_bandwidth": "1GB", "memory": "1000",
        "sources": {"peak_flops": "https://example.org", "memory_bandwidth": "https://example.org",
                    "memory": "https://example.org"}}}}))
    tiny = fit(spec_file, "--device", "tiny", "--devices", own, "--format", "json")
    assert tiny.exit_code == 0, tiny.output
    assert json.loads(tiny.stdout)["batch"] == (1000 - 64) // 24
    given = json.loads(fit(spec_file, "--device", "h100-sxm", "--memory", "1KiB", "--format", "json").stdout)
    assert given["memory_limit"] == 1024  # --memory wins


def test_the_text_names_the_batch_and_the_breakdown(spec_file):
    limit = peak(5) + 2 * 8 * 4  # adam keeps two state tensors of the 8 weights
    result = fit(spec_file, "--memory", limit, "--optimizer", "adam")
    lines = result.output.splitlines()
    assert result.exit_code == 0
    assert lines[0] == f"one linear: the largest batch that fits in {limit} ({limit:,} bytes) is 5"
    assert lines[1] == "Training memory at batch 5 (adam, float32, on cuda):"
    assert [line.split()[0] for line in lines[2:8]] == ["weights", "gradients", "optimizer", "saved", "peak", "peak"]


def test_options_change_the_answer_as_the_analysis_does():
    """The fit agrees with the analysis under every option: the answer's peak fits, one more does not."""
    for options in ([], ["--optimizer", "adamw", "--amp", "bf16"], ["--checkpoint"], ["--dtype", "bfloat16"],
                    ["--amp", "fp16", "--checkpoint", "--train-on", "cpu", "--optimizer-dtype", "bfloat16"]):
        data = json.loads(fit("resnet18", "--memory", "2GiB", "--format", "json", *options).stdout)
        assert 0 < data["batch"] and data["training_memory"]["peak"] <= 2 * 2**30 < data["next_batch_peak"], options


def test_checkpointing_is_not_affine_in_the_batch_and_the_search_still_finds_the_largest():
    """With --checkpoint the peak takes the largest recomputed entry: under autocast the linear
    layer's entry is led by its weight's half copy (the same at every batch), the convolution's by
    its activations (which grow): which one leads changes with the batch. The answer is checked
    against every batch."""
    spec = {"name": "t", "input": [8, 32, 32], "layers": [
        {"conv": {"filters": 16, "kernel": 3, "padding": 1}}, "relu", "flatten", {"linear": 64}]}

    @functools.lru_cache(maxsize=None)
    def peak_at(batch):
        return cnncalc.analyze(spec, batch=batch, checkpoint=True, amp="bf16").totals.training_memory["peak"]

    peaks = [peak_at(batch) for batch in range(1, 300)]
    steps = {later - earlier for earlier, later in zip(peaks, peaks[1:])}
    assert len(steps) > 1  # not affine: the premise of this test
    for limit in range(peaks[0] - 5, peaks[-1], (peaks[-1] - peaks[0]) // 97):
        expected = sum(1 for value in peaks if value <= limit)
        assert largest_batch(peak_at, limit) == expected, limit


@pytest.mark.parametrize("peak_of, limit, expected", [
    (lambda b: 100 + 10 * b, 200, 10),
    (lambda b: 100 + 10 * b, 109, 0),
    (lambda b: 100 + 10 * b, 110, 1),
    (lambda b: max(100 + 10 * b, 50 + 20 * b), 1000, 47),  # a maximum of two lines
    (lambda b: 100 + 10 * b + 1000 * (b // 7), 2000, 13),  # a step the guess from batches 1 and 2 misses
    (lambda b: 5 * b, 10**20, 2**48),  # bounded
])
def test_the_search(peak_of, limit, expected):
    assert largest_batch(peak_of, limit) == expected


def test_a_batch_that_cannot_exist_does_not_fit():
    def peak_of(batch):
        if batch > 1000:
            raise cnncalc.CnnCalcError("too many elements")
        return batch

    assert largest_batch(peak_of, 10**9) == 1000


@pytest.mark.parametrize("arguments, message", [
    (["lenet5"], "give the memory to fit in"),
    (["lenet5", "--device", "h1000"], "unknown device `h1000` (did you mean h100-sxm?)"),
    (["lenet5", "--memory", "0"], "must be more than 0"),
    (["lenet5", "--memory", "lots"], "cannot read"),
    (["lenet5", "--memory", "1GiB", "--dtype", "int8"], "floating-point"),
    (["no_such_model", "--memory", "1GiB"], "no zoo model"),
])
def test_unusable_input_is_exit_2(arguments, message):
    result = fit(*arguments)
    assert result.exit_code == 2 and message in result.output


def test_a_spec_that_cannot_be_analysed_is_exit_2_not_batch_0(tmp_path):
    path = tmp_path / "bad.yaml"
    bad = {"name": "t", "input": [3, 4, 4], "layers": [{"conv": {"filters": 2, "kernel": 7}}]}
    path.write_text(yaml.safe_dump(bad))
    result = fit(path, "--memory", "1GiB")
    assert result.exit_code == 2 and "larger than" in result.output


def test_names_are_read_as_people_write_them(spec_file):
    """`--optimizer Adam` is adam; `--device H100` is refused with its suggestions, since an H100
    may be the SXM or the slower PCIe card: a prefix is not taken as one of them."""
    refused = fit(spec_file, "--device", "H100")
    assert refused.exit_code == 2 and "did you mean h100-sxm" in refused.output
    capital = fit(spec_file, "--memory", "1GiB", "--optimizer", "Adam", "--dtype", "Float32", "--format", "json")
    assert capital.exit_code == 0, capital.output
    assert capital.stdout == fit(spec_file, "--memory", "1GiB", "--optimizer", "adam", "--format", "json").stdout
