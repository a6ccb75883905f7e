"""Starting or joining Ray: a local instance bound to 127.0.0.1, or a cluster with token authentication.

Joining a cluster (``--ray-address HOST:PORT``, ``auto`` or ``RAY_ADDRESS``) waits a bounded time for
the address to answer (:class:`ClusterUnreachable`), turns token authentication on when a token is
found (:class:`ClusterAuthRequired` without one, unless ``--ray-insecure``), and then *probes* every
node: one small task per alive node imports the project there. A node that cannot run the project's
code, or a cluster whose authentication does not match the driver's (Ray then cancels every actor
creation), ends with :class:`ClusterUnusable`, one line naming the cause, instead of actors dying
one after another. All three are ``ConnectionError``: the CLIs print one line and exit with status 1.

A local instance can be started in the background (:func:`start_in_background`) while the driver imports
its modules and loads its case; the next :func:`init_ray` for a local instance adopts it.
"""
from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .base import PROJECT_PACKAGES, _project_root
from .local_instance import _loopback, _no_monitor, _raylet_first, local_instance_options

__all__ = ["init_ray", "ClusterUnreachable", "ClusterAuthRequired", "ClusterUnusable", "wait_for_address",
           "token_source", "local_instance_options", "connect_timeout", "probe_nodes", "cluster_cpus",
           "start_in_background", "background_start", "release_background"]
log = logging.getLogger(__name__)

#: seconds to wait for a cluster's address to answer before giving up (``TDMARKET_RAY_TIMEOUT`` overrides)
CONNECT_TIMEOUT_S = 30.0


class ClusterUnreachable(ConnectionError):
    """Nothing answers at the cluster address within the timeout (an environment failure: exit status 1)."""


def connect_timeout() -> float:
    v = os.environ.get("TDMARKET_RAY_TIMEOUT")
    try:
        return float(v) if v else CONNECT_TIMEOUT_S
    except ValueError:
        raise ValueError(f"TDMARKET_RAY_TIMEOUT must be a number of seconds, got {v!r}") from None


def wait_for_address(address: str, timeout: float | None = None) -> None:
    """Wait until ``HOST:PORT`` accepts a TCP connection; :class:`ClusterUnreachable` after ``timeout`` s.

    Ray itself retries an unreachable address for minutes; this bounds the wait and names the address.
    """
    import socket
    import time

    timeout = connect_timeout() if timeout is None else float(timeout)
    host, _, port = address.rpartition(":")
    try:
        port_n = int(port)
    except ValueError:
        raise ClusterUnreachable(f"the cluster address {address!r} is not HOST:PORT") from None
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        left = deadline - time.monotonic()
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", port_n), timeout=max(0.1, min(left, 5.0))):
                return
        except OSError as exc:
            last = exc.strerror or str(exc)
        if time.monotonic() + 1.0 > deadline:
            raise ClusterUnreachable(f"cannot reach the Ray cluster at {address} within {timeout:g} s ({last}); "
                                     f"is 'ray start --head' running there? (TDMARKET_RAY_TIMEOUT sets the wait)")
        time.sleep(1.0)


class ClusterAuthRequired(ConnectionError):
    """Joining a cluster without a token, and without ``--ray-insecure`` (exit status 1)."""


#: set (to 1) by ``--ray-insecure``: joining a cluster without token authentication is allowed
INSECURE_ENV = "TDMARKET_RAY_INSECURE"


