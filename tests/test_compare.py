"""`cnncalc compare` and `table --compat`: every tool's count, reproduced, tested against the tools.

The tool tests run torchinfo, fvcore, ptflops (both backends), ultralytics-thop, torchscan,
calflops and Keras themselves (tests/compare_tools.py) on cnncalc's PyTorch export and assert that
cnncalc's reproduction is their number exactly: on small specs that together use every layer kind,
and on every zoo network (at smaller inputs). They skip when the tools are not installed. The other tests need
no tool: the JSON contract, the differences adding up, the known miscounts named with their exact
counts, the command line.
"""
from __future__ import annotations

import functools
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

import cnncalc
from cnncalc import zoo
from cnncalc.api import analyze_spec
from cnncalc.cli import cli
from cnncalc.conventions import NAMES, by_name, compare, conventions
from cnncalc.conventions.exported import rows

import compare_tools
from test_export_pytorch import SMALL

# Small specs beyond test_export_pytorch's: grouped and depthwise transposed convolutions (calflops
# gives the depthwise one 0 MACs), 2-D and 3-D upsampling by a scale factor (calflops raises).
EXTRA = {
    "grouped transposed": {"name": "grouped transposed", "input": [8, 5, 5], "layers": [
        {"conv_transpose": {"filters": 8, "kernel": 3, "stride": 2, "padding": 1, "groups": 8}, "name": "depthwise_up"},
        {"conv_transpose": {"filters": 6, "kernel": 2, "stride": 2, "groups": 2, "bias": False}, "name": "grouped_up"},
        {"conv": {"filters": 4, "kernel": 3, "groups": 2}}, {"upsample": {"scale_factor": 2}}, "flatten",
        {"linear": 3}]},
}
SPECS = {**{name: spec for name, spec in SMALL.items() if name != "named inputs"}, **EXTRA}

# Every zoo network is run through every tool, at a smaller input where its own is large (the
# rules do not depend on the size; the tools' time does): 32x32 for the ImageNet networks, else:
SMALL_INPUTS = {"alexnet": (3, 75, 75), "alexnet_torchvision": (3, 64, 64), "inception_v3": (3, 75, 75),
                "googlenet_paper": None, "unet": (1, 188, 188), "c3d": (3, 16, 32, 32), "r3d_18": (3, 4, 16, 16),
                "lenet5": None, "lenet5_original": None, "dcgan_generator": None, "audio_cnn_1d": None}


def zoo_spec(name):
    spec = cnncalc.load_spec(name)
    shape = SMALL_INPUTS.get(name, (spec.input[0], 32, 32))
    return spec if shape is None else spec.with_input(shape)


def analysed(spec):
    return analyze_spec(spec)


# ----------------------------------------------------------------------------- against the tools
def disagreements(spec) -> list[str]:
    """Every installed tool run on the spec's export: its (params, ops) against the convention's,
    and where the convention says the tool raises, that it raises so. One line per disagreement."""
    packages = sorted({compare_tools.PACKAGE_OF[tool] for tool in compare_tools.TOOLS if compare_tools.available(tool)})
    if not packages:
        pytest.skip("none of the counting tools is installed")
    analysis, model, shapes = compare_tools.exported(spec)
    results = {result.convention.name: result for result in compare(analysis, list(compare_tools.TOOLS)).results}
    found = []
    for package in packages:
        expected = {name: result for name, result in results.items() if compare_tools.PACKAGE_OF[name] == package}
        try:
            counted = compare_tools.run_package(package, model, shapes)
        except TypeError as exc:
            if not (all(r.fails for r in expected.values())
                    and "unsupported operand type(s) for ** or pow(): 'tuple' and 'int'" in str(exc)):
                found.append(f"{package} raised {exc!r}")
            continue
        for name, result in expected.items():
            if result.fails or counted[name] != (result.params, result.ops):
                found.append(f"{name}: the tool {counted[name]}, cnncalc's reproduction {(result.params, result.ops)}")
    return found


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_kind_counts_as_each_tool_counts_it(name):
    assert disagreements(SPECS[name]) == []


@pytest.mark.parametrize("name", zoo.model_names())
def test_zoo_networks_count_as_each_tool_counts_them(name):
    assert disagreements(zoo_spec(name)) == []


def test_the_small_specs_use_every_kind():
    tested = {row.kind for spec in SPECS.values() for row in analysed(spec).report.layers}
    assert {step.kind for spec in SMALL.values() for step in analysed(spec).plan.steps} <= tested


