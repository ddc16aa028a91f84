"""Small helpers every backend shares; plain slicing works on numpy, cupy and torch arrays alike."""
from __future__ import annotations


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
