"""Small helpers every backend shares; plain slicing works on numpy, cupy and torch arrays alike."""
from __future__ import annotations

import sys

# glibc's mallopt parameters (malloc.h) and the values the CPU backends set
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 32 * 2**20  # glibc's largest: blocks below it come from the reusable heap
TRIM_THRESHOLD_BYTES = 2**30  # free memory kept before any is given back to the system


def per_axis(value, rank: int) -> tuple | None:
    """A spec value for all spatial axes (one number) or per axis (a list) -> a tuple; None stays None."""
    if value is None:
        return None
    return tuple(value) if isinstance(value, (list, tuple)) else (value,) * rank


def centre_crop(array, sizes: tuple[int, ...]):
    """Crop the spatial axes of ``[N, C, *spatial]`` to ``sizes``, the extra split evenly
    (an odd one more at the end), as U-Net crops its skip connections."""
    window = tuple(slice((have - want) // 2, (have - want) // 2 + want) for have, want in zip(array.shape[2:], sizes))
    return array[(slice(None), slice(None)) + window]


def crop_to_smallest(arrays: list) -> list:
    """Every array centre-cropped to the smallest spatial size among them (concat's `crop`)."""
    smallest = tuple(min(sizes) for sizes in zip(*(a.shape[2:] for a in arrays)))
    return [centre_crop(a, smallest) for a in arrays]


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse instead of returning it to the system at once.

    A forward pass allocates and frees arrays of a few MB for every layer; with glibc's default
    thresholds many come back as fresh pages, and a page fault per 4 KiB touched costs more than
    some layers' arithmetic. The NumPy and PyTorch backends both set this when they load, so they
    are measured on equal terms. Freed blocks are reused for the next arrays, so the peak hardly
    moves (bench/README.md measures it). Process-wide: glibc has one allocator. Returns whether
    it applied (glibc on Linux only; elsewhere a no-op)."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes  # here: the table path imports this module and needs no ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
