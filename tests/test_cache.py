"""The output cache of `cnncalc table`: replays only what is unchanged, never a stale table."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SPEC = "input: [3, 8, 8]\nlayers:\n  - conv: {filters: 4, kernel: 3, stride: 2}\n  - relu\n"


def run(args, cache: Path, extra_env=None):
    env = {k: v for k, v in os.environ.items() if k != "CNNCALC_NO_CACHE"}
    env.update(CNNCALC_CACHE_DIR=str(cache), **(extra_env or {}))
    return subprocess.run([sys.executable, "-X", "importtime", "-m", "cnncalc", *args], capture_output=True,
                          text=True, env=env)


def imported(done) -> bool:
    return "pydantic" in done.stderr  # -X importtime lists every module a process imports


def user_stderr(done) -> str:
    return "\n".join(line for line in done.stderr.splitlines() if not line.startswith("import time:"))


@pytest.fixture
def spec(tmp_path) -> Path:
    path = tmp_path / "net.yaml"
    path.write_text(SPEC)
    return path


def test_a_warm_run_replays_the_same_output_without_the_heavy_imports(tmp_path, spec):
    cold = run(["table", str(spec), "--format", "json"], tmp_path / "cache")
    warm = run(["table", str(spec), "--format", "json"], tmp_path / "cache")
    assert (warm.stdout, user_stderr(warm), warm.returncode) == (cold.stdout, user_stderr(cold), cold.returncode)
    assert "not whole" in user_stderr(warm)  # the warning is replayed too
    assert imported(cold) and not imported(warm)


def test_a_changed_spec_or_option_is_computed_afresh(tmp_path, spec):
    first = run(["table", str(spec), "--format", "csv", "--columns", "name,output"], tmp_path / "cache")
    spec.write_text(SPEC.replace("filters: 4", "filters: 5"))
    changed = run(["table", str(spec), "--format", "csv", "--columns", "name,output"], tmp_path / "cache")
    other_option = run(["table", str(spec), "--format", "csv", "--columns", "name,params"], tmp_path / "cache")
    assert first.stdout == "name,output\nconv1,4x3x3\nrelu1,4x3x3\n"
    assert changed.stdout == "name,output\nconv1,5x3x3\nrelu1,5x3x3\n"
    assert other_option.stdout == "name,params\nconv1,140\nrelu1,0\n"
    assert imported(changed) and imported(other_option)


def test_errors_replay_with_their_exit_code(tmp_path, spec):
    spec.write_text(SPEC + "  - conv: {filters: 4, kernel: 9}\n")
    cold = run(["table", str(spec)], tmp_path / "cache")
    warm = run(["table", str(spec)], tmp_path / "cache")
    assert cold.returncode == warm.returncode == 2
    assert user_stderr(warm) == user_stderr(cold)


def test_a_corrupt_entry_is_ignored(tmp_path, spec):
    cache = tmp_path / "cache"
    run(["table", str(spec), "--format", "json"], cache)
    for entry in cache.glob("*.json"):
        entry.write_text("{not json")
    again = run(["table", str(spec), "--format", "json"], cache)
    assert again.returncode == 0 and '"output_shape"' in again.stdout and imported(again)


def test_the_cache_can_be_turned_off(tmp_path, spec):
    run(["table", str(spec)], tmp_path / "cache", {"CNNCALC_NO_CACHE": "1"})
    assert not (tmp_path / "cache").exists()
