"""The shipped specs and the one resolver every command uses to find a SPEC.

The source of truth is the repository's top-level ``specs/`` folder: the model zoo
(``specs/*.yaml``) and the lecture's numeric examples (``specs/examples/*``). A wheel ships that
folder as the data-only package ``cnncalc.zoo_specs`` (``cnncalc/zoo_specs/``, see
pyproject.toml); a source checkout reads ``specs/`` itself.
"""
from __future__ import annotations

import re
from pathlib import Path

from .errors import Location, SpecError

NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
DATA_PACKAGE = "zoo_specs"  # cnncalc/zoo_specs/ in an installed wheel


def zoo_dir() -> Path:
    """The zoo folder: ``cnncalc/zoo_specs/`` when installed from a wheel, else ``specs/``."""
    installed = Path(__file__).parent / DATA_PACKAGE
    return installed if installed.is_dir() else Path(__file__).parent.parent / "specs"


def examples_dir() -> Path:
    return zoo_dir() / "examples"


def model_names() -> list[str]:
    return sorted(p.stem for p in zoo_dir().glob("*.yaml"))


def example_names() -> list[str]:
    return sorted(p.stem for p in examples_dir().glob("*.yaml"))


def is_model_name(text: str) -> bool:
    return bool(NAME.match(text)) and not text.endswith((".yaml", ".yml", ".json", ".toml", ".onnx"))


def spec_path(source: str | Path) -> Path:
    """The file a SPEC names: an existing file as given; else a zoo model (``vgg16``), else a
    lecture example (``sobel``), by name, case-insensitively; else the path as given when it
    exists (a folder: reading it says why it is not a spec) or is not a name. A name that is no
    file, zoo model or example raises SpecError with close matches."""
    path = Path(source)
    if path.is_file() or not is_model_name(str(source)):
        return path
    try:
        return path_of(str(source))
    except SpecError:
        if path.exists():
            return path
        raise


def path_of(name: str) -> Path:
    """The zoo model or, failing that, the lecture example called ``name`` (any case)."""
    key = name.lower()
    for folder in (zoo_dir(), examples_dir()):
        path = folder / f"{key}.yaml"
        if path.is_file():
            return path
    import difflib

    hint = difflib.get_close_matches(key, model_names() + example_names(), n=3)
    suggestion = f"; did you mean {', '.join(hint)}?" if hint else "; `cnncalc models` lists the zoo"
    raise SpecError(f"no such file, and no zoo model or example is called `{name}`{suggestion}",
                    Location(file=name))
