"""``run.py dashboard RUN_FOLDER``: start the solara server on the dashboard page, print its address, run until
Ctrl-C.

The server is ``python -m solara run scenarios.dashboard.app`` in a child process (its output goes to a
log file named on start, removed after a clean stop), the run folder in the environment variable
``TDMARKET_DASHBOARD_RUN``. A folder that is not a study's run folder ends with one line on stderr and
exit status 2 (bad input); a port in use or a server that does not come up with one line and exit status 1. The child is stopped when this process ends (Ctrl-C, SIGTERM).
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from .model import ENV_RUN_FOLDER
from .tables import DashboardError, check_run_folder

REPO = Path(__file__).resolve().parents[2]
APP = "scenarios.dashboard.app"
START_TIMEOUT_S = float(os.environ.get("TDMARKET_DASHBOARD_TIMEOUT", "60"))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_folder", help="the run folder of run.py study (running or finished)")
    p.add_argument("--port", type=int, default=8765, help="port of the page (default: 8765)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser; only print the address")


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _last_line(log: Path) -> str:
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def _stop(child: subprocess.Popen) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def serve(folder: Path, host: str, port: int, *, browser: bool, out=sys.stdout) -> int:
    """Run the server on ``folder`` until this process is interrupted; the exit status."""
    if not _port_free(host, port):
        print(f"error: {host}:{port} cannot be used (in use, or not an address of this machine; see --port, "
              "--host)", file=sys.stderr)
        return 1
    fd, log_name = tempfile.mkstemp(prefix="tdmarket-dashboard-", suffix=".log")
    log = Path(log_name)
    env = {"SOLARA_TELEMETRY_MIXPANEL_ENABLE": "False",  # solara's usage statistics: not sent unless asked for
           **os.environ, ENV_RUN_FOLDER: str(folder),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    cmd = [sys.executable, "-m", "solara", "run", APP, "--host", host, "--port", str(port), "--production",
           "--no-open", "--no-check-version", "--log-level", "warning"]
    with os.fdopen(fd, "wb") as sink:
        child = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    failed = True  # the log is kept when the server failed (the error names it), removed after a clean stop
    try:
        url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(url):
            if child.poll() is not None:
                print(f"error: the dashboard server ended with status {child.returncode}: {_last_line(log)} "
                      f"(log: {log})", file=sys.stderr)
                return 1
            if time.monotonic() > deadline:
                print(f"error: the dashboard server did not answer at {url} within {START_TIMEOUT_S:.0f} s "
                      f"(log: {log})", file=sys.stderr)
                return 1
            time.sleep(0.3)
        print(f"dashboard of {folder} at {url} (Ctrl-C stops it; server log: {log})", file=out, flush=True)
        if browser:
            import webbrowser

            webbrowser.open(url)
        failed = False
        child.wait()
        failed = True
        print(f"error: the dashboard server ended with status {child.returncode}: {_last_line(log)} "
              f"(log: {log})", file=sys.stderr)
        return 1
    finally:
        _stop(child)
        signal.signal(signal.SIGTERM, previous)
        if not failed:
            log.unlink(missing_ok=True)


def run(args: argparse.Namespace) -> int:
    try:
        folder = check_run_folder(args.run_folder)
    except DashboardError as exc:  # bad input: exit status 2, as every command's
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return serve(folder, args.host, args.port, browser=not args.no_browser)
