"""A picture of a network as one standalone SVG: no scripts, no external fonts or images.

Two styles, both drawn from the report's rows and their graph (``row.inputs``):

- ``maps`` (the default for a chain, where every layer reads the one before): the classic LeNet-5
  figure, every tensor a stack of feature maps left to right. Height and width grow with log2 of
  the spatial sizes and the stack's depth with log2 of the channels, so 224x224 and 7x7 maps both
  fit one picture; a flat vector is a thin bar.
- ``graph`` (the default for anything else: residual blocks, inception branches, U-Net's skips):
  a layered block graph. Layers follow the longest path from the input; long edges pass through
  invisible way points, so they bend around boxes instead of crossing them; the order in each
  layer is improved by barycentre sweeps (fewest crossings kept); x positions follow each box's
  neighbours as closely as order and spacing allow (isotonic regression, which keeps every box
  apart). No layout library is needed: Graphviz would add a system binary for this one picture.

Layers that only transform values element-wise (no weights multiplied, same shape: relu, batch
norm, dropout) and follow a single layer are listed in that layer's box (`+ bn1, relu1`), so every
layer name is in the picture and the picture stays readable.

Text is set in the generic `monospace` family, whose width (0.6 em per character in the common
fonts) sizes the boxes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from ..report import LayerRow, Report

FONT_SIZE = 12
CHAR_WIDTH = 0.62 * FONT_SIZE  # a little over monospace's 0.6 em, for fonts that run wide
LINE = 15  # line height
PAD = 8
MERGES = ("add", "concat", "mul")
LABELS = ("shape", "params", "macs", "memory")  # what --label may add under the name
FILL = {  # by kind family, light enough for black text
    "conv": "#dbe8fb", "conv_transpose": "#dbe8fb", "linear": "#fde5c8",
    "maxpool": "#dcf2dc", "avgpool": "#dcf2dc", "adaptive_avgpool": "#dcf2dc", "adaptive_maxpool": "#dcf2dc",
    "global_avgpool": "#dcf2dc", "global_maxpool": "#dcf2dc", "subsample": "#dcf2dc",
    "add": "#eadcf7", "concat": "#eadcf7", "mul": "#eadcf7", "input": "#ffffff",
}
OTHER_FILL = "#f1f1f1"


# ----------------------------------------------------------------------------- the graph
@dataclass
class Node:
    """One box: a layer, the element-wise layers folded into it, or a whole block (``depth``)."""

    rows: list[LayerRow]
    inputs: list[int] = field(default_factory=list)  # node indices
    name: str = ""
    kind: str = ""
    shape: tuple[int, ...] = ()
    folded: list[str] = field(default_factory=list)  # element-wise layers after it, drawn in its box

    @property
    def names(self) -> list[str]:
        return [self.name, *self.folded]

    def total(self, attr: str) -> int:
        return sum(getattr(row, attr) for row in self.rows)


def build_graph(report: Report, depth: int | None = None) -> list[Node]:
    """Input nodes first (one per network input), then one node per box, in the report's order."""
    nodes = [Node([], name=name, kind="input", shape=shape) for name, shape in report.inputs.items()]
    node_of: dict[int, int] = {-1 - number: number for number in range(len(nodes))}  # row -> node
    groups = _depth_groups(report, depth)
    for index, row in enumerate(report.layers):
        block = groups.get(index)
        if block is not None and index > block.first:  # a later row of a folded block
            node = nodes[node_of[block.first]]
            node.rows.append(row)
            node.shape = row.output_shape
        elif block is not None:
            nodes.append(Node([row], name=block.name, kind=block.kind, shape=row.output_shape))
        else:
            nodes.append(Node([row], name=row.name, kind=row.kind, shape=row.output_shape))
        node_of[index] = len(nodes) - 1
    for number, node in enumerate(nodes):
        sources = [node_of[source] for row in node.rows for source in row.inputs]
        node.inputs = list(dict.fromkeys(s for s in sources if s != number))
    return _fold_elementwise(nodes)


def _depth_groups(report: Report, depth: int | None) -> dict:
    """Row index -> the composite block at ``depth`` that holds it (None: no folding)."""
    if depth is None:
        return {}
    groups = {}
    for block in report.blocks:
        if block.composite and block.level == depth and block.end > block.first:
            groups.update({index: block for index in range(block.first, block.end)})
    return groups


