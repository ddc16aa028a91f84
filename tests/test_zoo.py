"""The model zoo (specs/*.yaml) against published figures and hand-written torch references.

Tests marked by a ``ref`` fixture need torch and skip without it; the rest need only cnncalc.
The torch models (tests/zoo_reference.py) are measured on the meta device: real shapes for
FlopCounterMode and the hooks, no weights or arithmetic, so the whole file takes seconds.
"""
from __future__ import annotations

import functools
import importlib
import sys
from pathlib import Path

import pytest

import cnncalc

SPECS = Path(__file__).resolve().parent.parent / "specs"

# Exact trainable params (torch's parameters() count) of every zoo spec. Published figures
# (torchvision / Keras / Caffe / lecture) where there is one; the others are hand sums of the
# layer list that tests/zoo_reference.py's torch models confirm.
EXPECTED_TRAINABLE = {
    "lenet5": 61_706,                  # lecture table
    "lenet5_original": 60_840,         # 156 + 12 + 1,516 (C3's table) + 32 + 48,120 + 10,164 + 840 (RBF)
    "alexnet": 62_378_344,             # one tower (Caffe's two-group net: 60,965,224)
    "alexnet_torchvision": 61_100_840,
    "vgg11": 132_863_336,
    "vgg11_lrn": 132_863_336,          # A-LRN: LRN has no params
    "vgg13": 133_047_848,
    "vgg16_c": 133_638_952,            # D minus 8 weights per 3x3 -> 1x1 in conv3_3, conv4_3, conv5_3
    "vgg16": 138_357_544,
    "vgg16_bn": 138_365_992,
    "vgg19": 143_667_240,
    "googlenet": 6_624_904,
    "googlenet_paper": 6_998_552,      # 6,990,272 weights (tests/test_googlenet_table.py) + 8,280 biases
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "mobilenet_v1": 4_231_976,
    "mobilenet_v2": 3_504_872,
    "unet": 31_030_658,                # the paper's net: valid convs, 572x572 -> 388x388
    "unet_padded": 31_030_658,         # padding changes no parameter count
    "dcgan_generator": 3_576_704,
    "audio_cnn_1d": 559_114,
    "c3d": 79_991_015,
    # torchvision's models (weights=None), issue 12's table; tests/zoo_reference.py builds torchvision's own
    "squeezenet1_0": 1_248_424,
    "squeezenet1_1": 1_235_496,
    "densenet121": 7_978_856,
    "densenet169": 14_149_480,
    "shufflenet_v2_x1_0": 2_278_604,
    "mnasnet1_0": 4_383_312,
    "resnext50_32x4d": 25_028_904,
    "wide_resnet50_2": 68_883_240,
    "efficientnet_b0": 5_288_548,
    "efficientnet_b3": 12_233_232,
    "mobilenet_v3_small": 2_542_856,
    "mobilenet_v3_large": 5_483_032,
    "convnext_tiny": 28_589_128,
    "regnet_y_400mf": 4_344_144,
    "inception_v3": 23_834_568,       # no aux head
    "fcn_resnet50": 32_957_013,       # no aux head, 21 classes
    "r3d_18": 33_371_472,
}

# Specs whose every size is whole: they must also analyze under the lecture's strict rounding.
EXACT_FIT = ["lenet5", "lenet5_original", "alexnet", "vgg11", "vgg11_lrn", "vgg13", "vgg16_c", "vgg16",
             "vgg16_bn", "vgg19", "googlenet_paper", "unet", "unet_padded", "dcgan_generator"]

