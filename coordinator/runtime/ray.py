"""The Ray runtime: agents in shards (many agents per actor), spread over the cluster's nodes.

Ray is imported only when a :class:`RayRuntime` is made. Starting or joining Ray (token
authentication, the probe of every node) is :mod:`.cluster`; the shard actor's body is :mod:`.shard`;
the snapshots and replay log used to rebuild a lost shard are :mod:`.snapshots`.
"""
from __future__ import annotations

import logging
import os
import pickle
import time
from typing import Any

from ..boundary import Boundary
from ..messages import Message
from ..schema import Ticket
from .base import Runtime
from .cluster import (ClusterAuthRequired, ClusterUnreachable, ClusterUnusable, background_start, cluster_cpus,
                      init_ray, local_instance_options, release_background, token_source, wait_for_address)
from .errors import HostCrashed, HostError, _label
from .shard import ShardHost, unpack_error, unpack_ok
from .snapshots import SnapshotLog

__all__ = ["RayRuntime", "init_ray", "ClusterUnreachable", "ClusterAuthRequired", "ClusterUnusable",
           "wait_for_address", "token_source", "local_instance_options"]
log = logging.getLogger(__name__)

#: set by ``--shards N`` (``scenarios.runs.add_runtime_arguments``)
SHARDS_ENV = "TDMARKET_SHARDS"
_REMOTE_SHARD: Any = None


def _remote_shard_class() -> Any:
    global _REMOTE_SHARD
    if _REMOTE_SHARD is None:
        import ray

        _REMOTE_SHARD = ray.remote(ShardHost)
    return _REMOTE_SHARD


