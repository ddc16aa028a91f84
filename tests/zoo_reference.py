"""Hand-written ``torch.nn`` reference models for the cnncalc model zoo (``specs/*.yaml``).

These builders are the oracle for ``tests/test_zoo.py``. They are written from the papers and
from torchvision's source *independently of the YAML specs* (torchvision itself is not a
dependency), and each one is checked against the published parameter count where there is one.

Module names follow the names used in the specs (which follow the papers / torchvision), so a
test can compare the output shape and parameter count of every spec row whose name is also a
module name here (``conv1_1``, ``inception_3a``, ``layer3.1.conv2``...).

Everything is measured on the ``meta`` device: no weights are allocated or initialised and no
arithmetic is done, but every op still sees real shapes, which is all that
``torch.utils.flop_counter.FlopCounterMode`` and forward hooks need. ``measure(key)`` therefore
costs milliseconds even for VGG-19, C3D or the 572x572 U-Net.
"""
from __future__ import annotations

import functools
from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

Seq = nn.Sequential


def od(*pairs) -> OrderedDict:
    return OrderedDict(pairs)


# --------------------------------------------------------------------------- LeNet-5
def lenet5() -> nn.Module:
    """Lecture table: C1 156, S2 0, C3 2416, S4 0, C5 48120, F6 10164, out 850 = 61,706."""
    return Seq(od(
        ("C1", nn.Conv2d(1, 6, 5)), ("C1_act", nn.Tanh()),
        ("S2", nn.MaxPool2d(2, 2)),
        ("C3", nn.Conv2d(6, 16, 5)), ("C3_act", nn.Tanh()),
        ("S4", nn.MaxPool2d(2, 2)),
        ("C5", nn.Conv2d(16, 120, 5)), ("C5_act", nn.Tanh()),
        ("flatten", nn.Flatten()),
        ("F6", nn.Linear(120, 84)), ("F6_act", nn.Tanh()),
        ("OUTPUT", nn.Linear(84, 10)),
    ))


LENET_C3_TABLE = [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5, 0], [5, 0, 1],
                  [0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5], [3, 4, 5, 0], [4, 5, 0, 1], [5, 0, 1, 2],
                  [0, 1, 3, 4], [1, 2, 4, 5], [0, 2, 3, 5], [0, 1, 2, 3, 4, 5]]  # LeCun et al. Table I


class TableConv2d(nn.Module):
    """C3: output map j is a 5x5 conv over only the input maps table[j] (one conv per map, so the
    parameters and the counted FLOPs are the table's, not a dense conv's)."""

    def __init__(self, table, kernel):
        super().__init__()
        self.table = table
        self.maps = nn.ModuleList(nn.Conv2d(len(inputs), 1, kernel) for inputs in table)

    def forward(self, x):
        return torch.cat([conv(x[:, inputs]) for conv, inputs in zip(self.maps, self.table)], dim=1)


def lenet5_original() -> nn.Module:
    """LeCun et al. 1998: S2/S4 (sum of a 2x2 window x one trainable coefficient + one trainable
    bias per map) = 2x2 average pool followed by a depthwise 1x1 conv (the pool's 1/4 absorbed by
    the coefficient): 12 and 32 parameters, one multiply per output. C3 follows Table I (1,516
    parameters). The Euclidean RBF output layer (840 fixed weights) is a bias-free linear layer."""
    return Seq(od(
        ("C1", nn.Conv2d(1, 6, 5)), ("C1_act", nn.Tanh()),
        ("S2_pool", nn.AvgPool2d(2, 2)), ("S2", nn.Conv2d(6, 6, 1, groups=6)), ("S2_act", nn.Tanh()),
        ("C3", TableConv2d(LENET_C3_TABLE, 5)), ("C3_act", nn.Tanh()),
        ("S4_pool", nn.AvgPool2d(2, 2)), ("S4", nn.Conv2d(16, 16, 1, groups=16)), ("S4_act", nn.Tanh()),
        ("C5", nn.Conv2d(16, 120, 5)), ("C5_act", nn.Tanh()),
        ("flatten", nn.Flatten()),
        ("F6", nn.Linear(120, 84)), ("F6_act", nn.Tanh()),
        ("OUTPUT", nn.Linear(84, 10, bias=False)),
    ))


