"""Shared fixtures.

Ray: one session for the whole test run (starting Ray takes a few seconds), started only
when a test marked ``@pytest.mark.ray`` (or asking for ``ray_session``) runs, so tests that
don't use Ray never import or start it.

Slow tests (``@pytest.mark.slow``: the multi-node cluster, tes on 20 feeders, a long study) run in CI
(``CI`` set, as CI runs the README's test command) or with ``--run-slow``; a developer's plain
``python3 -m pytest -q`` skips them, saying how to run them, and stays under 10 minutes on 2 cores.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run the tests marked slow (they always run when CI is set)")


def _run_slow(config) -> bool:
    return bool(config.getoption("--run-slow")) or os.environ.get("CI", "").lower() not in ("", "0", "false")


def pytest_collection_modifyitems(config, items):
    if _run_slow(config):
        return
    skip = pytest.mark.skip(reason="slow: runs in CI (CI=true) or with --run-slow")
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray instance with 2 CPUs for the whole session (shut down at the end), bound to 127.0.0.1
    (``coordinator.runtime.ray.init_ray``, as ``RayRuntime`` starts one)."""
    import ray

    # workers inherit the environment of the local instance: make the project (and the test
    # modules, which define dummy hosts) importable whatever the current directory is
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(ROOT) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *paths])
    from coordinator.runtime.ray import init_ray

    init_ray(None, num_cpus=2)  # a local instance bound to 127.0.0.1, no dashboard
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(autouse=True)
def _ray_for_marked_tests(request):
    """Tests marked ``ray`` get the session Ray instance without asking for it."""
    if request.node.get_closest_marker("ray") is not None:
        request.getfixturevalue("ray_session")
    yield
