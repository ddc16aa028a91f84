"""`cnncalc draw SPEC -o net.svg`: a picture of the network, SVG or PNG.

Only click at module level. The drawing is ``cnncalc.render.draw`` (pure: report in, SVG text
out); this module chooses the output and converts SVG to PNG with the first converter found:
the `cairosvg` package, `rsvg-convert` (librsvg), or a headless Chromium.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import click

from ..errors import Location, SpecError
from .support import fail, layout_option, print_warnings, rounding_option

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--force-device-scale-factor=1", "--default-background-color=ffffffff")


def _labels(ctx, param, value: str):
    from ..render.draw import LABELS

    keys = tuple(part.strip().lower() for part in value.split(",") if part.strip())
    unknown = [key for key in keys if key not in LABELS]
    if unknown:
        raise click.BadParameter(f"unknown label {unknown[0]!r}; choose from {', '.join(LABELS)}")
    return keys


@click.command()
@click.argument("spec")
@click.option("-o", "--output", "output_file", metavar="FILE",
              help="Write FILE: .svg, or .png (needs cairosvg, rsvg-convert or chromium). Default: SVG on stdout.")
@click.option("--label", "labels", default="shape", show_default=True, callback=_labels, metavar="KEYS",
              help="What each box shows under the layer's name and operation, comma-separated: "
                   "shape, params, macs, memory (e.g. shape,params).")
@click.option("--style", type=click.Choice(["auto", "maps", "graph"]), default="auto", show_default=True,
              help="maps: LeNet-style feature-map stacks (chains only); graph: a block graph; "
                   "auto: maps for a chain, else graph.")
@click.option("--depth", type=click.IntRange(min=0), default=None,
              help="Draw each composite nested this deep as one box (0: one box per top-level entry).")
@rounding_option(help="What a size that is not whole means (default: the spec's `rounding`, else floor).")
@layout_option("Show shapes as chw (C x H x W), hwc (H x W x C) or whd (W x H x D) (default: the spec's).")
def draw(spec, output_file, labels, style, depth, rounding, layout):
    """Draw SPEC (a file or a zoo model name) as a standalone SVG or a PNG.

    \b
    cnncalc draw lenet5 -o lenet5.svg
    cnncalc draw resnet18 --label shape,params -o resnet18.png
    """
    from ..api import analyze_spec, load_spec
    from ..errors import CnnCalcError
    from ..render.draw import draw_svg

    try:
        kind = _output_kind(output_file)
        loaded = load_spec(spec, layout)
        if output_file:
            from ..output import refuse_to_overwrite

            refuse_to_overwrite(output_file, [loaded.file])
        report = analyze_spec(loaded, rounding=rounding).report
        svg = draw_svg(report, labels, style, depth)
        if kind == "png":
            write_png(svg, output_file)
        elif output_file:
            from ..output import write_atomically

            write_atomically(output_file, svg)
        else:
            click.echo(svg, nl=False)
        print_warnings(report)
    except CnnCalcError as exc:
        fail(exc)


def _output_kind(output_file: str | None) -> str:
    if output_file is None:
        return "svg"
    suffix = Path(output_file).suffix.lower()
    if suffix not in (".svg", ".png"):
        raise SpecError("--output must end in .svg or .png", Location(output_file))
    return suffix[1:]


# ----------------------------------------------------------------------------- PNG
def write_png(svg: str, output_file: str) -> None:
    """SVG -> PNG with the first converter present, written atomically (a temporary file, then a rename)."""
    target = Path(output_file)
    handle, temporary = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.", suffix=".png")
    os.close(handle)
    try:
        converter = _converter()
        if converter is None:
            raise SpecError("cannot write PNG: no SVG converter found; install one of `pip install cairosvg`, "
                            "`apt-get install librsvg2-bin` (rsvg-convert) or `apt-get install chromium`, "
                            "or write .svg", Location(output_file))
        converter(svg, temporary)
        if not os.path.getsize(temporary):
            raise SpecError("cannot write PNG: the converter wrote nothing", Location(output_file))
        os.chmod(temporary, target.stat().st_mode & 0o777 if target.exists() else 0o666 & ~_umask())
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _converter():
    try:
        import cairosvg  # noqa: F401  (an optional package)

        return _with_cairosvg
    except (ImportError, OSError):  # OSError: the package is there but its cairo library is not
        pass
    if shutil.which("rsvg-convert"):
        return _with_rsvg
    if browser_path():
        return _with_chromium
    return None


def browser_path() -> str | None:
    return next(filter(None, (shutil.which(name) for name in BROWSERS)), None)


def _with_cairosvg(svg: str, path: str) -> None:
    import cairosvg

    cairosvg.svg2png(bytestring=svg.encode("utf-8"), write_to=path)


def _with_rsvg(svg: str, path: str) -> None:
    _run(["rsvg-convert", "--format", "png", "--output", path], svg.encode("utf-8"))


def _with_chromium(svg: str, path: str) -> None:
    """A screenshot of the SVG at its own size in a headless Chromium."""
    width, height = svg_size(svg)
    with tempfile.TemporaryDirectory(prefix="cnncalc-draw-") as folder:
        page = Path(folder) / "picture.svg"
        page.write_text(svg, encoding="utf-8")
        _run([browser_path(), *CHROMIUM_FLAGS, f"--user-data-dir={folder}/profile",
              f"--window-size={width},{height}", f"--screenshot={os.path.abspath(path)}", page.as_uri()])


def svg_size(svg: str) -> tuple[int, int]:
    import re

    match = re.search(r'<svg[^>]*\swidth="(\d+)"[^>]*\sheight="(\d+)"', svg)
    return (int(match.group(1)), int(match.group(2))) if match else (1200, 800)


def _run(command: list[str], stdin: bytes | None = None) -> None:
    try:
        done = subprocess.run(command, input=stdin, capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SpecError(f"cannot write PNG: {Path(command[0]).name} failed ({exc})") from None
    if done.returncode:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        raise SpecError(f"cannot write PNG: {Path(command[0]).name} exited {done.returncode} {detail[0]}".strip())