# Exact MACs (torch.utils.flop_counter's count, bias excluded) of the specs whose MACs this file
# pins without torch; test_macs_vs_torch checks every spec against its torch reference.
EXPECTED_MACS = {
    "googlenet_paper": 1_582_671_872,
    "unet": 150_428_424_448,           # 572x572 tile
    "unet_padded": 192_384_335_872,    # 512x512
    # issue 12's table: torch.utils.flop_counter.FlopCounterMode / 2, batch 1
    "squeezenet1_0": 818_924_576,
    "squeezenet1_1": 349_151_936,
    "densenet121": 2_834_161_664,
    "densenet169": 3_359_843_328,
    "shufflenet_v2_x1_0": 144_907_992,
    "mnasnet1_0": 314_415_872,
    "resnext50_32x4d": 4_230_479_872,
    "wide_resnet50_2": 11_398_021_120,
    "efficientnet_b0": 385_814_752,
    "efficientnet_b3": 1_827_141_392,
    "mobilenet_v3_small": 56_510_400,
    "mobilenet_v3_large": 216_589_760,
    "convnext_tiny": 4_455_531_264,
    "regnet_y_400mf": 401_842_848,
    "inception_v3": 5_713_216_096,
    "fcn_resnet50": 142_725_772_800,
    "r3d_18": 40_696_553_472,
}

