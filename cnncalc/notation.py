"""How shapes are written and read: one module for every reader and writer of shapes.

Inside cnncalc a tensor is ``(C, *spatial)`` with the spatial axes in PyTorch's order
(L; H, W; D, H, W). A *layout* is only how people write it:

  chw  channels first, PyTorch:           C x H x W    (C x L, C x D x H x W)
  hwc  channels last, Keras/TensorFlow:   H x W x C    (L x C, D x H x W x C)
  whd  channels last, the lecture's:      W x H x D    (width first; D = depth = channels)

Lists (``[3, 32, 32]``) are always ``[C, *spatial]``, whatever the layout. Strings
(``32x32x3``) are read in the layout in force; with none given, the default is ``chw``. A string
whose reading is implausible under the default (a "channel" count that is an image size next to a
spatial size of 1 to 4, like ``32x32x3`` read as C x H x W) is read the plausible way and the
reading is said in a note; where the plausible reading is still two tensors (``32x16x3``: H x W x
C or W x H x D), cnncalc refuses and shows both. A layout the user chose is always followed, so a
shape printed in a layout reads back as itself; an implausible reading then gets a note with the
other one. ``6@28x28`` (LeCun's notation) is always channels first, and a two-number string
(``28x28``) is an image with one channel.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

DEFAULT_LAYOUT = "chw"
SEPARATOR = r"\s*[xX×*,]\s*"
SIZES_PATTERN = rf"^\s*\d+(?:{SEPARATOR}\d+)*\s*$"  # also the JSON Schema's pattern for `input`
SHAPE_PATTERN = rf"^\s*(?:\d+\s*@)?\s*\d+(?:{SEPARATOR}\d+)*\s*$"  # with LeCun's 6@28x28
SIZES = re.compile(SIZES_PATTERN)


@dataclass(frozen=True)
class Layout:
    key: str
    channels_last: bool
    reversed_spatial: bool  # width first, as the lecture writes W x H
    words: str  # for messages and conventions lines

    def write(self, shape: Sequence[int]) -> list[int]:
        """(C, *spatial) -> the order this layout writes."""
        shape = list(shape)
        if len(shape) < 2:
            return shape
        spatial = shape[1:][::-1] if self.reversed_spatial else shape[1:]
        return [*spatial, shape[0]] if self.channels_last else [shape[0], *spatial]

    def read(self, sizes: Sequence[int]) -> tuple[int, ...]:
        """Sizes written in this layout -> (C, *spatial)."""
        sizes = list(sizes)
        if len(sizes) < 2:
            return tuple(sizes)
        channels, spatial = (sizes[-1], sizes[:-1]) if self.channels_last else (sizes[0], sizes[1:])
        return (channels, *(spatial[::-1] if self.reversed_spatial else spatial))

    def spatial_order(self, spatial: Sequence) -> list:
        """Per-axis values (H, W order) in the order this layout writes spatial axes."""
        return list(spatial)[::-1] if self.reversed_spatial else list(spatial)

    def axes(self, rank: int) -> str:
        """'C x H x W', 'H x W x C', 'W x H x D' (rank = spatial axes)."""
        if self.key == "whd" and rank == 2:
            return "W x H x D"
        spatial = {0: [], 1: ["L"], 2: ["H", "W"], 3: ["D", "H", "W"]}.get(rank, [f"X{i}" for i in range(rank)])
        spatial = spatial[::-1] if self.reversed_spatial else spatial
        return " x ".join([*spatial, "C"] if self.channels_last else ["C", *spatial])


LAYOUTS: dict[str, Layout] = {layout.key: layout for layout in (
    Layout("chw", False, False, "channels first, C x H x W (PyTorch)"),
    Layout("hwc", True, False, "channels last, H x W x C (Keras/TensorFlow)"),
    Layout("whd", True, True, "channels last, W x H x D (the lecture's notation, width first)"),
)}
LAYOUT_KEYS = tuple(LAYOUTS)


class NotationError(ValueError):
    """A shape that cannot be read, or that reads as two different tensors."""


@dataclass(frozen=True)
class Reading:
    """A shape as read: the tensor, the layout it was read in, and what to tell the user."""

    shape: tuple[int, ...]  # (C, *spatial)
    layout: str  # the layout the text was read in: shapes are shown back this way
    note: str | None = None  # said when the reading is not simply the layout in force


def shape_text(shape: Sequence[int], layout: str) -> str:
    """How cnncalc prints a shape; it reads back as itself in the same layout. A 1-D signal is
    written C@L in every layout, since two numbers alone are an image with one channel."""
    if len(shape) == 2:
        return f"{shape[0]}@{shape[1]}"
    return "x".join(map(str, LAYOUTS[layout].write(shape)))


def split_sizes(text: str) -> list[int] | None:
    """'32x32x3', '32X32X3', '32×32×3', '32*32*3', '32, 32, 3' -> [32, 32, 3]; else None."""
    if not SIZES.match(text):
        return None
    return [int(part) for part in re.split(SEPARATOR, text.strip())]


def read_shape(value: Any, layout: str | None = None) -> Reading:
    """A shape as a user writes it: a list [C, *spatial], an int (flat), or a string.

    ``layout`` is the layout the user chose (a spec's `layout`, a `--layout` option), or None
    when nobody chose one: then strings are read as ``chw`` unless that reading is implausible."""
    if isinstance(value, bool):
        raise NotationError(f"{value!r} is not a shape")
    if isinstance(value, int):
        return Reading((value,), layout or DEFAULT_LAYOUT)
    if isinstance(value, (list, tuple)) and value and all(type(v) is int for v in value):
        return Reading(tuple(value), layout or DEFAULT_LAYOUT)
    if not isinstance(value, str):
        raise NotationError(f"{value!r} is not a shape like 3x32x32, 32x32x3 or [3, 32, 32]")
    text = value.strip()
    if text[:1] + text[-1:] in ("[]", "()"):  # a list typed as text: [C, *spatial], as every list
        sizes = split_sizes(text[1:-1])
        if sizes is None:
            raise NotationError(f"cannot read the volume {value!r}; write a list like [3, 32, 32]")
        return Reading(tuple(sizes), layout or DEFAULT_LAYOUT)
    if "@" in text:
        return _read_at(text, layout)
    sizes = split_sizes(text)
    if sizes is None:
        raise NotationError(f"cannot read the volume {value!r}; write a shape like 3x32x32 (C x H x W), "
                            "[3, 32, 32] or 3@32x32")
    if len(sizes) == 1:
        return Reading((sizes[0],), layout or DEFAULT_LAYOUT)
    if len(sizes) == 2:
        return _read_image(text, sizes, layout)
    return _read_volume(text, sizes, layout)


def _read_at(text: str, layout: str | None) -> Reading:
    """LeCun's `6@28x28`: channels, then the spatial sizes in the layout's spatial order."""
    channels, _, spatial = text.partition("@")
    sizes = split_sizes(spatial)
    if not channels.strip().isdigit() or sizes is None:
        raise NotationError(f"cannot read the shape {text!r}; write it like 6@28x28 (channels @ spatial sizes)")
    in_force = LAYOUTS[layout or DEFAULT_LAYOUT]
    return Reading((int(channels), *in_force.spatial_order(sizes)), layout or DEFAULT_LAYOUT)


def _read_image(text: str, sizes: list[int], layout: str | None) -> Reading:
    """Two numbers are an image with one channel, never a 1-D signal whose channels are a size."""
    in_force = LAYOUTS[layout or DEFAULT_LAYOUT]
    shape = (1, *in_force.spatial_order(sizes))
    order = "W x H" if in_force.reversed_spatial else "H x W"
    note = None
    if sizes[0] != sizes[1] or layout is None:
        note = (f"read `{text}` as {order} with one channel ({shape_text(shape, 'chw')} in C x H x W); a 1-D "
                f"signal with {sizes[0]} channels is written {sizes[0]}@{sizes[1]} or [{sizes[0]}, {sizes[1]}]")
    return Reading(shape, in_force.key, note)


def implausible(channels: int, spatial: Sequence[int]) -> bool:
    """A reading nobody means: a map that is one pixel thin next to a wider axis (28x1), or a tiny
    axis (1 to 4) next to an image-sized one (32x3, 3x224)."""
    smallest, largest = min(spatial), max(spatial)
    return largest > 1 and (smallest == 1 or (smallest <= 4 < largest and largest >= 4 * smallest))


def _structure(sizes: list[int]) -> str | None:
    """'first' or 'last' when one end is the odd one out beside equal spatial sizes (3x32x32, 32x32x3)."""
    head_equal, tail_equal = len(set(sizes[:-1])) == 1, len(set(sizes[1:])) == 1
    if tail_equal and not head_equal:
        return "first"
    if head_equal and not tail_equal:
        return "last"
    return None


def _read_volume(text: str, sizes: list[int], layout: str | None) -> Reading:
    in_force = LAYOUTS[layout or DEFAULT_LAYOUT]
    first_bad = implausible(sizes[0], sizes[1:])
    last_bad = implausible(sizes[-1], sizes[:-1])
    if layout is None:  # nobody chose: the string's own structure decides, chw when it does not
        if _structure(sizes) == "last" or (first_bad and not last_bad):
            return _channels_last(text, sizes, in_force)
        return Reading(in_force.read(sizes), in_force.key)
    in_force_bad = last_bad if in_force.channels_last else first_bad
    other_bad = first_bad if in_force.channels_last else last_bad
    shape = in_force.read(sizes)
    if not in_force_bad or other_bad:
        return Reading(shape, in_force.key)
    # The user chose this layout, so it is read that way (a printed shape reads back as itself),
    # but never quietly: the note shows the plausible reading and how to get it.
    other = LAYOUTS["chw"] if in_force.channels_last else LAYOUTS["hwc"]
    rank = len(sizes) - 1
    meant = other.read(sizes)
    note = (f"read `{text}` as {in_force.axes(rank)} (the layout chosen): {_channels(shape[0])} of "
            f"{'x'.join(map(str, shape[1:]))}, which is unusual; if you meant {_channels(meant[0])} of "
            f"{'x'.join(map(str, meant[1:]))}, write {shape_text(meant, in_force.key)}"
            + ("" if in_force.channels_last else f" or choose `--layout {other.key}`"))
    return Reading(shape, in_force.key, note)


def _channels_last(text: str, sizes: list[int], in_force: Layout) -> Reading:
    """Channels last was meant; with a square (or cubic) map H x W x C and W x H x D agree."""
    hwc, whd = LAYOUTS["hwc"].read(sizes), LAYOUTS["whd"].read(sizes)
    if hwc != whd:
        rank = len(sizes) - 1
        raise NotationError(
            f"`{text}` looks like channels last ({_channels(sizes[-1])}), but its spatial sizes can be read two "
            f"ways: as {LAYOUTS['hwc'].axes(rank)} (Keras) it is {shape_text(hwc, 'chw')} in C x H x W; as "
            f"{LAYOUTS['whd'].axes(rank)} (the lecture) it is {shape_text(whd, 'chw')}. Choose with "
            "`--layout hwc` or `--layout whd` (`layout:` in a spec), or write it channels first "
            f"({shape_text(hwc, 'chw')})")
    return Reading(hwc, "hwc", _switched_note(text, hwc, "hwc", in_force))


def _switched_note(text: str, shape: tuple[int, ...], read_as: str, in_force: Layout) -> str:
    rank = len(shape) - 1
    axes = "H x W x C = W x H x D" if read_as == "hwc" and rank == 2 else LAYOUTS[read_as].axes(rank)
    return (f"read `{text}` as {axes}: {_channels(shape[0])} of {'x'.join(map(str, shape[1:]))}"
            f" ({shape_text(shape, 'chw')} in C x H x W), not as {in_force.axes(rank)}; "
            f"say `--layout {read_as}` (`layout: {read_as}` in a spec) to read it so without this note")


def _channels(count: int) -> str:
    return "1 channel" if count == 1 else f"{count} channels"


def readings(value: Any) -> dict[str, tuple[int, ...]]:
    """Every layout's reading of a written shape (for judging answers): layout -> (C, *spatial)."""
    if isinstance(value, str) and "@" not in value:
        sizes = split_sizes(value.strip().strip("[]()"))
        if sizes is not None and len(sizes) > 1:
            return {key: layout.read(sizes) for key, layout in LAYOUTS.items()}
    return {}
