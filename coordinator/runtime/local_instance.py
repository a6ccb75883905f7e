"""How a local Ray instance is started: bound to the loopback interface, without the autoscaler's monitor,
its raylet started before the dashboard's head is waited for (used by :func:`.cluster.init_ray`).

The three context managers change Ray's start only while ``ray.init`` runs; the last two touch Ray's
internals (``ray._private.node.Node``) and step aside, with a debug message, where those differ.
"""
from __future__ import annotations

import logging
import os
from typing import Any

__all__ = ["local_instance_options"]
log = logging.getLogger(__name__)


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


class _NodePatch:
    """Replaces methods of Ray's ``ray._private.node.Node`` while a local instance starts and puts the
    originals back after. A subclass gives :meth:`replacements` (None: Ray's internals differ, nothing is
    patched) and ``instead``, what happens without the patch (for the debug message)."""

    instead = ""

    def replacements(self, node_cls: type) -> dict[str, Any] | None:
        raise NotImplementedError

    def __enter__(self) -> None:
        self._cls, self._saved = None, {}
        try:
            from ray._private.node import Node
        except ImportError:  # pragma: no cover - another Ray layout
            log.debug("ray._private.node not found: %s", self.instead)
            return
        new = self.replacements(Node)
        if new is None:
            log.debug("ray._private.node.Node differs: %s", self.instead)
            return
        self._cls, self._saved = Node, {name: getattr(Node, name) for name in new}
        for name, fn in new.items():
            setattr(Node, name, fn)

    def __exit__(self, *exc: object) -> None:
        for name, fn in self._saved.items():
            setattr(self._cls, name, fn)


class _no_monitor(_NodePatch):
    """While starting a local instance: no autoscaler monitor (``RayParams.no_monitor``, what ``ray start
    --no-monitor`` sets; ``ray.init`` has no option for it). A local instance is one fixed node, with nothing
    to scale; its monitor is one more Python process to start (about 0.5 s of CPU, measured on 2 busy cores
    to lengthen ``ray.init`` by 0.4-0.7 s). Skipped, with a debug message, if Ray's internals differ."""

    instead = "the autoscaler monitor is started"

    def replacements(self, node_cls: type) -> dict[str, Any] | None:
        init = node_cls.__init__

        def __init__(node_self: Any, ray_params: Any, *args: Any, **kwargs: Any) -> None:
            if hasattr(ray_params, "no_monitor"):
                ray_params.no_monitor = True
            init(node_self, ray_params, *args, **kwargs)

        return {"__init__": __init__}


class _raylet_first(_NodePatch):
    """While starting a local instance: start the raylet before waiting for the dashboard's head.

    Ray 2.60 starts the dashboard's head (a Python process, started even without a dashboard) and waits
    for it to register (1-2 s here) before it starts the raylet, which then waits for its own agents (two
    more Python processes, 1.5-2 s) before the node registers. Nothing of the raylet's start needs the
    dashboard's head, so here both start at once: the head is started (and waited for) right after the
    raylet. Skipped, with a debug message, if Ray's internals differ.
    """

    instead = "the dashboard's head starts before the raylet"

    def replacements(self, node_cls: type) -> dict[str, Any] | None:
        api, procs = getattr(node_cls, "start_api_server", None), getattr(node_cls, "start_ray_processes", None)
        if not (callable(api) and callable(procs)):
            return None
        deferred: dict[int, dict] = {}

        def start_api_server(node_self: Any, **kwargs: Any) -> Any:
            if getattr(node_self, "head", False) and id(node_self) not in deferred:
                deferred[id(node_self)] = kwargs  # started by start_ray_processes, after the raylet
                return None
            return api(node_self, **kwargs)

        def start_ray_processes(node_self: Any) -> None:
            procs(node_self)
            kwargs = deferred.get(id(node_self))
            if kwargs is not None:
                api(node_self, **kwargs)

        return {"start_api_server": start_api_server, "start_ray_processes": start_ray_processes}
