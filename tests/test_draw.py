"""`cnncalc draw`: the network as a standalone SVG (or PNG), LeNet-style feature maps for chains,
a layered block graph for DAGs; geometry checked on the whole zoo, rendering in a real browser."""
from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

import cnncalc
from cnncalc.cli import cli
from cnncalc.commands.draw import BROWSERS, CHROMIUM_FLAGS
from cnncalc.render.draw import CHAR_WIDTH, build_graph, draw_svg, is_chain, _spaced
from cnncalc.zoo import example_names, model_names

SVG = "{http://www.w3.org/2000/svg}"
NETWORKS = model_names() + example_names()


def draw(*args: str):
    return CliRunner().invoke(cli, ["draw", *args])


@pytest.fixture(scope="module")
def zoo() -> dict[str, tuple]:
    """Every zoo network and lecture example: (report, SVG text), drawn once for all tests."""
    drawn = {}
    for name in NETWORKS:
        report = cnncalc.analyze(name)
        drawn[name] = (report, draw_svg(report, ("shape", "params")))
    return drawn


# ----------------------------------------------------------------------------- the graph
def test_lenet5_is_a_chain_with_the_activations_in_the_boxes_before_them():
    nodes = build_graph(cnncalc.analyze("lenet5"))
    assert is_chain(nodes)
    assert [node.names for node in nodes] == [
        ["input"], ["C1", "tanh1"], ["S2"], ["C3", "tanh2"], ["S4"], ["C5", "tanh3"], ["flatten1"],
        ["F6", "tanh4"], ["OUTPUT"]]


def test_resnet18_is_a_graph_whose_merges_read_the_block_and_its_shortcut():
    nodes = build_graph(cnncalc.analyze("resnet18"))
    assert not is_chain(nodes)
    by_name = {node.name: number for number, node in enumerate(nodes)}
    assert nodes[by_name["conv1"]].names == ["conv1", "bn1", "relu"]
    merge = nodes[by_name["layer2.0"]]  # add(conv2 + bn2, downsample), then relu
    assert (merge.kind, merge.names) == ("add", ["layer2.0", "layer2.0.relu"])
    assert sorted(nodes[source].name for source in merge.inputs) == ["layer2.0.conv2", "layer2.0.downsample.0"]
    assert [nodes[source].name for source in nodes[by_name["layer1.0"]].inputs] == ["layer1.0.conv2", "maxpool"]
    assert sum(node.kind == "add" for node in nodes) == 8  # two basic blocks in each of four stages


def test_depth_draws_each_top_level_block_as_one_box_with_its_sums():
    report = cnncalc.analyze("resnet50")
    nodes = build_graph(report, depth=0)
    assert is_chain(nodes)  # conv1, maxpool, then 16 bottlenecks one after another
    assert [node.name for node in nodes[3:6]] == ["layer1.0", "layer1.1", "layer1.2"]
    assert sum(node.total("params") for node in nodes) == report.totals.params == 25_610_152
    assert nodes[3].folded == [] and nodes[3].shape == (256, 56, 56)


def test_spacing_keeps_order_and_distance_and_is_nearest_to_what_is_wanted():
    assert _spaced([0.0, 0.0, 10.0], [5.0, 5.0], [1.0, 1.0, 1.0]) == [-2.5, 2.5, 10.0]
    assert _spaced([0.0, 100.0], [5.0], [8.0, 1.0]) == [0.0, 100.0]
    assert _spaced([0.0, 0.0], [10.0], [8.0, 1.0]) == pytest.approx([-10 / 9, 80 / 9])  # the lighter one gives way


# ----------------------------------------------------------------------------- geometry, on the zoo
def rects(svg: str, css: str) -> list[tuple[float, float, float, float]]:
    found = []
    for rect in ET.fromstring(svg).iter(f"{SVG}rect"):
        if css in rect.get("class", "").split():
            x, y, w, h = (float(rect.get(key)) for key in ("x", "y", "width", "height"))
            found.append((x, y, x + w, y + h))
    return found


def stage_boxes(svg: str) -> list[tuple[float, float, float, float]]:
    """The bounding box of each feature-map stack (its slabs overlap on purpose)."""
    boxes = []
    for group in ET.fromstring(svg).iter(f"{SVG}g"):
        slabs = [(float(r.get("x")), float(r.get("y")), float(r.get("x")) + float(r.get("width")),
                  float(r.get("y")) + float(r.get("height"))) for r in group.iter(f"{SVG}rect")]
        boxes.append((min(s[0] for s in slabs), min(s[1] for s in slabs), max(s[2] for s in slabs),
                      max(s[3] for s in slabs)))
    return boxes