# --------------------------------------------------------------------------- AlexNet
def alexnet_paper(groups: int = 1) -> nn.Module:
    """Krizhevsky et al. 2012, one tower, 227x227 input. groups=2 gives the two-GPU connectivity
    (conv2, conv4, conv5 see only their own GPU's half): 60,965,224 params instead of 62,378,344."""
    lrn = dict(size=5, alpha=1e-4, beta=0.75, k=2.0)
    return Seq(od(
        ("conv1", nn.Conv2d(3, 96, 11, stride=4)), ("relu1", nn.ReLU()),
        ("norm1", nn.LocalResponseNorm(**lrn)), ("pool1", nn.MaxPool2d(3, 2)),
        ("conv2", nn.Conv2d(96, 256, 5, padding=2, groups=groups)), ("relu2", nn.ReLU()),
        ("norm2", nn.LocalResponseNorm(**lrn)), ("pool2", nn.MaxPool2d(3, 2)),
        ("conv3", nn.Conv2d(256, 384, 3, padding=1)), ("relu3", nn.ReLU()),
        ("conv4", nn.Conv2d(384, 384, 3, padding=1, groups=groups)), ("relu4", nn.ReLU()),
        ("conv5", nn.Conv2d(384, 256, 3, padding=1, groups=groups)), ("relu5", nn.ReLU()),
        ("pool5", nn.MaxPool2d(3, 2)),
        ("flatten", nn.Flatten()),
        ("fc6", nn.Linear(256 * 6 * 6, 4096)), ("relu6", nn.ReLU()), ("drop6", nn.Dropout(0.5)),
        ("fc7", nn.Linear(4096, 4096)), ("relu7", nn.ReLU()), ("drop7", nn.Dropout(0.5)),
        ("fc8", nn.Linear(4096, 1000)),
    ))


def alexnet_torchvision() -> nn.Module:
    """torchvision.models.alexnet: 61,100,840 params."""
    return Seq(od(
        ("conv1", nn.Conv2d(3, 64, 11, stride=4, padding=2)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(3, 2)),
        ("conv2", nn.Conv2d(64, 192, 5, padding=2)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(3, 2)),
        ("conv3", nn.Conv2d(192, 384, 3, padding=1)), ("relu3", nn.ReLU()),
        ("conv4", nn.Conv2d(384, 256, 3, padding=1)), ("relu4", nn.ReLU()),
        ("conv5", nn.Conv2d(256, 256, 3, padding=1)), ("relu5", nn.ReLU()), ("pool5", nn.MaxPool2d(3, 2)),
        ("avgpool", nn.AdaptiveAvgPool2d(6)),
        ("flatten", nn.Flatten()),
        ("drop6", nn.Dropout(0.5)), ("fc6", nn.Linear(256 * 6 * 6, 4096)), ("relu6", nn.ReLU()),
        ("drop7", nn.Dropout(0.5)), ("fc7", nn.Linear(4096, 4096)), ("relu7", nn.ReLU()),
        ("fc8", nn.Linear(4096, 1000)),
    ))


# --------------------------------------------------------------------------- VGG
# Simonyan & Zisserman 2014, Table 1. Per block: a list of kernel sizes (3 = conv3, 1 = conv1).
VGG_CONFIGS = {
    "A": [[3], [3], [3, 3], [3, 3], [3, 3]],
    "B": [[3, 3], [3, 3], [3, 3], [3, 3], [3, 3]],
    "C": [[3, 3], [3, 3], [3, 3, 1], [3, 3, 1], [3, 3, 1]],
    "D": [[3, 3], [3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]],
    "E": [[3, 3], [3, 3], [3, 3, 3, 3], [3, 3, 3, 3], [3, 3, 3, 3]],
}
VGG_WIDTHS = [64, 128, 256, 512, 512]


def vgg(config: str, batch_norm: bool = False, lrn: bool = False, paper: bool = False) -> nn.Module:
    """torchvision.models.vgg* layout (features, AdaptiveAvgPool2d(7), classifier with dropout),
    with Caffe-style names: conv1_1, relu1_1, pool1, ..., fc6, relu6, drop6, ..., fc8.
    lrn=True is config A-LRN (LRN after the first conv's ReLU, paper Sec. 2.3 / Table 1).
    paper=True: the paper's layout instead, no adaptive pool and a final soft-max."""
    layers: list[tuple[str, nn.Module]] = []
    channels = 3
    for block, (kernels, width) in enumerate(zip(VGG_CONFIGS[config], VGG_WIDTHS), start=1):
        for index, kernel in enumerate(kernels, start=1):
            tag = f"{block}_{index}"
            layers.append((f"conv{tag}", nn.Conv2d(channels, width, kernel, padding=kernel // 2)))
            if batch_norm:
                layers.append((f"bn{tag}", nn.BatchNorm2d(width)))
            layers.append((f"relu{tag}", nn.ReLU()))
            if lrn and block == 1 and index == 1:
                layers.append(("lrn1", nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)))
            channels = width
        layers.append((f"pool{block}", nn.MaxPool2d(2, 2)))
    if not paper:
        layers.append(("avgpool", nn.AdaptiveAvgPool2d(7)))
    layers += [
        ("flatten", nn.Flatten()),
        ("fc6", nn.Linear(512 * 7 * 7, 4096)), ("relu6", nn.ReLU()), ("drop6", nn.Dropout(0.5)),
        ("fc7", nn.Linear(4096, 4096)), ("relu7", nn.ReLU()), ("drop7", nn.Dropout(0.5)),
        ("fc8", nn.Linear(4096, 1000)),
    ]
    if paper:
        layers.append(("softmax", nn.Softmax(dim=1)))
    return Seq(od(*layers))


def vgg_activation_count(config: str = "D", include_input: bool = False) -> int:
    """Sum of output elements of the conv, pool and fc layers of a VGG (batch 1, 224x224),
    ReLU in place (not counted separately), as in the CS231n VGG-16 memory walk-through.
    The adaptive avgpool (identity at 224) and dropout are not layers of the paper's net."""
    with torch.device("meta"):
        model = vgg(config)
    total = 3 * 224 * 224 if include_input else 0
    counted = (nn.Conv2d, nn.MaxPool2d, nn.Linear)

    def hook(module, args, output):
        nonlocal total
        total += output[0].numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, counted)]
    with torch.no_grad():
        model(torch.empty(1, 3, 224, 224, device="meta"))
    for handle in handles:
        handle.remove()
    return total


