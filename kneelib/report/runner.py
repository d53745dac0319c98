"""Run the notebook suite headlessly with papermill, in order, and build the HTML report.

``python -m kneelib reproduce --profile demo --set max_epochs=5`` runs every notebook of
``notebooks/`` (01_data ... 07_policy; 08_robustness only with ``--only 08``) in order with the same
parameters, saves each executed copy under ``outputs/<profile>/notebooks/`` and a combined HTML report
beside them. A failing notebook
stops the run with the notebook, the cell and the path of the partial executed copy.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from kneelib.core import paths
from kneelib.core.profiles import get_profile

NOTEBOOKS = ("01_data", "02_scratch", "03_finetune", "04_distances", "05_activations", "06_controls", "07_policy",
             "08_robustness")
# Run only when named in ``only``: 08 retrains the nine nets under several recipes (``make robustness``:
# ``--profile robustness --only 08``), far longer than 01-07 together.
OPT_IN = ("08_robustness",)


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names the notebook, the cell and the partial output."""


def available_notebooks() -> list[str]:
    return [name for name in NOTEBOOKS if (paths.NOTEBOOKS_DIR / f"{name}.ipynb").exists()]


def run_notebook(name: str, parameters: dict[str, Any], out_dir: Path) -> Path:
    """Execute one notebook with papermill; return the executed copy's path."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = paths.NOTEBOOKS_DIR / f"{name}.ipynb"
    if not source.exists():
        raise FileNotFoundError(f"notebook {source} not found; choose from {list(NOTEBOOKS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"{name}.ipynb"
    try:
        papermill.execute_notebook(str(source), str(output), parameters=parameters, kernel_name="python3",
                                   cwd=str(paths.NOTEBOOKS_DIR), progress_bar=False, log_output=False)
    except PapermillExecutionError as e:
        raise NotebookFailed(
            f"notebook {name} failed in cell {e.cell_index} (execution count {e.exec_count}):\n"
            f"{e.ename}: {e.evalue}\npartial executed notebook: {output}") from None
    return output


def build_report(executed: list[Path], out_path: Path) -> Path:
    """One HTML page holding every executed notebook in order (nbconvert)."""
    import nbformat
    from nbconvert import HTMLExporter

    from kneelib.core.atomic import write_text

    combined = nbformat.v4.new_notebook()
    for path in executed:
        nb = nbformat.read(path, as_version=4)
        combined.cells.append(nbformat.v4.new_markdown_cell(f"---\n# Notebook `{path.stem}`"))
        combined.cells.extend(nb.cells)
        combined.metadata = nb.metadata
    body, _ = HTMLExporter().from_notebook_node(combined)
    write_text(out_path, body)
    return out_path


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
    start = time.perf_counter()
    for i, name in enumerate(names, start=1):
        t0 = time.perf_counter()
        print(f"[{i}/{len(names)}] {name} ...", flush=True)
        executed.append(run_notebook(name, parameters, out_dir))
        print(f"[{i}/{len(names)}] {name} done in {time.perf_counter() - t0:.0f} s -> {executed[-1]}", flush=True)
    if report:
        path = build_report(executed, out_dir / "report.html")
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
    rep.add_argument("--profile", default="demo", help="tiny | demo | robustness | paper")
    rep.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a profile parameter, e.g. --set max_epochs=5 --set seeds=[0,1,2]")
    rep.add_argument("--data-root", default=os.environ.get(paths.DATA_ROOT_ENV, ""),
                     help=f"real IWOAI data root (default ${paths.DATA_ROOT_ENV}); empty: phantoms")
    rep.add_argument("--only", nargs="*", help="run only these notebooks (names or numbers, e.g. 01 04)")
    rep.add_argument("--force", action="store_true", help="retrain networks even when reusable")
    rep.add_argument("--no-report", action="store_true", help="skip the HTML report")
    args = parser.parse_args(argv)
    try:
        reproduce(args.profile, parse_overrides(args.overrides), args.data_root, args.only, args.force,
                  not args.no_report)
    except (NotebookFailed, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
