"""The Ray runtime: one actor per agent, fan-out and gather, recovery from snapshots.

Ray is imported only when a :class:`RayRuntime` is made.
"""
from __future__ import annotations

import logging
import os
import pickle
import traceback
from pathlib import Path
from typing import Any

from ..boundary import Boundary, BoundaryViolation, receipt_check
from ..messages import Message
from ..schema import Ticket
from .base import PID_METHOD, PROJECT_PACKAGES, Runtime, _project_root
from .errors import HostCrashed, HostError, _annotate, _describe_batch, _label

__all__ = ["RayRuntime", "init_ray", "ClusterUnreachable", "ClusterAuthRequired", "wait_for_address",
           "token_source", "local_instance_options"]
log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- Ray actor
def _pack_error(exc: BaseException, stage: str) -> tuple:
    """An exception as a picklable outcome: ("err", cls, args, attrs, type name, message, traceback, stage)."""
    tb = "".join(traceback.format_exception(exc))
    payload: tuple = (type(exc), tuple(exc.args), dict(getattr(exc, "__dict__", {})))
    try:
        pickle.dumps(payload)
    except Exception:
        try:
            payload = (type(exc), tuple(str(a) for a in exc.args), {})
            pickle.dumps(payload)
        except Exception:
            payload = (None, (), {})
    return ("err", *payload, type(exc).__name__, str(exc), tb, stage)


def _unpack_error(outcome: tuple, agent_id: str, role: str) -> BaseException:
    _, cls, args, attrs, tname, message, tb, stage = outcome
    exc: BaseException | None = None
    if cls is not None:
        try:
            exc = cls.__new__(cls, *args)  # rebuilt without __init__ (SolveError has required arguments)
            exc.args = tuple(args)
            if attrs:
                exc.__dict__.update(attrs)
        except Exception:
            exc = None
    if exc is None:
        exc = HostError(agent_id, f"{_label(agent_id, role)}: {tname}: {message}")
    return _annotate(exc, agent_id, role, stage, tb)


