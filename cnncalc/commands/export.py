"""`cnncalc export SPEC --to pytorch [-o net.py]`: the spec as a runnable PyTorch file.

Only click at module level; the analysis and the exporter come in when the command runs. The
file needs PyTorch to run, cnncalc does not need it to write the file.
"""
from __future__ import annotations

import click

from .support import fail, input_option

TARGETS = ("pytorch", "onnx")


@click.command()
@click.argument("spec")
@click.option("--to", "target", type=click.Choice(TARGETS), default="pytorch", show_default=True,
              help="The framework to write: pytorch (one nn.Module, named as the spec's layers) or onnx (an "
                   "ONNX model, opset 20, zero weights, batch 1; needs the onnx package, not PyTorch).")
@click.option("-o", "--output", "output_file", default=None, metavar="FILE",
              help="Write the code to FILE (atomically; never over the spec) instead of stdout.")
@input_option("Export at another input size, e.g. 3x320x320 (read in the spec's layout); fixes the size an ONNX "
              "file leaves dynamic.")
@click.option("--weights", type=click.Choice(["zero", "random"]), default="zero", show_default=True,
              help="--to onnx: the initializers' values: zeros, or seeded random (He-normal weights); the "
                   "model's doc string says which.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="--to onnx --weights random: the seed of numpy's default_rng.")
def export(spec, target, output_file, input_shape, weights, seed):
    """Write SPEC as code for a framework (a runnable PyTorch nn.Module, or an ONNX model)."""
    from ..errors import CnnCalcError

    try:
        loaded, analysis = analysed(spec, output_file, input_shape)
        if target != "onnx" and (weights, seed) != ("zero", 0):
            from ..errors import Location

            raise CnnCalcError("--weights and --seed apply to --to onnx; the PyTorch file initialises its "
                               "weights as PyTorch does", Location(file="--weights"))
        if target == "onnx":
            write_onnx(analysis, spec, loaded.description, output_file, weights, seed)
            for warning in analysis.report.warnings:
                click.echo(f"{warning.loc}: warning: {warning.message}", err=True)
            return
        from ..export.pytorch import pytorch_source

        text = pytorch_source(analysis, spec, loaded.description)
        if output_file:
            from ..output import write_atomically

            write_atomically(output_file, text)
        else:
            click.echo(text, nl=False)
        for warning in analysis.report.warnings:  # a size floored by default; declared roundings need no word
            click.echo(f"{warning.loc}: warning: {warning.message}", err=True)
    except CnnCalcError as exc:
        fail(exc)


def write_onnx(analysis, spec: str, description: str | None, output_file: str | None, weights: str = "zero",
               seed: int = 0) -> None:
    """The ONNX model's bytes to ``output_file`` (atomically), or to stdout when it is not a terminal."""
    import os
    import sys
    import tempfile

    from ..errors import CnnCalcError
    from ..export.onnx import onnx_bytes

    data = onnx_bytes(analysis, spec, description, weights, seed)
    if not output_file:
        if sys.stdout.isatty():
            raise CnnCalcError("an ONNX model is binary: give -o FILE.onnx, or redirect stdout to a file")
        stream = sys.stdout.buffer
        stream.write(data)
        stream.flush()
        return
    target = os.path.abspath(output_file)
    try:
        handle, temporary = tempfile.mkstemp(dir=os.path.dirname(target), prefix="." + os.path.basename(target) + ".",
                                             suffix=".tmp")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, target)
    except OSError as exc:
        raise CnnCalcError(f"{output_file}: cannot be written ({exc.strerror or exc})") from None


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def analysed(spec: str, output_file: str | None, input_shape: str | None = None):
    """(the spec, its analysis) with the sizes PyTorch computes: a size that is not whole is floored,
    as `run` and `verify` floor it (a note where the spec declares `rounding: floor`, a warning per
    layer otherwise); ``output_file`` must not be the spec."""
    from dataclasses import replace

    from ..api import analyze_spec, load_spec

    loaded = load_spec(spec, input_shape=input_shape)  # a file, a zoo model or a lecture example
    if output_file:
        from ..output import refuse_to_overwrite

        refuse_to_overwrite(output_file, [loaded.file])
    floored = loaded if loaded.rounding == "floor" else replace(loaded, rounding=None)
    return loaded, analyze_spec(floored, rounding=None)