# --------------------------------------------------------------------------- GoogLeNet
class BasicConv2d(nn.Module):
    """torchvision.models.googlenet.BasicConv2d: conv (no bias) + BN(eps=0.001) + ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """torchvision's Inception block. NB: branch3 (the paper's "5x5") uses a 3x3 kernel there."""

    def __init__(self, cin, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
        super().__init__()
        self.branch1 = BasicConv2d(cin, ch1x1, 1)
        self.branch2 = Seq(BasicConv2d(cin, ch3x3red, 1), BasicConv2d(ch3x3red, ch3x3, 3, padding=1))
        self.branch3 = Seq(BasicConv2d(cin, ch5x5red, 1), BasicConv2d(ch5x5red, ch5x5, 3, padding=1))
        self.branch4 = Seq(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True), BasicConv2d(cin, pool_proj, 1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


# (name, in, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj): paper Table 1 = torchvision
GOOGLENET_INCEPTIONS = [
    ("inception_3a", 192, 64, 96, 128, 16, 32, 32),
    ("inception_3b", 256, 128, 128, 192, 32, 96, 64),
    ("inception_4a", 480, 192, 96, 208, 16, 48, 64),
    ("inception_4b", 512, 160, 112, 224, 24, 64, 64),
    ("inception_4c", 512, 128, 128, 256, 24, 64, 64),
    ("inception_4d", 512, 112, 144, 288, 32, 64, 64),
    ("inception_4e", 528, 256, 160, 320, 32, 128, 128),
    ("inception_5a", 832, 256, 160, 320, 32, 128, 128),
    ("inception_5b", 832, 384, 192, 384, 48, 128, 128),
]


def googlenet() -> nn.Module:
    """torchvision.models.googlenet(aux_logits=False, init_weights=True): 6,624,904 params."""
    inc = {row[0]: Inception(*row[1:]) for row in GOOGLENET_INCEPTIONS}
    return Seq(od(
        ("conv1", BasicConv2d(3, 64, 7, stride=2, padding=3)),
        ("maxpool1", nn.MaxPool2d(3, stride=2, ceil_mode=True)),
        ("conv2", BasicConv2d(64, 64, 1)),
        ("conv3", BasicConv2d(64, 192, 3, padding=1)),
        ("maxpool2", nn.MaxPool2d(3, stride=2, ceil_mode=True)),
        ("inception_3a", inc["inception_3a"]), ("inception_3b", inc["inception_3b"]),
        ("maxpool3", nn.MaxPool2d(3, stride=2, ceil_mode=True)),
        ("inception_4a", inc["inception_4a"]), ("inception_4b", inc["inception_4b"]),
        ("inception_4c", inc["inception_4c"]), ("inception_4d", inc["inception_4d"]),
        ("inception_4e", inc["inception_4e"]),
        ("maxpool4", nn.MaxPool2d(2, stride=2, ceil_mode=True)),
        ("inception_5a", inc["inception_5a"]), ("inception_5b", inc["inception_5b"]),
        ("avgpool", nn.AdaptiveAvgPool2d(1)),
        ("flatten", nn.Flatten()),
        ("dropout", nn.Dropout(0.2)),
        ("fc", nn.Linear(1024, 1000)),
    ))


class PaperInception(nn.Module):
    """The paper's inception module (Szegedy et al. 2014, Fig. 2b): convs with biases and ReLU,
    no batch norm, a real 5x5 kernel in the 5x5 branch. Children named as bvlc_googlenet's
    layers (inception_3a/1x1, .../3x3_reduce, ...)."""

    def __init__(self, cin, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
        super().__init__()
        layers = [
            ("1x1", nn.Conv2d(cin, ch1x1, 1)), ("relu_1x1", nn.ReLU()),
            ("3x3_reduce", nn.Conv2d(cin, ch3x3red, 1)), ("relu_3x3_reduce", nn.ReLU()),
            ("3x3", nn.Conv2d(ch3x3red, ch3x3, 3, padding=1)), ("relu_3x3", nn.ReLU()),
            ("5x5_reduce", nn.Conv2d(cin, ch5x5red, 1)), ("relu_5x5_reduce", nn.ReLU()),
            ("5x5", nn.Conv2d(ch5x5red, ch5x5, 5, padding=2)), ("relu_5x5", nn.ReLU()),
            ("pool", nn.MaxPool2d(3, stride=1, padding=1)),
            ("pool_proj", nn.Conv2d(cin, pool_proj, 1)), ("relu_pool_proj", nn.ReLU()),
        ]
        for name, module in layers:
            self.add_module(name, module)

    def forward(self, x):
        m = dict(self.named_children())
        b1 = m["relu_1x1"](m["1x1"](x))
        b2 = m["relu_3x3"](m["3x3"](m["relu_3x3_reduce"](m["3x3_reduce"](x))))
        b3 = m["relu_5x5"](m["5x5"](m["relu_5x5_reduce"](m["5x5_reduce"](x))))
        b4 = m["relu_pool_proj"](m["pool_proj"](m["pool"](x)))
        return torch.cat([b1, b2, b3, b4], 1)


def googlenet_paper() -> nn.Module:
    """Szegedy et al. 2014, Table 1 as the paper describes it (no aux heads): biases, LRN, real
    5x5 kernels, 3x3/2 max pools with ceil_mode, 7x7/1 average pool, dropout 40%, softmax.
    conv1 pads 3 and floors 112.5 (Caffe's bvlc_googlenet); the spec pads 2+3 (TF `same`):
    both give 112x112. 6,998,552 params."""
    inc = {row[0]: PaperInception(*row[1:]) for row in GOOGLENET_INCEPTIONS}

    def lrn():
        return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)

    def pool():
        return nn.MaxPool2d(3, stride=2, ceil_mode=True)

    return Seq(od(
        ("conv1", nn.Conv2d(3, 64, 7, stride=2, padding=3)), ("relu1", nn.ReLU()),
        ("pool1", pool()), ("norm1", lrn()),
        ("conv2_reduce", nn.Conv2d(64, 64, 1)), ("relu2_reduce", nn.ReLU()),
        ("conv2", nn.Conv2d(64, 192, 3, padding=1)), ("relu2", nn.ReLU()),
        ("norm2", lrn()), ("pool2", pool()),
        ("inception_3a", inc["inception_3a"]), ("inception_3b", inc["inception_3b"]),
        ("pool3", pool()),
        ("inception_4a", inc["inception_4a"]), ("inception_4b", inc["inception_4b"]),
        ("inception_4c", inc["inception_4c"]), ("inception_4d", inc["inception_4d"]),
        ("inception_4e", inc["inception_4e"]),
        ("pool4", pool()),
        ("inception_5a", inc["inception_5a"]), ("inception_5b", inc["inception_5b"]),
        ("pool5", nn.AvgPool2d(7, stride=1)),
        ("dropout", nn.Dropout(0.4)),
        ("flatten", nn.Flatten()),
        ("fc", nn.Linear(1024, 1000)),
        ("prob", nn.Softmax(dim=1)),
    ))


# --------------------------------------------------------------------------- ResNet
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.downsample = _downsample(cin, planes, stride)

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision v1.5: the stride sits on the 3x3 conv (conv2)."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        out = planes * 4
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU()
        self.downsample = _downsample(cin, out, stride)

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def _downsample(cin: int, cout: int, stride: int):
    if stride == 1 and cin == cout:
        return None
    return Seq(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))


RESNET_LAYOUTS = {
    18: (BasicBlock, [2, 2, 2, 2]),
    34: (BasicBlock, [3, 4, 6, 3]),
    50: (Bottleneck, [3, 4, 6, 3]),
    101: (Bottleneck, [3, 4, 23, 3]),
    152: (Bottleneck, [3, 8, 36, 3]),
}


def resnet(depth: int) -> nn.Module:
    """torchvision.models.resnet{18,34,50,101,152} with the same module names."""
    block, counts = RESNET_LAYOUTS[depth]
    parts = [
        ("conv1", nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)),
        ("bn1", nn.BatchNorm2d(64)), ("relu", nn.ReLU()),
        ("maxpool", nn.MaxPool2d(3, stride=2, padding=1)),
    ]
    cin = 64
    for index, (planes, count) in enumerate(zip([64, 128, 256, 512], counts), start=1):
        blocks = []
        for b in range(count):
            stride = 2 if (b == 0 and index > 1) else 1
            blocks.append(block(cin, planes, stride))
            cin = planes * block.expansion
        parts.append((f"layer{index}", Seq(*blocks)))
    parts += [("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()), ("fc", nn.Linear(cin, 1000))]
    return Seq(od(*parts))


# --------------------------------------------------------------------------- MobileNets
# Howard et al. 2017, Table 1: (pointwise filters, depthwise stride) of the 13 separable blocks.
MOBILENET_V1_BLOCKS = ([(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5
                       + [(1024, 2), (1024, 1)])


def mobilenet_v1() -> nn.Module:
    """MobileNet v1, width 1.0, 224x224, 1000-way FC with bias: 4,231,976 trainable params
    (Keras layer names: conv1, conv_dw_1, conv_pw_1, ...)."""
    parts = [("conv1", nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False)),
             ("conv1_bn", nn.BatchNorm2d(32)), ("conv1_relu", nn.ReLU())]
    cin = 32
    for i, (cout, stride) in enumerate(MOBILENET_V1_BLOCKS, start=1):
        parts += [
            (f"conv_dw_{i}", nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False)),
            (f"conv_dw_{i}_bn", nn.BatchNorm2d(cin)), (f"conv_dw_{i}_relu", nn.ReLU()),
            (f"conv_pw_{i}", nn.Conv2d(cin, cout, 1, bias=False)),
            (f"conv_pw_{i}_bn", nn.BatchNorm2d(cout)), (f"conv_pw_{i}_relu", nn.ReLU()),
        ]
        cin = cout
    parts += [("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()), ("fc", nn.Linear(1024, 1000))]
    return Seq(od(*parts))


# torchvision.models.mobilenetv2: expand ratio t, output channels c, repeats n, first stride s
MOBILENET_V2_SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                         (6, 320, 1, 1)]


class InvertedResidual(nn.Module):
    """Names: expand, expand_bn, expand_relu, dw, dw_bn, dw_relu, project, project_bn
    (torchvision: conv.0.0, conv.0.1, ..., conv.2, conv.3)."""

    def __init__(self, cin: int, cout: int, stride: int, t: int):
        super().__init__()
        hidden = cin * t
        self.use_res = stride == 1 and cin == cout
        if t != 1:
            self.expand = nn.Conv2d(cin, hidden, 1, bias=False)
            self.expand_bn = nn.BatchNorm2d(hidden)
            self.expand_relu = nn.ReLU6()
        else:
            self.expand = None
        self.dw = nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, bias=False)
        self.dw_bn = nn.BatchNorm2d(hidden)
        self.dw_relu = nn.ReLU6()
        self.project = nn.Conv2d(hidden, cout, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        out = x if self.expand is None else self.expand_relu(self.expand_bn(self.expand(x)))
        out = self.project_bn(self.project(self.dw_relu(self.dw_bn(self.dw(out)))))
        return x + out if self.use_res else out


def mobilenet_v2() -> nn.Module:
    """torchvision.models.mobilenet_v2 (width 1.0): 3,504,872 params. Names features.N as there."""
    feats = [("features.0.conv", nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False)),
             ("features.0.bn", nn.BatchNorm2d(32)), ("features.0.relu", nn.ReLU6())]
    cin, index = 32, 1
    for t, c, n, s in MOBILENET_V2_SETTINGS:
        for i in range(n):
            feats.append((f"features.{index}", InvertedResidual(cin, c, s if i == 0 else 1, t)))
            cin, index = c, index + 1
    feats += [(f"features.{index}.conv", nn.Conv2d(cin, 1280, 1, bias=False)),
              (f"features.{index}.bn", nn.BatchNorm2d(1280)), (f"features.{index}.relu", nn.ReLU6())]
    # Module names may not contain dots, so register them flat and keep a dotted alias table.
    seq = Seq(od(*[(name.replace(".", "_"), module) for name, module in feats],
                 ("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()),
                 ("dropout", nn.Dropout(0.2)), ("classifier", nn.Linear(1280, 1000))))
    seq.dotted_names = {name.replace(".", "_"): name for name, _ in feats}
    return seq


# --------------------------------------------------------------------------- U-Net
def _double_conv(cin: int, cout: int, padding: int) -> list[tuple[str, nn.Module]]:
    return [("conv1", nn.Conv2d(cin, cout, 3, padding=padding)), ("relu1", nn.ReLU()),
            ("conv2", nn.Conv2d(cout, cout, 3, padding=padding)), ("relu2", nn.ReLU())]


class UNet(nn.Module):
    """Ronneberger et al. 2015. padding=0: the paper's net (572x572 -> 388x388, valid convs,
    skip connections centre-cropped before the concat). padding=1: the common "same" variant
    (no crop; needs an input divisible by 16). 31,030,658 params either way (1 in, 2 classes)."""

    def __init__(self, in_channels: int = 1, classes: int = 2, padding: int = 0):
        super().__init__()
        widths = [64, 128, 256, 512, 1024]
        cin = in_channels
        for i, w in enumerate(widths, start=1):
            if i > 1:
                self.add_module(f"pool{i - 1}", nn.MaxPool2d(2, 2))
            self.add_module(f"down{i}", Seq(od(*_double_conv(cin, w, padding))))
            cin = w
        for i, w in zip(range(4, 0, -1), widths[3::-1]):
            self.add_module(f"up{i}", nn.ConvTranspose2d(cin, w, 2, stride=2))
            self.add_module(f"dec{i}", Seq(od(*_double_conv(2 * w, w, padding))))
            cin = w
        self.out = nn.Conv2d(64, classes, 1)

    def forward(self, x):
        skips = []
        for i in range(1, 6):
            x = getattr(self, f"down{i}")(x if i == 1 else getattr(self, f"pool{i - 1}")(x))
            skips.append(x)
        for i in range(4, 0, -1):
            x = getattr(self, f"up{i}")(x)
            skip = skips[i - 1]
            dh = (skip.shape[-2] - x.shape[-2]) // 2
            dw = (skip.shape[-1] - x.shape[-1]) // 2
            skip = skip[..., dh:dh + x.shape[-2], dw:dw + x.shape[-1]]
            x = getattr(self, f"dec{i}")(torch.cat([skip, x], 1))
        return self.out(x)


# --------------------------------------------------------------------------- DCGAN
def dcgan_generator(nz: int = 100, ngf: int = 64, nc: int = 3) -> nn.Module:
    """Radford et al. 2015 / PyTorch DCGAN tutorial generator: 3,576,704 params."""
    widths = [nz, ngf * 8, ngf * 4, ngf * 2, ngf]
    parts = []
    for i, (cin, cout) in enumerate(zip(widths, widths[1:]), start=1):
        stride, padding = (1, 0) if i == 1 else (2, 1)
        parts += [(f"convt{i}", nn.ConvTranspose2d(cin, cout, 4, stride, padding, bias=False)),
                  (f"bn{i}", nn.BatchNorm2d(cout)), (f"relu{i}", nn.ReLU())]
    parts += [("convt5", nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False)), ("tanh", nn.Tanh())]
    return Seq(od(*parts))


# --------------------------------------------------------------------------- 1-D: M5
def m5(classes: int = 10) -> nn.Module:
    """Dai et al. 2017, M5 (Table 1): 32000-sample input, conv [80/4, 128] then [3, C] convs with
    BN + ReLU, 4x max pools, global average pooling, softmax classifier (UrbanSound8k: 10).
    'same' padding reproduces the paper's sizes 8000 -> 2000 -> 500 -> 125 -> 31."""
    return Seq(od(
        ("conv1", nn.Conv1d(1, 128, 80, stride=4, padding=38)), ("bn1", nn.BatchNorm1d(128)), ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool1d(4)),
        ("conv2", nn.Conv1d(128, 128, 3, padding=1)), ("bn2", nn.BatchNorm1d(128)), ("relu2", nn.ReLU()),
        ("pool2", nn.MaxPool1d(4)),
        ("conv3", nn.Conv1d(128, 256, 3, padding=1)), ("bn3", nn.BatchNorm1d(256)), ("relu3", nn.ReLU()),
        ("pool3", nn.MaxPool1d(4)),
        ("conv4", nn.Conv1d(256, 512, 3, padding=1)), ("bn4", nn.BatchNorm1d(512)), ("relu4", nn.ReLU()),
        ("pool4", nn.MaxPool1d(4)),
        ("avgpool", nn.AdaptiveAvgPool1d(1)),
        ("flatten", nn.Flatten()),
        ("fc", nn.Linear(512, classes)),
        ("softmax", nn.Softmax(dim=1)),
    ))