class RayRuntime(Runtime):
    """Agents hosted in shards (Ray actors, many agents each); deliveries fan out per shard and are gathered.

    Parameters
    ----------
    address:
        ``None`` (and no ``RAY_ADDRESS``): start a local Ray instance with the machine's CPUs, bound
        to 127.0.0.1; ``"auto"`` or ``"HOST:PORT"``: join a running cluster (token authentication,
        every node probed: :func:`~coordinator.runtime.cluster.init_ray`). Ignored when Ray is
        already initialised in this process (the existing session is used and not shut down).
    num_cpus:
        CPUs of a local instance started here (ignored when joining a cluster).
    shards:
        How many shard actors (processes) host the agents; default (None): ``$TDMARKET_SHARDS``
        (``--shards``), else one per CPU the cluster offers. Agents are dealt to shards in the
        order they are added (agent i to shard i mod N); shards are made when their first agent
        arrives and spread over the nodes: shard k goes to the k-th of the cluster's CPUs, counted
        node by node in turn (A, B, C, A, B, C, ...), by a soft node affinity (another node when
        that one is gone or full; a rebuilt shard is placed among the nodes alive then).
    max_restarts:
        How many times an agent's shard may be rebuilt after dying (each rebuild counts one restart
        for every agent of the shard) before giving up with :class:`HostCrashed`.
    snapshot_every:
        Deliveries to an agent between two of its snapshots (default ``$TDMARKET_SNAPSHOT_EVERY``, set by
        ``--snapshot-every``, else 10), which are copied into the driver; a lost
        shard is rebuilt on a live node from its agents' last snapshots and the deliveries since,
        replayed (:mod:`.snapshots`). :meth:`checkpoint` snapshots every agent on demand.
    runtime_env:
        Passed to ``ray.init`` when joining a cluster. Default (``"auto"``): ship the project
        packages as ``py_modules`` when running from a source checkout, so that actors on other
        machines can import them; ``None``: nothing (the packages are installed on every node).
    actor_options:
        Extra ``.options()`` for the shard actors (e.g. ``{"num_cpus": 1}`` to reserve a CPU each).
    insecure:
        Joining a cluster without a token is refused unless True (``--ray-insecure``; see :func:`init_ray`).
    init_kwargs:
        Extra keyword arguments for ``ray.init`` (e.g. ``include_dashboard=True``).
    """

    def __init__(self, boundary: Boundary, address: str | None = None, num_cpus: int | None = None,
                 max_restarts: int = 3, *, shards: int | None = None, snapshot_every: int | None = None,
                 runtime_env: Any = "auto", actor_options: dict | None = None, **init_kwargs: Any) -> None:
        super().__init__(boundary)
        if shards is not None and int(shards) < 1:
            raise ValueError(f"shards must be at least 1, got {shards}")
        import ray

        self._ray = ray
        self._dead = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                      ray.exceptions.LocalRayletDiedError, ray.exceptions.NodeDiedError,
                      ray.exceptions.ObjectLostError, ray.exceptions.OwnerDiedError)
        self.max_restarts = int(max_restarts)
        self.snapshots = SnapshotLog(snapshot_every)
        self._actor_options = {"max_restarts": 0, "max_task_retries": 0, **(actor_options or {})}
        self._slots: list[str] | None = None
        t0 = time.perf_counter()
        self._owns_ray = init_ray(address, num_cpus, runtime_env=runtime_env, **init_kwargs)
        self._background = bg = background_start() if self._owns_ray else None
        #: deployment information: how long this runtime waited for Ray (``init_s``) and, when it adopted a
        #: local instance started in the background (``cluster.start_in_background``), how long that took
        self.start_info: dict[str, Any] = {"init_s": time.perf_counter() - t0, "background": bg is not None,
                                           "background_init_s": bg.seconds if bg is not None else None}
        env = os.environ.get(SHARDS_ENV, "").strip()
        self.n_shards = int(shards) if shards is not None else int(env) if env.isdigit() and int(env) > 0 \
            else cluster_cpus()
        self._actor_cls = _remote_shard_class()
        self._shards: list[Any] = [None] * self.n_shards
        self._members: list[list[str]] = [[] for _ in range(self.n_shards)]
        self._shard_of: dict[str, int] = {}
        self._classes: dict[str, type] = {}
        self.restarts: dict[str, int] = {}
        self.shard_restarts = [0] * self.n_shards

    # ---------------------------------------------------------------- hosts
    def shard_of(self, agent_id: str) -> int:
        """The shard hosting ``agent_id`` (deployment, not agent state)."""
        return self._shard_of[agent_id]

    def _start(self, agent_id: str, host: Any) -> None:
        blob = host.snapshot()
        k = len(self._shard_of) % self.n_shards
        self._classes[agent_id] = type(host)
        self.snapshots.start(agent_id, blob)
        self.restarts[agent_id] = 0
        if self._shards[k] is None:
            self._shards[k] = self._make_shard(k)
        # fire and forget: calls to one actor run in submission order, and a load that fails is
        # reported by the agent's first call
        self._shards[k].load.remote([(agent_id, pickle.dumps((type(host), blob)), [])])
        self._shard_of[agent_id] = k
        self._members[k].append(agent_id)

    def _node_slots(self) -> list[str]:
        """Alive nodes, one entry per CPU, interleaved (node A, B, C, A, B, ...): shard k goes to entry k."""
        nodes = sorted(((n["NodeID"], int(n.get("Resources", {}).get("CPU", 0))) for n in self._ray.nodes()
                        if n.get("Alive")), key=lambda n: n[0])
        most = max((c for _, c in nodes), default=0)
        return [nid for r in range(most) for nid, c in nodes if c > r]

    def _make_shard(self, k: int) -> Any:
        """Shard ``k``'s actor, on the node of CPU slot k (soft: elsewhere if that node is gone or full)."""
        opts = dict(self._actor_options)
        if "scheduling_strategy" not in opts:
            if self._slots is None:
                self._slots = self._node_slots()
            if self._slots:
                from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

                opts["scheduling_strategy"] = NodeAffinitySchedulingStrategy(self._slots[k % len(self._slots)],
                                                                             soft=True)
            else:
                opts["scheduling_strategy"] = "SPREAD"
        return self._actor_cls.options(**opts).remote(k)

    def placement(self) -> dict[int, str]:
        """The Ray node id of every shard made so far (deployment information)."""
        made = [k for k, a in enumerate(self._shards) if a is not None]
        got = self._gather([self._shards[k].node.remote() for k in made])
        return {k: v for k, (status, v) in zip(made, got) if status == "ok"}

    def _respawn(self, k: int, cause: str) -> None:
        """Rebuild shard ``k`` (on a live node) from its agents' snapshots and replay logs."""
        members = self._members[k]
        for aid in members:
            if self.restarts[aid] + 1 > self.max_restarts:
                raise HostCrashed(aid, self._roles[aid], self.restarts[aid], self.max_restarts, cause)
        for aid in members:
            self.restarts[aid] += 1
        self.shard_restarts[k] += 1
        log.warning("shard %d (%s) lost (%s); rebuild %d of %d from the last snapshots, replaying %d deliveries",
                    k, ", ".join(members), cause.splitlines()[0][:200], self.shard_restarts[k], self.max_restarts,
                    sum(self.snapshots.pending(a) for a in members))
        try:
            self._ray.kill(self._shards[k], no_restart=True)
        except Exception:
            pass
        self._slots = None  # the nodes changed: place it among the live ones
        self._shards[k] = self._make_shard(k)
        self._shards[k].load.remote([(aid, pickle.dumps((self._classes[aid], self.snapshots.blob(aid))),
                                      self.snapshots.replay(aid)) for aid in members])

    # --------------------------------------------------------------- engine
    def _gather(self, refs: list[Any]) -> list[tuple[str, Any]]:
        """Wait for all refs together; ("ok", value), ("dead", cause) or ("init_failed", cause) per ref."""
        ray = self._ray
        try:
            return [("ok", v) for v in ray.get(refs)]
        except ray.exceptions.RayError:
            pass
        out: list[tuple[str, Any]] = []
        for r in refs:  # something failed: sort it out (everything is finished or failed by now)
            try:
                out.append(("ok", ray.get(r)))
            except self._dead as exc:
                failed_init = getattr(exc, "actor_init_failed", False)
                out.append(("init_failed" if failed_init else "dead", f"{type(exc).__name__}: {exc}"))
            except ray.exceptions.RayTaskError as exc:
                out.append(("task_failed", f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:300]}"))
        return out

    def _fan(self, method: str, items: list[tuple[str, Any]]) -> list[Any]:
        """Call shard ``method`` with the jobs ``(agent_id, job)``, one call per shard, all shards together.

        A shard that died is rebuilt and its jobs are sent again. Returns the per-job results in order.
        """
        results: list[Any] = [None] * len(items)
        todo = list(range(len(items)))
        while todo:
            by_shard: dict[int, list[int]] = {}
            for i in todo:
                by_shard.setdefault(self._shard_of[items[i][0]], []).append(i)
            calls = [(k, idx, getattr(self._shards[k], method).remote([items[i][1] for i in idx]))
                     for k, idx in by_shard.items()]
            got = self._gather([c[2] for c in calls])
            todo, lost = [], {}
            for (k, idx, _), (status, value) in zip(calls, got):
                if status == "ok":
                    for i, v in zip(idx, value):
                        results[i] = v
                    continue
                aid = self._members[k][0]
                if status == "init_failed":
                    cls = self._classes[aid]
                    raise HostError(aid, f"{_label(aid, self._roles[aid])}: its shard's actor could not be created "
                                         f"(can the workers import the project and {cls.__module__}."
                                         f"{cls.__qualname__}?): {value}")
                if status == "task_failed":
                    raise HostError(aid, f"shard {k} ({', '.join(self._members[k])}) failed in {method}(): {value}")
                lost[k] = value
                todo.extend(idx)
            for k, cause in lost.items():
                self._respawn(k, cause)
            todo.sort()
        return results

    def _deliver(self, batches: dict[str, list[Message]], tickets: dict[str, list[Ticket]]
                 ) -> dict[str, list[Message]]:
        rids = list(batches)
        results = self._fan("deliver", [(rid, (rid, batches[rid], tickets[rid], self.snapshots.due(rid)))
                                        for rid in rids])
        out: dict[str, list[Message]] = {}
        first_error: BaseException | None = None
        for rid, (outcome, blob) in zip(rids, results):
            if outcome[0] == "err":
                if first_error is None:
                    first_error = unpack_error(outcome, rid, self._roles[rid])
                continue
            out[rid] = unpack_ok(outcome)
            self.snapshots.delivered(rid, batches[rid], blob)
        if first_error is not None:
            raise first_error
        return out

    def _call_many(self, calls: list[tuple[str, str, tuple, dict]]) -> list[Any]:
        results = self._fan("invoke", [(aid, (aid, method, args, kwargs)) for aid, method, args, kwargs in calls])
        out = []
        for (aid, *_), outcome in zip(calls, results):
            if outcome[0] == "err":
                raise unpack_error(outcome, aid, self._roles[aid])
            out.append(unpack_ok(outcome))
        return out

    # ---------------------------------------------------------------- state
    def _snapshot(self, aids: list[str]) -> None:
        results = self._fan("snapshot", [(aid, aid) for aid in aids])
        for aid, outcome in zip(aids, results):
            if outcome[0] == "err":
                raise unpack_error(outcome, aid, self._roles[aid])
        for aid, outcome in zip(aids, results):
            self.snapshots.snapshot(aid, outcome[1])

    def checkpoint(self) -> None:
        """Snapshot every agent now (into the driver); recovery then replays nothing older."""
        self._snapshot(list(self._shard_of))
        self.boundary.flush()

    def last_snapshot(self, agent_id: str) -> bytes:
        if self.snapshots.pending(agent_id):
            self._snapshot([agent_id])
        return self.snapshots.blob(agent_id)

    def shutdown(self) -> None:
        if self._closed:
            return
        super().shutdown()
        ray = self._ray
        for actor in self._shards:
            if actor is not None:
                try:
                    ray.kill(actor, no_restart=True)
                except Exception:
                    pass
        self._shards = [None] * self.n_shards
        if self._owns_ray and ray.is_initialized():
            # a session started in the background is shut down by its thread while this one goes on
            if self._background is None or not release_background(self._background, shutdown=True):
                ray.shutdown()
