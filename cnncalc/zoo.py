"""The shipped model zoo: specs/*.yaml, installed as the package ``cnncalc.zoo``."""
from __future__ import annotations

import re
from pathlib import Path

from .errors import Location, SpecError

NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def zoo_dir() -> Path:
    installed = Path(__file__).parent / "zoo"
    return installed if installed.is_dir() else Path(__file__).parent.parent / "specs"


def model_names() -> list[str]:
    return sorted(p.stem for p in zoo_dir().glob("*.yaml"))


def is_model_name(text: str) -> bool:
    return bool(NAME.match(text)) and not text.endswith((".yaml", ".yml", ".json", ".toml"))


def spec_path(source: str | Path) -> Path:
    """A path as given when it exists, else the zoo spec of that name (raising when there is none)."""
    path = Path(source)
    if path.exists() or not is_model_name(str(source)):
        return path
    return path_of(str(source))


def path_of(name: str) -> Path:
    path = zoo_dir() / f"{name.lower()}.yaml"
    if not path.exists():
        import difflib

        hint = difflib.get_close_matches(name.lower(), model_names(), n=3)
        suggestion = f"; did you mean {', '.join(hint)}?" if hint else "; `cnncalc models` lists the zoo"
        raise SpecError(f"no such file, and no zoo model is called `{name}`{suggestion}", Location(file=name))
    return path
