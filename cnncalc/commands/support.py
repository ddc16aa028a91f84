"""What every command shares: the one-line error exit, the rich console, notes and warnings on
stderr, and the options several commands take, each defined once from its source of truth.

Only click and cnncalc.errors at module level (the package imports errors anyway); rich and the
modules that hold the choices (report.py, spec/build.py, notation.py) come in when a command
that uses them is loaded.

Helpers below the commands raise CnnCalcError; only a click command function calls ``fail``.
"""
from __future__ import annotations

import os
import sys

import click

from ..errors import CnnCalcError

# ----------------------------------------------------------------------------- output
def fail(exc: CnnCalcError):
    """One located error line on stderr, then the exit code of the error's family. For command
    functions only: helpers raise."""
    click.echo(f"{exc.loc}: error: {exc.message}", err=True)
    sys.exit(exc.exit_code)


def console(err: bool = False):
    """A rich Console on stdout (or stderr); piped output keeps tables whole instead of squeezing
    them into 80 columns."""
    from rich.console import Console

    stream = sys.stderr if err else sys.stdout
    width = None if stream.isatty() else int(os.environ.get("COLUMNS", 250))
    return Console(file=stream, width=width)


def print_warnings(report) -> None:
    """A report's notes, then its warnings, on stderr: one located line each."""
    for note in report.notes:
        click.echo(f"{note.loc}: note: {note.message}", err=True)
    for warning in report.warnings:
        click.echo(f"{warning.loc}: warning: {warning.message}", err=True)


# ----------------------------------------------------------------------------- shared options
# Each factory returns a click option; a command passes what differs (its default, the subset of
# choices it allows, its help). The choices come from the tables the analysis itself uses.
def _default_first(choices, default) -> list[str]:
    """The default first, then the others in their own order (the help then reads `[strict|floor|ceil]`)."""
    return sorted(choices, key=lambda choice: choice != default)


def input_option(help: str | None = "Analyse at another input size, e.g. 3x320x320 (read in the spec's layout); "
                                     "fixes the size an ONNX file leaves dynamic."):
    return click.option("--input", "input_shape", default=None, metavar="SHAPE", help=help)


def devices_file_option(help: str | None = "Your own device table (the shipped table's YAML shape): adds devices, "
                                          "replaces same-named ones."):
    return click.option("--devices", "devices_file", default=None, metavar="FILE", help=help)


def batch_option(help: str | None = "Batch size."):
    return click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help=help)


def dtype_option(help: str | None = "Element type for memory."):
    from ..report import DTYPE_BYTES

    return click.option("--dtype", type=click.Choice(_default_first(DTYPE_BYTES, "float32"), case_sensitive=False), default="float32",
                        show_default=True, help=help)


def optimizer_option(help: str | None = "Optimizer state counted in training memory."):
    from ..report import OPTIMIZER_COPIES

    return click.option("--optimizer", type=click.Choice(list(OPTIMIZER_COPIES), case_sensitive=False), default="sgd", show_default=True,
                        help=help)


def training_options(command):
    """--amp, --checkpoint, --optimizer-dtype and --train-on: how training memory is counted
    (cnncalc/training.py; the optimizer is ``optimizer_option``). The command receives them as the
    keyword arguments amp, checkpoint, optimizer_dtype and train_on."""
    from ..training import AMP, FLOATS, TRAIN_ON

    options = [
        click.option("--amp", type=click.Choice(list(AMP)), default=None,
                     help="Mixed precision as torch.autocast with this half dtype: float32 master weights, gradients "
                          "and optimizer state; activations in the dtype autocast computes them in."),
        click.option("--checkpoint", is_flag=True,
                     help="Activation checkpointing of every top-level entry (torch.utils.checkpoint, non-reentrant): "
                          "only each entry's inputs are kept; backward recomputes one entry at a time."),
        click.option("--optimizer-dtype", type=click.Choice(list(FLOATS)), default=None,
                     help="dtype of the optimizer state (default: the weights', as PyTorch's optimizers keep it)."),
        click.option("--train-on", type=click.Choice(list(TRAIN_ON)), default="cuda", show_default=True,
                     help="Count what PyTorch saves on this device (dropout's mask is bool on cuda, the activations' "
                          "dtype on cpu; autocast's op lists differ)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def layout_option(help: str):
    from ..notation import LAYOUT_KEYS

    return click.option("--layout", type=click.Choice(LAYOUT_KEYS), default=None, help=help)


def rounding_option(default: str | None = None, choices: tuple[str, ...] | None = None, help: str | None = None):
    """``--rounding``: every rounding the analysis knows (``ROUNDINGS``), or the subset a command
    allows (``solve``: strict and floor), whose members must be among them; the default first."""
    if choices is None:
        from ..spec.build import ROUNDINGS  # imported only where all of them are offered

        choices = ROUNDINGS
    return click.option("--rounding", type=click.Choice(_default_first(choices, default)), default=default,
                        show_default=default is not None, help=help)


def format_option(*choices: str, default: str | None = None, help: str | None = None):
    """``--format`` among a command's own formats; the default is the first unless named."""
    return click.option("--format", "fmt", type=click.Choice(choices), default=default or choices[0],
                        show_default=True, help=help)


def quantity_option(name: str, metavar: str = "N", positive: bool = False, help: str | None = None):
    """A count or a size such as 25M, 1E6, 1,000 or 2GiB, read by ``units.parse_quantity`` (the
    reader budgets, answers and the JSON Schema share) into (count, as written): the text is kept
    to show the limit as the user wrote it. ``positive``: 0 is refused."""

    def read(ctx, param, value):
        if value is None:
            return None
        from ..units import parse_quantity

        try:
            count = parse_quantity(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        if positive and count <= 0:
            raise click.BadParameter("must be more than 0" + (" bytes" if metavar == "BYTES" else ""))
        return count, value

    return click.option(name, callback=read, metavar=metavar, help=help)