def overlapping(boxes) -> list[tuple]:
    return [(a, b) for a, b in itertools.combinations(boxes, 2)
            if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]]


@pytest.mark.parametrize("name", NETWORKS)
def test_no_two_boxes_overlap_and_every_layer_is_named(zoo, name):
    report, svg = zoo[name]
    root = ET.fromstring(svg)  # well-formed XML
    nodes, stages = rects(svg, "node"), stage_boxes(svg)
    assert nodes or stages
    assert overlapping(nodes) == [] and overlapping(stages) == []
    width, height = float(root.get("width")), float(root.get("height"))
    assert all(0 <= box[0] and box[2] <= width and 0 <= box[1] and box[3] <= height for box in nodes + stages)
    text = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    words = set(re.split(r"[ ,]+", text))
    assert [row.name for row in report.layers if row.name not in words] == []


@pytest.mark.parametrize("name", NETWORKS)
def test_the_svg_is_standalone_and_small(zoo, name):
    _, svg = zoo[name]
    assert not re.search(r"<script|<image|<foreignObject|href=|@import|@font-face", svg)
    assert re.findall(r"url\(([^)]*)\)", svg) == ["#arrow"]  # the arrowhead marker, inside the file
    assert set(re.findall(r"font-family:([^;}]*)", svg)) == {"monospace"}  # a generic family, nothing to fetch
    assert len(svg) < 200_000


def test_lenet5_stacks_scale_with_the_shape():
    """Front faces shrink with the maps (28, 14, 10, 5 rows); stacks deepen with the channels (6, 16, 120)."""
    groups = list(ET.fromstring(draw_svg(cnncalc.analyze("lenet5"))).iter(f"{SVG}g"))
    assert len(groups) == 9
    slabs = [[(float(r.get("x")), float(r.get("height"))) for r in group.iter(f"{SVG}rect")] for group in groups]
    front = [stack[-1][1] for stack in slabs]
    depth = [stack[0][0] - stack[-1][0] for stack in slabs]  # the back slab's shift
    assert front[1] > front[2] > front[3] > front[4] > front[5]  # C1, S2, C3, S4, C5 (1x1)
    assert depth[0] == 0 and depth[1] < depth[3] < depth[5]  # 1, 6, 16, 120 channels
    assert [len(stack) for stack in slabs[:6]] == [1, 6, 6, 8, 8, 8]  # one slab per channel, at most 8


def test_text_fits_its_box_by_the_width_estimate(zoo):
    """Each line of a box is narrower than the box at CHAR_WIDTH per character (the browser test
    below measures the real widths)."""
    _, svg = zoo["googlenet"]
    root = ET.fromstring(svg)
    box = None
    for element in root:
        if element.tag == f"{SVG}rect" and "node" in element.get("class", ""):
            box = (float(element.get("x")), float(element.get("width")))
        elif element.tag == f"{SVG}text" and box and not {"caption", "title"} & set(element.get("class", "").split()):
            scale = 10 / 12 if element.get("class") == "small" else 1
            assert len(element.text) * CHAR_WIDTH * scale <= box[1]


# ----------------------------------------------------------------------------- the command
def test_draw_writes_svg_and_reports_wrong_choices(tmp_path):
    target = tmp_path / "net.svg"
    result = draw("lenet5", "-o", str(target), "--label", "shape,params,macs")
    assert result.exit_code == 0, result.output
    svg = target.read_text()
    assert svg.startswith("<svg") and "params 156" in svg and "MACs 117.6K" in svg
    assert "MACs: weight multiply-accumulates, bias excluded." in svg  # the convention is named
    assert draw("lenet5").stdout == draw_svg(cnncalc.analyze("lenet5"))
    bad = draw("lenet5", "-o", str(tmp_path / "net.pdf"))
    assert bad.exit_code == 2 and "--output must end in .svg or .png" in bad.output
    maps = draw("resnet18", "--style", "maps")
    assert maps.exit_code == 2 and "chains only" in maps.output and "--style graph" in maps.output
    label = draw("lenet5", "--label", "flops")
    assert label.exit_code == 2 and "choose from shape, params, macs, memory" in label.output
    graph = draw("lenet5", "--style", "graph")
    assert graph.exit_code == 0 and 'class="node' in graph.stdout


def test_png_without_a_converter_says_what_to_install(tmp_path, monkeypatch):
    import cnncalc.commands.draw as command

    monkeypatch.setattr(command, "_converter", lambda: None)
    result = draw("lenet5", "-o", str(tmp_path / "net.png"))
    assert result.exit_code == 2
    assert "pip install cairosvg" in result.output and "chromium" in result.output
    assert list(tmp_path.iterdir()) == []  # no half-written file left


