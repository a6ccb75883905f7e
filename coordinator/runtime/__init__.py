"""Where the agents run: :mod:`.local` (in process) or :mod:`.ray` (Ray actors), on the contract of :mod:`.base`.

Ray is imported only when a :class:`RayRuntime` is made (``coordinator.runtime.ray`` imports it lazily).
"""
from .base import PID_METHOD, PROJECT_PACKAGES, Runtime
from .errors import HostCrashed, HostError
from .local import LocalRuntime
from .ray import RayRuntime, init_ray

__all__ = ["Runtime", "LocalRuntime", "RayRuntime", "init_ray", "HostError", "HostCrashed", "PID_METHOD", "PROJECT_PACKAGES"]
