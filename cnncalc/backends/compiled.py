"""Whether ``ops`` may hand an array to a compiled kernel (``numba_kernels``), and the kernels.

numba is optional (the ``[numpy]`` extra installs it): without it, or with ``CNNCALC_NUMBA=0`` in
the environment, or for arrays a kernel does not take (CuPy's, other dtypes, fewer than
``MIN_ELEMENTS`` values), every op runs its NumPy code, which computes the same values. Small
arrays stay with NumPy so that a small network's run never imports numba (a third of a second)
nor loads its machine code.
"""

from __future__ import annotations

import os

import numpy

MIN_ELEMENTS = 4096  # tests set 0, so that small cases run the kernels too
_KERNELS = None
_LOADED = False


def kernels():
    """The ``numba_kernels`` module, or None where numba is missing or switched off."""
    global _KERNELS, _LOADED
    if not _LOADED:
        _LOADED = True
        if os.environ.get("CNNCALC_NUMBA", "1") != "0":
            try:
                from . import numba_kernels
            except ImportError:
                numba_kernels = None
            _KERNELS = numba_kernels
    return _KERNELS


def usable(*arrays, dtypes=(numpy.float32, numpy.float64)):
    """The kernels, when they take these arrays (NumPy arrays of one of ``dtypes``, the first of at
    least ``MIN_ELEMENTS`` values); else None."""
    first = arrays[0]
    if first.size < MIN_ELEMENTS:
        return None
    if not all(type(a) is numpy.ndarray and a.dtype == first.dtype for a in arrays):
        return None
    if first.dtype not in dtypes:
        return None
    return kernels()


def warm_up() -> bool:
    """Load (or, on a machine's first run, compile) every kernel for the float32 arrays ``ops``
    hands them, so that a forward pass then spends its time and memory on arrays alone (the
    first call of each kernel would otherwise carry it). Returns whether the kernels are there."""
    module = kernels()
    if module is None:
        return False
    f32 = numpy.float32
    flat, rows, vector = numpy.zeros(8, f32), numpy.zeros((2, 4), f32), numpy.ones(4, f32)
    module.clamp(flat, f32(0), f32(6), flat.copy())
    module.add(flat, flat, flat.copy())
    module.multiply(flat, flat, flat.copy())
    module.logistic(flat, True, flat.copy())
    module.batch_norm(rows, vector, vector, vector, vector, f32(1e-5), rows.copy())
    module.scale_rows(rows.reshape(1, 2, 4), rows[:1], rows.reshape(1, 2, 4).copy())
    module.channel_means(rows.reshape(1, 2, 4), numpy.zeros((1, 4), f32))
    image = numpy.zeros((1, 3, 3, 4), f32)
    module.depthwise2d(image, numpy.zeros((3, 3, 4), f32), 1, 1, 1, 1, 1, 1, image.copy(), 0, 3)
    return True


def description() -> str:
    """For ``verify``'s report: what computes the NumPy backend's element-wise and depthwise ops
    (without importing numba: a run of small arrays never needs it)."""
    import importlib.metadata
    import importlib.util

    if os.environ.get("CNNCALC_NUMBA", "1") == "0":
        return "NumPy only (CNNCALC_NUMBA=0)"
    if (_LOADED and _KERNELS is None) or importlib.util.find_spec("numba") is None:
        return "NumPy only (numba is not installed)"
    version = importlib.metadata.version("numba")
    return f"NumPy, with numba {version} kernels for arrays of {MIN_ELEMENTS:,}+ values"
