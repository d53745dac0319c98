"""Result tables: CSV (or JSON) written atomically, each with a ``.meta.json`` provenance record."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from kneelib.core.atomic import write_json, write_text


def save_table(df: pd.DataFrame, directory: str | os.PathLike, name: str, meta: dict[str, Any]) -> Path:
    """Write ``{directory}/{name}.csv`` and ``{name}.meta.json`` (config, data hash, seed, versions, commit)."""
    path = Path(directory) / f"{name}.csv"
    write_text(path, df.to_csv(index=False))
    write_json(path.with_suffix(".meta.json"), meta)
    return path


def save_json(obj: Any, directory: str | os.PathLike, name: str, meta: dict[str, Any]) -> Path:
    path = Path(directory) / f"{name}.json"
    write_json(path, {"result": obj, "provenance": meta})
    return path


def load_table(directory: str | os.PathLike, name: str) -> pd.DataFrame:
    path = Path(directory) / f"{name}.csv"
    if not path.exists():
        raise FileNotFoundError(f"result table {path} is missing: run the notebook that writes it first")
    return pd.read_csv(path)


def load_json(directory: str | os.PathLike, name: str) -> Any:
    path = Path(directory) / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"result {path} is missing: run the notebook that writes it first")
    return json.loads(path.read_text())["result"]
