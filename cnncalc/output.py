"""Writing reports and sheets to files: atomically, and never over one of the inputs."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import Location, SpecError


def refuse_to_overwrite(output_file: str, inputs: list[str | None]) -> None:
    """A report must never replace the spec (or answers) it was made from."""
    target = Path(output_file)
    for source in filter(None, inputs):
        same = target.exists() and Path(source).exists() and os.path.samefile(target, source)
        if same or target.resolve() == Path(source).resolve():
            raise SpecError(f"refusing to overwrite the input file {source}; choose another --output",
                            Location(output_file))
    if target.is_dir():
        raise SpecError("is a directory; --output needs a file name", Location(output_file))


def write_atomically(path: str, text: str) -> None:
    """A temporary file in the same folder, then os.replace: readers never see half a file."""
    target = Path(path)
    mode = target.stat().st_mode & 0o777 if target.exists() else _default_mode()
    try:
        handle, temporary = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise SpecError(f"cannot be written ({exc.strerror or exc})", Location(path)) from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except OSError as exc:
        os.unlink(temporary)
        raise SpecError(f"cannot be written ({exc.strerror or exc})", Location(path)) from None
    except BaseException:
        os.unlink(temporary)
        raise


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask

