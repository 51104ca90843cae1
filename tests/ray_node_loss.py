"""Run by tests/test_ray_tag.py in its own process: `tag --ray` on a three-node local cluster
(`ray.cluster_utils.Cluster`: a head with no CPUs and two 2-CPU workers), the worker node that
holds the model actor removed mid-run. Prints the number of lines written when the node went.

usage: python tests/ray_node_loss.py OUT.jsonl -- TAG_ARGS...
"""
from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path


def main() -> int:
    out = Path(sys.argv[1])
    tag_args = sys.argv[sys.argv.index("--") + 1:]
    import ray
    from ray.cluster_utils import Cluster
    from ray.util.state import list_actors

    from ram_model.cli import main as cli

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [cluster.add_node(num_cpus=2) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, logging_level="WARNING")
    result: dict[str, int] = {}
    run = threading.Thread(target=lambda: result.update(code=cli([*tag_args, "-o", str(out), "--ray", "auto"])))
    run.start()
    try:
        deadline = time.monotonic() + 180
        while not (out.exists() and len(out.read_text().splitlines()) >= 2):
            if time.monotonic() > deadline or not run.is_alive():
                print("no lines before the deadline", file=sys.stderr)
                return 3
            time.sleep(0.2)
        actors = [a for a in list_actors(filters=[("state", "=", "ALIVE")]) if "TagActor" in a.class_name]
        victim = next(w for w in workers if w.node_id == actors[0].node_id)
        written = len(out.read_text().splitlines())
        cluster.remove_node(victim)  # its raylet, object store and workers: the actor and its blocks go
        print(f"removed node {victim.node_id[:8]} after {written} lines", flush=True)
        run.join(timeout=300)
        return 0 if result.get("code") == 0 else 4
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    sys.exit(main())