# ----------------------------------------------------------------------------- a real browser
BROWSER = next(filter(None, map(shutil.which, BROWSERS)), None)
needs_browser = pytest.mark.skipif(BROWSER is None, reason="no Chromium (apt-get install chromium)")

PAGE = """<!doctype html><html><body><pre id="result">pending</pre><script>
const SVGS = %s;
function box(e) { const b = e.getBBox(); return [b.x, b.y, b.x + b.width, b.y + b.height]; }
function inside(a, b) { return a[0] >= b[0] - 1 && a[2] <= b[2] + 1 && a[1] >= b[1] - 1 && a[3] <= b[3] + 1; }
function apart(a, b) { return a[2] <= b[0] + 1 || b[2] <= a[0] + 1 || a[3] <= b[1] + 2 || b[3] <= a[1] + 2; }
const results = {};
for (const [name, source] of Object.entries(SVGS)) {
  const parsed = new DOMParser().parseFromString(source, "image/svg+xml");
  const error = parsed.getElementsByTagName("parsererror");
  if (error.length) { results[name] = {error: error[0].textContent}; continue; }
  const svg = document.importNode(parsed.documentElement, true);
  document.body.appendChild(svg);
  const outside = [], crowded = [], texts = [], clipped = [];
  const page = [0, 0, svg.width.baseVal.value, svg.height.baseVal.value];
  let node = null;
  for (const element of svg.children) {
    if (element.tagName === "rect" && element.classList.contains("node")) node = box(element);
    if (element.tagName !== "text") continue;
    texts.push([element.textContent, box(element)]);
    if (!inside(box(element), page)) clipped.push(element.textContent);
    const free = element.classList.contains("caption") || element.classList.contains("title");  // outside boxes
    if (node && !free && !inside(box(element), node)) outside.push(element.textContent);
  }
  for (let i = 0; i < texts.length; i++)
    for (let j = i + 1; j < texts.length; j++)
      if (!apart(texts[i][1], texts[j][1])) crowded.push([texts[i][0], texts[j][0]]);
  results[name] = {root: svg.tagName, text: texts.map(t => t[0]).join("\\n"), outside, crowded, clipped};
  svg.remove();
}
document.getElementById("result").textContent = JSON.stringify(results);
</script></body></html>"""


def chromium(*args: str, profile: Path) -> str:
    done = subprocess.run([BROWSER, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@needs_browser
def test_every_zoo_picture_renders_in_chromium_with_every_label_inside_its_box(zoo, tmp_path):
    """One browser start for the whole zoo: each SVG parsed by Chromium's XML parser, put in the
    page and measured with the fonts the browser really uses."""
    page = tmp_path / "zoo.html"
    page.write_text(PAGE % json.dumps({name: svg for name, (_, svg) in zoo.items()}), encoding="utf-8")
    dom = chromium("--virtual-time-budget=60000", "--dump-dom", page.as_uri(), profile=tmp_path / "profile")
    results = json.loads(re.search(r'<pre id="result">(.*?)</pre>', dom, re.S).group(1).replace("&amp;", "&")
                         .replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"'))
    assert sorted(results) == sorted(zoo)
    for name, (report, _) in zoo.items():
        result = results[name]
        assert "error" not in result, (name, result.get("error"))
        assert result["root"] == "svg"
        words = set(re.split(r"[\s,]+", result["text"]))
        assert [row.name for row in report.layers if row.name not in words] == [], name
        assert result["outside"] == [], (name, result["outside"][:5])
        assert result["crowded"] == [], (name, result["crowded"][:5])
        assert result["clipped"] == [], (name, result["clipped"][:5])  # every line within the picture


@needs_browser
def test_a_drawn_file_opens_in_chromium_and_converts_to_png(tmp_path):
    svg_file, png_file = tmp_path / "resnet18.svg", tmp_path / "lenet5.png"
    assert draw("resnet18", "-o", str(svg_file)).exit_code == 0
    dom = chromium("--dump-dom", svg_file.as_uri(), profile=tmp_path / "profile")
    assert dom.lstrip().startswith("<svg") and "parsererror" not in dom and "following errors" not in dom
    assert "layer4.1.conv2" in dom
    result = draw("lenet5", "-o", str(png_file))
    assert result.exit_code == 0, result.output
    data = png_file.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    svg = draw_svg(cnncalc.analyze("lenet5"))
    assert (width, height) == tuple(int(v) for v in re.search(r'width="(\d+)" height="(\d+)"', svg).groups())
