"""Saving plotly figures as HTML (interactive) and PNG (static, through kaleido + Chromium).

kaleido 1.x drives a system Chromium and by default loads MathJax from a CDN, which stalls
without internet; the server is started once with MathJax off. When no Chromium is found
the PNG is skipped with a warning and the HTML is still written.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import plotly.graph_objects as go

from kneelib.core.atomic import atomic_path

_server_started = False


def chromium_path() -> str | None:
    """A Chromium for kaleido: ``$BROWSER_PATH`` or one on PATH."""
    explicit = os.environ.get("BROWSER_PATH")
    if explicit and Path(explicit).exists():
        return explicit
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


def _start_kaleido() -> bool:
    global _server_started
    if _server_started:
        return True
    browser = chromium_path()
    if browser is None:
        warnings.warn("no Chromium found: PNG export skipped (install Debian's chromium or set "
                      "BROWSER_PATH); HTML figures are still written", stacklevel=3)
        return False
    os.environ.setdefault("BROWSER_PATH", browser)
    import kaleido

    warnings.filterwarnings("ignore", message="The kopts argument is ignored")
    kaleido.start_sync_server(mathjax=False, silence_warnings=True)
    _server_started = True
    return True


def save_figure(fig: go.Figure, directory: str | os.PathLike, name: str, png: bool = True,
                width: int | None = None, height: int | None = None) -> dict[str, Path]:
    """Write ``fig`` as ``{directory}/{name}.html`` (plotly.js inlined, works offline) and ``.png``.

    Returns the paths written. Both files are written atomically.
    """
    directory = Path(directory)
    written = {}
    with atomic_path(directory / f"{name}.html") as tmp:
        fig.write_html(tmp, include_plotlyjs=True, full_html=True)
    written["html"] = directory / f"{name}.html"
    if png and _start_kaleido():
        with atomic_path(directory / f"{name}.png") as tmp:
            fig.write_image(tmp, width=width or fig.layout.width or 1000,
                            height=height or fig.layout.height or 600)
        written["png"] = directory / f"{name}.png"
    return written


def setup_notebook() -> None:
    """Render figures both for JupyterLab (plotly mimetype) and as HTML with plotly.js inlined, so
    executed notebooks and the nbconvert report show them offline."""
    import plotly.io as pio

    pio.renderers.default = "plotly_mimetype+notebook"
