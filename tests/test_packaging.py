"""The wheel ships the zoo as it is tested, and one resolver finds every SPEC.

specs/ is the only copy of the zoo (specs/*.yaml) and the lecture's examples (specs/examples/*);
the wheel carries them as the data-only package cnncalc.zoo_specs, beside the module
cnncalc/zoo.py that finds them. The wheel test builds from a copy of what the build reads
(pyproject.toml, README.md, cnncalc/, specs/), so a stale build/ or *.egg-info in the working
tree can neither add to nor hide from what it checks. It takes a few seconds; set
CNNCALC_SKIP_WHEEL_TEST=1 to skip it locally (CI runs it).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from cnncalc import zoo
from cnncalc.cli import cli
from cnncalc.errors import SpecError

ROOT = Path(__file__).parent.parent
SPECS = ROOT / "specs"
BUILD_INPUTS = ("pyproject.toml", "README.md", "cnncalc", "specs")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
DATA = "cnncalc/zoo_specs/"
WARNING = re.compile(r"^.*(?:Warning: |would be ignored).*$", re.MULTILINE)

needs_wheel = pytest.mark.skipif(bool(os.environ.get("CNNCALC_SKIP_WHEEL_TEST")),
                                 reason="CNNCALC_SKIP_WHEEL_TEST is set")


def _shipped_specs() -> set[str]:
    """What the wheel must carry from specs/: every zoo spec and every example file."""
    zoo_files = {p.name for p in SPECS.glob("*.yaml")}
    examples = {f"examples/{p.name}" for p in (SPECS / "examples").iterdir()
                if p.is_file() and not p.name.startswith(".")}
    return zoo_files | examples


def _no_isolation_possible() -> bool:
    """Whether this interpreter can build the wheel itself: setuptools >= 70.1 has bdist_wheel
    built in (older ones need the `wheel` package). Otherwise pip builds in an isolated
    environment, as a user's `pip install .` does (a few seconds more)."""
    try:
        import setuptools
        from setuptools.command import bdist_wheel  # noqa: F401
    except ImportError:
        return False
    major, minor = (int(part) for part in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """(the wheel, the source copy it was built from)."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "src"
    source.mkdir()
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=IGNORED)
        else:
            shutil.copy2(ROOT / name, source / name)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-v",
               "-w", str(base / "dist"), str(source)]
    if _no_isolation_possible():
        command.insert(4, "--no-build-isolation")
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    # setuptools' warnings (SetuptoolsDeprecationWarning, "Package would be ignored" for a data
    # folder missing from `packages`, ...) are Python warnings: `...Warning: ...` in the -v log
    assert not WARNING.findall(log), "\n".join(WARNING.findall(log))
    wheels = list((base / "dist").glob("cnncalc-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0], source


@pytest.fixture(scope="module")
def wheel_files(built) -> list[str]:
    with zipfile.ZipFile(built[0]) as archive:
        return [name for name in archive.namelist() if not name.endswith("/")]


@needs_wheel
def test_the_wheel_ships_every_spec_and_example(wheel_files):
    shipped = {name[len(DATA):] for name in wheel_files if name.startswith(DATA)}
    assert shipped == _shipped_specs()
    assert {"vgg16.yaml", "lenet5.yaml", "examples/sobel.yaml"} <= shipped


@needs_wheel
def test_the_wheel_has_one_zoo_and_no_name_clash(wheel_files):
    assert "cnncalc/zoo.py" in wheel_files
    assert not [name for name in wheel_files if name.startswith("cnncalc/zoo/")]
    modules = {name[:-3] for name in wheel_files if name.endswith(".py")}
    folders = {name.rsplit("/", 1)[0] for name in wheel_files}
    assert not modules & folders, "a module and a package of the same name"


@needs_wheel
def test_the_wheel_has_no_stray_files(wheel_files, built):
    """Exactly the package's Python files, the specs, and the wheel's metadata."""
    source = built[1]
    python = {p.relative_to(source).as_posix() for p in (source / "cnncalc").rglob("*.py")}
    data = {DATA + name for name in _shipped_specs()} | {"cnncalc/devices.yaml"}  # `table --device`'s table
    metadata = {name for name in wheel_files if name.startswith("cnncalc-") and ".dist-info/" in name}
    files = set(wheel_files)
    assert not python - files, f"not in the wheel (a subpackage missing from pyproject's `packages`?): {sorted(python - files)}"
    assert files == python | data | metadata
    assert len(wheel_files) == len(set(wheel_files))
    assert {Path(name).name for name in metadata} >= {"METADATA", "WHEEL", "RECORD", "entry_points.txt"}


@needs_wheel
def test_the_unpacked_wheel_works_from_another_directory(built, tmp_path):
    """The installed layout: zoo names, example names and `models`, found inside the package."""
    site = tmp_path / "site"
    with zipfile.ZipFile(built[0]) as archive:
        archive.extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "CNNCALC_NO_CACHE": "1"}

    def cnncalc(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cnncalc", *args], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=120)

    where = subprocess.run([sys.executable, "-c", "from cnncalc import zoo; print(zoo.zoo_dir())"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60)
    assert Path(where.stdout.strip()) == site / "cnncalc" / "zoo_specs", where.stderr
    for args in (["table", "vgg16", "--format", "json"], ["table", "sobel", "--format", "json"], ["models"],
                 ["table", "lenet5", "--device", "h100-sxm", "--format", "json"]):  # the shipped device table
        result = cnncalc(*args)
        assert result.returncode == 0, (args, result.stderr)
    assert "lenet5" in cnncalc("models").stdout
    pytest.importorskip("numpy")
    result = cnncalc("run", "SOBEL")
    assert result.returncode == 0 and " 40 " in result.stdout, result.stdout + result.stderr


# --------------------------------------------------------------------------- the one resolver
def test_zoo_names_resolve_in_any_case():
    assert zoo.spec_path("vgg16") == zoo.zoo_dir() / "vgg16.yaml"
    assert zoo.spec_path("VGG16") == zoo.spec_path("Vgg16") == zoo.zoo_dir() / "vgg16.yaml"


def test_example_names_resolve_in_any_case():
    assert zoo.spec_path("sobel") == zoo.examples_dir() / "sobel.yaml"
    assert zoo.spec_path("Sobel") == zoo.spec_path("SOBEL") == zoo.examples_dir() / "sobel.yaml"
    assert zoo.example_names() == sorted(p.stem for p in (SPECS / "examples").glob("*.yaml"))


def test_zoo_and_example_names_do_not_clash():
    assert not set(zoo.model_names()) & set(zoo.example_names())


def test_paths_resolve_as_given(tmp_path, monkeypatch):
    spec = tmp_path / "mine.yaml"
    spec.write_text("input: [1, 8, 8]\nlayers: [relu]\n")
    assert zoo.spec_path(str(spec)) == spec
    assert zoo.spec_path(spec) == spec
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sobel").write_text("input: [1, 8, 8]\nlayers: [relu]\n")  # a file wins over a name
    assert zoo.spec_path("sobel") == Path("sobel")
    (tmp_path / "vgg16").mkdir()  # a folder does not hide the zoo model
    assert zoo.spec_path("vgg16") == zoo.zoo_dir() / "vgg16.yaml"
    assert zoo.spec_path("missing.yaml") == Path("missing.yaml")  # a file name: reading it says it is missing


def test_unknown_names_suggest_models_and_examples():
    with pytest.raises(SpecError, match="did you mean sobel"):
        zoo.spec_path("sobell")
    with pytest.raises(SpecError, match="did you mean .*resnet50"):
        zoo.spec_path("ResNet-50")


def test_verify_and_run_use_the_same_resolver():
    from cnncalc.commands.verify import resolve_spec

    for name in ("vgg16", "Sobel", "edge_detection", str(SPECS / "lenet5.yaml")):
        assert resolve_spec(name) == str(zoo.spec_path(name))
    with pytest.raises(SpecError):
        resolve_spec("no_such_model")


@pytest.mark.parametrize("args", [["table", "sobel"], ["table", "SOBEL", "--format", "json"], ["table", "lenet5"],
                                  ["explain", "sobel"], ["check", "sobel", "--sheet", "solution"]])
def test_every_command_finds_examples_from_another_directory(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output


def test_run_and_verify_find_examples_from_another_directory(tmp_path, monkeypatch):
    pytest.importorskip("numpy")
    monkeypatch.chdir(tmp_path)
    for args in (["run", "sobel"], ["verify", "Sobel"], ["verify", "lenet5"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, (args, result.output)


def test_an_unknown_name_is_one_error_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for command in ("table", "run"):
        result = CliRunner().invoke(cli, [command, "sobell"])
        assert result.exit_code == 2
        assert "no zoo model or example is called `sobell`; did you mean sobel" in result.stderr