# --------------------------------------------------------------------------- 3-D: C3D
def c3d(classes: int = 487) -> nn.Module:
    """Tran et al. 2015, C3D (Sports-1M, 487 classes), 3x16x112x112 clips; pool5 pads H and W
    by 1 so that 2x7x7 -> 1x4x4 and fc6 sees 8192 features (as in the released model)."""
    def conv(cin, cout):
        return nn.Conv3d(cin, cout, 3, padding=1)

    return Seq(od(
        ("conv1a", conv(3, 64)), ("relu1a", nn.ReLU()), ("pool1", nn.MaxPool3d((1, 2, 2), (1, 2, 2))),
        ("conv2a", conv(64, 128)), ("relu2a", nn.ReLU()), ("pool2", nn.MaxPool3d(2, 2)),
        ("conv3a", conv(128, 256)), ("relu3a", nn.ReLU()), ("conv3b", conv(256, 256)), ("relu3b", nn.ReLU()),
        ("pool3", nn.MaxPool3d(2, 2)),
        ("conv4a", conv(256, 512)), ("relu4a", nn.ReLU()), ("conv4b", conv(512, 512)), ("relu4b", nn.ReLU()),
        ("pool4", nn.MaxPool3d(2, 2)),
        ("conv5a", conv(512, 512)), ("relu5a", nn.ReLU()), ("conv5b", conv(512, 512)), ("relu5b", nn.ReLU()),
        ("pool5", nn.MaxPool3d(2, 2, padding=(0, 1, 1))),
        ("flatten", nn.Flatten()),
        ("fc6", nn.Linear(8192, 4096)), ("relu6", nn.ReLU()), ("drop6", nn.Dropout(0.5)),
        ("fc7", nn.Linear(4096, 4096)), ("relu7", nn.ReLU()), ("drop7", nn.Dropout(0.5)),
        ("fc8", nn.Linear(4096, classes)),
    ))


