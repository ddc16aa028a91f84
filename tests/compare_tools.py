"""The counting tools themselves, run on cnncalc's PyTorch export, for tests/test_compare.py.

Each runner takes the exported model and its input shapes and returns (params, ops) exactly as
the tool returns or prints them. The tools are imported only here, and only when installed:
`available(name)` says which are. Two need help to import next to the CPU build of torch:
ptflops and calflops import torchvision, whose compiled ops do not load (tests/torchvision_models.py
puts its plain-Python package in place first), and calflops's package __init__ imports
transformers for its Hugging Face entry point, so its counter module is loaded under a bare
package object. calflops patches torch functions and leaves them patched when the forward pass
raises; `run` puts them back.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import math
import os
import sys
import types
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 on PyTorch: no TensorFlow needed

PACKAGES = {"torchinfo": "torchinfo", "fvcore": "fvcore", "ptflops": "ptflops", "ptflops-aten": "ptflops",
            "thop": "thop", "torchscan": "torchscan", "torchscan-flops": "torchscan", "calflops": "calflops",
            "calflops-macs": "calflops", "keras": "keras"}


def available(name: str) -> bool:
    return importlib.util.find_spec("torch") is not None and importlib.util.find_spec(PACKAGES[name]) is not None


def _prepare_imports() -> None:
    import torchvision_models

    if torchvision_models.available():
        torchvision_models.models()
    if "calflops" not in sys.modules and importlib.util.find_spec("calflops"):
        spec = importlib.util.find_spec("calflops")
        package = types.ModuleType("calflops")
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = spec
        sys.modules["calflops"] = package


def exported(spec):
    """(analysis, model, input shapes) of a spec's `cnncalc export --to pytorch` module, built on the
    meta device and given zeroed CPU memory (the counts need shapes only, and random init of
    VGG's weights alone takes a second)."""
    import torch

    from cnncalc.commands.export import analysed
    from cnncalc.export.pytorch import pytorch_source

    loaded, analysis = analysed(spec, None)
    namespace: dict = {"__name__": "exported"}
    exec(compile(pytorch_source(analysis, "spec", loaded.description), "<exported>", "exec"), namespace)
    model_class = [v for v in namespace.values() if isinstance(v, type) and issubclass(v, torch.nn.Module)][-1]
    return analysis, zeroed(model_class), list(namespace["INPUT_SHAPES"].values())


def zeroed(build):
    """``build()``'s module in eval mode, built on the meta device, then given CPU memory of zeros."""
    import torch

    with torch.device("meta"):
        model = build()
    model = model.to_empty(device="cpu").eval()
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            tensor.zero_()
    return model


def _quiet(call):
    out = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        warnings.simplefilter("ignore")
        return call()


def _inputs(shapes):
    import torch

    return tuple(torch.zeros(1, *shape) for shape in shapes)


def run(name: str, model, shapes) -> tuple[int, int]:
    """(params, ops) as the tool gives them for the model at batch 1."""
    return run_package(PACKAGE_OF[name], model, shapes)[name]


def run_package(package: str, model, shapes) -> dict[str, tuple[int, int]]:
    """{convention: (params, ops)} of every convention one run of the package gives (torchscan's
    MACs and FLOPs, calflops's FLOPs and MACs come from the same run)."""
    import torch
    import torch.nn.functional as F

    _prepare_imports()
    saved = [(owner, key, getattr(owner, key)) for owner in (F, torch, torch.Tensor) for key in dir(owner)
             if not key.startswith("__")]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: a second thread only waits (and competes with the other test worker)
    try:
        counted = RUNNERS[package](model, shapes)
    finally:
        torch.set_num_threads(threads)
        for owner, key, value in saved:
            if getattr(owner, key, None) is not value:
                setattr(owner, key, value)
    return {name: (int(params), int(ops)) for name, (params, ops) in counted.items()}


def _torchinfo(model, shapes):
    import torchinfo

    summary = _quiet(lambda: torchinfo.summary(model, input_data=list(_inputs(shapes)), verbose=0))
    return {"torchinfo": (summary.total_params, summary.total_mult_adds)}


def _fvcore(model, shapes):
    from fvcore.nn import FlopCountAnalysis, parameter_count

    analysis = FlopCountAnalysis(model, _inputs(shapes))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    return {"fvcore": (parameter_count(model)[""], _quiet(analysis.total))}


def _ptflops(model, shapes):
    from ptflops import get_model_complexity_info

    counted = {}
    for name, backend in (("ptflops", "pytorch"), ("ptflops-aten", "aten")):
        macs, params = _quiet(lambda: get_model_complexity_info(
            model, tuple(shapes[0]), as_strings=False, print_per_layer_stat=False, backend=backend))
        counted[name] = (params, macs)
    return counted


def _thop(model, shapes):
    from thop import profile

    macs, params = _quiet(lambda: profile(model, inputs=_inputs(shapes), verbose=False))
    return {"thop": (params, macs)}


def _torchscan(model, shapes):
    from torchscan import crawl_module

    totals = _quiet(lambda: crawl_module(model, [tuple(shape) for shape in shapes]))["totals"]
    params = totals["parameters"]["value"]
    # `known_value`: what summary() prints; a module torchscan has no formula for makes the total "partial"
    return {"torchscan": (params, totals["macs"]["known_value"]),
            "torchscan-flops": (params, totals["module_flops"]["known_value"])}


def _calflops(model, shapes):
    from calflops.flops_counter import calculate_flops

    flops, macs, params = _quiet(lambda: calculate_flops(
        model, input_shape=(1, *shapes[0]), output_as_string=False, print_results=False, print_detailed=False))
    return {"calflops": (params, flops), "calflops-macs": (params, macs)}


RUNNERS = {"torchinfo": _torchinfo, "fvcore": _fvcore, "ptflops": _ptflops, "thop": _thop, "torchscan": _torchscan,
           "calflops": _calflops}
TOOLS = ("torchinfo", "fvcore", "ptflops", "ptflops-aten", "thop", "torchscan", "torchscan-flops", "calflops",
         "calflops-macs")
PACKAGE_OF = {name: PACKAGES[name] for name in TOOLS}


# ----------------------------------------------------------------------------- Keras
def keras_params(analysis, skip: tuple[str, ...] = ()) -> int | None:
    """The sum of `count_params()` of each row's Keras layer, built on that row's input, which is
    what `model.summary()`'s Total params adds up; None when a row has parameters and no Keras
    layer (LeNet-5's subsampling and connection table, a layer scale, instance norm); rows of the
    kinds in ``skip`` are left out."""
    total = 0
    for row, step in zip(analysis.report.layers, analysis.plan.steps):
        if not row.params or row.kind in skip:
            continue
        built = keras_layer(step)
        if built is None:
            return None
        layer, shape = built
        layer.build((None, *shape))
        total += layer.count_params()
    return total


def keras_layer(step):
    """(the Keras layer with the row's parameters, the input shape Keras builds it on), or None
    where Keras has no such layer. Keras is channels last: [*spatial, C]; layers that work on the
    last axis of PyTorch's tensor (a linear layer with `flatten: false`, nn.LayerNorm with a
    normalized_shape) see the tensor as it is."""
    from keras import layers

    layer, shape = step.layer, tuple(step.input_shape)
    rank = len(shape) - 1
    channels_last = shape[1:] + shape[:1]
    h = step.hyper
    if step.kind == "conv" and layer.connection_table is None:
        conv = (layers.Conv1D, layers.Conv2D, layers.Conv3D)[rank - 1]
        return conv(layer.filters, tuple(h["kernel"]), padding="same", groups=layer.groups,
                    use_bias=layer.bias), channels_last
    if step.kind == "conv_transpose" and layer.groups == 1:
        conv = (layers.Conv1DTranspose, layers.Conv2DTranspose, layers.Conv3DTranspose)[rank - 1]
        return conv(layer.filters, tuple(h["kernel"]), use_bias=layer.bias), channels_last
    if step.kind == "linear":
        flat = layer.flatten or rank == 0
        return layers.Dense(layer.features, use_bias=layer.bias), (math.prod(shape),) if flat else shape
    if step.kind == "batchnorm":
        return layers.BatchNormalization(center=layer.affine, scale=layer.affine), channels_last
    if step.kind == "layernorm":
        written = layer.normalized_shape
        axes = -1 if written is None or isinstance(written, int) else list(range(-len(written), 0))
        return (layers.LayerNormalization(axis=axes, center=layer.bias, scale=layer.elementwise_affine),
                channels_last if written is None else shape)
    if step.kind == "groupnorm":
        return layers.GroupNormalization(layer.groups, center=layer.affine, scale=layer.affine), channels_last
    if step.kind == "prelu":  # one slope per channel: shared over the spatial axes; one in all: shared everywhere
        shared = list(range(1, len(shape) + 1)) if layer.num_parameters == 1 else list(range(1, len(shape)))
        return layers.PReLU(shared_axes=shared or None), channels_last
    return None
