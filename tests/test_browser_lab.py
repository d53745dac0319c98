"""The suite as a person sees it, in a real browser: Debian's Chromium driven by Playwright.

- ``05_activations`` at the tiny profile, opened in JupyterLab and run there: no error output, and
  the activation browser responds to every control, as read from plotly's own state in the page
  (``_fullData`` / ``_fullLayout`` of the rendered div), with every panel upright and the controls
  in view at 1, 3 and 9 selected nets.
- The combined HTML report and every HTML figure of a tiny run load without JavaScript errors.

Screenshots are saved under the test's temporary folder. Without Chromium (or playwright) these
tests skip with a message saying how to install them (and fail under ``KNEELIB_REQUIRE_ALL=1``, as in CI).
"""

from __future__ import annotations

import json
import shutil
import time

import pytest
from lab_helpers import LabServer, chromium_page, tiny_notebook

from kneelib.core import paths

pytestmark = pytest.mark.slow

PLOT = "document.querySelector('.widget-box .js-plotly-plot')"
CONTROLS = "'.widget-dropdown select, .widget-select-multiple select, button.widget-toggle-button'"

# What the browser's figure shows, from plotly's computed state: per trace its kind, axes, name,
# visibility and a checksum of its data; per visible panel its y range and where (as a fraction
# of the panel's height from its top) the first tissue's outline is drawn.
STATE_JS = """() => {
  const el = PLOT;
  if (!el || !el._fullLayout) return null;
  const L = el._fullLayout;
  const total = (a) => (a == null ? 0 : (typeof a === 'number' ? a :
      Array.from(a).reduce((s, v) => s + total(v), 0)));
  const traces = el._fullData.map(t => ({type: t.type, y: t.yaxis, name: t.name || '', visible: t.visible,
      sum: t.type === 'scatter' ? total(t.y) + 1000 * total(t.x) : total(t.z),
      n: t.type === 'scatter' ? (t.y || []).length : 0, tissue: t.meta && t.meta.tissue}));
  const panels = Object.keys(L).filter(k => /^yaxis\\d*$/.test(k) && L[k].visible).map(k => {
    const ya = L[k], id = ya._id;
    const line = el._fullData.find(t => t.type === 'scatter' && t.yaxis === id && t.y && t.y.length);
    const rows = line ? Array.from(line.y) : [];
    const mean = rows.reduce((s, v) => s + v, 0) / Math.max(rows.length, 1);
    return {axis: id, range: ya.range.map(Number), top: ya.l2p(0) / ya._length,
            outline: rows.length ? ya.l2p(mean) / ya._length : null};
  });
  return {title: L.title.text, width: L.width, traces, panels};
}""".replace("PLOT", PLOT)


def lab_settings(state_dir) -> None:
    """No news pop-up over the figure (it would also try to reach the internet)."""
    target = state_dir / "settings" / "@jupyterlab" / "apputils-extension"
    target.mkdir(parents=True, exist_ok=True)
    (target / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))


def run_all_cells(page, timeout_ms: int = 480_000) -> None:
    page.wait_for_function("window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel",
                           timeout=120_000)
    page.wait_for_function("window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'",
                           timeout=120_000)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function("""() => {
        const nb = window.jupyterapp.shell.currentWidget;
        const cells = nb.content.widgets.filter(c => c.model.type === 'code');
        return nb.sessionContext.session.kernel.status === 'idle'
            && cells.every(c => c.model.executionCount !== null);
    }""", timeout=timeout_ms, polling=1000)


def cell_outputs(page) -> list[dict]:
    return page.evaluate("""() => window.jupyterapp.shell.currentWidget.content.widgets
        .filter(c => c.model.type === 'code').flatMap(c => c.model.outputs.toJSON())""")


def state(page) -> dict:
    return page.evaluate(STATE_JS)


def change(page, before: dict, action, done=lambda s: True, timeout_s: float = 60) -> dict:
    """Do ``action``; wait until the figure in the page shows something else and ``done(state)``
    holds (updates reach the page in several messages), then return what it shows."""
    action()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        page.wait_for_timeout(250)
        now = state(page)
        if now != before and done(now):
            page.wait_for_timeout(500)
            return state(page)
    raise AssertionError(f"the figure did not update within {timeout_s} s: {json.dumps(now)[:2000]}")


def of_type(s: dict, kind: str) -> list[dict]:
    return [t for t in s["traces"] if t["type"] == kind]


def check_orientation(s: dict, n_panels: int) -> None:
    """Every visible panel, image included, has row 0 at the top, and the outline sits at the same
    height in each panel (the image panel shows the anatomy where the maps do)."""
    assert len(s["panels"]) == n_panels, s["panels"]
    for p in s["panels"]:
        assert p["range"][0] > p["range"][1], f"panel {p['axis']} is upside down: y range {p['range']}"
        assert p["top"] < 0.1, p
    heights = [p["outline"] for p in s["panels"] if p["outline"] is not None]
    assert len(heights) == n_panels and max(heights) - min(heights) < 0.02, s["panels"]


