# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A local fleet: N independent clusters (each its own etcd, API server, controller-manager, scheduler and KWOK
nodes, as `localcluster.py up --real-nodes 0` starts them) in .fleet/cluster-I (or $KUBEOPS_FLEET_DIR), and an
Ansible inventory for them, .fleet/inventory.yml: one host per cluster with its k8s_auth_kubeconfig, in the group
`fleet`.

  python tests/cluster/fleet.py up [--clusters N] [--nodes M]   # idempotent; a cluster that is up is kept
  python tests/cluster/fleet.py down                            # every cluster stopped, .fleet removed
  python tests/cluster/fleet.py status                          # exit 0 when every cluster is up
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FLEET = Path(os.environ.get("KUBEOPS_FLEET_DIR", ROOT / ".fleet")).resolve()
INVENTORY = FLEET / "inventory.yml"
LOCALCLUSTER = Path(__file__).with_name("localcluster.py")


def log(line: str) -> None:
    print(f"[fleet] {line}", flush=True)


def cluster_dirs() -> list[Path]:
    return sorted(FLEET.glob("cluster-*"), key=lambda path: int(path.name.split("-")[1]))


def localcluster(directory: Path, *args: str, quiet: bool = False) -> subprocess.CompletedProcess:
    """localcluster.py ARGS for the cluster whose state is DIRECTORY."""
    env = dict(os.environ, KUBEOPS_CLUSTER_DIR=str(directory), REAL_NODES="0")
    output = subprocess.PIPE if quiet else None
    return subprocess.run([sys.executable, str(LOCALCLUSTER), *args], env=env, stdout=output, stderr=output,
                          check=False)  # fmt: skip


def write_inventory(directories: list[Path]) -> None:
    """One host per cluster (its name is its directory's), reached through its own kubeconfig from the controller.
    JSON is YAML: no YAML library needed before the venv exists."""
    hosts = {path.name: {"k8s_auth_kubeconfig": str(path / "kubeconfig")} for path in directories}
    inventory = {
        "all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"},
            "children": {"fleet": {"hosts": hosts}},
        }
    }
    INVENTORY.write_text("# written by tests/cluster/fleet.py up\n" + json.dumps(inventory, indent=2) + "\n")


def up(clusters: int, nodes: int) -> None:
    began = time.monotonic()
    FLEET.mkdir(parents=True, exist_ok=True)
    for extra in cluster_dirs()[clusters:]:  # a smaller fleet than the one running: the clusters beyond it go
        down_one(extra)
    wanted = [FLEET / f"cluster-{number}" for number in range(1, clusters + 1)]
    for directory in wanted:
        done = localcluster(directory, "up", "--nodes", str(nodes), "--real-nodes", "0")
        if done.returncode:
            sys.exit(f"fleet-up failed: {directory.name} did not start (its logs: {directory / 'logs'}); "
                     f"`make fleet-down` stops the rest")  # fmt: skip
    write_inventory(wanted)
    log(f"up: {clusters} clusters with {nodes} worker nodes each in {time.monotonic() - began:.1f}s")
    log(f"inventory: {INVENTORY}")


def down_one(directory: Path) -> None:
    if localcluster(directory, "down").returncode:
        sys.exit(f"fleet-down failed on {directory.name}: run it again")


def down() -> None:
    for directory in cluster_dirs():
        down_one(directory)
    subprocess.run(["rm", "-rf", str(FLEET)], check=False)
    log(f"down; every cluster stopped and {FLEET} removed")


def status() -> int:
    directories = cluster_dirs()
    return 0 if directories and all(localcluster(d, "status", quiet=True).returncode == 0 for d in directories) else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up_cmd = sub.add_parser("up", help="start the fleet (idempotent)")
    up_cmd.add_argument("--clusters", type=int, default=int(os.environ.get("CLUSTERS", 3)), help="default 3")
    up_cmd.add_argument("--nodes", type=int, default=int(os.environ.get("FLEET_NODES", 3)),
                        help="worker nodes per cluster (default 3)")  # fmt: skip
    sub.add_parser("down", help="stop every cluster and remove the fleet's directory")
    sub.add_parser("status", help="exit 0 when every cluster of the fleet is up")
    args = parser.parse_args()
    if args.command == "up":
        if args.clusters < 1 or args.nodes < 1:
            sys.exit("fleet-up: CLUSTERS and FLEET_NODES must be at least 1")
        up(args.clusters, args.nodes)
    elif args.command == "status":
        sys.exit(status())
    else:
        down()


if __name__ == "__main__":
    main()
