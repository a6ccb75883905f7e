"""Run folders: where a run writes its manifest, tables and plots.

A run folder is ``results/<name>-<YYYYmmdd-HHMMSS>/`` under the current directory
by default (``-2``, ``-3``, ... is appended if that folder exists already), or the
folder given with ``--out`` (created if needed; an existing one is reused, which is
what ``--resume`` of a sweep needs).

Every file is written atomically: to a temporary file in the same folder, then
``os.replace``-d onto its name, so a reader (or a resumed sweep) never sees half a
file.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Mapping

from .versions import constraints_status, versions

REPO = Path(__file__).resolve().parent.parent


def add_run_arguments(parser: argparse.ArgumentParser, *, seed: int | None = 0) -> None:
    """The options every run has: ``--out DIR`` and (unless ``seed`` is None) ``--seed N``."""
    parser.add_argument("--out", metavar="DIR", type=Path, default=None,
                        help="run folder (default: results/<name>-<YYYYmmdd-HHMMSS>/)")
    if seed is not None:
        parser.add_argument("--seed", type=int, default=seed, help=f"random seed (default: {seed})")


class _RayInsecure(argparse.Action):
    """``--ray-insecure``: allow joining a Ray cluster without token authentication (for this process and the
    sweep's workers: ``TDMARKET_RAY_INSECURE=1``, read by ``coordinator.runtime.ray.init_ray``)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        setattr(namespace, self.dest, True)
        os.environ["TDMARKET_RAY_INSECURE"] = "1"


def add_ray_insecure_argument(parser: argparse.ArgumentParser) -> None:
    """``--ray-insecure``: without it, joining a cluster (``--ray-address``) with no token is refused."""
    parser.add_argument("--ray-insecure", action=_RayInsecure, nargs=0, default=False,
                        help="allow joining a Ray cluster without token authentication (default: refuse unless "
                             "RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token gives a token)")


class _EnvCount(argparse.Action):
    """A count of at least 1, also exported to the environment variable ``const`` (read by the runtimes,
    in this process and in a sweep's workers: ``coordinator.runtime``)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        try:
            n = int(values)
        except ValueError:
            n = 0
        if n < 1:
            parser.error(f"{option_string}: expected a whole number of at least 1, got {values!r}")
        setattr(namespace, self.dest, n)
        os.environ[self.const] = str(n)


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """``--runtime local|ray``, ``--ray-address``, ``--ray-insecure``, ``--shards``, ``--snapshot-every``."""
    parser.add_argument("--runtime", choices=("local", "ray"), default="local",
                        help="run agents in-process (local) or as Ray actors (ray)")
    parser.add_argument("--ray-address", default=None,
                        help="join a Ray cluster (auto or HOST:PORT; default: $RAY_ADDRESS or a new local instance)")
    add_ray_insecure_argument(parser)
    parser.add_argument("--shards", action=_EnvCount, const="TDMARKET_SHARDS", default=None, metavar="N",
                        help="ray: host the agents in N actors (default: one per CPU of the cluster)")
    parser.add_argument("--snapshot-every", action=_EnvCount, const="TDMARKET_SNAPSHOT_EVERY", default=None,
                        metavar="K", help="snapshot each agent every K deliveries; a lost agent is restored "
                                          "from its last snapshot and the deliveries since (default: 10)")


#: scenarios whose run makes one Ray runtime in this process with the default options (no address, the
#: machine's CPUs): with ``--runtime ray`` their local Ray instance is started in the background as soon as
#: the command line is read (:func:`start_ray_early`)
RAY_EARLY = ("tso-dso", "tes-day")
#: set to 0 to start Ray only when the runtime is made (to measure what the early start saves)
RAY_EARLY_ENV = "TDMARKET_RAY_EARLY"


def start_ray_early(argv: list[str]) -> bool:
    """Start a local Ray instance in the background if ``argv`` runs one of :data:`RAY_EARLY` with
    ``--runtime ray``, no ``--ray-address``, no ``RAY_ADDRESS`` and no ``--help``.

    Starting Ray takes seconds (its GCS, raylet, dashboard and agents start one after the other); started
    here, before the scenario's modules are imported and its case loaded, it runs meanwhile, and the
    ``RayRuntime`` made later adopts it (``coordinator.runtime.cluster.start_in_background``). Reads the
    words only (before argparse, which needs the heavy imports): a command line it misreads starts Ray when
    it is made, as without this. Returns True if it started one.
    """
    if os.environ.get(RAY_EARLY_ENV, "1").strip() == "0" or os.environ.get("RAY_ADDRESS"):
        return False
    words = [a for a in argv if not a.startswith("-")]
    if not words or words[0] not in RAY_EARLY:
        return False
    runtime = None
    for i, a in enumerate(argv):
        if a in ("-h", "--help") or a == "--ray-address" or a.startswith("--ray-address="):
            return False
        if a == "--runtime" and i + 1 < len(argv):
            runtime = argv[i + 1]
        elif a.startswith("--runtime="):
            runtime = a.split("=", 1)[1]
    if runtime != "ray":
        return False
    from coordinator.runtime.cluster import start_in_background

    return start_in_background()


# ------------------------------------------------------------------ atomic writes

#: the mode of every file in a run folder (before the umask): readable by all, written by the owner
FILE_MODE = 0o644


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode every run file gets: :data:`FILE_MODE` minus the umask (the audit log is made with it too)."""
    return FILE_MODE & ~_umask()



@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``.

    The temporary file keeps ``path``'s suffix so that writers that look at it
    (matplotlib, pandas) pick the right format. On an exception it is removed and
    ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, FILE_MODE & ~_umask())  # mkstemp makes 0600: every run file gets the same documented mode
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[Any]], None], *, binary: bool = False) -> Path:
    """Write ``path`` atomically with ``write(file)`` (a text file unless ``binary``)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8", "newline": "\n"})) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def jsonable(obj: Any) -> Any:
    """``obj`` with paths, numpy values, sets and tuples made JSON-friendly; NaN and inf become None."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((jsonable(v) for v in obj), key=str)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (str, bool, int)) or obj is None:
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return jsonable(obj.tolist())
    if isinstance(obj, (_dt.datetime, _dt.date)):
        return obj.isoformat()
    return str(obj)


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    text = json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n"
    return atomic_write(path, lambda fh: fh.write(text))