def check_controls_in_view(page, shot) -> None:
    """Bring the browser's cell into view; every control lies inside the notebook's visible area
    and the figure is no wider than it (nothing to scroll sideways)."""
    page.evaluate(f"{PLOT}.closest('.jp-Cell').scrollIntoView()")
    page.wait_for_timeout(300)
    page.screenshot(path=str(shot))
    boxes = page.evaluate(f"""() => {{
        const box = (e) => {{ const r = e.getBoundingClientRect();
                              return [r.left, r.top, r.right, r.bottom]; }};
        const CONTROLS = {CONTROLS};
        const w = {PLOT}.closest('.widget-box.widget-vbox') || {PLOT}.closest('.widget-box');
        const area = box(document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer'));
        const out = {PLOT}.closest('.jp-OutputArea-output');
        return {{area, figure: box({PLOT}), overflow: out.scrollWidth - out.clientWidth,
                controls: [...w.querySelectorAll(CONTROLS)].map(box)}};
    }}""")
    left, top, right, bottom = boxes["area"]
    assert len(boxes["controls"]) == 4, boxes  # example, group, outlines, nets
    for c in boxes["controls"]:
        assert left <= c[0] and c[2] <= right and top <= c[1] and c[3] <= bottom, (c, boxes["area"])
    assert boxes["figure"][2] <= right + 1 and boxes["overflow"] <= 1, boxes


def test_activation_browser_in_jupyterlab(tiny_run, tmp_path):
    source_root, _ = tiny_run
    outputs = tmp_path / "outputs"  # a copy, so the tiny run's own files are not rewritten here
    shutil.copytree(source_root / "tiny", outputs / "tiny")
    lab_root = tmp_path / "lab"
    lab_root.mkdir()
    tiny_notebook("05_activations", lab_root)
    lab_settings(tmp_path / "lab-state")
    server = LabServer(lab_root, {paths.OUTPUTS_ENV: str(outputs)}, tmp_path / "jupyter.log")
    try:
        with chromium_page(tmp_path) as page:
            page.goto(server.url("05_activations.ipynb"))
            run_all_cells(page)
            page.screenshot(path=str(tmp_path / "lab_ran.png"), full_page=True)
            outputs_json = cell_outputs(page)
            errors = [o for o in outputs_json if o["output_type"] == "error"]
            assert not errors, [f"{o['ename']}: {o['evalue']}" for o in errors]
            page.wait_for_function(f"{PLOT} && {PLOT}._fullLayout", timeout=60_000)
            page.wait_for_timeout(1000)

            s0 = state(page)
            assert len(of_type(s0, "heatmap")) == 1 and len(of_type(s0, "image")) == 1
            check_orientation(s0, 2)
            check_controls_in_view(page, tmp_path / "lab_1_net.png")

            example = page.locator(".widget-box .widget-dropdown select").nth(0)
            group = page.locator(".widget-box .widget-dropdown select").nth(1)
            nets = page.locator(".widget-box .widget-select-multiple select")
            outlines = page.locator(".widget-box button.widget-toggle-button")
            names = nets.locator("option").all_inner_texts()
            assert len(names) == 9, names

            s1 = change(page, s0, lambda: example.select_option(index=1))
            assert s1["title"] != s0["title"]
            assert of_type(s1, "image")[0]["sum"] != of_type(s0, "image")[0]["sum"]
            assert of_type(s1, "heatmap")[0]["sum"] != of_type(s0, "heatmap")[0]["sum"]
            check_orientation(s1, 2)

            s2 = change(page, s1, lambda: group.select_option(index=2))
            assert of_type(s2, "heatmap")[0]["sum"] != of_type(s1, "heatmap")[0]["sum"]
            assert of_type(s2, "image")[0]["sum"] == of_type(s1, "image")[0]["sum"]  # same slice

            s3 = change(page, s2, lambda: nets.select_option(names[:3]), lambda s: len(s["panels"]) == 4)
            assert [t["name"] for t in of_type(s3, "heatmap")] == names[:3]
            check_orientation(s3, 4)  # the input slice stays upright after the panels are rebuilt
            check_controls_in_view(page, tmp_path / "lab_3_nets.png")

            s4 = change(page, s3, outlines.click,
                        lambda s: not any(t["visible"] is True for t in of_type(s, "scatter")))
            assert all(t["visible"] is False for t in of_type(s4, "scatter"))
            assert all(t["visible"] is True for t in of_type(s3, "scatter"))
            s5 = change(page, s4, outlines.click,
                        lambda s: all(t["visible"] is True for t in of_type(s, "scatter")))
            assert all(t["visible"] is True for t in of_type(s5, "scatter"))

            s9 = change(page, s5, lambda: nets.select_option(names), lambda s: len(s["panels"]) == 10)
            assert [t["name"] for t in of_type(s9, "heatmap")] == names
            check_orientation(s9, 10)
            check_controls_in_view(page, tmp_path / "lab_9_nets.png")

            s1b = change(page, s9, lambda: nets.select_option(names[1]), lambda s: len(s["panels"]) == 2)
            assert [t["name"] for t in of_type(s1b, "heatmap")] == [names[1]]
            check_orientation(s1b, 2)
    finally:
        server.stop()


def test_report_and_figures_load_without_javascript_errors(tiny_run, tmp_path):
    root, _ = tiny_run
    figures = sorted((root / "tiny" / "figures").glob("*.html"))
    report = root / "tiny" / "notebooks" / "report.html"
    assert len(figures) >= 14 and report.exists()
    with chromium_page(tmp_path) as page:
        for path in [*figures, report]:
            page.console_errors.clear()
            page.goto(path.as_uri())
            page.wait_for_function("document.querySelector('.js-plotly-plot')?._fullLayout", timeout=30_000)
            page.wait_for_timeout(300)
            assert not page.console_errors, f"{path.name}: {page.console_errors}"
            n = page.evaluate("document.querySelectorAll('.js-plotly-plot').length")
            assert n >= (1 if path != report else 14), f"{path.name}: {n} plots rendered"
        page.screenshot(path=str(tmp_path / "report.png"))
