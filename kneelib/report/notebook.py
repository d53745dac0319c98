"""The first and last cells every notebook shares: resolve the profile and the data, and record
what ran.

A notebook's parameters cell holds ``profile``, ``data_root``, ``overrides`` and ``force``
(papermill injects new values after it); the next cell calls :func:`notebook_setup`, so nothing
derived from the parameters is computed before papermill has replaced them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from kneelib.core import paths
from kneelib.core.profiles import Profile, get_profile
from kneelib.core.provenance import git_commit, library_versions
from kneelib.data.context import DataContext, fit_to_data, prepare_data
from kneelib.report.export import setup_notebook


class NotebookSetup(NamedTuple):
    """What a notebook works with: unpack as ``P, ctx, FIGURES, RESULTS = notebook_setup(...)``."""

    profile: Profile
    data: DataContext
    figures: Path   # outputs/<profile>/figures
    results: Path   # outputs/<profile>/results


def notebook_setup(profile: str, data_root: str = "", overrides: dict[str, Any] | None = None) -> NotebookSetup:
    """The named profile with ``overrides``, its data (real IWOAI data under ``data_root`` or
    ``$KNEELIB_DATA_ROOT``, else phantoms, generated once), and figure rendering for notebooks.

    Raises ValueError for an unknown profile or parameter, and the data layer's errors (naming the
    file) for data that does not pass validation.
    """
    setup_notebook()
    p = get_profile(profile, **(overrides or {}))
    ctx = prepare_data(p, data_root or None)
    p = fit_to_data(p, ctx, overrides or {})  # real data: the tissues it labels, its own in-plane size
    print(f"profile {p.name}: {ctx.source} data at {ctx.root} ({len(ctx.records)} scans, "
          f"manifest {ctx.manifest_hash[:12]})" + (f", format {ctx.data_format}, tissues {list(p.tissues)}, "
                                                    f"slice size {p.slice_size}" if ctx.source == "real" else ""))
    return NotebookSetup(p, ctx, paths.figures_dir(p.name), paths.results_dir(p.name))


def notebook_footer() -> dict[str, str]:
    """Print the git commit and return the library versions this notebook ran with."""
    print("git commit:", git_commit())
    return library_versions()
