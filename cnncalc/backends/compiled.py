"""Whether ``ops`` may hand an array to a compiled kernel (``numba_kernels``), and the kernels.

numba is optional (the ``[fast]`` extra installs it). Loading it costs about 0.4 s and 110 MB
per process (a machine's very first run also compiles the kernels, about 4 s, and caches them
on disk), while the kernels save about 0.5 ns per output value in a one-off pass (more in later
passes of the same process, whose memory is no longer fresh). So, under ``CNNCALC_NUMBA``:

- unset or ``auto``: a pass uses them (``activate_for``) when it computes at least
  ``AUTO_MIN_VALUES`` output values, where the saving outgrows the loading, or when an earlier
  pass of the process loaded them already; smaller passes, a one-off ``verify`` of a network at
  batch 1 among them, stay with NumPy and never import numba;
- ``1``: always (a process that runs many passes, as bench/verify_speed.py does);
- ``0``: never.

Even then an op runs its NumPy code, which computes the same values, for arrays a kernel does not
take: CuPy's, other dtypes, layouts it does not read, fewer than ``MIN_ELEMENTS`` values.
"""

from __future__ import annotations

import os

import numpy

MIN_ELEMENTS = 4096  # below, a kernel's call costs about what it saves; tests set 0
# Output values per pass from which loading numba pays in a one-off `verify`. Its single pass writes
# every output into fresh memory, and the page faults, not arithmetic, take much of its time: measured
# whole `verify` runs with and without the kernels were within +-0.4 s of each other (noise) up to
# MobileNetV2 at batch 96 and ResNet-50 at batch 64 (1.9e9 and 2.4e9 values).
AUTO_MIN_VALUES = 2_000_000_000
_KERNELS = None
_LOADED = False
_LOAD_ERROR = ""  # why numba is there but its kernels did not load (e.g. no writable cache folder)
_ACTIVE = False  # a pass of this process activated the kernels (auto mode)


MODES = {"0": "off", "off": "off", "false": "off", "no": "off", "never": "off",
         "1": "on", "on": "on", "true": "on", "yes": "on", "always": "on", "": "auto", "auto": "auto"}


def mode() -> str:
    """``CNNCALC_NUMBA``: "off" (0), "on" (1) or "auto" (unset or auto); a value it does not know
    reads as auto, and ``description`` says so."""
    return MODES.get(os.environ.get("CNNCALC_NUMBA", "auto").strip().lower(), "auto")


def _unknown_setting() -> str:
    value = os.environ.get("CNNCALC_NUMBA", "auto")
    return "" if value.strip().lower() in MODES else f"; CNNCALC_NUMBA={value!r} is not 0, 1 or auto: read as auto"


def kernels():
    """The ``numba_kernels`` module (imported on the first call), or None where numba is missing."""
    global _KERNELS, _LOADED, _LOAD_ERROR
    if not _LOADED:
        _LOADED = True
        try:
            from . import numba_kernels
        except ImportError:
            numba_kernels = None
        except Exception as exc:  # numba's own errors (no cache locator, a broken LLVM): NumPy computes instead
            numba_kernels, _LOAD_ERROR = None, f"{type(exc).__name__}: {exc}"
        _KERNELS = numba_kernels
    return _KERNELS


def activate_for(values: int) -> bool:
    """Before a pass that computes ``values`` output values (all rows, the whole batch): whether
    its ops will use the kernels, which are then loaded (``warm_up``), so that the pass's layer
    times and memory are its arrays' alone."""
    global _ACTIVE
    wanted = {"off": False, "on": True}.get(mode(), _ACTIVE or values >= AUTO_MIN_VALUES)
    if not wanted or not warm_up():
        return False
    _ACTIVE = True
    return True


def usable(*arrays, dtypes=(numpy.float32, numpy.float64)):
    """The kernels, when they are on and take these arrays (NumPy arrays of one of ``dtypes``, the
    first of at least ``MIN_ELEMENTS`` values); else None."""
    first = arrays[0]
    if first.size < MIN_ELEMENTS:
        return None
    if not all(type(a) is numpy.ndarray and a.dtype == first.dtype for a in arrays):
        return None
    if first.dtype not in dtypes:
        return None
    on = mode()
    if on == "off" or (on == "auto" and not _ACTIVE):
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
    module.add_or_multiply(flat, flat, False, flat.copy())
    module.hard_gate(flat, True, flat.copy())
    module.logistic(flat, True, flat.copy())
    module.batch_norm(rows, vector, vector, vector, vector, f32(1e-5), rows.copy())
    module.scale_rows(rows.reshape(1, 2, 4), rows[:1], rows.reshape(1, 2, 4).copy())
    module.channel_means(rows.reshape(1, 2, 4), numpy.zeros((1, 4), f32))
    image = numpy.zeros((1, 3, 3, 4), f32)
    module.depthwise2d(image, numpy.zeros((3, 3, 4), f32), 1, 1, 1, 1, 1, 1, image.copy(), 0, 3)
    return True


def description() -> str:
    """For ``verify``'s report: what computed the NumPy backend's ops in this process's last pass
    (without importing numba where that pass did not)."""
    import importlib.util

    if mode() == "off":
        return f"NumPy only (CNNCALC_NUMBA={os.environ.get('CNNCALC_NUMBA')})"
    if _LOAD_ERROR:
        return f"NumPy only (numba's kernels did not load: {_LOAD_ERROR})"
    if (_LOADED and _KERNELS is None) or importlib.util.find_spec("numba") is None:
        return "NumPy only (numba is not installed: pip install numba, or the [fast] extra)"
    if mode() == "auto" and not _ACTIVE:
        return (f"NumPy only (numba's kernels run from {AUTO_MIN_VALUES:,} output values per pass, "
                f"or with CNNCALC_NUMBA=1{_unknown_setting()})")
    import importlib.metadata

    return f"NumPy with numba {importlib.metadata.version('numba')} kernels{_unknown_setting()}"
