"""Stand-in for the get-pip.py that ansible-test downloads from a host this machine cannot reach.

ansible-test runs it (through its quiet_pip wrapper) to put pip into the empty virtual environments of its sanity
tests, with arguments like `--disable-pip-version-check pip==25.2 --no-setuptools --no-wheel`. This does the same
from PyPI, running the pip wheel that CPython's ensurepip bundles. `make sanity` installs it into ansible-test's cache.
"""

from __future__ import annotations

import ensurepip
import glob
import os
import sys

GET_PIP_ONLY_FLAGS = ("--no-setuptools", "--no-wheel")

if __name__ == "__main__":
    bundled = glob.glob(os.path.join(os.path.dirname(ensurepip.__file__), "_bundled", "pip-*.whl"))
    sys.path.insert(0, bundled[0])
    from pip._internal.cli.main import main

    sys.exit(main(["install", "--upgrade", *(arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_FLAGS)]))
