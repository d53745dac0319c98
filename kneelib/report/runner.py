"""Run the notebook suite headlessly with papermill, in order, and build the HTML report.

``python -m kneelib reproduce --profile demo --set max_epochs=5`` runs every notebook of
``notebooks/`` (01_data ... 07_policy; 08_robustness and 09_relatedness only when named, ``--only 08``,
``--only 09``) in order with the same parameters, saves each executed copy under
``outputs/<profile>/notebooks/`` and a combined HTML report beside them. A failing notebook stops the run
with the notebook, the cell and the path of the partial executed copy.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from traitlets import CaselessStrEnum

from kneelib.core import paths, progress
from kneelib.core.atomic import write_json
from kneelib.core.profiles import PROFILES, get_profile

NOTEBOOKS = ("01_data", "02_scratch", "03_finetune", "04_distances", "05_activations", "06_controls", "07_policy",
             "08_robustness", "09_relatedness")
# Run only when named in ``only``: 08 retrains the study's nets under several recipes (``make robustness``:
# ``--profile robustness --only 08``), far longer than 01-07 together; 09 trains the known-relatedness ladder
# (``make validate``: ``--only 09``).
OPT_IN = ("08_robustness", "09_relatedness")


# nbconvert's lab template minus the scripts it loads from CDNs (the report must work offline)
REPORT_TEMPLATES = Path(__file__).parent / "templates"


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names the notebook, the cell and the partial output."""


class IPCKernelManager(AsyncKernelManager):
    """Kernels talk to the runner over local IPC sockets (files beside the connection file in the
    Jupyter runtime folder) instead of loopback TCP: nothing listens on a port, and the kernel's
    "running over TCP without encryption" warning does not reach the user."""

    transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)


class StatusRelay:
    """A thread that prints the kernel's training status lines (:mod:`kneelib.core.progress`) while a
    notebook runs, with the time spent and an estimate of the time left.

    The estimate is the notebook's duration in the previous run of the same profile (``expected_s``)
    minus the time spent; without one, the time the current net needs for its remaining epochs.

    Args:
        notebook: name shown at the start of each line.
        folder: the status folder the kernel writes to (``$KNEELIB_STATUS_DIR``).
        expected_s: the previous run's duration of this notebook in seconds, or None.
        poll_s: seconds between looks at the folder.
        emit: where lines go (print by default).
    """

    def __init__(self, notebook: str, folder: Path, expected_s: float | None = None, poll_s: float = 2.0,
                 emit: Callable[[str], None] = lambda line: print(line, flush=True)) -> None:
        self.notebook, self.folder, self.expected_s, self.poll_s, self.emit = notebook, folder, expected_s, poll_s, emit
        self.start = time.monotonic()
        self._seen: set[tuple] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"status-{notebook}", daemon=True)

    def line(self, status: dict[str, Any], elapsed: float) -> str:
        """One progress line for ``status`` after ``elapsed`` seconds of the notebook."""
        if self.expected_s is not None:
            left = f"~{max(0.0, self.expected_s - elapsed):.0f} s left (last run {self.expected_s:.0f} s)"
        else:
            epochs_left = status["max_epochs"] - status["epoch"]
            left = f"this net ~{epochs_left * status['seconds']:.0f} s left at most"
        return f"  {self.notebook}: {progress.format_status(status)} | {elapsed:.0f} s in, {left}"

    def poll(self) -> None:
        """Emit a line for every status not seen yet."""
        for status in progress.read_statuses(self.folder):
            key = (status.get("net"), status.get("epoch"), status.get("time"))
            if key not in self._seen:
                self._seen.add(key)
                self.emit(self.line(status, time.monotonic() - self.start))

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.poll()

    def __enter__(self) -> StatusRelay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.poll()


def available_notebooks() -> list[str]:
    return [name for name in NOTEBOOKS if (paths.NOTEBOOKS_DIR / f"{name}.ipynb").exists()]