@pytest.mark.parametrize("name", ["efficientnet_b0", "densenet121", "mobilenet_v3_small", "regnet_y_400mf", "unet",
                                  "dcgan_generator", "audio_cnn_1d", "shufflenet_v2_x1_0", "googlenet_paper"])
def test_keras_counts_cnncalcs_params(name):
    if not compare_tools.available("keras"):
        pytest.skip("keras is not installed")
    analysis = analysed(name)
    assert compare_tools.keras_params(analysis) == compare(analysis, ["keras"]).results[0].params
    assert analysis.report.totals.params == compare(analysis, ["keras"]).results[0].params


def test_keras_counts_every_parameter_kind_as_cnncalc():
    if not compare_tools.available("keras"):
        pytest.skip("keras is not installed")
    analysis = analysed(SMALL["flat"])  # linear, batch, layer and group norm, per-channel PReLU
    assert compare_tools.keras_params(analysis) is None  # the layer scale has no Keras layer
    assert compare_tools.keras_params(analysis, skip=("layer_scale",)) == analysis.report.totals.params - 12
    assert compare(analysis, ["keras"]).results[0].params == analysis.report.totals.params


# torchvision's own modules: for these networks every tool but torchscan counts torchvision's model
# exactly as the export (torchscan reads torchvision's int kernel_size=3 of a max pool as a window
# of 3, the export writes (3, 3)). The README lists the networks where torchvision calls functions
# instead of modules.
SAME_AS_TORCHVISION = ["resnet18", "efficientnet_b0", "convnext_tiny"]


@pytest.mark.parametrize("name", SAME_AS_TORCHVISION)
def test_torchvision_models_count_as_their_export(name):
    import torchvision_models

    if not torchvision_models.available():
        pytest.skip("torchvision (and Pillow) are not installed")
    import torch

    spec = cnncalc.load_spec(name).with_input((3, 32, 32))
    analysis = analysed(spec)
    model = compare_tools.zeroed(lambda: torchvision_models.build(name))
    tools = [tool for tool in compare_tools.TOOLS if not tool.startswith("torchscan") and compare_tools.available(tool)]
    for package in sorted({compare_tools.PACKAGE_OF[tool] for tool in tools}):
        with torch.no_grad():
            counted = compare_tools.run_package(package, model, [(3, 32, 32)])
        for result in compare(analysis, [tool for tool in tools if tool in counted]).results:
            assert counted[result.convention.name] == (result.params, result.ops), result.convention.name


@functools.lru_cache(maxsize=None)
def torchvision_weights():
    """{zoo name: the DEFAULT weights' meta} for the zoo's torchvision networks."""
    import torchvision_models

    torchvision_models.models()
    from torchvision.models import get_model_weights

    names = {"alexnet_torchvision": "alexnet"}
    found = {}

    for name in zoo.model_names():
        if name == "alexnet":
            continue  # the paper's AlexNet, not torchvision's
        try:
            found[name] = get_model_weights(names.get(name, name)).DEFAULT.meta
        except (ValueError, KeyError, AttributeError):
            continue
    return found


# Where torchvision's num_params counts a training head the zoo spec leaves out (inference mode).
WITH_AUX_HEAD = {"inception_v3", "fcn_resnet50"}


def test_torchvision_docs_gflops_are_cnncalcs_macs():
    import torchvision_models

    if not torchvision_models.available():
        pytest.skip("torchvision (and Pillow) are not installed")
    metas = torchvision_weights()
    assert len(metas) >= 30
    for name, meta in metas.items():
        spec = cnncalc.load_spec(name)
        if name == "alexnet_torchvision":
            spec = spec.with_input((3, 224, 224))  # the weights' crop size
        result = compare(analysed(spec), ["torchvision-docs"]).results[0]
        if name == "fcn_resnet50":
            assert result.convention.shown(result.ops) == "142.726" != str(meta["_ops"])  # 152.717 with the aux head
            continue
        assert result.convention.shown(result.ops) == str(meta["_ops"]), name
        if name not in WITH_AUX_HEAD:
            assert result.params == meta["num_params"], name
    assert metas["inception_v3"]["num_params"] - compare(analysed("inception_v3"), ["torchvision-docs"]).results[0].params \
        == 3_326_696  # AuxLogits


