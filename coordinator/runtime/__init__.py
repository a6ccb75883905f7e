"""Where the agents run: :mod:`.local` (in process) or :mod:`.ray` (shards: Ray actors hosting several agents each),
on the contract of :mod:`.base`; :mod:`.cluster` starts or joins Ray, :mod:`.snapshots` keeps what recovery needs.

Ray is imported only when a :class:`RayRuntime` is made (``coordinator.runtime.ray`` imports it lazily).
"""
from typing import Any

from .base import PID_METHOD, PROJECT_PACKAGES, Runtime
from .errors import HostCrashed, HostError
from .local import LocalRuntime
from .ray import RayRuntime, init_ray


def make_runtime(kind: str, boundary: Any, address: str | None = None, **kw: Any) -> Runtime:
    """``"local"``: a :class:`LocalRuntime`; ``"ray"``: a :class:`RayRuntime` (joins ``address`` if given)."""
    if kind == "ray":
        return RayRuntime(boundary, address=address, **kw)
    if kind == "local":
        return LocalRuntime(boundary)
    raise ValueError(f"unknown runtime {kind!r}: choose local or ray")

__all__ = ["Runtime", "LocalRuntime", "RayRuntime", "init_ray", "HostError", "HostCrashed", "PID_METHOD", "PROJECT_PACKAGES",
           "make_runtime"]