def run_notebook(name: str, parameters: dict[str, Any], out_dir: Path, expected_s: float | None = None) -> Path:
    """Execute one notebook with papermill, relaying its training status lines; return the executed
    copy's path. ``expected_s``: the notebook's duration last time, for the time-left estimate."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = paths.NOTEBOOKS_DIR / f"{name}.ipynb"
    if not source.exists():
        raise FileNotFoundError(f"notebook {source} not found; choose from {list(NOTEBOOKS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"{name}.ipynb"
    status_dir = Path(tempfile.mkdtemp(prefix=f"kneelib-status-{name}-"))
    before = os.environ.get(progress.STATUS_DIR_ENV)
    os.environ[progress.STATUS_DIR_ENV] = str(status_dir)  # the kernel (and its workers) inherit it
    try:
        with StatusRelay(name, status_dir, expected_s):
            papermill.execute_notebook(str(source), str(output), parameters=parameters, kernel_name="python3",
                                       cwd=str(paths.NOTEBOOKS_DIR), progress_bar=False, log_output=False,
                                       kernel_manager_class=IPCKernelManager)
    except PapermillExecutionError as e:
        raise NotebookFailed(
            f"notebook {name} failed in cell {e.cell_index} (execution count {e.exec_count}):\n"
            f"{e.ename}: {e.evalue}\npartial executed notebook: {output}") from None
    finally:
        if before is None:
            os.environ.pop(progress.STATUS_DIR_ENV, None)
        else:
            os.environ[progress.STATUS_DIR_ENV] = before
        for path in status_dir.glob("*"):
            path.unlink()
        status_dir.rmdir()
    return output


def _is_plotlyjs_bundle(output: dict) -> bool:
    """The output plotly's ``notebook`` renderer adds once per notebook: all of plotly.js (~4.8 MB)."""
    html = output.get("data", {}).get("text/html", "")
    html = "".join(html) if isinstance(html, list) else html
    return len(html) > 1_000_000 and "plotly.js v" in html[:5000]


# plotly's notebook renderer always adds a MathJax <script> from a CDN; the figures use no LaTeX
_CDN_SCRIPT = re.compile(r'<script[^>]*\bsrc="https?://[^"]*"[^>]*>\s*</script>')


def _without_cdn_scripts(output: dict) -> dict:
    """An output whose HTML no longer loads scripts from the internet (the report is read offline)."""
    data = output.get("data", {})
    if "text/html" in data:
        html = data["text/html"]
        data["text/html"] = _CDN_SCRIPT.sub("", "".join(html) if isinstance(html, list) else html)
    return output


def build_report(executed: list[Path], out_path: Path, preface: str = "") -> Path:
    """One HTML page holding every executed notebook in order (nbconvert), with plotly.js inlined
    once (each executed notebook carries its own copy; the first one serves the whole page).
    ``preface``: Markdown put before the first notebook (the data caveat, :func:`data_caveat`)."""
    import nbformat
    from nbconvert import HTMLExporter

    from kneelib.core.atomic import write_text

    combined = nbformat.v4.new_notebook()
    if preface:
        combined.cells.append(nbformat.v4.new_markdown_cell(preface))
    bundle_seen = False
    for path in executed:
        nb = nbformat.read(path, as_version=4)
        for cell in (c for c in nb.cells if c.cell_type == "code"):
            kept = []
            for output in cell.outputs:
                if _is_plotlyjs_bundle(output):
                    if bundle_seen:
                        continue
                    bundle_seen = True
                kept.append(_without_cdn_scripts(output))
            cell.outputs = kept
        combined.cells.append(nbformat.v4.new_markdown_cell(f"---\n# Notebook `{path.stem}`"))
        combined.cells.extend(nb.cells)
        combined.metadata = nb.metadata
    exporter = HTMLExporter(extra_template_basedirs=[str(REPORT_TEMPLATES)], template_name="offline")
    body, _ = exporter.from_notebook_node(combined)
    write_text(out_path, body)
    return out_path


def data_caveat(data_root: str = "") -> str:
    """What the report's data is, as its first paragraph: the phantom caveat unless a real data root is
    given (``data_root`` or ``$KNEELIB_DATA_ROOT``), as the claims report opens."""
    from kneelib.report.claims_report import PHANTOM_CAVEAT, REAL_CAVEAT

    return REAL_CAVEAT if paths.real_data_root(data_root) is not None else PHANTOM_CAVEAT


