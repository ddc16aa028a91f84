import os
import sys
from pathlib import Path

os.environ["CNNCALC_NO_CACHE"] = "1"  # tests see fresh output; tests/test_cache.py turns it on deliberately

sys.path.insert(0, str(Path(__file__).parent))  # tests import their shared helpers


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", help="rewrite tests/golden/* from current output")
