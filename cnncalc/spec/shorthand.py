"""Compact notations: one-line layers (`conv 64 k3 s1 p1`) and VGG paper notation (`conv3-64`,
`maxpool`, `FC-4096`). Shapes (`32x32x3`) are read by ``cnncalc.notation``."""
from __future__ import annotations

import re

from ..errors import SpecError
from ..notation import split_sizes

# token prefix in the one-line form -> argument key
TOKEN_KEYS = {"k": "kernel", "s": "stride", "p": "padding", "d": "dilation", "g": "groups", "op": "output_padding",
              "f": "filters", "o": "output"}
ALIASES = {
    "pool": "maxpool", "max_pool": "maxpool", "avg_pool": "avgpool", "fc": "linear", "dense": "linear",
    "deconv": "conv_transpose", "convtranspose": "conv_transpose", "conv_t": "conv_transpose",
    "upconv": "conv_transpose", "bn": "batchnorm", "batch_norm": "batchnorm", "soft-max": "softmax",
    "leakyrelu": "leaky_relu", "gap": "global_avgpool", "dwsep": "depthwise_separable",
    "block": "sequence", "chunk": "split", "multiply": "mul", "squeeze_excitation": "se",
    "swish": "silu", "hard_swish": "hardswish", "hswish": "hardswish", "hard_sigmoid": "hardsigmoid",
    "hsigmoid": "hardsigmoid", "logsoftmax": "log_softmax", "stochastic_depth": "drop_path",
    "droppath": "drop_path", "layerscale": "layer_scale",
    "view": "reshape", "shuffle": "channel_shuffle", "channelshuffle": "channel_shuffle",
    "pixelshuffle": "pixel_shuffle", "pixelunshuffle": "pixel_unshuffle", "depth_to_space": "pixel_shuffle",
    "space_to_depth": "pixel_unshuffle", "transpose": "permute",
    "ln": "layernorm", "layer_norm": "layernorm", "layernorm2d": "layernorm", "gn": "groupnorm",
    "group_norm": "groupnorm", "instance_norm": "instancenorm", "instancenorm1d": "instancenorm",
    "instancenorm2d": "instancenorm", "instancenorm3d": "instancenorm",
}
VGG_CONV = re.compile(r"^conv(\d+)-(\d+)$", re.IGNORECASE)
VGG_FC = re.compile(r"^fc-(\d+)$", re.IGNORECASE)
SIGNED_SIZES = re.compile(r"-?\d+([x×,]-?\d+)*")  # sizes where one may be -1 (reshape, squeeze)


def canonical_kind(word: str) -> str:
    """The kind a written word names: aliases resolved, case ignored (`PReLU`, `Conv`, `SiLU`)."""
    word = word.strip().lower()
    return ALIASES.get(word, word)


def parse_vgg(text: str) -> tuple[str, dict] | None:
    """VGG paper notation: conv3-64 = 3x3 conv, 64 filters, size-keeping padding; maxpool = 2x2/2."""
    if match := VGG_CONV.match(text):
        kernel, filters = int(match[1]), int(match[2])
        return "conv", {"filters": filters, "kernel": kernel, "padding": (kernel - 1) // 2}
    if match := VGG_FC.match(text):
        return "linear", {"features": int(match[1])}
    if text.lower() == "maxpool":
        return "maxpool", {"kernel": 2, "stride": 2}
    if text.upper() == "LRN":
        return "lrn", {"size": 5}
    return None


def parse_one_line(text: str, primary: str | None) -> tuple[str, dict]:
    """`conv 64 k3 s1 p1`, `maxpool k3 s2`, `linear 10`, `conv filters=64 kernel=3x3 padding=same`."""
    kind, *tokens = text.split()
    kind = canonical_kind(kind)
    args: dict = {}
    for token in tokens:
        key, value = _split_token(token, primary, text)
        if key in args:
            raise SpecError(f"`{text}` sets `{key}` twice")
        args[key] = value
    return kind, args


def _split_token(token: str, primary: str | None, text: str) -> tuple[str, object]:
    if "=" in token:
        key, _, raw = token.partition("=")
        return key, _value(raw, text)
    if split_sizes(token) is not None or SIGNED_SIZES.fullmatch(token):
        if primary is None:
            raise SpecError(f"`{text}`: this kind takes no bare number; write key=value")
        return primary, _value(token, text)
    if token.lower() in ("nobias", "bias=false"):
        return "bias", False
    if token.lower() in ("ceil", "ceil_mode"):
        return "ceil_mode", True
    match = re.fullmatch(r"(op|[a-z])(\d+(?:[x×]\d+)*|same|valid)", token, re.IGNORECASE)
    if match and match[1].lower() in TOKEN_KEYS:
        return TOKEN_KEYS[match[1].lower()], _value(match[2], text)
    raise SpecError(f"`{text}`: cannot read `{token}` (expected e.g. k3, s2, p1, d2, g4, op1, nobias or key=value)")


def _value(raw: str, text: str):
    if raw.lower() in ("same", "valid"):
        return raw.lower()
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    numbers = split_sizes(raw)
    if numbers is None and SIGNED_SIZES.fullmatch(raw):  # `squeeze -1`, `reshape 4,-1`
        numbers = [int(part) for part in re.split(r"[x×,]", raw)]
    if numbers is None:
        try:
            return float(raw)
        except ValueError:
            return raw
    return numbers[0] if len(numbers) == 1 else numbers
