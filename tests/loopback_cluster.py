"""A Ray cluster on this machine for the cluster tests: a head node and worker nodes, as Ray's own tests make them.

Run as a script (``python3 tests/loopback_cluster.py --workers 2``) in its own process, so that the test process
never joins it (Ray can be initialised once per process, and the session's local instance lives there). Every node
is given its CPU count explicitly (``--cpus``, default 1). Token authentication is on when ``RAY_AUTH_MODE=token``
and ``RAY_AUTH_TOKEN`` are in the environment (the nodes inherit it). Prints one JSON line ``{"address": ...,
"workers": n}`` when the nodes are up, then reads commands on stdin: ``remove`` removes the last worker node
(``Cluster.remove_node``) and prints ``removed``; end of input shuts the cluster down.
"""
from __future__ import annotations

import argparse
import json
import sys


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cpus", type=int, default=1)
    args = ap.parse_args()
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": args.cpus, "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=args.cpus) for _ in range(args.workers)]
    try:
        cluster.wait_for_nodes()
        print(json.dumps({"address": cluster.address, "workers": len(workers)}), flush=True)
        for line in sys.stdin:
            if line.strip() == "remove" and workers:
                cluster.remove_node(workers.pop())
                print("removed", flush=True)
    finally:
        cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