# ----------------------------------------------------------------------------- without the tools
def test_names_are_every_convention_in_order():
    assert [c.name for c in conventions()] == list(NAMES)
    assert {c.ops_unit for c in conventions()} == {"macs", "flops", "mult-adds", "muls", None}


@pytest.mark.parametrize("name", sorted(SPECS) + ["resnet50", "unet", "lenet5_original", "convnext_tiny"])
def test_differences_add_up_to_each_conventions_count(name):
    spec = SPECS.get(name, name)
    comparison = compare(analysed(spec))
    reference = comparison.reference
    for result in comparison.results:
        params = sum(d.delta for d in result.differences if d.quantity == "params")
        assert result.params - reference.params == params, result.convention.name
        if result.ops is not None:
            ops = sum(d.delta for d in result.differences if d.quantity == "ops")
            assert result.ops - reference.ops == ops, result.convention.name
            assert sum(ops for _, ops in result.per_row) == result.ops
            assert sum(ops for _, ops in result.per_kind.values()) == result.ops
        for difference in result.differences:
            assert difference.delta == sum(delta for _, delta in difference.layers) != 0


def test_the_json_contract():
    result = CliRunner().invoke(cli, ["compare", "resnet50", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # the spec's rounding note goes to stderr
    assert [c["name"] for c in data["conventions"]] == list(NAMES)
    torchinfo = next(c for c in data["conventions"] if c["name"] == "torchinfo")
    assert {key: torchinfo[key] for key in ("version", "params", "ops", "ops_unit")} == {
        "version": "1.8.0", "params": 25_557_032, "ops": 4_089_238_376, "ops_unit": "mult-adds"}
    assert torchinfo["differences"][0] == {
        "quantity": "params", "kind": "batchnorm", "delta": -53_120,
        "reason": "counts parameters() only: running mean and variance are buffers", "miscount": False,
        "layers": torchinfo["differences"][0]["layers"]}
    assert {"kind", "delta", "reason"} <= set(torchinfo["differences"][1])
    docs = next(c for c in data["conventions"] if c["name"] == "torchvision-docs")
    assert (docs["ops"], docs["shown"], docs["ops_label"], docs["ops_unit"]) == (4_089_184_256, "4.089", "GFLOPS", "macs")
    assert next(c for c in data["conventions"] if c["name"] == "keras")["ops"] is None


def test_torchinfo_counts_transposed_convolutions_by_their_outputs():
    """U-Net's 2x2 up-convolutions at stride 2: 4x the output positions, plus the bias."""
    result = compare(analysed("unet"), ["torchinfo"]).results[0]
    difference = next(d for d in result.differences if d.kind == "conv_transpose")
    assert difference.miscount and difference.reason.startswith("torchinfo counts ConvTranspose by output positions")
    up4 = next(row for row in rows(analysed("unet")) if row.name == "up4")
    assert up4.macs == 1024 * 512 * 4 * 28 * 28  # input positions x C_in x C_out/G x kernel
    assert dict(difference.layers)["up4"] == (1024 * 512 * 4 + 512) * 56 * 56 - up4.macs == 4_934_107_136


def test_calflops_gives_a_depthwise_transposed_convolution_0_macs():
    result = compare(analysed(EXTRA["grouped transposed"]), ["calflops-macs"]).results[0]
    difference = next(d for d in result.differences if d.kind == "conv_transpose")
    assert difference.miscount and "(G = 8)" in difference.reason
    layers = dict(difference.layers)
    depthwise = next(row for row in rows(analysed(EXTRA["grouped transposed"])) if row.name == "depthwise_up")
    assert layers["depthwise_up"] == -depthwise.macs == -8 * 9 * 25  # calflops: 0
    assert result.per_row[0][1] == 0


def test_calflops_raising_is_said():
    result = compare(analysed(EXTRA["grouped transposed"]), ["calflops"]).results[0]
    assert not result.runs and result.fails[0][:2] == ("upsample1", "upsample")
    text = CliRunner().invoke(cli, ["compare", "resnet18", "--convention", "calflops"]).output
    assert "FAILS" not in text


def test_thop_counts_what_it_has_no_rule_for_as_0():
    result = compare(analysed("lenet5_original"), ["thop"]).results[0]
    lines = {(d.kind, d.reason): d for d in result.differences}
    subsample = lines[("subsample", "has no rule for Subsample and counts it as 0")]
    assert subsample.miscount and dict(subsample.layers) == {"S2": -6 * 14 * 14, "S4": -16 * 5 * 5}


def test_the_text_names_every_difference_with_its_count():
    result = CliRunner().invoke(cli, ["compare", "unet", "--convention", "torchinfo"])
    assert result.exit_code == 0
    assert ("  MISCOUNT conv_transpose ops +16,913,461,248: torchinfo counts ConvTranspose by output positions: "
            "(weights + bias) x output positions instead of weights x input positions (4 layers, the most "
            "+4,934,107,136 on up4)") in result.output
    markdown = CliRunner().invoke(cli, ["compare", "unet", "--convention", "cnncalc", "--convention", "torchinfo",
                                        "--format", "markdown"])
    assert "| conv_transpose | 5,631,377,408 | 22,544,838,656 |" in markdown.output


def test_compare_refuses_an_unknown_convention():
    result = CliRunner().invoke(cli, ["compare", "lenet5", "--convention", "tensorflow"])
    assert result.exit_code == 2 and "Invalid value for '--convention'" in result.output


def test_compare_reports_a_bad_spec_in_one_line(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("input: [1, 8, 8]\nlayers:\n  - conv: {filters: 2, kernel: 9}\n")
    result = CliRunner().invoke(cli, ["compare", str(spec)])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "error:" in result.output


def test_table_compat_shows_the_tools_columns_and_counts():
    result = CliRunner().invoke(cli, ["table", "lenet5", "--compat", "torchinfo"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[2] == " #  name      kind     output    Param #  Mult-Adds"
    assert " 0  C1        conv     6x28x28       156    122,304" in result.output
    data = json.loads(CliRunner().invoke(cli, ["table", "lenet5", "--compat", "thop", "--format", "json"]).stdout)
    assert data["totals"] == {"params": 61_706, "ops": 416_520 + 0}
    assert data["layers"][0] == {"index": 0, "name": "C1", "kind": "conv", "output_shape": [6, 28, 28],
                                 "params": 156, "ops": 117_600}
    csv_text = CliRunner().invoke(cli, ["table", "lenet5", "--compat", "ptflops", "--format", "csv"]).stdout
    assert csv_text.splitlines()[:2] == ["#,name,kind,output,params,MACs", "0,C1,conv,6x28x28,156,122304"]


@pytest.mark.parametrize("args, message", [
    (["--compat", "nope"], "'nope' is no convention"),
    (["--compat", "thop", "--batch", "2"], "shown at batch 1"),
    (["--compat", "thop", "--depth", "0"], "leave out --columns, --depth, --explain and --device"),
])
def test_table_compat_refuses_what_it_cannot_show(args, message):
    result = CliRunner().invoke(cli, ["table", "lenet5", *args])
    assert result.exit_code == 2 and message in result.output


def test_a_plain_table_imports_no_convention():
    code = ("import sys\nfrom cnncalc.cli import main\ntry:\n    main(['table', 'lenet5'])\nexcept SystemExit:\n    pass\n"
            "assert 'cnncalc.conventions' not in sys.modules and 'torch' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_every_module_the_export_writes_is_known():
    for spec in [*SPECS.values(), *zoo.model_names()]:
        assert [(r.name, r.module, r.kind) for r in rows(analysed(spec)) if not r.known] == [], spec


def test_a_module_no_rule_knows_is_said_not_guessed(monkeypatch):
    from cnncalc.conventions import exported

    monkeypatch.setattr(exported, "KNOWN_MODULES", exported.KNOWN_MODULES - {"ReLU"})
    result = compare(analysed("lenet5_original"), ["thop", "cnncalc"])
    thop, own = result.results
    assert thop.exact and own.exact  # LeNet-5 (original) has no ReLU
    result = compare(analysed("resnet18"), ["thop", "torchvision-docs"])
    thop, docs = result.results
    assert thop.unknown[0] == ("relu", "relu", "ReLU") and docs.exact
    text = CliRunner().invoke(cli, ["compare", "resnet18", "--convention", "thop"]).output
    assert "NOT REPRODUCED on relu (relu): cnncalc has no tested rule for how thop counts ReLU" in text


def test_the_installed_tools_are_the_releases_reproduced():
    """Another release may count otherwise: the pins are in the README's pip line."""
    from importlib.metadata import PackageNotFoundError, version

    for convention in conventions():
        if convention.tool is None:
            continue
        try:
            installed = version(convention.tool)
        except PackageNotFoundError:
            continue
        assert installed == convention.version, (convention.name, installed)
