"""The zoo's ResNets hold each block's last ReLU inside the block (the residual's `after`), as
torchvision's BasicBlock / Bottleneck do: `--depth 0` shows one row per block, and every layer
keeps its torchvision name (`layer1.0.relu`) at full depth.

The torch comparisons use tests/zoo_reference.py and skip without torch; the rest need only cnncalc.
"""
from __future__ import annotations

import importlib
import json
import re

import pytest
from click.testing import CliRunner

from cnncalc.cli import cli

BLOCK_RELU = re.compile(r"layer\d+\.\d+\.relu")
BLOCK = re.compile(r"layer\d+\.\d+")
STAGES = {"resnet18": [2, 2, 2, 2], "resnet50": [3, 4, 6, 3]}
STEM = ["conv1", "bn1", "relu", "maxpool"]
HEAD = ["avgpool", "flatten1", "fc"]

# Every row of `cnncalc table resnet18` in order, as before the block ReLUs moved into `after`.
RESNET18_NAMES = [
    "conv1", "bn1", "relu", "maxpool",
    "layer1.0.conv1", "layer1.0.bn1", "layer1.0.relu1", "layer1.0.conv2", "layer1.0.bn2",
    "layer1.0", "layer1.0.relu",
    "layer1.1.conv1", "layer1.1.bn1", "layer1.1.relu1", "layer1.1.conv2", "layer1.1.bn2",
    "layer1.1", "layer1.1.relu",
    "layer2.0.conv1", "layer2.0.bn1", "layer2.0.relu1", "layer2.0.conv2", "layer2.0.bn2",
    "layer2.0.downsample.0", "layer2.0.downsample.1", "layer2.0", "layer2.0.relu",
    "layer2.1.conv1", "layer2.1.bn1", "layer2.1.relu1", "layer2.1.conv2", "layer2.1.bn2",
    "layer2.1", "layer2.1.relu",
    "layer3.0.conv1", "layer3.0.bn1", "layer3.0.relu1", "layer3.0.conv2", "layer3.0.bn2",
    "layer3.0.downsample.0", "layer3.0.downsample.1", "layer3.0", "layer3.0.relu",
    "layer3.1.conv1", "layer3.1.bn1", "layer3.1.relu1", "layer3.1.conv2", "layer3.1.bn2",
    "layer3.1", "layer3.1.relu",
    "layer4.0.conv1", "layer4.0.bn1", "layer4.0.relu1", "layer4.0.conv2", "layer4.0.bn2",
    "layer4.0.downsample.0", "layer4.0.downsample.1", "layer4.0", "layer4.0.relu",
    "layer4.1.conv1", "layer4.1.bn1", "layer4.1.relu1", "layer4.1.conv2", "layer4.1.bn2",
    "layer4.1", "layer4.1.relu",
    "avgpool", "flatten1", "fc",
]


def table(stem: str, *options: str) -> dict:
    result = CliRunner().invoke(cli, ["table", stem, "--format", "json", *options])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def blocks(stem: str) -> list[str]:
    return [f"layer{stage}.{b}" for stage, count in enumerate(STAGES[stem], start=1) for b in range(count)]


@pytest.mark.parametrize("stem", sorted(STAGES))
def test_depth_0_lists_the_stem_the_blocks_and_the_head(stem):
    folded = table(stem, "--depth", "0")
    rows = folded["layers"]
    assert [row["name"] for row in rows] == STEM + blocks(stem) + HEAD
    assert not [row["name"] for row in rows if BLOCK_RELU.fullmatch(row["name"])]
    assert [row["kind"] for row in rows if BLOCK.fullmatch(row["name"])] == ["residual"] * len(blocks(stem))
    assert all(row["depth"] == 0 for row in rows)
    assert folded["totals"] == table(stem)["totals"]


@pytest.mark.parametrize("stem", sorted(STAGES))
def test_each_block_relu_is_the_blocks_after(stem):
    """`layerX.Y.relu` follows its block's add, one level inside the block, and keeps its shape."""
    rows = table(stem)["layers"]
    names = [row["name"] for row in rows]
    for block in blocks(stem):
        relu = rows[names.index(f"{block}.relu")]
        add = rows[names.index(block)]
        assert relu["index"] == add["index"] + 1
        assert (add["kind"], add["depth"]) == ("add", 0)
        assert (relu["kind"], relu["depth"]) == ("relu", 1)
        assert relu["path"].endswith(".residual.after[0]")
        assert relu["input_shape"] == relu["output_shape"] == add["output_shape"]
        assert relu["receptive_field"] == add["receptive_field"]


def test_resnet18_names_unchanged():
    assert [row["name"] for row in table("resnet18")["layers"]] == RESNET18_NAMES


# --------------------------------------------------------------------------- against torch
@pytest.fixture(scope="module")
def ref():
    pytest.importorskip("torch")
    return importlib.import_module("zoo_reference")


@pytest.mark.parametrize("stem", sorted(STAGES))
def test_names_are_the_reference_modules(ref, stem):
    """Every row is named as a module of tests/zoo_reference.py's torchvision-named ResNet (the
    block rows as the blocks, flatten1 as its `flatten`), and the leaf modules run in the rows' order."""
    m = ref.measure(stem)
    modules = set(m.module_params)
    leaves = {name for name in modules if not any(other.startswith(name + ".") for other in modules)}
    torch_names = {"flatten" if name == "flatten1" else name for name in (row["name"] for row in table(stem)["layers"])}
    assert torch_names == leaves | set(blocks(stem))
    rows = [name for name in (row["name"] for row in table(stem)["layers"]) if name in leaves]
    assert rows == [name for name in m.shapes if name in leaves and name != "flatten"]
