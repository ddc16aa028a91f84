import os
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).parent))  # tests import their shared helpers


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", help="rewrite tests/golden/* from current output")
