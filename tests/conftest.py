import os

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny convolutions: one thread is faster and spares a busy 2-core machine OpenMP's waiting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny profile and its phantom data (generated into a temporary outputs root): (profile, DataContext)."""
    from kneelib.core import paths
    from kneelib.core.profiles import get_profile
    from kneelib.data import context

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(paths.OUTPUTS_ENV, str(tmp_path_factory.mktemp("outputs")))
        profile = get_profile("tiny")
        yield profile, context.prepare_data(profile)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One headless run of the whole suite at the tiny profile (``python -m kneelib reproduce
    --profile tiny``), shared by the tests that check its outputs: yields (outputs root, executed
    notebooks). Slow: only tests marked slow use it. ``KNEELIB_TEST_TINY_RUN=<outputs root>`` reuses
    a finished run there instead (for iterating on the browser tests), without rerunning it."""
    from pathlib import Path

    from kneelib.core import paths
    from kneelib.report import runner

    if reuse := os.environ.get("KNEELIB_TEST_TINY_RUN"):
        root = Path(reuse)
        yield root, [root / "tiny" / "notebooks" / f"{n}.ipynb" for n in runner.available_notebooks()
                     if n not in runner.OPT_IN]
        return
    root = tmp_path_factory.mktemp("tiny_run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(paths.OUTPUTS_ENV, str(root))
        executed = runner.reproduce("tiny")
    yield root, executed