def token_source() -> str | None:
    """Where Ray would read its authentication token from, or None: ``RAY_AUTH_TOKEN``, the file named by
    ``RAY_AUTH_TOKEN_PATH``, or ``~/.ray/auth_token`` (in Ray's order)."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return "RAY_AUTH_TOKEN"
    named = os.environ.get("RAY_AUTH_TOKEN_PATH")
    candidates = [(Path(named).expanduser(), f"RAY_AUTH_TOKEN_PATH ({named})")] if named else []
    candidates.append((Path.home() / ".ray" / "auth_token", "~/.ray/auth_token"))
    for path, label in candidates[:1] if named else candidates:
        try:
            if path.is_file() and path.read_text(encoding="utf-8").strip():
                return label
        except OSError:
            pass
    return None


def _insecure_allowed(insecure: bool | None) -> bool:
    if insecure is not None:
        return bool(insecure)
    return os.environ.get(INSECURE_ENV, "").strip().lower() in ("1", "true", "yes")


def _set_auth_mode(mode: str) -> None:
    """Set ``RAY_AUTH_MODE`` for this process *and* refresh Ray's cached configuration.

    Ray reads its configuration (the authentication mode among it) once, when ``ray`` is imported;
    setting only the environment variable afterwards left the driver in the mode it was imported
    with while its environment said otherwise. Against a cluster without authentication, with a
    token in ``~/.ray/auth_token``, every actor creation was then cancelled ("SchedulingCancelled",
    "all references to the actor were removed") and the run died with HostCrashed (issue 9).
    Ray's own ``_enable_token_auth`` refreshes the configuration the same way.
    """
    os.environ["RAY_AUTH_MODE"] = mode
    ray = sys.modules.get("ray")
    if ray is None or ray.is_initialized():  # read on import; a running session is left alone
        return
    try:
        from ray._raylet import Config

        Config.initialize("")
    except Exception as exc:  # pragma: no cover - a Ray without this internal API
        log.warning("could not refresh Ray's configuration after setting RAY_AUTH_MODE=%s: %s", mode, exc)


def _join_auth(addr: str, insecure: bool | None) -> None:
    """Token authentication for joining ``addr``: on, with a token; off only with ``--ray-insecure``."""
    src = token_source()
    mode = os.environ.get("RAY_AUTH_MODE", "").strip().lower()
    if src is not None and mode != "disabled":
        _set_auth_mode("token")
        log.info("joining the Ray cluster at %s with token authentication (token from %s)", addr, src)
        return
    if not _insecure_allowed(insecure):
        why = "RAY_AUTH_MODE=disabled" if mode == "disabled" else \
            "no token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)"
        raise ClusterAuthRequired(f"refusing to join the Ray cluster at {addr} without token authentication "
                                  f"({why}); provide the cluster's token, or pass --ray-insecure to join "
                                  f"without authentication")
    _set_auth_mode("disabled")
    log.warning("joining the Ray cluster at %s WITHOUT token authentication (--ray-insecure)", addr)


def init_ray(address: str | None = None, num_cpus: int | None = None, *, runtime_env: Any = "auto",
             insecure: bool | None = None, **init_kwargs: Any) -> bool:
    """Start or join Ray so that actors can import the project; returns True if it started a session here.

    Does nothing (returns False) when Ray is already initialised in this process.
    ``address``: ``None`` (and no ``RAY_ADDRESS``) starts a local instance with ``num_cpus`` CPUs
    (default: the machine's), every server of it bound to 127.0.0.1, without the autoscaler's
    monitor (:class:`_no_monitor`); ``"auto"`` or ``"HOST:PORT"`` joins a running cluster, shipping
    the project packages as ``py_modules`` when running from a source checkout
    (``runtime_env="auto"``). Joining uses token
    authentication (``RAY_AUTH_MODE=token``) with the token Ray finds (``RAY_AUTH_TOKEN``,
    ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``); without one it is refused
    (:class:`ClusterAuthRequired`) unless ``insecure`` (``--ray-insecure``, or
    ``TDMARKET_RAY_INSECURE=1`` when ``insecure`` is None).

    A local instance being started by :func:`start_in_background` with the same ``num_cpus`` (and no
    other option) is waited for and adopted: the result is the background start's (its error is
    raised here). A background start that does not match is waited for and shut down first.
    """
    _wait_closing()
    bg = _adopt_background(address, num_cpus, init_kwargs)
    if bg is not None:
        return bg
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():  # an adopted start whose session was shut down by ray.shutdown()
        release_background()
    return _init_ray(address, num_cpus, runtime_env=runtime_env, insecure=insecure, **init_kwargs)


def _init_ray(address: str | None = None, num_cpus: int | None = None, *, runtime_env: Any = "auto",
              insecure: bool | None = None, **init_kwargs: Any) -> bool:
    """:func:`init_ray` itself (without adopting a background start)."""
    import ray

    if ray.is_initialized():
        return False
    addr = address or os.environ.get("RAY_ADDRESS") or "local"
    kwargs: dict[str, Any] = {"include_dashboard": False}
    root = _project_root()
    if addr == "local":
        kwargs.update(local_instance_options())
        kwargs.update(init_kwargs)
        if num_cpus is not None:
            kwargs["num_cpus"] = int(num_cpus)
        # the workers of a local instance inherit this environment: make the project importable
        # whatever the current directory is
        if root is not None:
            paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
            if str(root) not in paths:
                os.environ["PYTHONPATH"] = os.pathsep.join([str(root), *paths])
        with _loopback(), _no_monitor(), _raylet_first():
            ray.init(address=addr, **kwargs)
        return True
    kwargs.update(init_kwargs)
    _join_auth(addr, insecure)
    if addr != "auto" and "://" not in addr:
        wait_for_address(addr)
    if runtime_env == "auto":
        runtime_env = {"py_modules": [str(root / p) for p in PROJECT_PACKAGES]} if root is not None else None
    if runtime_env is not None:
        kwargs["runtime_env"] = runtime_env
    try:
        ray.init(address=addr, **kwargs)
    except Exception as exc:
        raise _join_error(addr, exc) from exc
    try:
        probe_nodes()
    except BaseException:
        ray.shutdown()
        raise
    return True


# --------------------------------------------------------------------------- background start
class _BackgroundStart:
    """A local instance started by :func:`_init_ray` in a thread of its own.

    The thread stays alive until the session is shut down (:func:`release_background`): Ray starts its
    processes (GCS, raylet, dashboard, monitors) with ``PR_SET_PDEATHSIG`` so that they die with their
    parent, and on Linux the parent is the *thread* that started them, not the process.
    """

    def __init__(self, num_cpus: int | None) -> None:
        self.num_cpus = num_cpus
        self.owned = False
        self.error: BaseException | None = None
        self.started = time.perf_counter()
        self.ready_at: float | None = None
        self._ready = threading.Event()
        self._release = threading.Event()
        self._done = threading.Event()
        self._shutdown = False
        self._thread = threading.Thread(target=self._run, name="tdmarket-ray-start", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import ray  # Ray registers its exit hook on import; ours, registered after, runs before it

        atexit.register(self._at_exit)
        quiet = _NoSigtermWarning()
        logging.getLogger("ray._private.worker").addFilter(quiet)
        try:
            self.owned = _init_ray(None, self.num_cpus)
        except BaseException as exc:  # re-raised in the thread that adopts this start
            self.error = exc
        finally:
            logging.getLogger("ray._private.worker").removeFilter(quiet)
            self.ready_at = time.perf_counter()
            self._ready.set()
        self._release.wait()
        try:
            if self._shutdown:
                ray.shutdown()
        except Exception as exc:  # pragma: no cover - Ray's processes die with this thread anyway
            log.warning("shutting down the Ray instance started in the background: %s", exc)
        finally:
            self._done.set()

    @property
    def seconds(self) -> float | None:
        """How long ``ray.init`` took in the background (None while it runs)."""
        return None if self.ready_at is None else self.ready_at - self.started

    def wait(self) -> bool:
        """Wait for the start; its ``init_ray`` result, or its error raised here."""
        self._ready.wait()
        if self.error is not None:
            raise self.error
        return self.owned

    def release(self, shutdown: bool = False) -> None:
        """Let the thread end; with ``shutdown``, after it has run ``ray.shutdown()`` (while the caller goes on)."""
        self._shutdown = shutdown
        self._release.set()

    def join(self, timeout: float | None = 60.0) -> None:
        """Wait for a shutdown handed to the thread by :meth:`release` (no wait if it was not released)."""
        if self._release.is_set():
            self._done.wait(timeout)

    def _at_exit(self) -> None:
        """Before Ray's exit hook (``ray.shutdown``): let a start or a shutdown in this thread finish."""
        self._ready.wait(60.0)
        self.join()