# --------------------------------------------------------------------------- torchvision's own models
def torchvision_model(name: str, **kwargs) -> nn.Module:
    """torchvision's definition (tests/torchvision_models.py: no compiled ops, weights=None); a
    segmentation model returns only its "out" tensor."""
    import torchvision_models

    if name.startswith("regnet"):  # RegNet computes its widths with tensors: build it on the CPU, then move it
        with torch.device("cpu"):
            return torchvision_models.build(name, **kwargs).to("meta")
    model = torchvision_models.build(name, **kwargs)
    if name.startswith("segmentation."):
        forward = model.forward
        model.forward = lambda x: forward(x)["out"]
    return model


TORCHVISION = {  # zoo name -> (torchvision builder, its arguments, input [C, *spatial], trainable params)
    "squeezenet1_0": ("squeezenet1_0", {}, (3, 224, 224), 1_248_424),
    "squeezenet1_1": ("squeezenet1_1", {}, (3, 224, 224), 1_235_496),
    "densenet121": ("densenet121", {}, (3, 224, 224), 7_978_856),
    "densenet169": ("densenet169", {}, (3, 224, 224), 14_149_480),
    "shufflenet_v2_x1_0": ("shufflenet_v2_x1_0", {}, (3, 224, 224), 2_278_604),
    "mnasnet1_0": ("mnasnet1_0", {}, (3, 224, 224), 4_383_312),
    "resnext50_32x4d": ("resnext50_32x4d", {}, (3, 224, 224), 25_028_904),
    "wide_resnet50_2": ("wide_resnet50_2", {}, (3, 224, 224), 68_883_240),
    "efficientnet_b0": ("efficientnet_b0", {}, (3, 224, 224), 5_288_548),
    "efficientnet_b3": ("efficientnet_b3", {}, (3, 300, 300), 12_233_232),
    "mobilenet_v3_small": ("mobilenet_v3_small", {}, (3, 224, 224), 2_542_856),
    "mobilenet_v3_large": ("mobilenet_v3_large", {}, (3, 224, 224), 5_483_032),
    "convnext_tiny": ("convnext_tiny", {}, (3, 224, 224), 28_589_128),
    "regnet_y_400mf": ("regnet_y_400mf", {}, (3, 224, 224), 4_344_144),
    "inception_v3": ("inception_v3", {"aux_logits": False, "init_weights": False}, (3, 299, 299), 23_834_568),
    "fcn_resnet50": ("segmentation.fcn_resnet50", {"aux_loss": False, "num_classes": 21, "weights_backbone": None},
                     (3, 520, 520), 32_957_013),
    "r3d_18": ("video.r3d_18", {}, (3, 16, 112, 112), 33_371_472),
}