# (spec, layer name, output shape [C, *spatial])
SHAPES = [
    ("lenet5", "C1", [6, 28, 28]), ("lenet5", "S2", [6, 14, 14]), ("lenet5", "C3", [16, 10, 10]),
    ("lenet5", "S4", [16, 5, 5]), ("lenet5", "C5", [120, 1, 1]), ("lenet5", "F6", [84]),
    ("lenet5", "OUTPUT", [10]),
    ("lenet5_original", "S2", [6, 14, 14]), ("lenet5_original", "S4", [16, 5, 5]),
    ("lenet5_original", "OUTPUT", [10]),
    ("alexnet", "conv1", [96, 55, 55]), ("alexnet", "pool1", [96, 27, 27]), ("alexnet", "conv2", [256, 27, 27]),
    ("alexnet", "pool2", [256, 13, 13]), ("alexnet", "conv5", [256, 13, 13]), ("alexnet", "pool5", [256, 6, 6]),
    ("alexnet", "fc6", [4096]), ("alexnet", "fc8", [1000]),
    ("alexnet_torchvision", "conv1", [64, 55, 55]), ("alexnet_torchvision", "pool5", [256, 6, 6]),
    ("alexnet_torchvision", "avgpool", [256, 6, 6]), ("alexnet_torchvision", "fc8", [1000]),
    ("vgg16", "conv1_1", [64, 224, 224]), ("vgg16", "pool1", [64, 112, 112]), ("vgg16", "pool3", [256, 28, 28]),
    ("vgg16", "conv5_3", [512, 14, 14]), ("vgg16", "pool5", [512, 7, 7]), ("vgg16", "fc6", [4096]),
    ("vgg16", "fc8", [1000]),
    ("vgg11", "pool5", [512, 7, 7]), ("vgg13", "pool5", [512, 7, 7]), ("vgg19", "conv5_4", [512, 14, 14]),
    ("vgg19", "pool5", [512, 7, 7]), ("vgg16_bn", "bn5_3", [512, 14, 14]), ("vgg16_bn", "pool5", [512, 7, 7]),
    ("vgg16_c", "conv3_3", [256, 56, 56]), ("vgg16_c", "pool5", [512, 7, 7]),
    # vgg11_lrn is in paper notation without names: cnncalc's default names
    ("vgg11_lrn", "lrn1", [64, 224, 224]), ("vgg11_lrn", "conv8", [512, 14, 14]),
    ("vgg11_lrn", "pool5", [512, 7, 7]), ("vgg11_lrn", "fc3", [1000]),
    ("googlenet", "conv1.conv", [64, 112, 112]), ("googlenet", "maxpool1", [64, 56, 56]),
    ("googlenet", "maxpool2", [192, 28, 28]), ("googlenet", "inception_3a", [256, 28, 28]),
    ("googlenet", "inception_3a.branch3.1.conv", [32, 28, 28]), ("googlenet", "inception_3b", [480, 28, 28]),
    ("googlenet", "maxpool3", [480, 14, 14]), ("googlenet", "inception_4a", [512, 14, 14]),
    ("googlenet", "inception_4e", [832, 14, 14]), ("googlenet", "maxpool4", [832, 7, 7]),
    ("googlenet", "inception_5b", [1024, 7, 7]), ("googlenet", "fc", [1000]),
    ("resnet18", "layer1.1", [64, 56, 56]), ("resnet18", "layer2.0.downsample.0", [128, 28, 28]),
    ("resnet18", "layer4.1", [512, 7, 7]),
    ("resnet34", "layer3.5", [256, 14, 14]),
    ("resnet50", "conv1", [64, 112, 112]), ("resnet50", "maxpool", [64, 56, 56]),
    ("resnet50", "layer1.0.downsample.0", [256, 56, 56]), ("resnet50", "layer1.2", [256, 56, 56]),
    ("resnet50", "layer2.0.conv2", [128, 28, 28]), ("resnet50", "layer3.1.conv2", [256, 14, 14]),
    ("resnet50", "layer3.5", [1024, 14, 14]), ("resnet50", "layer4.2", [2048, 7, 7]),
    ("resnet50", "avgpool", [2048, 1, 1]), ("resnet50", "fc", [1000]),
    ("resnet101", "layer3.22", [1024, 14, 14]),
    ("resnet152", "layer2.7", [512, 28, 28]), ("resnet152", "layer3.35", [1024, 14, 14]),
    ("mobilenet_v1", "conv1", [32, 112, 112]), ("mobilenet_v1", "conv_dw_2", [64, 56, 56]),
    ("mobilenet_v1", "conv_pw_13", [1024, 7, 7]), ("mobilenet_v1", "avgpool", [1024, 1, 1]),
    ("mobilenet_v2", "features.1.project", [16, 112, 112]), ("mobilenet_v2", "features.3", [24, 56, 56]),
    ("mobilenet_v2", "features.10", [64, 14, 14]), ("mobilenet_v2", "features.17.project", [320, 7, 7]),
    ("mobilenet_v2", "features.18.conv", [1280, 7, 7]), ("mobilenet_v2", "classifier", [1000]),
    ("googlenet_paper", "conv1", [64, 112, 112]), ("googlenet_paper", "pool1", [64, 56, 56]),
    ("googlenet_paper", "conv2", [192, 56, 56]), ("googlenet_paper", "pool2", [192, 28, 28]),
    ("googlenet_paper", "inception_3a.5x5", [32, 28, 28]), ("googlenet_paper", "inception_3b", [480, 28, 28]),
    ("googlenet_paper", "pool3", [480, 14, 14]), ("googlenet_paper", "inception_4e", [832, 14, 14]),
    ("googlenet_paper", "pool4", [832, 7, 7]), ("googlenet_paper", "inception_5b", [1024, 7, 7]),
    ("googlenet_paper", "pool5", [1024, 1, 1]), ("googlenet_paper", "prob", [1000]),
    # the paper's U-Net (Fig. 1): valid convs, skips centre-cropped before each concat
    ("unet", "down1.relu2", [64, 568, 568]), ("unet", "pool1", [64, 284, 284]),
    ("unet", "down2.relu2", [128, 280, 280]), ("unet", "down3.relu2", [256, 136, 136]),
    ("unet", "down4.relu2", [512, 64, 64]), ("unet", "down5.relu2", [1024, 28, 28]),
    ("unet", "up4", [512, 56, 56]), ("unet", "cat4", [1024, 56, 56]), ("unet", "dec4.relu2", [512, 52, 52]),
    ("unet", "up3", [256, 104, 104]), ("unet", "cat3", [512, 104, 104]), ("unet", "up2", [128, 200, 200]),
    ("unet", "cat2", [256, 200, 200]), ("unet", "up1", [64, 392, 392]), ("unet", "cat1", [128, 392, 392]),
    ("unet", "dec1.relu2", [64, 388, 388]), ("unet", "out", [2, 388, 388]),
    ("unet_padded", "down1.relu2", [64, 512, 512]), ("unet_padded", "down5.relu2", [1024, 32, 32]),
    ("unet_padded", "up4", [512, 64, 64]), ("unet_padded", "cat4", [1024, 64, 64]),
    ("unet_padded", "cat1", [128, 512, 512]), ("unet_padded", "out", [2, 512, 512]),
    ("dcgan_generator", "convt1", [512, 4, 4]), ("dcgan_generator", "convt2", [256, 8, 8]),
    ("dcgan_generator", "convt5", [3, 64, 64]),
    ("audio_cnn_1d", "conv1", [128, 8000]), ("audio_cnn_1d", "pool1", [128, 2000]),
    ("audio_cnn_1d", "pool3", [256, 125]), ("audio_cnn_1d", "pool4", [512, 31]),
    ("audio_cnn_1d", "avgpool", [512, 1]), ("audio_cnn_1d", "fc", [10]),
    ("c3d", "conv1a", [64, 16, 112, 112]), ("c3d", "pool1", [64, 16, 56, 56]), ("c3d", "pool2", [128, 8, 28, 28]),
    ("c3d", "pool4", [512, 2, 7, 7]), ("c3d", "pool5", [512, 1, 4, 4]), ("c3d", "fc6", [4096]),
    ("c3d", "fc8", [487]),
]

