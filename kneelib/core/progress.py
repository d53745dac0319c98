"""A one-line training status that a notebook's kernel writes and the runner relays.

``python -m kneelib reproduce`` runs each notebook in a kernel whose output it cannot see until
the notebook ends. It sets ``$KNEELIB_STATUS_DIR`` for the kernel; after every epoch the training
loop calls :func:`report_epoch`, which writes (atomically) one line to
``$KNEELIB_STATUS_DIR/<pid>.status``, one file per process, so nets trained side by side in
worker processes do not overwrite each other. Without the variable (JupyterLab, tests) it does
nothing.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from kneelib.core.atomic import write_text

STATUS_DIR_ENV = "KNEELIB_STATUS_DIR"


def report_epoch(net: str, epoch: int, max_epochs: int, train_loss: float, val_loss: float,
                 seconds: float) -> Path | None:
    """Record that ``net`` finished ``epoch`` (1-based) of at most ``max_epochs``, with its
    losses and the epoch's duration in seconds; returns the status file, or None when no
    status folder is set."""
    folder = os.environ.get(STATUS_DIR_ENV)
    if not folder:
        return None
    status = {"net": net, "epoch": epoch, "max_epochs": max_epochs, "train_loss": float(train_loss),
              "val_loss": float(val_loss), "seconds": float(seconds), "time": time.time()}
    path = Path(folder) / f"{os.getpid()}.status"
    write_text(path, json.dumps(status) + "\n")
    return path


def read_statuses(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """Every status line under ``folder``, oldest first; unreadable or half-seen files are skipped."""
    statuses = []
    for path in Path(folder).glob("*.status"):
        try:
            statuses.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(statuses, key=lambda s: s.get("time", 0))


def format_status(status: dict[str, Any]) -> str:
    """``femoral_cartilage__scratch epoch 3/6 train 0.8123 val 0.7990 (4 s/epoch)``."""
    return (f"{status['net']} epoch {status['epoch']}/{status['max_epochs']} train {status['train_loss']:.4f} "
            f"val {status['val_loss']:.4f} ({status['seconds']:.0f} s/epoch)")
