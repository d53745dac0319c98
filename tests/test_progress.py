"""The training status line the kernel writes and the runner relays during `make reproduce`."""

from __future__ import annotations

import json

import plotly.graph_objects as go

from kneelib.core import progress
from kneelib.report import export
from kneelib.report.runner import IPCKernelManager, StatusRelay


def test_status_is_written_only_when_a_folder_is_set(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.STATUS_DIR_ENV, raising=False)
    assert progress.report_epoch("net", 1, 6, 0.9, 0.8, 2.0) is None
    monkeypatch.setenv(progress.STATUS_DIR_ENV, str(tmp_path))
    path = progress.report_epoch("femoral_cartilage__scratch", 3, 6, 0.81234, 0.79901, 4.2)
    status = json.loads(path.read_text())
    assert status["net"] == "femoral_cartilage__scratch" and status["epoch"] == 3 and status["max_epochs"] == 6
    assert progress.format_status(status) == \
        "femoral_cartilage__scratch epoch 3/6 train 0.8123 val 0.7990 (4 s/epoch)"
    (tmp_path / "garbage.status").write_text("{half")
    assert [s["epoch"] for s in progress.read_statuses(tmp_path)] == [3]


def test_relay_prints_each_new_status_once_with_time_left(tmp_path):
    lines = []
    relay = StatusRelay("02_scratch", tmp_path, expected_s=100.0, emit=lines.append)
    (tmp_path / "1.status").write_text(json.dumps(
        {"net": "a", "epoch": 1, "max_epochs": 4, "train_loss": 0.5, "val_loss": 0.4, "seconds": 10, "time": 1}))
    relay.poll()
    relay.poll()
    assert len(lines) == 1 and lines[0].startswith("  02_scratch: a epoch 1/4 train 0.5000 val 0.4000")
    assert "s left (last run 100 s)" in lines[0]
    # A second worker's file, and no previous run: the current net's remaining epochs bound it.
    relay.expected_s = None
    (tmp_path / "2.status").write_text(json.dumps(
        {"net": "b", "epoch": 1, "max_epochs": 4, "train_loss": 0.5, "val_loss": 0.4, "seconds": 10, "time": 2}))
    relay.poll()
    assert len(lines) == 2 and lines[1].endswith("this net ~30 s left at most")
    assert relay.line({"net": "a", "epoch": 2, "max_epochs": 4, "train_loss": 0.5, "val_loss": 0.4,
                       "seconds": 10}, elapsed=130).endswith("130 s in, this net ~20 s left at most")
    relay.expected_s = 100.0
    assert "~0 s left" in relay.line({"net": "a", "epoch": 2, "max_epochs": 4, "train_loss": 0.5,
                                      "val_loss": 0.4, "seconds": 10}, elapsed=130)


def test_runner_kernels_use_ipc():
    assert IPCKernelManager().transport == "ipc"


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


def test_report_inlines_plotlyjs_once(tmp_path):
    import nbformat

    from kneelib.report.runner import build_report

    bundle = {"output_type": "display_data", "metadata": {},
              "data": {"text/html": "<script>/** plotly.js v3 */" + "x" * 1_100_000 + "</script>"}}
    paths = []
    for i in range(3):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("fig.show()", outputs=[nbformat.from_dict(bundle)]),
                    nbformat.v4.new_code_cell("1", outputs=[nbformat.v4.new_output(
                        "execute_result", {"text/plain": f"marker{i}"}, execution_count=1)])]
        paths.append(tmp_path / f"0{i}.ipynb")
        nbformat.write(nb, paths[-1])
    html = build_report(paths, tmp_path / "report.html").read_text()
    assert html.count("plotly.js v3") == 1 and all(f"marker{i}" in html for i in range(3))