ZOO = sorted(EXPECTED_TRAINABLE)
ELEMENTWISE = {"relu", "leaky_relu", "sigmoid", "tanh", "gelu", "softmax", "dropout"}
WITH_PARAMS = {"conv", "conv_transpose", "linear", "batchnorm"}
# Specs written without torch-style names (so rows cannot be paired with torch modules by name).
UNNAMED = {"vgg11_lrn"}


@functools.lru_cache(maxsize=None)
def report(stem: str, rounding: str = "floor") -> dict:
    return cnncalc.analyze(cnncalc.load_spec(SPECS / f"{stem}.yaml"), rounding=rounding).to_dict()


def rows_by_name(stem: str) -> dict:
    return {row["name"]: row for row in report(stem)["layers"]}


@pytest.fixture(scope="module")
def ref():
    """tests/zoo_reference.py, which needs torch."""
    pytest.importorskip("torch")
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    return importlib.import_module("zoo_reference")


# --------------------------------------------------------------------------- cnncalc only
def test_zoo_has_exactly_the_expected_specs():
    """A new zoo spec needs an entry in EXPECTED_TRAINABLE (and a torch reference)."""
    assert sorted(p.stem for p in SPECS.glob("*.yaml")) == ZOO


@pytest.mark.parametrize("stem", ZOO)
def test_spec_header(stem):
    text = (SPECS / f"{stem}.yaml").read_text(encoding="utf-8")
    assert text.startswith("# Source: "), "every zoo spec starts with a `# Source:` comment"
    spec = cnncalc.load_spec(SPECS / f"{stem}.yaml")
    assert spec.name and spec.description


@pytest.mark.parametrize("stem", ZOO)
def test_trainable_params_exact(stem):
    totals = report(stem)["totals"]
    assert totals["trainable_params"] == EXPECTED_TRAINABLE[stem]
    assert totals["params"] == totals["trainable_params"] + totals["non_trainable_params"]
    assert sum(row["params"] for row in report(stem)["layers"]) == totals["params"]


@pytest.mark.parametrize("stem,name,shape", SHAPES, ids=[f"{s}:{n}" for s, n, _ in SHAPES])
def test_layer_output_shape(stem, name, shape):
    rows = rows_by_name(stem)
    assert name in rows, f"{stem} has no layer named {name!r}"
    assert rows[name]["output_shape"] == shape


