"""Command-line interface: the click group, which module holds each command, and the entry point.

Each command lives in cnncalc/commands/<module>.py and is imported only when it runs (or when
`cnncalc --help` lists them all). What commands share (the error exit, the console, the options)
is in cnncalc/commands/support.py; nothing imports this module back.

Exit codes: 0 ok, 1 findings (wrong answers, failed checks), 2 unusable input, 3 internal error.
"""
from __future__ import annotations

import importlib
import os
import sys

import click

from .commands.support import fail
from .errors import EXIT_UNUSABLE, CnnCalcError

EXIT_INTERNAL = 3

# name -> "module:function", in the README's order (which `cnncalc --help` keeps).
COMMANDS = {
    "table": "cnncalc.commands.table:table",
    "fit": "cnncalc.commands.fit:fit",
    "layer": "cnncalc.commands.layer:layer",
    "explain": "cnncalc.commands.layer:explain",
    "solve": "cnncalc.commands.solve:solve",
    "check": "cnncalc.commands.check:check",
    "validate": "cnncalc.commands.validate:validate",
    "schema": "cnncalc.commands.validate:schema",
    "diff": "cnncalc.commands.diff:diff",
    "models": "cnncalc.commands.models:models",
    "compare": "cnncalc.commands.compare:compare",
    "devices": "cnncalc.commands.devices:devices",
    "verify": "cnncalc.commands.verify:verify",
    "run": "cnncalc.commands.run:run_command",
    "import": "cnncalc.commands.importer:import_command",
    "export": "cnncalc.commands.export:export",
    "draw": "cnncalc.commands.draw:draw",
}


class LazyGroup(click.Group):
    """Imports a command's module when the command is looked up, so `cnncalc table` never loads
    the code of `verify`."""

    def list_commands(self, ctx) -> list[str]:
        return [*COMMANDS, *(name for name in super().list_commands(ctx) if name not in COMMANDS)]

    def get_command(self, ctx, name: str):
        if name in self.commands or name not in COMMANDS:
            return super().get_command(ctx, name)
        module, _, attribute = COMMANDS[name].partition(":")
        command = getattr(importlib.import_module(module), attribute)
        self.commands[name] = command
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="cnncalc")
def cli():
    """Exact CNN shapes, parameters, MACs, memory and receptive fields."""


def main(argv=None) -> None:
    """Entry point: never shows a traceback for a user's mistake."""
    try:
        cli.main(args=argv, prog_name="cnncalc", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_UNUSABLE)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_UNUSABLE)
    except CnnCalcError as exc:
        fail(exc)
    except SystemExit:
        raise
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)
    except (KeyboardInterrupt, MemoryError, RecursionError) as exc:
        click.echo(f"cnncalc: stopped ({type(exc).__name__})", err=True)
        sys.exit(EXIT_UNUSABLE)
    except Exception as exc:  # a bug: say so in one line; CNNCALC_DEBUG=1 shows the traceback
        if os.environ.get("CNNCALC_DEBUG"):
            raise
        click.echo(f"cnncalc: internal error ({type(exc).__name__}: {exc}); please report it "
                   "(CNNCALC_DEBUG=1 shows the traceback)", err=True)
        sys.exit(EXIT_INTERNAL)
    sys.exit(0)
