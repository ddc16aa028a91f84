"""`table --device NAME`: a roofline lower bound per layer, from the shipped device table or a user's.

The figures are recomputed here by plain arithmetic from the JSON's documented fields (shapes, params,
MACs, activations, the dtype and the `device` object), not by calling cnncalc.roofline."""
from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from cnncalc.cli import cli

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "cnncalc" / "devices.yaml"
ROOFLINE_ROW_KEYS = {"roofline_flops", "bytes_moved", "intensity", "bound", "time_s"}
ROOFLINE_TOTAL_KEYS = {"roofline_flops", "bytes_moved", "time_s", "memory_bound_layers", "timed_layers",
                       "memory_bound_share"}
DTYPE_BYTES = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int8": 1}
VIEWS = {"flatten", "dropout", "drop_path", "identity", "reshape", "squeeze", "unsqueeze", "permute", "split"}


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def table_json(*args: str) -> dict:
    result = invoke("table", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


# ----------------------------------------------------------------------------- the shipped table
def shipped() -> dict:
    return yaml.safe_load(TABLE.read_text())["devices"]


def figure(text) -> Fraction:
    """The table's quantities (67T, 3.35T, 80GB), read independently of cnncalc.units."""
    match = re.fullmatch(r"([0-9.]+)\s*([KMGT]?)B?", str(text))
    assert match, text
    return Fraction(match[1]) * 1000 ** " KMGT".index(match[2] or " ")


def test_the_shipped_table_has_every_device_the_issue_names():
    assert {"h200-sxm", "h100-sxm", "a100-sxm-80gb", "l4", "rtx-4090", "t4", "avx2-cpu"} <= set(shipped())
    assert any(key.startswith("apple-m") for key in shipped())


@pytest.mark.parametrize("key", list(shipped()))
def test_every_device_has_every_figure_with_a_public_source(key):
    entry = shipped()[key]
    assert set(entry) <= {"name", "peak_flops", "memory_bandwidth", "memory", "sources", "notes"}
    assert entry["name"].strip()
    assert "float32" in entry["peak_flops"]
    assert set(entry["peak_flops"]) <= {"float64", "float32", "tf32", "float16", "bfloat16", "int8"}
    assert all(figure(value) > 0 for value in entry["peak_flops"].values())
    assert figure(entry["memory_bandwidth"]) > 0 and figure(entry["memory"]) > 0
    assert set(entry["sources"]) == {"peak_flops", "memory_bandwidth", "memory"}
    assert all(re.fullmatch(r"https://[^\s]+", url) for url in entry["sources"].values()), entry["sources"]


@pytest.mark.parametrize("key, math_, dense", [
    ("h100-sxm", "float16", Fraction(1979, 2) * 10**12),  # datasheet 1,979 TFLOPS "with sparsity"
    ("h100-sxm", "tf32", Fraction(989, 2) * 10**12),
    ("h200-sxm", "int8", Fraction(3958, 2) * 10**12),
    ("a100-sxm-80gb", "float16", 312 * 10**12),  # the datasheet's dense figure (624* is sparse)
    ("l4", "float16", Fraction(242, 2) * 10**12),
    ("rtx-4090", "float16", Fraction(1652, 10) * 10**12),  # FP32 accumulate, dense
    ("t4", "float16", 65 * 10**12),
])
def test_tensor_core_peaks_are_dense_not_sparse(key, math_, dense):
    assert figure(shipped()[key]["peak_flops"][math_]) == dense


def test_the_generic_cpu_figures_are_the_arithmetic_its_notes_show():
    entry = shipped()["avx2-cpu"]
    assert figure(entry["peak_flops"]["float32"]) == 8 * 3 * 10**9 * 2 * 8 * 2
    assert figure(entry["peak_flops"]["float64"]) == 8 * 3 * 10**9 * 2 * 4 * 2
    assert figure(entry["memory_bandwidth"]) == 2 * 8 * 3200 * 10**6
    assert "768 GFLOP/s" in entry["notes"] and "51.2 GB/s" in entry["notes"]


def test_devices_lists_the_table():
    result = invoke("devices")
    assert result.exit_code == 0
    for key in shipped():
        assert re.search(rf"^{re.escape(key)}\s", result.stdout, re.MULTILINE), key
    data = json.loads(invoke("devices", "--format", "json").stdout)["devices"]
    assert data["h100-sxm"]["peak_flops"]["float32"] == 67 * 10**12
    assert data["h100-sxm"]["memory_bandwidth"] == 3_350_000_000_000 and data["h100-sxm"]["memory_bytes"] == 80 * 10**9


# ----------------------------------------------------------------------------- figures, recomputed
def input_elements(row: dict, batch: int) -> int:
    """What a row reads, from its shapes alone, for the nets below: a residual add reads two tensors of
    its output's shape, a concat its output's worth, a squeeze-and-excitation mul the map and a
    [C, 1, 1] gate; every other layer its input shape."""
    out = math.prod(row["output_shape"]) * batch
    if row["kind"] == "add":
        return 2 * out
    if row["kind"] == "concat":
        return out
    if row["kind"] == "mul":
        return out + row["output_shape"][0] * batch
    return math.prod(row["input_shape"]) * batch


def expected_row(row: dict, device: dict, dtype: str, batch: int) -> dict:
    if row["kind"] in VIEWS:
        return {"roofline_flops": 0, "bytes_moved": 0, "intensity": 0.0, "bound": "memory", "time_s": 0.0}
    flops = 2 * row["macs"] if row["macs"] else math.prod(row["output_shape"]) * batch
    moved = (input_elements(row, batch) + row["params"] + math.prod(row["output_shape"]) * batch) * DTYPE_BYTES[dtype]
    peak, bandwidth = Fraction(device["peak"]), Fraction(device["bandwidth"])
    return {"roofline_flops": flops, "bytes_moved": moved, "intensity": flops / moved,
            "bound": "compute" if Fraction(flops, moved) >= peak / bandwidth else "memory",
            "time_s": float(max(flops / peak, moved / bandwidth))}


@pytest.mark.parametrize("net, device, dtype, batch", [
    ("lenet5", "avx2-cpu", "float32", 1),
    ("resnet18", "h100-sxm", "float32", 1),
    ("resnet18", "a100-sxm-80gb", "bfloat16", 8),
    ("googlenet", "t4", "float16", 2),
    ("efficientnet_b0", "l4", "int8", 4),
    ("vgg16", "rtx-4090", "float32", 1),
])
def test_every_row_is_plain_arithmetic_of_the_documented_fields(net, device, dtype, batch):
    data = table_json(net, "--device", device, "--dtype", dtype, "--batch", str(batch))
    used = data["device"]
    assert used["key"] == device and used["math"] == dtype
    assert used["peak"] == used["peak_flops"][dtype]
    assert used["ridge_intensity"] == pytest.approx(used["peak"] / used["bandwidth"], rel=1e-12)
    assert {row["kind"] for row in data["layers"]} <= {"conv", "linear", "batchnorm", "relu", "tanh", "silu",
                                                       "sigmoid", "maxpool", "adaptive_avgpool", "add", "mul",
                                                       "concat", *VIEWS}  # the kinds input_elements knows
    for row in data["layers"]:
        expected = expected_row(row, used, dtype, batch)
        got = {key: row[key] for key in ROOFLINE_ROW_KEYS}
        assert got == {**expected, "intensity": pytest.approx(expected["intensity"], rel=1e-12),
                       "time_s": pytest.approx(expected["time_s"], rel=1e-12)}, row["name"]
    totals, rows = data["totals"], data["layers"]
    timed = [row for row in rows if row["time_s"] > 0]
    memory = [row for row in timed if row["bound"] == "memory"]
    assert totals["time_s"] == pytest.approx(sum(row["time_s"] for row in rows), rel=1e-12)
    assert totals["bytes_moved"] == sum(row["bytes_moved"] for row in rows)
    assert totals["roofline_flops"] == sum(row["roofline_flops"] for row in rows)
    assert (totals["memory_bound_layers"], totals["timed_layers"]) == (len(memory), len(timed))
    assert totals["memory_bound_share"]["layers"] == pytest.approx(len(memory) / len(timed))
    assert totals["memory_bound_share"]["time"] == pytest.approx(
        sum(row["time_s"] for row in memory) / totals["time_s"], rel=1e-12)


def test_a_conv_by_hand():
    """LeNet-5's C1 on the generic CPU: 1x32x32 -> 6x28x28, 156 params, 117,600 MACs."""
    c1 = table_json("lenet5", "--device", "avx2-cpu")["layers"][0]
    assert c1["roofline_flops"] == 235_200
    assert c1["bytes_moved"] == (1024 + 156 + 4704) * 4 == 23_536
    assert c1["time_s"] == pytest.approx(23_536 / 51.2e9)  # 235,200 / 768e9 = 0.31 µs is less
    assert c1["bound"] == "memory"


# ----------------------------------------------------------------------------- the ridge point
TINY = "input: [4]\nlayers:\n  - linear: {features: 4, bias: false}\n"  # 32 FLOPs; (4 + 16 + 4) x 4 = 96 bytes


def device_file(tmp_path: Path, bandwidth: str, peak: str = "1G", key: str = "ridge") -> str:
    return write(tmp_path / f"{key}.yaml", f"""devices:
  {key}:
    name: a device whose ridge point is peak / bandwidth
    peak_flops: {{float32: {peak}}}
    memory_bandwidth: {bandwidth}
    memory: 1GB
    sources: {{peak_flops: made up, memory_bandwidth: made up, memory: made up}}
""")


@pytest.mark.parametrize("bandwidth, bound", [
    ("3000000000", "compute"),  # ridge 1/3 = the layer's intensity 32/96: the two times are equal
    ("2999999999", "memory"),  # ridge a hair above 1/3
    ("3000000001", "compute"),  # ridge a hair below 1/3
])
def test_the_bound_flips_exactly_at_the_ridge_point(tmp_path, bandwidth, bound):
    spec = write(tmp_path / "tiny.yaml", TINY)
    row = table_json(spec, "--device", "ridge", "--devices", device_file(tmp_path, bandwidth))["layers"][0]
    assert (row["roofline_flops"], row["bytes_moved"], row["bound"]) == (32, 96, bound)
    assert row["intensity"] == pytest.approx(1 / 3)
    assert row["time_s"] == pytest.approx(max(32 / 1e9, 96 / int(bandwidth)), rel=1e-15)


# ----------------------------------------------------------------------------- the user's table
def test_a_user_table_adds_devices_and_replaces_shipped_ones(tmp_path):
    mine = write(tmp_path / "mine.yaml", """devices:
  H100-SXM:   # replaces the shipped entry as a whole (names are read in lower case)
    name: my throttled H100
    peak_flops: {float32: 50T}
    memory_bandwidth: 2T
    memory: 80GB
    sources: {peak_flops: measured, memory_bandwidth: measured, memory: nvidia-smi}
  lab-box:
    name: the lab's box
    peak_flops: {float32: 1.5e12, float16: 3T}
    memory_bandwidth: 100G
    memory: 64GiB
    sources: {peak_flops: measured, memory_bandwidth: measured, memory: lab wiki}
""")
    replaced = table_json("lenet5", "--device", "h100-sxm", "--devices", mine)["device"]
    assert (replaced["name"], replaced["peak"], replaced["bandwidth"]) == ("my throttled H100", 50 * 10**12, 2 * 10**12)
    assert replaced["table"] == mine and "float16" not in replaced["peak_flops"]
    added = table_json("lenet5", "--device", "LAB-BOX", "--devices", mine, "--dtype", "float16")["device"]
    assert (added["peak"], added["memory_bytes"]) == (3 * 10**12, 64 * 2**30)
    listed = invoke("devices", "--devices", mine).stdout
    assert "lab-box" in listed and "a100-sxm-80gb" in listed  # the shipped ones stay
    assert table_json("lenet5", "--device", "a100-sxm-80gb", "--devices", mine)["device"]["peak"] == 19.5e12


SOURCES = "    sources: {peak_flops: a, memory_bandwidth: b, memory: c}\n"


@pytest.mark.parametrize("entry, message", [
    ("name: x\n    peak_flops: {float32: 1T}\n    memory_bandwidth: 1T\n    memory: 1GB\n",
     "`sources` is missing"),
    ("name: x\n    peak_flops: {float32: fast}\n    memory_bandwidth: 1T\n    memory: 1GB\n" + SOURCES,
     "`peak_flops.float32` must be a positive number"),
    ("name: x\n    peak_flops: {fp32: 1T}\n    memory_bandwidth: 1T\n    memory: 1GB\n" + SOURCES,
     "`peak_flops` has `fp32`"),
    ("name: x\n    peak_flops: {float32: 1T}\n    memory_bandwidth: 1T\n    memory: 1GB\n"
     "    sources: {peak_flops: a, memory_bandwidth: b}\n", "`sources.memory` is missing"),
    ("name: x\n    peak_flops: {float32: 1T}\n    memory_bandwidth: -1\n    memory: 1GB\n" + SOURCES,
     "`memory_bandwidth` must be a positive number"),
    ("name: x\n    peak_flops: {float32: 1T}\n    memory_bandwidth: 1T\n    memory: 0\n" + SOURCES,
     "`memory` must be a positive size"),
    ("name: x\n    peak: 1T\n", "unknown key `peak`"),
])
def test_a_broken_user_table_is_one_located_error(tmp_path, entry, message):
    bad = write(tmp_path / "bad.yaml", "devices:\n  mine:\n    " + entry)
    result = invoke("table", "lenet5", "--device", "mine", "--devices", bad)
    assert result.exit_code == 2
    assert re.fullmatch(rf"{re.escape(bad)}:\d+: .*error: device `mine`: .*\n", result.stderr), result.stderr
    assert message in result.stderr


# ----------------------------------------------------------------------------- errors
def test_an_unknown_device_lists_the_known_ones():
    result = invoke("table", "lenet5", "--device", "h100")
    assert result.exit_code == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("--device: error: unknown device `h100` (did you mean h100-sxm")
    assert all(key in line for key in shipped())


@pytest.mark.parametrize("args, message", [
    (["--device", "t4", "--dtype", "bfloat16"], "device `t4` (NVIDIA T4 16GB) has no bfloat16 peak"),
    (["--device", "h100-sxm", "--dtype", "float16", "--tf32"], "--tf32 is a float32 mode"),
    (["--device", "apple-m1", "--tf32"], "has no tf32 peak"),
    (["--devices", "x.yaml"], "needs --device NAME"),
    (["--columns", "name,time_s"], "column 'time_s' needs --device NAME"),
])
def test_options_the_device_cannot_serve_are_refused(args, message):
    result = invoke("table", "lenet5", *args)
    assert result.exit_code == 2
    assert message in result.output + result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_tf32_bounds_float32_by_the_tensor_core_peak():
    device = table_json("resnet18", "--device", "a100-sxm-80gb", "--tf32")["device"]
    assert (device["math"], device["peak"]) == ("tf32", 156 * 10**12)


# ----------------------------------------------------------------------------- the contract
def test_json_gains_the_contract_keys_and_changes_nothing_else():
    plain = table_json("resnet18")
    bounded = table_json("resnet18", "--device", "h100-sxm")
    assert list(bounded) == [*plain, "device"]
    for with_device, without in zip(bounded["layers"], plain["layers"]):
        assert ROOFLINE_ROW_KEYS <= set(with_device) and with_device["bound"] in ("compute", "memory")
        assert {k: v for k, v in with_device.items() if k not in ROOFLINE_ROW_KEYS} == without
    assert ROOFLINE_TOTAL_KEYS <= set(bounded["totals"])
    assert {k: v for k, v in bounded["totals"].items() if k not in ROOFLINE_TOTAL_KEYS} == plain["totals"]
    assert "roofline" in bounded["conventions"] and "roofline" not in plain["conventions"]
    assert {k: v for k, v in bounded["conventions"].items() if k != "roofline"} == plain["conventions"]
    assert set(bounded["device"]["sources"]) == {"peak_flops", "memory_bandwidth", "memory"}


@pytest.mark.parametrize("fmt", ["table", "csv", "markdown", "json"])
def test_without_device_no_format_mentions_a_roofline(fmt):
    output = invoke("table", "lenet5", "--format", fmt).stdout
    assert "oofline" not in output and "bytes_moved" not in output and "bytes moved" not in output


def test_every_format_shows_the_bound(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    text = invoke("table", "lenet5", "--device", "avx2-cpu").stdout
    assert "bytes moved" in text and "FLOP/B" in text and "min time" in text
    assert "- Roofline on generic 8-core AVX2" in text and "Roofline: time >= max(FLOPs / peak" in text
    csv = invoke("table", "lenet5", "--device", "avx2-cpu", "--format", "csv",
                 "--columns", "name,bytes_moved,bound,time_s")
    assert csv.stdout.splitlines()[:2] == ["name,bytes_moved,bound,time_s", f"C1,23536,memory,{23_536 / 51.2e9!r}"]
    markdown = invoke("table", "lenet5", "--device", "avx2-cpu", "--format", "markdown").stdout
    assert "| bytes moved | FLOP/B | bound | min time |" in markdown and "- Roofline on" in markdown


def test_views_move_nothing():
    rows = table_json("lenet5", "--device", "h100-sxm")["layers"]
    [flatten] = [row for row in rows if row["kind"] == "flatten"]
    assert (flatten["bytes_moved"], flatten["time_s"], flatten["roofline_flops"]) == (0, 0.0, 0)


def test_the_views_are_kinds_cnncalc_knows():
    from cnncalc.kinds import KINDS
    from cnncalc.roofline import VIEW_KINDS

    assert VIEW_KINDS == VIEWS and VIEW_KINDS <= set(KINDS)


def test_a_tensor_read_twice_is_read_once(tmp_path):
    spec = write(tmp_path / "twice.yaml", "input: [2, 4, 4]\nlayers:\n  - relu: {name: a}\n  - add: {from: [a, a]}\n")
    add = table_json(spec, "--device", "avx2-cpu")["layers"][1]
    assert add["bytes_moved"] == (32 + 32) * 4  # a once, the output once


@pytest.mark.parametrize("net", ["resnet18", "googlenet"])
def test_folded_rows_sum_their_layers(net):
    rows = table_json(net, "--device", "h100-sxm")
    folded = table_json(net, "--device", "h100-sxm", "--depth", "0")
    assert len(folded["layers"]) < len(rows["layers"])
    for key in ("roofline_flops", "bytes_moved"):
        assert sum(row[key] for row in folded["layers"]) == sum(row[key] for row in rows["layers"])
    assert folded["totals"] == rows["totals"]
    for row in folded["layers"]:
        expected = row["roofline_flops"] / row["bytes_moved"] if row["bytes_moved"] else 0
        assert row["intensity"] == pytest.approx(expected)


def test_the_table_with_a_device_imports_nothing_heavy():
    code = ("import sys\nfrom cnncalc.cli import main\ntry:\n    main(['table', 'resnet18', '--device', 'h100-sxm'])\n"
            "except SystemExit:\n    pass\nprint(sorted(m for m in ('numpy', 'torch', 'onnx') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stderr