@pytest.mark.parametrize("stem", EXACT_FIT)
def test_exact_fit_under_strict_rounding(stem):
    assert report(stem)["warnings"] == []
    assert report(stem, "strict")["totals"] == report(stem)["totals"]


@pytest.mark.parametrize("stem", sorted(EXPECTED_MACS))
def test_macs_exact(stem):
    assert report(stem)["totals"]["macs"] == EXPECTED_MACS[stem]


# (level, skip shape, up-convolution shape): Fig. 1's "copy and crop" arrows
UNET_CROPS = [
    (4, [512, 64, 64], [512, 56, 56]),
    (3, [256, 136, 136], [256, 104, 104]),
    (2, [128, 280, 280], [128, 200, 200]),
    (1, [64, 568, 568], [64, 392, 392]),
]


@pytest.mark.parametrize("level,skip,up", UNET_CROPS, ids=[f"cat{c[0]}" for c in UNET_CROPS])
def test_unet_crop_and_concat(level, skip, up):
    """Each skip is centre-cropped to the up-convolution's size (an even difference: 8, 32, 80
    and 176 pixels, 4 to 88 on each side), then the two are concatenated on channels."""
    rows = rows_by_name("unet")
    assert rows[f"down{level}.relu2"]["output_shape"] == skip
    assert rows[f"up{level}"]["output_shape"] == up
    cat = rows[f"cat{level}"]
    assert cat["kind"] == "concat"
    assert cat["output_shape"] == [skip[0] + up[0], *up[1:]]
    assert all((s - u) % 2 == 0 and s > u for s, u in zip(skip[1:], up[1:]))
    assert cat["params"] == cat["macs"] == 0


def test_unet_padded_needs_no_crop():
    rows = rows_by_name("unet_padded")
    for level in range(1, 5):
        assert rows[f"down{level}.relu2"]["output_shape"][1:] == rows[f"up{level}"]["output_shape"][1:]


def test_zoo_names_resolve():
    """`cnncalc.load_spec("vgg16")` finds the zoo file by its name."""
    assert cnncalc.analyze(cnncalc.load_spec("vgg16")).to_dict()["totals"]["trainable_params"] == 138_357_544


# --------------------------------------------------------------------------- against torch
@pytest.mark.parametrize("stem", ZOO)
def test_params_vs_torch(ref, stem):
    m = ref.measure(stem)
    totals = report(stem)["totals"]
    assert totals["trainable_params"] == m.trainable_params
    assert totals["params"] == m.params  # + batch-norm running mean / var


@pytest.mark.parametrize("stem", ZOO)
def test_macs_vs_torch(ref, stem):
    assert report(stem)["totals"]["macs"] == ref.measure(stem).macs


@pytest.mark.parametrize("stem", ZOO)
def test_input_and_output_vs_torch(ref, stem):
    r = report(stem)
    assert tuple(r["input_shape"]) == ref.REFERENCES[stem].input_shape
    assert r["layers"][-1]["output_shape"] == ref.measure(stem).output_shape


@pytest.mark.parametrize("stem", ZOO)
def test_named_layers_vs_torch(ref, stem):
    """Every spec row named like a torch module has its output shape; every layer with
    parameters has a torch namesake with the same count (running stats included)."""
    m = ref.measure(stem)
    compared = 0
    for row in report(stem)["layers"]:
        name = row["name"]
        if row["kind"] in WITH_PARAMS and stem not in UNNAMED:
            assert name in m.module_params, f"{stem}: no torch module named {name!r}"
            assert row["params"] == m.module_params[name], name
        if name in m.shapes and row["kind"] not in ELEMENTWISE:
            assert row["output_shape"] == m.shapes[name], name
            compared += 1
    assert compared >= 5


def test_references_match_published_counts(ref):
    for key, reference in ref.REFERENCES.items():
        if reference.published is not None:
            assert ref.measure(key).trainable_params == reference.published, key


