"""What every result file records: config, data-manifest hash, seed, library versions, commit, and what
decides a run's rounding (the CPU's instruction set, the thread count; the precision is in the config).

Weights are bitwise reproducible only for the same seed, profile, precision, thread count and CPU kind
(README, "Reproducibility"): the last three are recorded so that two runs can be told apart.
"""

from __future__ import annotations

import dataclasses
import platform
import subprocess
import sys
from datetime import UTC, datetime
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


# Instruction-set extensions that change which kernels (and so which rounding) the CPU's math libraries use,
# most capable first: AMX tiles, AVX-512 with native bf16 dot products, AVX-512, AVX2.
_ISA_FLAGS = (("amx", "amx_bf16"), ("avx512_bf16", "avx512_bf16"), ("avx512", "avx512f"), ("avx2", "avx2"))


@lru_cache(maxsize=1)
def cpu_kind() -> dict[str, Any]:
    """The CPU's model name and its most capable instruction set among amx / avx512_bf16 / avx512 / avx2
    (``"other"`` when none, ``"unknown"`` off Linux), read from ``/proc/cpuinfo``."""
    try:
        text = open("/proc/cpuinfo", encoding="utf-8", errors="replace").read()
    except OSError:
        return {"model": platform.processor() or "unknown", "isa": "unknown", "flags": []}
    return cpu_kind_of(text)


def cpu_kind_of(cpuinfo: str) -> dict[str, Any]:
    """:func:`cpu_kind` from the text of ``/proc/cpuinfo`` (its first processor's entry)."""
    first = cpuinfo.split("\n\n", 1)[0]
    fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in first.splitlines() if ":" in line)}
    flags = set(fields.get("flags", "").split())
    isa = next((name for name, flag in _ISA_FLAGS if flag in flags), "other")
    return {"model": fields.get("model name", "unknown"), "isa": isa,
            "flags": sorted(flag for _, flag in _ISA_FLAGS if flag in flags)}


def numerics() -> dict[str, Any]:
    """What sets the rounding of this process's training: the CPU kind and torch's intra-op thread count."""
    torch = sys.modules.get("torch")  # not imported here: provenance is written by processes that never train
    threads = torch.get_num_threads() if torch is not None else None
    return {"cpu": cpu_kind(), "torch_threads": threads}


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
        "numerics": numerics(),
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
