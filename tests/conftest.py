import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # tests import their shared helpers


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", help="rewrite tests/golden/* from current output")


def pytest_configure(config):
    # The NumPy backend's compiled kernels (numba, where installed) run in every pass and take
    # arrays of every size in the tests, so that small cases exercise them too (subprocesses
    # inherit CNNCALC_NUMBA; tests/test_backend_compiled.py checks the thresholds and the modes).
    os.environ["CNNCALC_NUMBA"] = "1"
    from cnncalc.backends import compiled

    compiled.MIN_ELEMENTS = 0
