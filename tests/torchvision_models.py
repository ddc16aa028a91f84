"""torchvision's model definitions, without its compiled extension.

PyPI's torchvision next to the CPU build of torch this project tests with fails at import
("operator torchvision::nms does not exist"): its package ``__init__`` registers the compiled
detection ops. The model definitions are plain Python, so this loads ``torchvision.models``
under a bare package object that skips that ``__init__``. ``build(name, **kwargs)`` returns
the model with ``weights=None`` (no download); ``available()`` says whether torchvision (and
Pillow, which its utils import) is installed. The tests that use it skip without it.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types


def available() -> bool:
    return importlib.util.find_spec("torchvision") is not None and importlib.util.find_spec("PIL") is not None


def models():
    """The ``torchvision.models`` module, imported without torchvision's compiled ops."""
    if "torchvision" not in sys.modules:
        spec = importlib.util.find_spec("torchvision")
        package = types.ModuleType("torchvision")
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = spec
        sys.modules["torchvision"] = package
    return importlib.import_module("torchvision.models")


def build(name: str, **kwargs):
    """``torchvision.models.<name>(weights=None, **kwargs)``; segmentation and video models by
    their sub-package (``segmentation.fcn_resnet50``, ``video.r3d_18``)."""
    module = models()
    for part in name.split(".")[:-1]:
        module = importlib.import_module(f"{module.__name__}.{part}")
    return getattr(module, name.split(".")[-1])(weights=None, **kwargs)