# --------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class Reference:
    build: callable
    input_shape: tuple  # [C, *spatial], no batch axis
    published: int | None = None  # published trainable-parameter count, where there is one
    source: str = ""
    needs_torchvision: bool = False  # built from torchvision's own definition (skipped without it)


REFERENCES: dict[str, Reference] = {
    "lenet5": Reference(lenet5, (1, 32, 32), 61_706, "lecture LeNet-5 table"),
    "lenet5_original": Reference(lenet5_original, (1, 32, 32), None, "LeCun et al. 1998 (approximated)"),
    "alexnet": Reference(alexnet_paper, (3, 227, 227), 62_378_344, "Krizhevsky 2012, one tower"),
    "alexnet_grouped": Reference(functools.partial(alexnet_paper, groups=2), (3, 227, 227), 60_965_224, "Caffe bvlc_alexnet"),
    "alexnet_torchvision": Reference(alexnet_torchvision, (3, 224, 224), 61_100_840, "torchvision"),
    "vgg11": Reference(functools.partial(vgg, "A"), (3, 224, 224), 132_863_336, "torchvision vgg11"),
    "vgg11_lrn": Reference(functools.partial(vgg, "A", lrn=True, paper=True), (3, 224, 224), 132_863_336, "VGG paper A-LRN"),
    "vgg13": Reference(functools.partial(vgg, "B"), (3, 224, 224), 133_047_848, "torchvision vgg13"),
    "vgg16_c": Reference(functools.partial(vgg, "C"), (3, 224, 224), None, "VGG paper config C"),
    "vgg16": Reference(functools.partial(vgg, "D"), (3, 224, 224), 138_357_544, "torchvision vgg16"),
    "vgg16_bn": Reference(functools.partial(vgg, "D", batch_norm=True), (3, 224, 224), 138_365_992, "torchvision vgg16_bn"),
    "vgg19": Reference(functools.partial(vgg, "E"), (3, 224, 224), 143_667_240, "torchvision vgg19"),
    "googlenet": Reference(googlenet, (3, 224, 224), 6_624_904, "torchvision googlenet, no aux"),
    "googlenet_paper": Reference(googlenet_paper, (3, 224, 224), None, "Szegedy et al. 2014, Table 1"),
    "resnet18": Reference(functools.partial(resnet, 18), (3, 224, 224), 11_689_512, "torchvision"),
    "resnet34": Reference(functools.partial(resnet, 34), (3, 224, 224), 21_797_672, "torchvision"),
    "resnet50": Reference(functools.partial(resnet, 50), (3, 224, 224), 25_557_032, "torchvision"),
    "resnet101": Reference(functools.partial(resnet, 101), (3, 224, 224), 44_549_160, "torchvision"),
    "resnet152": Reference(functools.partial(resnet, 152), (3, 224, 224), 60_192_808, "torchvision"),
    "mobilenet_v1": Reference(mobilenet_v1, (3, 224, 224), 4_231_976, "Keras MobileNet 1.0_224"),
    "mobilenet_v2": Reference(mobilenet_v2, (3, 224, 224), 3_504_872, "torchvision mobilenet_v2"),
    # U-Net: 31,030,658 summed by hand from the paper's layer list (1 input channel, 2 classes)
    "unet": Reference(UNet, (1, 572, 572), 31_030_658, "U-Net paper, valid convs + crop"),
    "unet_padded": Reference(functools.partial(UNet, padding=1), (1, 512, 512), 31_030_658, "U-Net, padded variant"),
    "dcgan_generator": Reference(dcgan_generator, (100, 1, 1), 3_576_704, "PyTorch DCGAN tutorial"),
    "audio_cnn_1d": Reference(m5, (1, 32000), None, "Dai et al. 2017 M5"),
    "c3d": Reference(c3d, (3, 16, 112, 112), None, "Tran et al. 2015"),
}
REFERENCES.update({
    key: Reference(functools.partial(torchvision_model, name, **kwargs), shape, published, f"torchvision {name}",
                   needs_torchvision=True)
    for key, (name, kwargs, shape, published) in TORCHVISION.items()
})