class _NoSigtermWarning(logging.Filter):
    """Ray warns that it set no SIGTERM handler when ``ray.init`` runs outside the main thread;
    :func:`start_in_background` sets the same handler in the main thread."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


_PENDING: _BackgroundStart | None = None  # started, not adopted yet
_ADOPTED: _BackgroundStart | None = None  # adopted: its thread lives until release_background()
_CLOSING: _BackgroundStart | None = None  # released with a shutdown to run in its thread
_LOCK = threading.Lock()


def start_in_background(num_cpus: int | None = None) -> bool:
    """Start a local Ray instance (as :func:`init_ray` ``(None, num_cpus)`` does) in a background thread.

    For a driver that has its own imports and set-up to do before it needs Ray: the next
    :func:`init_ray` for a local instance (a :class:`~coordinator.runtime.ray.RayRuntime`) waits for this
    start and adopts it. Does nothing (returns False) when Ray is initialised already, when one is being
    started, or when ``RAY_ADDRESS`` names a cluster to join. Call it from the main thread: it sets the
    SIGTERM handler Ray sets when ``ray.init`` runs there (exit, so that Ray's exit hook shuts it down).
    """
    global _PENDING
    _wait_closing()
    ray = sys.modules.get("ray")
    if os.environ.get("RAY_ADDRESS") or (ray is not None and ray.is_initialized()):
        return False
    with _LOCK:
        if _PENDING is not None:
            return False
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
        _PENDING = _BackgroundStart(num_cpus)
    return True


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    sys.exit(signum)


def background_start() -> _BackgroundStart | None:
    """The background start adopted by the current session, or None (deployment information)."""
    return _ADOPTED


def _adopt_background(address: str | None, num_cpus: int | None, init_kwargs: dict) -> bool | None:
    """The result of a pending background start if it matches the call, else None (it is then shut down)."""
    global _PENDING, _ADOPTED
    with _LOCK:
        bg, _PENDING = _PENDING, None
    if bg is None:
        return None
    local = (address or os.environ.get("RAY_ADDRESS") or "local") == "local"
    if local and not init_kwargs and (num_cpus is None or num_cpus == bg.num_cpus):
        _ADOPTED = bg
        return bg.wait()
    try:
        if bg.wait():
            import ray

            ray.shutdown()
    except Exception as exc:  # its failure is not this call's
        log.debug("the background Ray start (not used) failed: %s", exc)
    finally:
        bg.release()
    log.info("a local Ray instance started in the background did not match init_ray(%r, %r, %s): shut down",
             address, num_cpus, sorted(init_kwargs))
    return None


def release_background(start: _BackgroundStart | None = None, shutdown: bool = False) -> bool:
    """Let the thread of the adopted background start (``start``, if given, must be it) end: after
    ``ray.shutdown()``, or, with ``shutdown``, running ``ray.shutdown()`` itself while the caller goes on
    (the next start in this process, and the exit, wait for it). Returns False if there was none."""
    global _ADOPTED, _CLOSING
    bg = _ADOPTED
    if bg is None or (start is not None and start is not bg):
        return False
    _ADOPTED = None
    bg.release(shutdown)
    if shutdown:
        _CLOSING = bg
    return True


def _wait_closing() -> None:
    """Wait for a ``ray.shutdown()`` handed to a background thread (before Ray is started again)."""
    global _CLOSING
    bg, _CLOSING = _CLOSING, None
    if bg is not None:
        bg.join()


class ClusterUnusable(ConnectionError):
    """Joined a cluster whose nodes cannot run the project's tasks (exit status 1)."""


def _join_error(addr: str, exc: BaseException) -> ConnectionError:
    """``ray.init``'s failure to join ``addr`` as one line naming the cause."""
    chain, e = [], exc
    while e is not None and len(chain) < 8:
        chain.append(e)
        e = e.__cause__ or e.__context__
    if any(type(c).__name__ == "AuthenticationError" for c in chain):
        mode = os.environ.get("RAY_AUTH_MODE", "")
        return ClusterAuthRequired(f"the Ray cluster at {addr} refused this driver's authentication "
                                   f"(RAY_AUTH_MODE={mode or 'unset'}, token from {token_source() or 'nowhere'}): "
                                   f"give it the cluster's token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or "
                                   f"~/.ray/auth_token)")
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    mode = os.environ.get("RAY_AUTH_MODE", "") or "unset"
    return ClusterUnreachable(f"could not join the Ray cluster at {addr}: {type(exc).__name__}: {first} (its address "
                              f"answers: does its authentication match this driver's? here RAY_AUTH_MODE={mode}, "
                              f"token from {token_source() or 'nowhere'})")


class _Probe:
    """Made on a node: import the project's runtime there; answers with the node's id and the process id."""

    def ping(self) -> tuple[str, int]:
        import ray

        from coordinator.runtime import shard  # noqa: F401  (the project is importable on this node)

        return ray.get_runtime_context().get_node_id(), os.getpid()


def probe_nodes(timeout: float | None = None) -> list[str]:
    """Make one small actor on every alive node; :class:`ClusterUnusable` (one line) if one does not answer.

    Catches a node that cannot import the project, and a cluster whose token authentication differs
    from this driver's (Ray then cancels the actor's creation; plain tasks still run, so the probe is an
    actor, like the shards). Returns the ids of the nodes.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    timeout = connect_timeout() if timeout is None else float(timeout)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    probe = ray.remote(num_cpus=0, max_restarts=0)(_Probe)
    actors = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote()
              for n in nodes]
    refs = [a.ping.remote() for a in actors]
    try:
        return _probe_outcome(ray, nodes, refs, timeout)
    finally:
        for a in actors:
            try:
                ray.kill(a, no_restart=True)
            except Exception:
                pass


def _probe_outcome(ray: Any, nodes: list[dict], refs: list[Any], timeout: float) -> list[str]:
    ready, not_ready = ray.wait(refs, num_returns=len(refs), timeout=timeout)
    mode = os.environ.get("RAY_AUTH_MODE", "") or "unset"
    hint = (f"does the cluster use the driver's authentication (here RAY_AUTH_MODE={mode}; a cluster started "
            f"without RAY_AUTH_MODE=token cannot be joined with a token: start it with RAY_AUTH_MODE=token, or "
            f"set RAY_AUTH_MODE=disabled and pass --ray-insecure), and can its nodes import the project?")
    if not_ready:
        bad = [nodes[refs.index(r)]["NodeManagerAddress"] for r in not_ready]
        raise ClusterUnusable(f"{len(bad)} of {len(nodes)} node(s) of the Ray cluster ({', '.join(bad)}) did not "
                              f"run a probe task within {timeout:g} s: {hint}")
    for n, r in zip(nodes, refs):
        try:
            ray.get(r)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:300]
            raise ClusterUnusable(f"the Ray node {n['NodeManagerAddress']} cannot run the project's tasks "
                                  f"({type(exc).__name__}: {first}): {hint}") from None
    return [n["NodeID"] for n in nodes]


def cluster_cpus() -> int:
    """The CPUs the joined Ray cluster (or local instance) offers, at least 1."""
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


