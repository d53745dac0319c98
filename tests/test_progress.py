"""kneelib.core.progress: the one-line training status a notebook's kernel writes after every epoch."""

from __future__ import annotations

import json

from kneelib.core import progress


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
