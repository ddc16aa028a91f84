"""Replay the output of a `cnncalc table` run whose inputs have not changed.

A warm run then costs click and a file read instead of the YAML parser, pydantic's models and
the engine (about 0.1 s instead of 0.35 s as a whole process). The key covers everything the
output depends on: the spec's bytes, the command line, whether the streams are terminals, the
colour environment, and the installed cnncalc code (names, sizes and times of its files), so a
changed spec or an upgraded cnncalc never replays stale output.

Off with CNNCALC_NO_CACHE=1; the folder is $CNNCALC_CACHE_DIR, else $XDG_CACHE_HOME/cnncalc,
else ~/.cache/cnncalc. Entries beyond MAX_ENTRIES are pruned, oldest first.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

FORMAT = 1
MAX_ENTRIES = 256
ENVIRONMENT = ("NO_COLOR", "FORCE_COLOR", "TERM", "COLORTERM", "COLUMNS", "CNNCALC_DEBUG")


def cache_dir() -> Path | None:
    if os.environ.get("CNNCALC_NO_CACHE"):
        return None
    explicit = os.environ.get("CNNCALC_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cnncalc"


def _code_fingerprint() -> str:
    package = Path(__file__).parent
    digest = hashlib.sha256(str(FORMAT).encode())
    for root, _dirs, files in sorted(os.walk(package)):
        for name in sorted(files):
            if name.endswith(".py"):
                stat = os.stat(os.path.join(root, name))
                digest.update(f"{root}/{name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()


def key_for(spec_file: Path, argv: list[str]) -> str | None:
    """None when the run cannot be cached (no cache folder, unreadable spec)."""
    try:
        spec_bytes = spec_file.read_bytes()
    except OSError:
        return None
    digest = hashlib.sha256()
    for part in (_code_fingerprint(), json.dumps(argv), str(spec_file.resolve()),
                 str(sys.stdout.isatty()), str(sys.stderr.isatty()),
                 json.dumps([os.environ.get(name) for name in ENVIRONMENT])):
        digest.update(part.encode() + b"\0")
    digest.update(spec_bytes)
    return digest.hexdigest()


def replay(folder: Path, key: str) -> int | None:
    """Write a stored run's output; its exit code, or None on a miss or an unreadable entry."""
    try:
        entry = json.loads((folder / f"{key}.json").read_text(encoding="utf-8"))
        stdout, stderr, code = entry["stdout"], entry["stderr"], int(entry["code"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    sys.stdout.write(stdout)
    sys.stderr.write(stderr)
    return code


def store(folder: Path, key: str, stdout: str, stderr: str, code: int) -> None:
    """Atomically, and silently give up when the folder is not writable: a cache is optional."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump({"stdout": stdout, "stderr": stderr, "code": code}, file)
        os.replace(temporary, folder / f"{key}.json")
        _prune(folder)
    except OSError:
        pass


def _prune(folder: Path) -> None:
    entries = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
    for stale in entries[: max(len(entries) - MAX_ENTRIES, 0)]:
        stale.unlink(missing_ok=True)


class Recorder:
    """A stream that writes through to the real one and keeps a copy (terminal checks pass through)."""

    def __init__(self, stream):
        self.stream = stream
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        written = self.stream.write(text)  # first: a text stream refuses bytes, as click's probe expects
        self.parts.append(text)
        return written

    def text(self) -> str:
        return "".join(self.parts)

    def __getattr__(self, name):
        return getattr(self.stream, name)
