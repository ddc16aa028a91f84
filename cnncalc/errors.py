"""One exception family for everything a user can get wrong, and the CLI's exit codes."""
from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_FINDINGS = 1  # wrong answers, failed checks, shape mismatches
EXIT_UNUSABLE = 2  # the input cannot be used: parse errors, impossible layers


@dataclass(frozen=True)
class Location:
    """Where in the user's spec something is: file, line and layer path."""

    file: str | None = None
    line: int | None = None
    path: str | None = None  # e.g. "layers[3].branches[1][0]"
    name: str | None = None  # the layer's name, when known

    def __str__(self) -> str:
        where = self.file or "<spec>"
        if self.line is not None:
            where += f":{self.line}"
        layer = self.path or ""
        if self.name and self.path:
            layer = f"{self.path} ({self.name})"
        elif self.name:
            layer = self.name
        return f"{where}: {layer}" if layer else where

    def to_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "path": self.path, "name": self.name}


class CnnCalcError(Exception):
    """A problem with the user's input, told as one plain sentence with its location."""

    exit_code = EXIT_UNUSABLE

    def __init__(self, message: str, loc: Location | None = None):
        super().__init__(message)
        self.message = message
        self.loc = loc or Location()

    def located(self, **fields) -> "CnnCalcError":
        """A copy with the missing location fields filled in (existing ones win)."""
        current = self.loc.__dict__
        merged = {k: current[k] if current[k] is not None else fields.get(k) for k in current}
        return type(self)(self.message, Location(**merged))

    def __str__(self) -> str:
        return f"{self.loc}: {self.message}"


class SpecError(CnnCalcError):
    """The spec file is malformed or names something that does not exist."""


class ShapeError(CnnCalcError):
    """A layer cannot be applied to the shape that reaches it."""


class FitError(ShapeError):
    """A size does not come out whole under the strict rounding policy."""
