"""kneelib.report.export: figure titles wrapped to the width and one plotly.js per figure folder."""

from __future__ import annotations

import plotly.graph_objects as go

from kneelib.report import export


def test_long_title_is_wrapped_to_the_width():
    fig = go.Figure(layout={"title": {"text": " ".join(["word"] * 60)}, "width": 800})
    lines = export.wrap_title(fig, 800)
    text = fig.layout.title.text
    assert lines == text.count("<br>") + 1 >= 3
    assert all(len(line) <= (800 - 40) / export.TITLE_CHAR_PX for line in text.split("<br>"))
    assert text.replace("<br>", " ") == " ".join(["word"] * 60)
    assert fig.layout.margin.t >= 40 + export.TITLE_LINE_PX * lines
    short = go.Figure(layout={"title": {"text": "short"}})
    assert export.wrap_title(short, 800) == 1 and short.layout.title.text == "short"


def test_plotlyjs_is_written_once_per_folder_and_referenced(tmp_path):
    fig = go.Figure(go.Scatter(x=[0, 1], y=[1, 2]))
    first = export.save_figure(fig, tmp_path, "a", png=False)
    stamp = first["plotlyjs"].stat().st_mtime_ns
    export.save_figure(fig, tmp_path, "b", png=False)
    assert first["plotlyjs"].stat().st_mtime_ns == stamp  # not rewritten
    html = (tmp_path / "b.html").read_text()
    assert 'src="plotly.min.js"' in html and len(html) < 100_000
    assert first["plotlyjs"].stat().st_size > 1_000_000
    first["plotlyjs"].write_text("stale")
    export.save_figure(fig, tmp_path, "c", png=False)
    assert first["plotlyjs"].stat().st_size > 1_000_000  # a different bundle is replaced