def _fold_elementwise(nodes: list[Node]) -> list[Node]:
    """A node that keeps its input's shape, multiplies by no weights, merges nothing and reads one
    node that nothing else reads joins that node's box."""
    readers: dict[int, int] = {}
    for node in nodes:
        for source in node.inputs:
            readers[source] = readers.get(source, 0) + 1
    target = list(range(len(nodes)))  # where each node went
    kept: list[int] = []
    for number, node in enumerate(nodes):
        source = node.inputs[0] if len(node.inputs) == 1 else None
        if (source is not None and readers.get(source) == 1 and len(node.rows) == 1 and node.kind not in MERGES
                and nodes[source].kind != "input" and node.rows[0].input_shape == node.shape
                and not node.total("macs")):
            owner = nodes[target[source]]
            owner.rows.append(node.rows[0])
            owner.folded.append(node.name)
            target[number] = target[source]
            continue
        kept.append(number)
    renumber = {old: new for new, old in enumerate(kept)}
    result = [nodes[old] for old in kept]
    for node in result:
        node.inputs = list(dict.fromkeys(renumber[target[source]] for source in node.inputs))
    return result


def is_chain(nodes: list[Node]) -> bool:
    """One input, and every box reads exactly the box before it."""
    return (sum(node.kind == "input" for node in nodes) == 1
            and all(node.inputs == [number - 1] for number, node in enumerate(nodes) if number))


# ----------------------------------------------------------------------------- text of a box
def node_lines(node: Node, labels: tuple[str, ...], layout: str) -> list[tuple[str, str]]:
    """(css class, text) lines: the name, folded layers, the operation, then the labels asked for."""
    from ..notation import shape_text
    from ..units import compact, short_bytes
    from .columns import hyper_text

    lines = [("name", node.name)]
    if node.kind != "input":
        hyper = hyper_text(node.rows[0], layout) if len(node.rows) == 1 or node.rows[0].name == node.name else ""
        lines.append(("small", f"{node.kind} {hyper}".strip()))
    if len(node.names) > 1:
        lines.append(("small", "+ " + ", ".join(node.names[1:])))
    for label in labels:
        if label == "shape":
            lines.append(("", shape_text(node.shape, layout)))
        elif label == "params" and node.kind != "input":
            lines.append(("", f"params {compact(node.total('params'))}"))
        elif label == "macs" and node.kind != "input":
            lines.append(("", f"MACs {compact(node.total('macs'))}"))
        elif label == "memory" and node.kind != "input":
            lines.append(("", f"out {short_bytes(node.rows[-1].activation_bytes)}"))
    return lines


def text_width(text: str, size: float = FONT_SIZE) -> float:
    return len(text) * CHAR_WIDTH * size / FONT_SIZE


# ----------------------------------------------------------------------------- SVG
def _n(value: float) -> str:
    """A coordinate to 0.1 px, without a trailing .0 (small files)."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


class Svg:
    """A few SVG elements; text is centred unless ``anchor`` says otherwise (the style's default)."""

    def __init__(self):
        self.parts: list[str] = []

    def rect(self, x, y, w, h, css: str, fill: str | None = None, extra: str = "") -> None:
        colour = f' fill="{fill}"' if fill else ""
        self.parts.append(f'<rect class="{css}" x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(h)}"'
                          f'{colour}{extra}/>')

    def text(self, x, y, text: str, css: str = "", anchor: str = "middle") -> None:
        classes = " ".join(filter(None, [css, "start" if anchor == "start" else ""]))  # the style beats attributes
        attributes = f' class="{classes}"' if classes else ""
        self.parts.append(f'<text x="{_n(x)}" y="{_n(y)}"{attributes}>{escape(text)}</text>')

    def path(self, points: list[tuple[float, float]], css: str) -> None:
        d = " ".join(f"{'M' if i == 0 else 'L'}{_n(x)},{_n(y)}" for i, (x, y) in enumerate(points))
        self.parts.append(f'<path class="{css}" d="{d}"/>')

    def open(self, tag: str) -> None:
        self.parts.append(tag)


STYLE = (
    "text{font-family:monospace;font-size:12px;fill:#111;text-anchor:middle}.start{text-anchor:start}"
    ".name{font-weight:bold}.small{font-size:10px;fill:#444}.title{font-size:15px;font-weight:bold}"
    ".caption{font-size:10px;fill:#555}.background{fill:#fff}"
    ".node{stroke:#444;stroke-width:1}.input{stroke-dasharray:4 3}.merge{stroke:#6a3d9a;stroke-width:1.5}"
    ".slab{stroke:#333;stroke-width:0.8}.edge{fill:none;stroke:#555;stroke-width:1.2;marker-end:url(#arrow)}"
)


def _document(width: float, height: float, title: str, body: list[str]) -> str:
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{math.ceil(width)}" height="{math.ceil(height)}" '
            f'viewBox="0 0 {math.ceil(width)} {math.ceil(height)}">\n<title>{escape(title)}</title>\n'
            f"<style>{STYLE}</style>\n"
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
            'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>\n'
            f'<rect class="background" x="0" y="0" width="{math.ceil(width)}" height="{math.ceil(height)}"/>\n')
    return head + "\n".join(body) + "\n</svg>\n"


