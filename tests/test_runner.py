"""kneelib.report.runner: the status relay during `make reproduce`, its kernels and the combined report."""

from __future__ import annotations

import json

from kneelib.report.runner import IPCKernelManager, StatusRelay, data_caveat


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
    html = build_report(paths, tmp_path / "report.html", data_caveat("")).read_text()
    assert html.count("plotly.js v3") == 1 and all(f"marker{i}" in html for i in range(3))
    assert html.index("synthetic knee phantoms, not knees") < html.index("marker0")  # the caveat comes first


def test_data_caveat_names_the_data(tmp_path, monkeypatch):
    monkeypatch.delenv("KNEELIB_DATA_ROOT", raising=False)
    assert "phantoms" in data_caveat("") and "real scans" in data_caveat(str(tmp_path))
