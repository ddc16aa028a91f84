"""`cnncalc import MODEL.onnx [-o spec.yaml]` and `cnncalc import --torch TARGET --input SHAPE`: a
readable cnncalc spec (YAML) from an ONNX file or a PyTorch model.

Only click at module level; the importers (and onnx or torch, which they import) come in when the
command runs.
"""
from __future__ import annotations

from pathlib import Path

import click

from .support import fail, input_option


@click.command("import")
@click.argument("model", required=False, metavar="[MODEL.onnx]")
@click.option("-o", "--output", "output_file", default=None, metavar="FILE",
              help="Write the spec to FILE (atomically; never over the model) instead of stdout.")
@input_option("The input size [C, *spatial], e.g. 3x224x224: fixes a dynamic ONNX input (or replaces a "
              "static one); required with --torch.")
@click.option("--torch", "torch_target", default=None, metavar="TARGET",
              help="Import a PyTorch model instead: 'package.module:factory' or 'path/to/file.py:ClassName', "
                   "built by calling it with no arguments.")
@click.option("--partial", is_flag=True,
              help="Keep the layers before the first op cnncalc cannot map (listed on stderr) instead of failing.")
@click.option("--name", "spec_name", default=None, help="The spec's `name` (default: the model's).")
def import_command(model, output_file, input_shape, torch_target, partial, spec_name):
    """Write a cnncalc spec (YAML) from an ONNX file or a PyTorch model.

    \b
    cnncalc import resnet50.onnx -o resnet50.yaml
    cnncalc import model.onnx --input 3x224x224 -o model.yaml     (a dynamic input size)
    cnncalc import --torch torchvision.models:resnet18 --input 3x224x224 -o resnet18.yaml

    Every layer is one line; layer names are the model's (PyTorch's module names where the
    file has them). `cnncalc table MODEL.onnx` reads an ONNX file directly. An op cnncalc
    cannot map is never counted as zero: the import fails and lists every such op (exit 2).
    """
    from ..errors import CnnCalcError

    try:
        text, messages = imported_text(model, input_shape, torch_target, partial, spec_name)
        if output_file:
            from ..output import refuse_to_overwrite, write_atomically

            refuse_to_overwrite(output_file, _input_files(model, torch_target))
            write_atomically(output_file, text)
        else:
            click.echo(text, nl=False)
        for message in messages:
            click.echo(message, err=True)
    except CnnCalcError as exc:
        fail(exc)


def imported_text(model: str | None, input_shape: str | None, torch_target: str | None, partial: bool,
                  spec_name: str | None) -> tuple[str, list[str]]:
    """(the spec's YAML text, the lines for stderr: notes, what --partial left out, a summary)."""
    from ..errors import Location, SpecError
    from ..importers import spec_yaml

    here = Location(file="cnncalc import")
    if (model is None) == (torch_target is None):
        raise SpecError("give an ONNX file (MODEL.onnx) or --torch TARGET, one of the two", here)
    shape, messages = None, []
    if input_shape is not None:
        from ..api import input_option_reading

        reading = input_option_reading(input_shape, None)
        shape = reading.shape
        if reading.note:
            messages.append(f"--input: note: {reading.note}")
    if torch_target is not None:
        if shape is None:
            raise SpecError("--torch needs --input, the size the model is traced at (e.g. 3x224x224)",
                            Location(file="--torch"))
        if partial:
            raise SpecError("--partial applies to ONNX files; a PyTorch model is mapped whole or not at all",
                            Location(file="--partial"))
        from ..importers.torch_import import spec_from_torch  # torch comes in only here

        data = spec_from_torch(torch_target, tuple(shape))
        source = f"{torch_target} (PyTorch), input {'x'.join(map(str, shape))}, by `cnncalc import --torch`"
        origin = torch_target
    else:
        if Path(model).suffix.lower() != ".onnx":
            raise SpecError("cnncalc import reads ONNX files (MODEL.onnx); for a PyTorch model give "
                            "--torch 'package.module:factory' --input 3x224x224", Location(file=model))
        from ..importers.onnx_import import read_onnx

        imported = read_onnx(model, shape, partial)
        data = imported.data
        source = f"{Path(model).name} ({imported.producer}), by `cnncalc import`"
        if shape is not None:
            source += f"\ninput fixed by --input {'x'.join(map(str, shape))}"
        messages += [f"{model}: note: {note}" for note in imported.notes]
        if imported.stopped_at is not None:
            first = imported.unsupported[0]
            source += f"\npartial (--partial): the layers before {first.split(':', 1)[0]}, the first op cnncalc " \
                      "cannot map"
            messages.append(f"{model}: warning: --partial: {len(data['layers'])} layers, up to the first op cnncalc "
                            f"cannot map; not imported: {'; '.join(imported.unsupported)}")
        origin = model
    if spec_name:
        data["name"] = spec_name
    messages.append(_summary(data, origin))
    return spec_yaml(data, source), messages


def _summary(data: dict, origin: str) -> str:
    """One line: what the spec holds, as `cnncalc table` counts it."""
    from ..api import analyze, load_spec
    from ..units import compact

    report = analyze(load_spec(data))
    totals = report.totals
    count = len(report.layers)
    return (f"{origin}: note: {count} layer{'s' if count != 1 else ''}, {totals.trainable_params:,} trainable params "
            f"({totals.params:,} with buffers), {compact(totals.macs)} MACs at input "
            f"{'x'.join(map(str, report.input_shape))}")


def _input_files(model: str | None, torch_target: str | None) -> list[str | None]:
    """What --output must never replace: the ONNX file, or the .py file of a --torch target."""
    files = [model]
    if torch_target and ":" in torch_target:
        candidate = torch_target.rsplit(":", 1)[0]
        if candidate.endswith(".py"):
            files.append(candidate)
    return files