def write_parquet(path: str | os.PathLike[str], df: Any) -> Path:
    """Write a pandas DataFrame as Parquet (pyarrow), atomically."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, engine="pyarrow")
    return Path(path)


def write_png(path: str | os.PathLike[str], fig: Any, *, dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG, atomically, and close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(path)


# --------------------------------------------------------------------- versions


def git_commit(repo: Path = REPO) -> str | None:
    """The checked-out commit of the project (``+dirty`` if there are local changes), if known."""
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
        return head.stdout.strip() + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


# ---------------------------------------------------------------------- folders


def _stamp(now: _dt.datetime | None = None) -> str:
    return (now or _dt.datetime.now()).strftime("%Y%m%d-%H%M%S")


def safe_name(name: str) -> str:
    """A run-folder name made of ``[A-Za-z0-9._-]`` only (no separators, no ``..``, no leading dot)."""
    out = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._-")
    out = re.sub(r"\.{2,}", ".", out)
    return out or "run"


#: every run folder made in this process (``run.py`` marks them complete, failed or interrupted at the end)
ACTIVE: list["RunFolder"] = []
STATUSES = ("running", "complete", "failed", "interrupted")


class OutputError(OSError):
    """The run folder cannot be created or written (a failure of the environment: exit status 1)."""


class RunFolder:
    """A run's output folder; every ``write_*`` is atomic and returns the path written.

    ``manifest.json`` carries ``status``: ``running`` from the start, then ``complete``,
    ``failed`` (with ``error``) or ``interrupted`` (see :meth:`finish`), so that a folder left by
    a run that did not finish never looks finished. Permissions: the folder is made with mode
    0755 and every file with 0644 (minus the umask), whoever writes it (see :data:`FILE_MODE`).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise OutputError(exc.errno, f"cannot write the run folder {self.path}: {exc.strerror}") from None
        self._manifest: dict[str, Any] | None = None
        ACTIVE.append(self)

    @classmethod
    def create(cls, name: str, out: str | os.PathLike[str] | None = None, *, root: str | os.PathLike[str] = "results",
               now: _dt.datetime | None = None) -> "RunFolder":
        """``out`` if given, else a new ``<root>/<name>-<YYYYmmdd-HHMMSS>[-k]/``."""
        if out is not None:
            return cls(out)
        root = Path(root)
        base = f"{safe_name(name)}-{_stamp(now)}"
        for k in range(1, 1000):
            p = root / (base if k == 1 else f"{base}-{k}")
            try:
                p.mkdir(parents=True, exist_ok=False)
            except FileExistsError:
                continue
            except OSError as exc:
                raise OutputError(exc.errno, f"cannot create the run folder {p}: {exc.strerror}") from None
            return cls(p)
        raise FileExistsError(f"no free run folder name under {root} for {base}")

    def file(self, name: str) -> Path:
        return self.path / name

    def exists(self, name: str) -> bool:
        return (self.path / name).exists()

    def write_json(self, name: str, obj: Any) -> Path:
        return write_json(self.path / name, obj)

    def write_parquet(self, name: str, df: Any) -> Path:
        return write_parquet(self.path / name, df)

    def write_png(self, name: str, fig: Any, *, dpi: int = 120) -> Path:
        return write_png(self.path / name, fig, dpi=dpi)

    def write_manifest(self, scenario: str, parameters: Mapping[str, Any] | argparse.Namespace | None = None, *,
                       seed: int | None = None, extra: Mapping[str, Any] | None = None, **more: Any) -> Path:
        """``manifest.json``: scenario, parameters, seed, versions, git commit, time and command line.

        ``extra`` (and any further keyword) adds top-level entries (e.g. ``{"case": "tes_feeder"}``).
        """
        params = vars(parameters) if isinstance(parameters, argparse.Namespace) else dict(parameters or {})
        params = {k: v for k, v in params.items() if not callable(v)}
        if seed is None and isinstance(params.get("seed"), int):
            seed = params["seed"]
        manifest = {
            "scenario": scenario,
            "parameters": params,
            "seed": seed,
            "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv and sys.argv[0] else None,
            "versions": versions(),
            "constraints": constraints_status(),
            "git_commit": git_commit(),
            "status": "running",
            **dict(extra or {}),
            **more,
        }
        self._manifest = manifest
        return self.write_json("manifest.json", manifest)

    @property
    def status(self) -> str | None:
        return None if self._manifest is None else self._manifest.get("status")

    def finish(self, status: str, error: str | None = None) -> None:
        """Record how the run ended in ``manifest.json`` (``complete``, ``failed`` or ``interrupted``).

        Best effort: if even that cannot be written (a full disk), the folder keeps ``running``.
        """
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        if self._manifest is None:
            return
        self._manifest.update(status=status, finished=_dt.datetime.now().astimezone().isoformat(timespec="seconds"))
        if error:
            self._manifest["error"] = error
        try:
            self.write_json("manifest.json", self._manifest)
        except OSError:
            pass

    def files(self) -> list[str]:
        """The files written so far (relative names, sorted)."""
        return sorted(str(p.relative_to(self.path)) for p in self.path.rglob("*") if p.is_file()
                      and not p.name.startswith("."))

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"


def progress_to(console: Any, status: Any) -> Callable[[str], None]:
    """A progress callback: updates the spinner ``status`` on a terminal; when the output is not a
    terminal (a log file, a batch job), prints each message as a time-stamped line instead, so a long
    run's progress can be followed with ``tail -f``."""
    if getattr(console, "is_terminal", True):
        return lambda s: status.update(s)
    return lambda s: console.print(f"{_dt.datetime.now():%H:%M:%S} {s}", highlight=False, soft_wrap=True)