class _HostActor:
    """Hosts one agent in a Ray actor. Never raises: outcomes are ("ok", value), ("err", ...) or ("lost", why)."""

    def __init__(self, cls: type, agent_id: str, holder: list, replay: list) -> None:
        # ``holder`` is a one-element list holding an ObjectRef of the snapshot bytes (nested, so that
        # Ray does not resolve it here: a lost object is reported as an outcome, not as a dead actor)
        self._cls, self._id, self._holder, self._replay = cls, agent_id, holder, replay
        self._host: Any = None

    def _ensure(self) -> tuple | None:
        if self._host is not None:
            return None
        import ray

        try:
            blob = ray.get(self._holder[0])
        except ray.exceptions.ObjectLostError as exc:
            return ("lost", f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            return _pack_error(exc, "loading its snapshot")
        try:
            host = self._cls.restore(blob)
            for batch in self._replay:
                host.handle(list(batch))
        except Exception as exc:
            return _pack_error(exc, "being restored from its snapshot")
        self._host, self._holder, self._replay = host, None, None
        return None

    def deliver(self, batch: list[Message], tickets: list[Ticket]) -> tuple[tuple, bytes | None]:
        bad = self._ensure()
        if bad is not None:
            return bad, None
        try:
            receipt_check(self._id, batch, tickets)  # in the receiver's own process
        except BoundaryViolation as exc:
            return _pack_error(exc, "checking a delivery on receipt"), None
        try:
            replies = list(self._host.handle(list(batch)) or [])
        except Exception as exc:
            return _pack_error(exc, _describe_batch(batch)), None
        try:
            snap = self._host.snapshot()
        except Exception as exc:
            return _pack_error(exc, "taking a snapshot"), None
        return ("ok", replies), snap

    def invoke(self, method: str, args: tuple, kwargs: dict) -> tuple:
        if method == PID_METHOD:
            return ("ok", os.getpid())
        bad = self._ensure()
        if bad is not None:
            return bad
        try:
            return ("ok", getattr(self._host, method)(*args, **kwargs))
        except Exception as exc:
            return _pack_error(exc, f"in call {method}()")

    def snapshot(self) -> tuple:
        bad = self._ensure()
        if bad is not None:
            return bad
        try:
            return ("ok", self._host.snapshot())
        except Exception as exc:
            return _pack_error(exc, "taking a snapshot")


_REMOTE_ACTOR: Any = None


def _remote_actor_class() -> Any:
    global _REMOTE_ACTOR
    if _REMOTE_ACTOR is None:
        import ray

        _REMOTE_ACTOR = ray.remote(_HostActor)
    return _REMOTE_ACTOR


# --------------------------------------------------------------------------- Ray runtime
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


def _join_auth(addr: str, insecure: bool | None) -> None:
    """Token authentication for joining ``addr``: on, with a token; off only with ``--ray-insecure``."""
    src = token_source()
    mode = os.environ.get("RAY_AUTH_MODE", "").strip().lower()
    if src is not None and mode != "disabled":
        os.environ["RAY_AUTH_MODE"] = "token"
        log.info("joining the Ray cluster at %s with token authentication (token from %s)", addr, src)
        return
    if not _insecure_allowed(insecure):
        why = "RAY_AUTH_MODE=disabled" if mode == "disabled" else \
            "no token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)"
        raise ClusterAuthRequired(f"refusing to join the Ray cluster at {addr} without token authentication "
                                  f"({why}); provide the cluster's token, or pass --ray-insecure to join "
                                  f"without authentication")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    log.warning("joining the Ray cluster at %s WITHOUT token authentication (--ray-insecure)", addr)


def local_instance_options() -> dict[str, Any]:
    """``ray.init`` options of a local instance bound to the loopback interface (with :func:`_loopback`)."""
    return {"_node_ip_address": "127.0.0.1", "include_dashboard": False}


class _loopback:
    """While starting a local instance: Ray resolves "127.0.0.1" to the node's address, and its gRPC servers
    listen on every interface unless the node's address is the loopback one. Ray does exactly that where
    clusters are not supported (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``): every server of the instance
    (GCS, raylet, object manager, workers, agents) then binds 127.0.0.1 only."""

    def __enter__(self) -> None:
        import ray._private.ray_constants as rc

        self._rc, self._before = rc, rc.ENABLE_RAY_CLUSTER
        self._env = os.environ.get(rc.ENABLE_RAY_CLUSTERS_ENV_VAR)
        rc.ENABLE_RAY_CLUSTER = False
        os.environ[rc.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"  # the instance's own processes

    def __exit__(self, *exc: object) -> None:
        self._rc.ENABLE_RAY_CLUSTER = self._before
        if self._env is None:
            os.environ.pop(self._rc.ENABLE_RAY_CLUSTERS_ENV_VAR, None)
        else:
            os.environ[self._rc.ENABLE_RAY_CLUSTERS_ENV_VAR] = self._env


def init_ray(address: str | None = None, num_cpus: int | None = None, *, runtime_env: Any = "auto",
             insecure: bool | None = None, **init_kwargs: Any) -> bool:
    """Start or join Ray so that actors can import the project; returns True if it started a session here.

    Does nothing (returns False) when Ray is already initialised in this process.
    ``address``: ``None`` (and no ``RAY_ADDRESS``) starts a local instance with ``num_cpus`` CPUs
    (default: the machine's), every server of it bound to 127.0.0.1; ``"auto"`` or
    ``"HOST:PORT"`` joins a running cluster, shipping the project packages as ``py_modules``
    when running from a source checkout (``runtime_env="auto"``). Joining uses token
    authentication (``RAY_AUTH_MODE=token``) with the token Ray finds (``RAY_AUTH_TOKEN``,
    ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``); without one it is refused
    (:class:`ClusterAuthRequired`) unless ``insecure`` (``--ray-insecure``, or
    ``TDMARKET_RAY_INSECURE=1`` when ``insecure`` is None).
    """
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
        with _loopback():
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
    ray.init(address=addr, **kwargs)
    return True


class RayRuntime(Runtime):
    """One Ray actor per host; deliveries and calls fan out and are gathered together.

    Parameters
    ----------
    address:
        ``None`` (and no ``RAY_ADDRESS``): start a local Ray instance with the machine's CPUs, bound
        to 127.0.0.1; ``"auto"`` or ``"HOST:PORT"``: join a running cluster (token authentication). Ignored when Ray is already
        initialised in this process (the existing session is used and not shut down).
    num_cpus:
        CPUs of a local instance started here (ignored when joining a cluster).
    max_restarts:
        How many times each host's actor may be recreated after dying before giving up
        with :class:`HostCrashed`.
    runtime_env:
        Passed to ``ray.init`` when joining a cluster. Default (``"auto"``): ship the project
        packages as ``py_modules`` when running from a source checkout, so that actors on other
        machines can import them; ``None``: nothing (the packages are installed on every node).
    actor_options:
        Extra ``.options()`` for the actors (e.g. ``{"num_cpus": 1}`` to give each actor a whole CPU;
        by default an actor reserves no CPU while it runs, so any number fit on a small machine).
    replay_limit:
        Every ``replay_limit`` deliveries a host's latest snapshot is copied into the driver, so
        that a host whose node is lost (with its in-store snapshot) is rebuilt by replaying at most
        that many deliveries.
    insecure:
        Joining a cluster without a token is refused unless True (``--ray-insecure``; see :func:`init_ray`).
    init_kwargs:
        Extra keyword arguments for ``ray.init`` (e.g. ``include_dashboard=True``).
    """

    _DEAD = ()  # filled on first use (ray.exceptions.RayActorError, WorkerCrashedError, ...)

    def __init__(self, boundary: Boundary, address: str | None = None, num_cpus: int | None = None,
                 max_restarts: int = 3, *, runtime_env: Any = "auto", actor_options: dict | None = None,
                 replay_limit: int = 32, **init_kwargs: Any) -> None:
        super().__init__(boundary)
        import ray

        self._ray = ray
        RayRuntime._DEAD = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                            ray.exceptions.LocalRayletDiedError, ray.exceptions.NodeDiedError)
        self.max_restarts = int(max_restarts)
        self.replay_limit = max(1, int(replay_limit))
        self._actor_options = {"max_restarts": 0, "max_task_retries": 0, **(actor_options or {})}
        self._owns_ray = init_ray(address, num_cpus, runtime_env=runtime_env, **init_kwargs)
        self._actor_cls = _remote_actor_class()
        self._classes: dict[str, type] = {}
        self._actors: dict[str, Any] = {}
        self._latest: dict[str, Any] = {}  # ObjectRef of the snapshot after the last delivery, or None
        self._durable: dict[str, bytes] = {}  # snapshot bytes held by the driver
        self._replay: dict[str, list[list[Message]]] = {}  # deliveries since the durable snapshot
        self.restarts: dict[str, int] = {}

    # ---------------------------------------------------------------- hosts
    def _start(self, agent_id: str, host: Any) -> None:
        blob = host.snapshot()
        self._classes[agent_id] = type(host)
        self._durable[agent_id] = blob
        self._replay[agent_id] = []
        self._latest[agent_id] = self._ray.put(blob)  # the constant data go in once
        self.restarts[agent_id] = 0
        self._actors[agent_id] = self._spawn(agent_id, [self._latest[agent_id]], [])

    def _spawn(self, agent_id: str, holder: list, replay: list) -> Any:
        return self._actor_cls.options(**self._actor_options).remote(self._classes[agent_id], agent_id, holder,
                                                                      replay)

    def _restart(self, agent_id: str, cause: str) -> None:
        n = self.restarts[agent_id] + 1
        if n > self.max_restarts:
            raise HostCrashed(agent_id, self._roles[agent_id], self.restarts[agent_id], self.max_restarts, cause)
        self.restarts[agent_id] = n
        log.warning("%s: actor lost (%s); restart %d of %d from its last snapshot", _label(agent_id,
                    self._roles[agent_id]), cause.splitlines()[0][:200], n, self.max_restarts)
        try:
            self._ray.kill(self._actors[agent_id], no_restart=True)
        except Exception:
            pass
        latest = self._latest[agent_id]
        if latest is not None:
            self._actors[agent_id] = self._spawn(agent_id, [latest], [])
        else:
            self._actors[agent_id] = self._spawn(agent_id, [self._ray.put(self._durable[agent_id])],
                                                 list(self._replay[agent_id]))

    # --------------------------------------------------------------- engine
    def _gather(self, refs: list[Any]) -> list[tuple[str, Any]]:
        """Wait for all refs together; ("ok", value) or ("dead", cause) per ref."""
        ray = self._ray
        try:
            return [("ok", v) for v in ray.get(refs)]
        except ray.exceptions.RayError:
            pass
        out: list[tuple[str, Any]] = []
        for r in refs:  # something failed: sort it out (everything is finished or failed by now)
            try:
                out.append(("ok", ray.get(r)))
            except self._DEAD as exc:
                failed_init = getattr(exc, "actor_init_failed", False)
                out.append(("init_failed" if failed_init else "dead", f"{type(exc).__name__}: {exc}"))
            except ray.exceptions.RayTaskError as exc:  # e.g. a reply that could not be serialised
                cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
                out.append(("ok", _pack_error(cause, "returning its result")))
        return out

    def _run(self, jobs: list[tuple[str, str, tuple]]) -> list[tuple[tuple, Any]]:
        """Run ``(agent_id, actor method, args)`` jobs in parallel; restart dead actors and resubmit.

        Returns per job (outcome, snapshot ref or None).
        """
        results: list[Any] = [None] * len(jobs)
        todo = list(range(len(jobs)))
        while todo:
            submitted = []
            for i in todo:
                aid, meth, args = jobs[i]
                actor = self._actors[aid]
                if meth == "deliver":
                    out_ref, snap_ref = actor.deliver.options(num_returns=2).remote(*args)
                else:
                    out_ref, snap_ref = getattr(actor, meth).remote(*args), None
                submitted.append((out_ref, snap_ref))
            got = self._gather([s[0] for s in submitted])
            to_restart: dict[str, str] = {}
            retry = []
            for i, (out_ref, snap_ref), (status, value) in zip(todo, submitted, got):
                aid = jobs[i][0]
                if status == "init_failed":
                    raise HostError(aid, f"{_label(aid, self._roles[aid])}: its actor could not be created "
                                         f"(can the workers import the project and the host class "
                                         f"{self._classes[aid].__module__}.{self._classes[aid].__qualname__}?): "
                                         f"{value}")
                if status == "dead":
                    to_restart.setdefault(aid, value)
                    retry.append(i)
                elif value[0] == "lost":
                    self._latest[aid] = None  # rebuild from the durable copy and the replay log
                    to_restart.setdefault(aid, f"its snapshot was lost ({value[1]})")
                    retry.append(i)
                else:
                    results[i] = (value, snap_ref)
            for aid, cause in to_restart.items():
                self._restart(aid, cause)
            todo = retry
        return results

    def _deliver(self, batches: dict[str, list[Message]], tickets: dict[str, list[Ticket]]
                 ) -> dict[str, list[Message]]:
        rids = list(batches)
        results = self._run([(rid, "deliver", (batches[rid], tickets[rid])) for rid in rids])
        out: dict[str, list[Message]] = {}
        first_error: BaseException | None = None
        refresh = []
        for rid, (outcome, snap_ref) in zip(rids, results):
            if outcome[0] == "err":
                if first_error is None:
                    first_error = _unpack_error(outcome, rid, self._roles[rid])
                continue
            out[rid] = outcome[1]
            self._latest[rid] = snap_ref
            self._replay[rid].append(batches[rid])
            if len(self._replay[rid]) >= self.replay_limit:
                refresh.append(rid)
        if refresh:  # copy the latest snapshots into the driver, together
            blobs = self._ray.get([self._latest[r] for r in refresh])
            for rid, blob in zip(refresh, blobs):
                self._durable[rid] = blob
                self._replay[rid] = []
        if first_error is not None:
            raise first_error
        return out

    def _call_many(self, calls: list[tuple[str, str, tuple, dict]]) -> list[Any]:
        results = self._run([(aid, "invoke", (method, args, kwargs)) for aid, method, args, kwargs in calls])
        out = []
        for (aid, *_), (outcome, _) in zip(calls, results):
            if outcome[0] == "err":
                raise _unpack_error(outcome, aid, self._roles[aid])
            out.append(outcome[1])
        return out

    # ---------------------------------------------------------------- state
    def checkpoint(self) -> None:
        aids = list(self._actors)
        results = self._run([(aid, "snapshot", ()) for aid in aids])
        for aid, (outcome, _) in zip(aids, results):
            if outcome[0] == "err":
                raise _unpack_error(outcome, aid, self._roles[aid])
        for aid, (outcome, _) in zip(aids, results):
            self._durable[aid] = outcome[1]
            self._replay[aid] = []
            self._latest[aid] = None

    def last_snapshot(self, agent_id: str) -> bytes:
        ref = self._latest[agent_id]
        if ref is not None:
            try:
                return self._ray.get(ref)
            except self._ray.exceptions.ObjectLostError:
                self._latest[agent_id] = None
        if self._replay[agent_id]:
            self.checkpoint()
        return self._durable[agent_id]

    def shutdown(self) -> None:
        if self._closed:
            return
        super().shutdown()
        ray = self._ray
        for actor in self._actors.values():
            try:
                ray.kill(actor, no_restart=True)
            except Exception:
                pass
        self._actors.clear()
        self._latest.clear()
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