def test_unet_variants_differ_only_in_macs(ref):
    """The paper's valid-conv U-Net and the padded variant have the same params; torch agrees
    with cnncalc on both, and on the paper net's 388x388 output."""
    original, padded = ref.measure("unet"), ref.measure("unet_padded")
    assert original.output_shape == [2, 388, 388] and padded.output_shape == [2, 512, 512]
    assert original.trainable_params == padded.trainable_params == 31_030_658
    assert (original.macs, padded.macs) == (EXPECTED_MACS["unet"], EXPECTED_MACS["unet_padded"])


@pytest.mark.parametrize("level,skip,up", UNET_CROPS, ids=[f"cat{c[0]}" for c in UNET_CROPS])
def test_unet_crop_sizes_vs_torch(ref, level, skip, up):
    """torch crops the skip inside forward (no module to hook): the sizes it crops from and to
    are the outputs of down{level} and up{level}, and dec{level}.conv1 sees the concat."""
    m = ref.measure("unet")
    assert m.shapes[f"down{level}"] == skip
    assert m.shapes[f"up{level}"] == up
    cat = rows_by_name("unet")[f"cat{level}"]["output_shape"]
    conv1 = m.shapes[f"dec{level}.conv1"]
    assert conv1[1:] == [s - 2 for s in cat[1:]]  # a valid 3x3 conv on the concat
    assert m.module_params[f"dec{level}.conv1"] == (cat[0] * 9 + 1) * conv1[0]


def test_vgg16_activation_count(ref):
    """Outputs of VGG-16's conv, pool and fc layers (ReLU in place), batch 1 at 224x224; the
    CS231n walk-through's 15,237,608 also counts the 150,528 input values."""
    assert ref.vgg_activation_count("D") == 15_087_080
    assert ref.vgg_activation_count("D", include_input=True) == 15_237_608


REAL_FORWARD = [("lenet5", (1, 32, 32)), ("dcgan_generator", (100, 1, 1)), ("googlenet", (3, 64, 64)),
                ("resnet18", (3, 64, 64)), ("mobilenet_v2", (3, 64, 64))]


@pytest.mark.parametrize("key,shape", REAL_FORWARD, ids=[key for key, _ in REAL_FORWARD])
def test_meta_device_counts_like_a_real_forward(ref, key, shape):
    """The references run on the meta device; a real CPU forward counts the same FLOPs."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counts = []
    for device in ("meta", "cpu"):
        with torch.device(device):
            model = ref.REFERENCES[key].build().eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *shape, device=device))
        counts.append(counter.get_total_flops())
    assert counts[0] == counts[1] > 0


# The zoo nets whose new kinds (the SE multiply, split and shuffle, layer scale, layer norm,
# permute) must really run: a small forward pass in NumPy and in torch, every row's shape checked.
RUNS_NEW_KINDS = ["shufflenet_v2_x1_0", "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny", "regnet_y_400mf"]


@pytest.mark.parametrize("stem", RUNS_NEW_KINDS)
def test_new_kinds_run_forward_in_numpy_and_torch(stem):
    pytest.importorskip("torch")
    from dataclasses import replace

    from cnncalc.api import analyze_spec
    from cnncalc.backends.forward import compare_outputs, run_forward
    from cnncalc.backends.registry import load_backend

    spec = cnncalc.load_spec(SPECS / f"{stem}.yaml").with_input((3, 32, 32))
    plan = analyze_spec(replace(spec, rounding=None), rounding="floor").plan
    kinds = {step.kind for step in plan.steps}
    assert kinds & {"mul", "split", "channel_shuffle", "layer_scale", "layernorm"}, kinds
    ours = run_forward(plan, load_backend("numpy"), keep=lambda step: True)
    theirs = run_forward(plan, load_backend("torch"), keep=lambda step: True)
    assert all(r.ok for r in ours + theirs) and len(ours) == len(plan.steps)
    assert all(d.ok for d in compare_outputs(ours, theirs, 1e-3))
