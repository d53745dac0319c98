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

from kneelib.core.atomic import atomic_path, write_text

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


PLOTLY_JS = "plotly.min.js"  # written once per figures folder, beside the HTML figures


def write_plotlyjs(directory: str | os.PathLike) -> Path:
    """``{directory}/plotly.min.js``, the plotly.js bundle of the installed plotly, written atomically
    when missing or different (another plotly version); the HTML figures load it by relative path,
    so a figures folder works offline, moved or copied whole.
    """
    from plotly.offline import get_plotlyjs

    path = Path(directory) / PLOTLY_JS
    bundle = get_plotlyjs()
    if not path.exists() or path.stat().st_size != len(bundle.encode()) or path.read_text() != bundle:
        write_text(path, bundle)
    return path


TITLE_CHAR_PX = 9.5  # mean glyph width of plotly's default 17 px title font, in pixels
TITLE_LINE_PX = 24  # height of one title line, in pixels


def wrap_title(fig: go.Figure, width: int) -> int:
    """Break ``fig``'s title into lines that fit ``width`` pixels (at spaces, ``<br>`` between lines)
    and make the top margin tall enough for them; returns the number of lines. Titles that
    already hold ``<br>`` are wrapped line by line.
    """
    text = fig.layout.title.text
    if not text:
        return 0
    per_line = max(20, int((width - 40) / TITLE_CHAR_PX))
    lines = []
    for part in text.split("<br>"):
        line = ""
        for word in part.split(" "):
            if line and len(line) + 1 + len(word) > per_line:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        lines.append(line)
    # Subplot titles sit just above the plot area: a multi-line title goes above them.
    above = TITLE_LINE_PX if any(a.yref == "paper" and (a.y or 0) >= 1 for a in fig.layout.annotations) else 0
    top = fig.layout.margin.t if fig.layout.margin.t is not None else 100
    fig.update_layout(title_text="<br>".join(lines),
                      margin_t=max(top, 40 + above + TITLE_LINE_PX * len(lines) + (20 if len(lines) > 1 else 0)))
    if len(lines) > 1 and fig.layout.title.y is None:
        # Anchored on the plot area's top edge; plotly places a multi-line title by its first line,
        # so the padding lifts the lines below it clear of the plot.
        fig.update_layout(title={"y": 1, "yref": "paper", "yanchor": "bottom",
                                 "pad": {"b": 12 + above + TITLE_LINE_PX * (len(lines) - 1)}})
    return len(lines)


def save_figure(fig: go.Figure, directory: str | os.PathLike, name: str, png: bool = True,
                width: int | None = None, height: int | None = None) -> dict[str, Path]:
    """Write ``fig`` as ``{directory}/{name}.html`` and ``.png`` (``width`` x ``height`` pixels,
    default the figure's own size), its title wrapped to fit that width (:func:`wrap_title`).

    The HTML loads ``plotly.min.js`` from its own folder (:func:`write_plotlyjs`, about 4.7 MB
    once per folder instead of inside every figure), so it works offline. Returns the paths
    written; every file is written atomically.
    """
    directory = Path(directory)
    width, height = width or fig.layout.width or 1000, height or fig.layout.height or 600
    wrap_title(fig, width)
    written = {"plotlyjs": write_plotlyjs(directory)}
    with atomic_path(directory / f"{name}.html") as tmp:
        fig.write_html(tmp, include_plotlyjs=PLOTLY_JS, full_html=True)
    written["html"] = directory / f"{name}.html"
    if png and _start_kaleido():
        with atomic_path(directory / f"{name}.png") as tmp:
            fig.write_image(tmp, width=width, height=height)
        written["png"] = directory / f"{name}.png"
    return written


def setup_notebook() -> None:
    """Render figures both for JupyterLab (plotly mimetype) and as HTML with plotly.js inlined, so
    executed notebooks and the nbconvert report show them offline."""
    import plotly.io as pio

    pio.renderers.default = "plotly_mimetype+notebook"