def reproduce(profile: str = "demo", overrides: dict[str, Any] | None = None, data_root: str = "",
              only: list[str] | None = None, force: bool = False, report: bool = True) -> list[Path]:
    """Run the notebooks in order; returns the executed notebooks' paths."""
    overrides = overrides or {}
    p = get_profile(profile, **overrides)  # fail fast on a bad profile or parameter
    if p.executor != "local" or p.gpus_per_net:  # ... or nets that cannot train where the profile says
        from kneelib.nets.workers import check_executor  # torch: only when there is something to check

        check_executor(p)
    names = ([n for n in available_notebooks() if n not in OPT_IN] if not only
             else [n for n in available_notebooks() if n in only or n[:2] in only])
    if only and not names:
        raise ValueError(f"--only {only} matches no notebook of {available_notebooks()}")
    parameters = {"profile": profile, "data_root": data_root, "overrides": overrides, "force": force}
    out_dir = paths.profile_dir(profile) / "notebooks"
    executed = []
    timings_path = out_dir / "timings.json"  # seconds per notebook of the last run, for the estimates
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    start = time.perf_counter()
    for i, name in enumerate(names, start=1):
        t0 = time.perf_counter()
        expected = timings.get(name)
        print(f"[{i}/{len(names)}] {name} ..." + (f" (last run {expected:.0f} s)" if expected else ""), flush=True)
        executed.append(run_notebook(name, parameters, out_dir, expected))
        timings[name] = time.perf_counter() - t0
        write_json(timings_path, timings)
        print(f"[{i}/{len(names)}] {name} done in {timings[name]:.0f} s -> {executed[-1]}", flush=True)
    if report:
        path = build_report(executed, out_dir / "report.html", data_caveat(data_root))
        print(f"report: {path}")
    print(f"total {time.perf_counter() - start:.0f} s")
    return executed


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are JSON when they parse (numbers, lists), else strings."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} must look like key=value")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m kneelib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("reproduce", help="run the notebook suite with papermill")
    rep.add_argument("--profile", default="demo", help=" | ".join(PROFILES))
    rep.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a profile parameter, e.g. --set max_epochs=5 --set seeds=[0,1,2]")
    rep.add_argument("--data-root", default=os.environ.get(paths.DATA_ROOT_ENV, ""),
                     help=f"real IWOAI data root (default ${paths.DATA_ROOT_ENV}); empty: phantoms")
    rep.add_argument("--only", nargs="*", help="run only these notebooks (names or numbers, e.g. 01 04)")
    rep.add_argument("--force", action="store_true", help="retrain networks even when reusable")
    rep.add_argument("--no-report", action="store_true", help="skip the HTML report")
    data = sub.add_parser("data", help="check a data folder (IWOAI, SKM-TEA or nnU-Net raw) as downloaded")
    data.add_argument("root", metavar="DIR", help="the data folder")
    data.add_argument("--format", default="auto", choices=["auto", "iwoai", "skm-tea", "nnunet"],
                      help="auto: detected from the folder's layout")
    data.add_argument("--out", metavar="FILE.csv", help="write one row per scan (voxels per tissue) here")
    data.add_argument("--echo", default="rss", choices=["rss", "echo1", "echo2"], help="SKM-TEA image")
    data.add_argument("--label-map", default="{}", metavar="JSON",
                      help='nnU-Net label names (or values) -> tissues, e.g. \'{"FC": "femoral_cartilage"}\'')
    args = parser.parse_args(argv)
    if args.command == "data":
        return check_data(args.root, args.format, args.out, args.echo, args.label_map)
    try:
        reproduce(args.profile, parse_overrides(args.overrides), args.data_root, args.only, args.force,
                  not args.no_report)
    except (NotebookFailed, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def check_data(root: str, data_format: str = "auto", out: str | None = None, echo: str = "rss",
               label_map: str = "{}") -> int:
    """``python -m kneelib data``: validate every scan of ``root``, print the summary and (``out``) write the
    per-scan table; 0 when every scan is valid, else 1 with a one-line error naming the first bad file."""
    from kneelib.data import check  # numpy/pandas/h5py/nibabel: only for this command

    try:
        mapping = json.loads(label_map)
        if not isinstance(mapping, dict):
            raise ValueError(f"--label-map {label_map!r} must be a JSON object")
        fmt, table = check.scan_table(root, data_format, echo, mapping)
    except (ValueError, FileNotFoundError, OSError) as e:  # DataError and ManifestError are ValueErrors
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(check.summary(fmt, table))
    if out:
        print(f"per-scan table: {check.write_scan_table(table, out)}")
    return 0
