"""tests/machine.py: what this machine cannot host skips, unless KNEELIB_REQUIRE_ALL=1 makes it fail."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent

_PROBE = """
from machine import unavailable

def test_needs_a_cluster():
    unavailable("no local Slurm cluster (probe)")
"""


@pytest.mark.parametrize(("require_all", "outcome"), [("", "1 skipped"), ("0", "1 skipped"), ("1", "1 failed")])
def test_unavailable_skips_or_fails(tmp_path: Path, require_all: str, outcome: str) -> None:
    probe = tmp_path / "test_probe.py"
    probe.write_text(_PROBE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
           "KNEELIB_REQUIRE_ALL": require_all}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rsf", "-p", "no:cacheprovider", str(probe)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert outcome in done.stdout, done.stdout
    assert "no local Slurm cluster (probe)" in done.stdout  # the reason reaches pytest's summary
