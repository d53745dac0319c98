"""What this machine can host: tests of a real component it lacks (a Slurm cluster needs root and Debian's
packages; the browser tests need Chromium and Playwright) skip with a one-line reason, so a researcher's
laptop gets a green ``make test``. ``.ci/run`` sets ``KNEELIB_REQUIRE_ALL=1``: there they fail instead,
so CI runs every test or says which one it could not.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRE_ALL_ENV = "KNEELIB_REQUIRE_ALL"


def require_all() -> bool:
    return os.environ.get(REQUIRE_ALL_ENV, "") == "1"


def unavailable(reason: str) -> NoReturn:
    """Skip the calling test with ``reason``, or fail with it when ``KNEELIB_REQUIRE_ALL=1``."""
    if require_all():
        pytest.fail(f"{reason} ({REQUIRE_ALL_ENV}=1: this machine must host every test)", pytrace=False)
    pytest.skip(reason)


def chromium_or_skip() -> str:
    """The system Chromium's path, or :func:`unavailable` (the PNG export and the browser tests need it)."""
    from kneelib.report.export import chromium_path

    found = chromium_path()
    if found is None:
        unavailable("no Chromium on PATH (install Debian's chromium, e.g. `make chromium` as root)")
    return found
