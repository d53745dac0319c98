"""Every path the suite uses, anchored at the repository root so the working directory
(JupyterLab, papermill, pytest) never matters."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
MANIFEST_DIR = REPO_ROOT / "data_manifest"
IWOAI_MANIFEST = MANIFEST_DIR / "iwoai_2019_split.csv"
DATA_ROOT_ENV = "KNEELIB_DATA_ROOT"
OUTPUTS_ENV = "KNEELIB_OUTPUTS"


def outputs_root() -> Path:
    """Root of all generated content; ``$KNEELIB_OUTPUTS`` moves it (tests use a temp dir)."""
    return Path(os.environ.get(OUTPUTS_ENV, REPO_ROOT / "outputs")).resolve()


def profile_dir(profile: str) -> Path:
    """``outputs/<profile>``: everything one profile's run writes."""
    return outputs_root() / profile


def figures_dir(profile: str) -> Path:
    return profile_dir(profile) / "figures"


def results_dir(profile: str) -> Path:
    return profile_dir(profile) / "results"


def models_dir(profile: str) -> Path:
    return profile_dir(profile) / "models"


def phantom_dir(profile: str) -> Path:
    return profile_dir(profile) / "data"


def real_data_root(data_root: str | os.PathLike | None = None) -> Path | None:
    """The real IWOAI data root: the explicit argument, else ``$KNEELIB_DATA_ROOT``, else None."""
    value = data_root if data_root not in (None, "") else os.environ.get(DATA_ROOT_ENV) or None
    return Path(value).expanduser().resolve() if value else None