def draw_svg(report: Report, labels: tuple[str, ...] = ("shape",), style: str = "auto",
             depth: int | None = None) -> str:
    """The network as SVG text. ``style``: auto (maps for a chain, else graph), maps or graph."""
    nodes = build_graph(report, depth)
    chain = is_chain(nodes)
    if style == "maps" and not chain:
        from ..errors import Location, SpecError

        raise SpecError("the feature-map style draws chains only (every layer reading the one before); "
                        "this network branches: use --style graph", Location(report.file))
    if style == "maps" or (style == "auto" and chain):
        return _draw_maps(report, nodes, labels)
    return _draw_graph(report, nodes, labels)


def _header(report: Report, svg: Svg, x: float) -> float:
    """Title and totals; returns the y below them."""
    from ..notation import shape_text
    from ..units import compact

    inputs = ", ".join(shape_text(shape, report.layout) for shape in report.inputs.values())
    svg.text(x, 24, report.name, "title", "start")
    svg.text(x, 42, f"input {inputs} · params {report.totals.params:,} · MACs {compact(report.totals.macs)}",
             "caption", "start")
    return 58


def _caption(report: Report, labels: tuple[str, ...], maps: bool) -> list[str]:
    from ..notation import LAYOUTS

    lines = [f"Shapes {LAYOUTS[report.layout].words}, batch {report.batch}."]
    if maps:
        lines.append("Feature maps: height and width grow with log2 of the size, the stack with log2 of the "
                     "channels; a flat vector is a bar.")
    else:
        lines.append("One box per layer; arrows show which outputs each layer reads; merges (add, concat, mul) "
                     "are outlined in purple.")
    lines.append("+ a, b: element-wise layers (no weights, same shape) folded into the box before them.")
    if "macs" in labels:
        lines.append("MACs: weight multiply-accumulates, bias excluded.")
    if "params" in labels:
        lines.append("params: trainable + non-trainable (batch-norm running statistics).")
    return lines


# ----------------------------------------------------------------------------- maps (chains)
def _log_size(size: int, scale: float) -> float:
    return 6 + scale * math.log2(max(size, 1) + 1)


def _slabs(shape: tuple[int, ...]) -> tuple[float, float, int, float]:
    """(width, height, number of slabs, depth offset) of one tensor's drawing."""
    channels, spatial = shape[0], shape[1:]
    if not spatial:  # a flat vector: a bar as tall as its length
        return 10.0, _log_size(channels, 14), 1, 0.0
    height = _log_size(spatial[-2], 13) if len(spatial) >= 2 else 10.0
    width = _log_size(spatial[-1], 13)
    return width, height, min(channels, 8), 2 + 5 * math.log2(channels) if channels > 1 else 0.0


def _draw_maps(report: Report, nodes: list[Node], labels: tuple[str, ...]) -> str:
    svg = Svg()
    top = _header(report, svg, 16)
    drawings = [_slabs(node.shape) for node in nodes]
    texts = [node_lines(node, labels, report.layout) for node in nodes]
    rise = max(depth for *_, depth in drawings)
    tallest = max(height for _, height, _, _ in drawings)
    middle = top + 12 + rise + tallest / 2  # every stack's front face is centred on this line
    label_top = middle + tallest / 2 + 18
    x, gap = 20.0, 34.0
    anchors = []
    for node, (width, height, count, depth), lines in zip(nodes, drawings, texts):
        footprint = width + depth
        column = max(footprint, max(text_width(text) for _, text in lines))
        left = x + (column - footprint) / 2
        svg.open('<g class="stage">')
        fill = FILL.get(node.kind, OTHER_FILL)
        for slab in range(count - 1, -1, -1):  # back to front
            offset = depth * slab / max(count - 1, 1)
            svg.rect(left + offset, middle - height / 2 - offset, width, height, "slab", fill)
        svg.open("</g>")
        centre = x + column / 2
        for number, (css, text) in enumerate(lines):
            svg.text(centre, label_top + number * LINE, text, css)
        anchors.append((left, left + footprint, centre))
        x += column + gap
    for (_, right, _), (left, _, _) in zip(anchors, anchors[1:]):
        svg.path([(right + 4, middle), (left - 4, middle)], "edge")
    bottom = label_top + max(len(lines) for lines in texts) * LINE + 8
    for number, line in enumerate(_caption(report, labels, maps=True)):
        svg.text(16, bottom + number * 13, line, "caption", "start")
    width = max(x, 16 + max(text_width(line, 10) for line in _caption(report, labels, True)) + 16)
    height = bottom + len(_caption(report, labels, True)) * 13 + 8
    return _document(width, height, f"{report.name}: feature maps", svg.parts)