# --------------------------------------------------------------------------- measuring
@dataclass
class Measurement:
    trainable_params: int  # sum of parameters().numel(), what torch/torchvision quote
    params: int  # + BatchNorm running mean/var (cnncalc's non-trainable params)
    macs: int  # FlopCounterMode FLOPs / 2 (conv, conv-transpose, matmul; bias not counted)
    output_shape: list
    shapes: dict = field(default_factory=dict)  # module name -> output shape [C, *spatial]
    module_params: dict = field(default_factory=dict)  # module name -> params incl. running stats


def _module_params(module: nn.Module) -> int:
    count = sum(p.numel() for p in module.parameters())
    for name, buf in module.named_buffers():
        if name.rsplit(".", 1)[-1] in ("running_mean", "running_var"):
            count += buf.numel()
    return count


def _dotted(model: nn.Module, name: str) -> str:
    """torch module names cannot contain dots; builders that need dotted top-level names
    (``features.3``) register them flat and give an alias table."""
    head, sep, tail = name.partition(".")
    head = getattr(model, "dotted_names", {}).get(head, head)
    return head + sep + tail


@functools.lru_cache(maxsize=None)
def measure(key: str) -> Measurement:
    """Build ``REFERENCES[key]`` on the meta device, run batch 1 through it under
    FlopCounterMode, and record params, MACs and every named module's output shape."""
    ref = REFERENCES[key]
    if ref.needs_torchvision:
        import pytest
        import torchvision_models

        if not torchvision_models.available():
            pytest.skip("torchvision (and Pillow) not installed: pip install torchvision==0.28.0 pillow")
    with torch.device("meta"):
        model = ref.build()
    model.eval()
    shapes: dict[str, list] = {}
    module_params: dict[str, int] = {}
    handles = []
    for name, module in model.named_modules():
        if not name:
            continue
        dotted = _dotted(model, name)
        module_params[dotted] = _module_params(module)

        def hook(mod, args, output, dotted=dotted):
            if isinstance(output, torch.Tensor):
                shapes[dotted] = list(output.shape[1:])

        handles.append(module.register_forward_hook(hook))
    x = torch.empty(1, *ref.input_shape, device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = model(x)
    for handle in handles:
        handle.remove()
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    trainable = sum(p.numel() for p in model.parameters())
    return Measurement(
        trainable_params=trainable,
        params=_module_params(model),
        macs=flops // 2,
        output_shape=list(out.shape[1:]),
        shapes=shapes,
        module_params=module_params,
    )


if __name__ == "__main__":  # python tests/zoo_reference.py: print the reference table
    print(f"{'model':22} {'input':>18} {'trainable':>13} {'params':>13} {'MACs':>16}  published")
    for key, ref in REFERENCES.items():
        m = measure(key)
        ok = "" if ref.published is None else "ok" if ref.published == m.trainable_params else "MISMATCH"
        shape = str(list(ref.input_shape))
        print(f"{key:22} {shape:>18} {m.trainable_params:>13,} {m.params:>13,} {m.macs:>16,}  {ok}")
    print("VGG-16 activations (conv/pool/fc outputs):", f"{vgg_activation_count('D'):,}",
          "+ input:", f"{vgg_activation_count('D', include_input=True):,}")
