"""Helpers for the real-browser tests: a JupyterLab server on a loopback port and Debian's Chromium
driven by Playwright (never a downloaded browser build)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
from machine import unavailable

from kneelib.core import paths

# Flags that let the system Chromium run headless in a container, offline, without a profile.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]
INSTALL_HINT = ("the browser tests need Debian's chromium and the playwright package: run `make chromium` "
                "(apt-get install -y chromium) and `pip install -r requirements.lock`; Playwright drives "
                "that binary, nothing is downloaded")


def chromium_binary() -> str:
    """The system Chromium; without one the test skips (fails under KNEELIB_REQUIRE_ALL=1) saying how to
    install it."""
    for name in (os.environ.get("BROWSER_PATH", ""), "chromium", "chromium-browser"):
        found = shutil.which(name) if name else None
        if found:
            return found
    unavailable(f"no Chromium on PATH: {INSTALL_HINT}")


@contextlib.contextmanager
def chromium_page(tmp: Path, width: int = 1280, height: int = 900) -> Iterator:
    """A Playwright page in a fresh headless Chromium profile; collects console errors in
    ``page.console_errors`` (messages of type error, and uncaught page errors)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable(f"playwright is not installed: {INSTALL_HINT}")
    binary = chromium_binary()
    profile = tmp / "chromium-profile"
    profile.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=binary, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": width, "height": height})
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.console_errors = []
            page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
            page.on("pageerror", lambda e: page.console_errors.append(f"uncaught: {e}"))
            page.on("requestfailed", lambda r: page.console_errors.append(f"request failed: {r.url}"))
            yield page
        finally:
            context.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_notebook(name: str, root: Path, profile: str = "tiny") -> Path:
    """Copy ``notebooks/{name}.ipynb`` into ``root`` with its parameters cell set to ``profile``."""
    nb = nbformat.read(paths.NOTEBOOKS_DIR / f"{name}.ipynb", as_version=4)
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    lines = [f'profile = "{profile}"' if line.startswith("profile =") else line for line in cell.source.splitlines()]
    cell.source = "\n".join(lines)
    target = root / f"{name}.ipynb"
    nbformat.write(nb, target)
    return target


class LabServer:
    """``jupyter lab`` on 127.0.0.1:port with a random token, serving ``root``; the kernels it starts
    inherit ``env`` (e.g. KNEELIB_OUTPUTS). Settings and workspaces live under ``root/.lab``, so
    nothing of the user's JupyterLab state leaks in."""

    def __init__(self, root: Path, env: dict[str, str], log: Path) -> None:
        self.root, self.port, self.token = root, free_port(), secrets.token_hex(16)
        state = root.parent / "lab-state"
        for sub in ("settings", "workspaces", "runtime"):
            (state / sub).mkdir(parents=True, exist_ok=True)
        full_env = os.environ | env | {"JUPYTER_RUNTIME_DIR": str(state / "runtime"),
                                       "PYTHONPATH": os.pathsep.join(
                                           [str(paths.REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
               "--LabApp.expose_app_in_browser=True", f"--LabApp.user_settings_dir={state / 'settings'}",
               f"--LabApp.workspaces_dir={state / 'workspaces'}",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.news_url=None", "--LabApp.extension_manager=readonly"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        self.log = open(log, "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(cmd, env=full_env, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_ready(log)

    def _wait_ready(self, log: Path, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        url = f"{self.base}/api/status?token={self.token}"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(url, timeout=2) as r:
                    if json.load(r).get("started"):
                        return
            time.sleep(0.5)
        raise RuntimeError(f"jupyter lab not ready after {timeout} s:\n{log.read_text()[-3000:]}")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, notebook: str) -> str:
        return f"{self.base}/lab/tree/{notebook}?token={self.token}&reset"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()