# ----------------------------------------------------------------------------- graph (DAGs)
@dataclass
class Box:
    node: int | None  # None: a way point of a long edge
    width: float
    height: float
    x: float = 0.0  # centre
    y: float = 0.0  # top
    preds: list[int] = field(default_factory=list)  # box indices one layer up
    succs: list[int] = field(default_factory=list)
    band: int = 0  # the layer it is in


def _draw_graph(report: Report, nodes: list[Node], labels: tuple[str, ...]) -> str:
    texts = [node_lines(node, labels, report.layout) for node in nodes]
    boxes, layers, edges = _layered(nodes, texts)
    _order(boxes, layers)
    _place(boxes, layers)
    svg = Svg()
    top = _header(report, svg, 16)
    y = top + 10
    bands = []  # (top, bottom) of each layer
    for layer in layers:
        height = max(boxes[b].height for b in layer)
        for b in layer:
            boxes[b].y = y + (height - boxes[b].height) / 2
            boxes[b].band = len(bands)
        bands.append((y, y + height))
        y += height + 34
    left = min(boxes[b].x - boxes[b].width / 2 for layer in layers for b in layer)
    shift = 20 - left
    for box in boxes:
        box.x += shift
    for route in edges:
        svg.path(_route(boxes, bands, route), "edge")
    for box in boxes:
        if box.node is None:
            continue
        node = nodes[box.node]
        css = "node" + (" input" if node.kind == "input" else " merge" if node.kind in MERGES else "")
        svg.rect(box.x - box.width / 2, box.y, box.width, box.height, css, FILL.get(node.kind, OTHER_FILL), ' rx="4"')
        for number, (text_css, text) in enumerate(texts[box.node]):
            svg.text(box.x, box.y + PAD + 11 + number * LINE, text, text_css)
    caption = _caption(report, labels, maps=False)
    for number, line in enumerate(caption):
        svg.text(16, y + number * 13, line, "caption", "start")
    right = max(box.x + box.width / 2 for box in boxes)
    width = max(right + 20, 16 + max(text_width(line, 10) for line in caption) + 16,
                16 + text_width(report.name, 15) + 16)
    return _document(width, y + len(caption) * 13 + 8, f"{report.name}: block graph", svg.parts)


def _route(boxes: list[Box], bands: list[tuple[float, float]], route: list[int]) -> list[tuple[float, float]]:
    """An edge goes straight down inside each layer's band (where only its own box or way point
    is) and turns only in the empty space between bands, so it never crosses a box."""
    source, target = boxes[route[0]], boxes[route[-1]]
    points = [(source.x, source.y + source.height), (source.x, bands[source.band][1])]
    for b in route[1:-1]:
        top, bottom = bands[boxes[b].band]
        points += [(boxes[b].x, top), (boxes[b].x, bottom)]
    points += [(target.x, bands[target.band][0]), (target.x, target.y)]
    return [p for i, p in enumerate(points) if i == 0 or p != points[i - 1]]


