"""What every result file records: config, data-manifest hash, seed, library versions, commit."""

from __future__ import annotations

import dataclasses
import platform
import subprocess
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from kneelib.core.paths import REPO_ROOT

_LIBRARIES = ("torch", "numpy", "scipy", "h5py", "medpy", "plotly", "pandas", "papermill")


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The repository's HEAD commit, suffixed ``-dirty`` when tracked files differ from it."""
    try:
        run = lambda *a: subprocess.run(  # noqa: E731
            ["git", *a], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
        commit = run("rev-parse", "HEAD").stdout.strip() or "unknown"
        dirty = run("status", "--porcelain", "--untracked-files=no").stdout.strip()
        return f"{commit}-dirty" if dirty and commit != "unknown" else commit
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def to_jsonable(config: Any) -> Any:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {k: to_jsonable(v) for k, v in dataclasses.asdict(config).items()}
    if isinstance(config, dict):
        return {str(k): to_jsonable(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [to_jsonable(v) for v in config]
    return config


def provenance(config: Any, manifest_hash: str, seed: int | None) -> dict[str, Any]:
    """The record stored beside every result and in every checkpoint."""
    return {
        "config": to_jsonable(config),
        "data_manifest_sha256": manifest_hash,
        "seed": seed,
        "versions": library_versions(),
        "git_commit": git_commit(),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
