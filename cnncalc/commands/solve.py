"""`cnncalc solve`: find every value of one missing hyper-parameter (the arithmetic is in cnncalc.solve)."""
from __future__ import annotations

import sys

import click

from ..errors import EXIT_FINDINGS  # no value works: a finding, like a failed check
from ..render.json_layout import json_text
from .support import format_option, rounding_option

UNKNOWNS = ("padding", "stride", "kernel", "dilation", "output_padding", "input")


class Malformed(click.ClickException):
    """A question that cannot be asked: one `Error: ...` line on stderr, exit 2. Not a UsageError,
    which click would decorate with the usage banner."""

    exit_code = 2


class OneLineErrors(click.Command):
    """Click's own parse errors (bad int, missing --find) also print one line, without the banner."""

    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            exc.ctx = None  # click prints usage and a hint only when the error carries its context
            raise


def one_axis(ctx, param, value: str | None):
    """`32` or `32x32`; solving is per axis, so unequal axes are refused."""
    if value is None or (param.name == "output" and value == "same"):
        return value
    from ..notation import split_sizes

    option, parts = param.opts[0], split_sizes(value)
    if parts is None:
        extra = " or `same`" if param.name == "output" else ""
        raise Malformed(f"{option} {value!r} is not a whole number like 32 or 32x32{extra}")
    if len(set(parts)) > 1:
        raise Malformed(f"{option} {value}: the axes differ; solve one axis at a time "
                        f"({option} {parts[0]}, then the others)")
    return parts[0]


@click.command(cls=OneLineErrors)
@click.argument("kind")
@click.option("--find", type=click.Choice(UNKNOWNS), help="The value to solve for (required).")
@click.option("--input", "input_size", callback=one_axis, help="Input size W1 (32, or 32x32 when the axes are equal).")
@click.option("--output", callback=one_axis, help="Wanted output size W2, or `same` (TF/Keras: ceil(W1/S); conv_transpose: W1*S).")
@click.option("--same", is_flag=True, help="Same as --output same.")
@click.option("--kernel", type=click.IntRange(min=1), help="Kernel size F.")
@click.option("--stride", type=click.IntRange(min=1), help="Stride S (default 1; pooling: the kernel).")
@click.option("--padding", type=click.IntRange(min=0), help="Padding P on each side (default 0).")
@click.option("--dilation", type=click.IntRange(min=1), help="Dilation D (default 1; not for avgpool).")
@click.option("--output-padding", type=click.IntRange(min=0), help="conv_transpose only: output padding OP (default 0).")
@rounding_option(default="floor", choices=("strict", "floor"),
                 help="floor: as PyTorch (uneven exact fits are listed too); strict: the formula must come out "
                      "whole (the lecture).")
@format_option("text", "json")
def solve(kind, find, input_size, output, same, kernel, stride, padding, dilation, output_padding, rounding, fmt):
    """Find every value of one hyper-parameter that gives the wanted output size.

    KIND is conv, maxpool (or pool), avgpool or conv_transpose (or deconv). Example:
    `cnncalc solve conv --input 32 --output 16 --kernel 4 --stride 2 --find padding`.
    Exit 0: found; 1: no value works; 2: the question is malformed.
    """
    from ..solve import SolveError, solve as solve_layer

    if find is None:  # checked here: click's own message for a missing choice spans several lines
        raise Malformed(f"--find is missing: name the value to solve for ({', '.join(UNKNOWNS)})")
    if same and output not in (None, "same"):
        raise Malformed(f"--same and --output {output} contradict each other; give one")
    given = {"input": input_size, "kernel": kernel, "stride": stride, "padding": padding,
             "dilation": dilation, "output_padding": output_padding}
    try:
        answer = solve_layer(kind.lower(), find, output="same" if same else output, rounding=rounding,
                             **{key: value for key, value in given.items() if value is not None})
    except SolveError as exc:
        raise Malformed(exc.message) from None
    if fmt == "json":
        click.echo(json_text(answer.to_dict()), nl=False)
    else:
        print_answer(answer)
    if not answer.found:
        sys.exit(EXIT_FINDINGS)


def print_answer(answer) -> None:
    """`padding = 2: (32 - 5 + 2*2)/2 + 1 = 16` per solution; a summary when one line is not the whole story."""
    for solution in answer.found:
        note = " (asymmetric)" if solution.asymmetric else ""
        click.echo(f"{answer.find} = {solution.shown()}{note}: {solution.formula}")
    plain = len(answer.found) == 1 and answer.solutions and not answer.open_ended
    if not plain:
        click.echo(answer.message)