def _layered(nodes: list[Node], texts) -> tuple[list[Box], list[list[int]], list[list[int]]]:
    """Boxes in layers by longest path (nodes come in topological order), way points on long
    edges; each edge as the list of boxes it passes."""
    level = []
    for node in nodes:
        level.append(1 + max((level[source] for source in node.inputs), default=-1))
    boxes = [Box(number, max(text_width(text, 10 if css == "small" else FONT_SIZE) for css, text in lines) + 2 * PAD,
                 len(lines) * LINE + 2 * PAD - 2)
             for number, lines in enumerate(texts)]
    layers: list[list[int]] = [[] for _ in range(max(level) + 1)]
    for number, lvl in enumerate(level):
        layers[lvl].append(number)
    edges = []
    for target, node in enumerate(nodes):
        for source in node.inputs:
            route = [source]
            for lvl in range(level[source] + 1, level[target]):
                boxes.append(Box(None, 12.0, 10.0))
                layers[lvl].append(len(boxes) - 1)
                route.append(len(boxes) - 1)
            route.append(target)
            for upper, lower in zip(route, route[1:]):
                boxes[lower].preds.append(upper)
                boxes[upper].succs.append(lower)
            edges.append(route)
    return boxes, layers, edges


def _order(boxes: list[Box], layers: list[list[int]], sweeps: int = 6) -> None:
    """Barycentre ordering, down and up; the order with the fewest crossings is kept."""
    def rank() -> dict[int, int]:
        return {b: i for layer in layers for i, b in enumerate(layer)}

    best, best_crossings = [list(layer) for layer in layers], _crossings(boxes, layers)
    for sweep in range(sweeps):
        down = sweep % 2 == 0
        sequence = range(1, len(layers)) if down else range(len(layers) - 2, -1, -1)
        for lvl in sequence:
            position = rank()
            layers[lvl].sort(key=lambda b, down=down, position=position: _barycentre(boxes[b], b, down, position))
        crossings = _crossings(boxes, layers)
        if crossings < best_crossings:
            best, best_crossings = [list(layer) for layer in layers], crossings
    layers[:] = best


def _barycentre(box: Box, number: int, down: bool, position: dict[int, int]) -> float:
    """The mean position of a box's neighbours in the layer it was sorted against (its own if none)."""
    near = box.preds if down else box.succs
    return sum(position[n] for n in near) / len(near) if near else position[number]


def _crossings(boxes: list[Box], layers: list[list[int]]) -> int:
    position = {b: i for layer in layers for i, b in enumerate(layer)}
    total = 0
    for layer in layers:
        pairs = sorted((position[u], position[v]) for u in layer for v in boxes[u].succs)
        for i, (_, a) in enumerate(pairs):
            total += sum(1 for _, b in pairs[i + 1:] if b < a)
    return total


def _place(boxes: list[Box], layers: list[list[int]], rounds: int = 8, gap: float = 24.0) -> None:
    """x centres: each box as near its neighbours' mean as the layer's order and spacing allow."""
    for layer in layers:
        x = 0.0
        for b in layer:
            boxes[b].x = x + boxes[b].width / 2
            x += boxes[b].width + gap
    for round_ in range(rounds):
        down = round_ % 2 == 0
        for layer in (layers[1:] if down else layers[-2::-1]):
            wanted = []
            for b in layer:
                near = boxes[b].preds if down else boxes[b].succs
                pull = sum(_weight(boxes[n]) for n in near)
                wanted.append(sum(_weight(boxes[n]) * boxes[n].x for n in near) / pull if near else boxes[b].x)
            apart = [(boxes[a].width + boxes[b].width) / 2 + gap for a, b in zip(layer, layer[1:])]
            for b, x in zip(layer, _spaced(wanted, apart, [_weight(boxes[b]) for b in layer])):
                boxes[b].x = x


def _weight(box: Box) -> float:
    """Way points give way to boxes, so a main path stays straight and long edges go round it."""
    return 1.0 if box.node is None else 8.0


def _spaced(wanted: list[float], apart: list[float], weights: list[float]) -> list[float]:
    """The positions nearest ``wanted`` (weighted least squares) with x[i+1] - x[i] >= apart[i]:
    pool adjacent violators on x[i] minus the spacing before it, which must not decrease."""
    offsets = [0.0]
    for distance in apart:
        offsets.append(offsets[-1] + distance)
    pools: list[list[float]] = []  # [mean, weight, members]
    for value, weight in zip((w - o for w, o in zip(wanted, offsets)), weights):
        pools.append([value, weight, 1])
        while len(pools) > 1 and pools[-2][0] > pools[-1][0]:
            value2, weight2, count2 = pools.pop()
            value1, weight1, count1 = pools.pop()
            pools.append([(value1 * weight1 + value2 * weight2) / (weight1 + weight2), weight1 + weight2,
                          count1 + count2])
    fitted = [mean for mean, _, count in pools for _ in range(count)]
    return [value + offset for value, offset in zip(fitted, offsets)]
