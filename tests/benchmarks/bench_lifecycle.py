"""Wall time of playbooks/lifecycle.yml (the documented workflow end to end), split into the time spent waiting
for rollouts (what the cluster takes) and everything else (Ansible, the API calls, the modules' own work).

    .venv/bin/python tests/benchmarks/bench_lifecycle.py [--rounds 3]

Uses KUBECONFIG's cluster when set, else the local cluster (.cluster/kubeconfig, started if needed).
Prints a Markdown section for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
sys.path.insert(0, str(Path(__file__).parent))
import bench_cluster  # noqa: E402
import localcluster  # noqa: E402

NAMESPACE = "bench-lifecycle"


def waited_seconds(result: dict) -> float:
    """Seconds a task result spent waiting for a rollout: ds_rollout_wait's elapsed, or a nested wait's."""
    if "rollout_complete" in result and "elapsed" in result:
        return float(result["elapsed"])
    rollout = result.get("rollout")
    return float(rollout.get("elapsed", 0)) if isinstance(rollout, dict) else 0.0


def run_lifecycle(env: dict[str, str]) -> tuple[float, float]:
    """One run with the json callback: (total wall seconds, seconds spent waiting for rollouts)."""
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "kubeops.daemonset.lifecycle",
           "-e", json.dumps({"daemonset_namespace": NAMESPACE, "lifecycle_cleanup": True})]  # fmt: skip
    began = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    total = time.monotonic() - began
    if proc.returncode:
        sys.exit(f"lifecycle.yml failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    waited = 0.0
    for play in json.loads(proc.stdout)["plays"]:
        for task in play["tasks"]:
            waited += sum(waited_seconds(result) for result in task["hosts"].values())
    return total, waited


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    subprocess.run(["make", "-s", "collection"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig:
        subprocess.run([sys.executable, str(ROOT / "tests/cluster/localcluster.py"), "up"], check=True)
        kubeconfig = str(localcluster.KUBECONFIG)
    env = dict(
        os.environ,
        KUBECONFIG=kubeconfig,
        K8S_AUTH_KUBECONFIG=kubeconfig,
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".cache/collections"),
        ANSIBLE_STDOUT_CALLBACK="json",
        ANSIBLE_LOCALHOST_WARNING="false",
    )
    kubectl = [str(ROOT / ".cache/bin/kubectl"), f"--kubeconfig={kubeconfig}"]
    subprocess.run([*kubectl, "create", "namespace", NAMESPACE], check=False, capture_output=True)
    runs = [run_lifecycle(env) for _round in range(args.rounds)]
    subprocess.run([*kubectl, "delete", "namespace", NAMESPACE, "--wait=false"], check=False, capture_output=True)

    nodes = len(json.loads(subprocess.check_output([*kubectl, "get", "nodes", "-o", "json"]))["items"])
    print(f"\n### lifecycle.yml end to end ({time.strftime('%Y-%m-%d')}, {nodes} nodes)\n")
    print(f"Machine: {bench_cluster.machine()}. Command: `.venv/bin/python tests/benchmarks/bench_lifecycle.py "
          f"--rounds {args.rounds}`\n")  # fmt: skip
    print("| run | total, s | waiting for rollouts, s | overhead, s |\n| --- | --- | --- | --- |")
    for number, (total, waited) in enumerate(runs, 1):
        print(f"| {number} | {total:.1f} | {waited:.1f} | {total - waited:.1f} |")
    totals, waits = [r[0] for r in runs], [r[1] for r in runs]
    print(f"| median | {statistics.median(totals):.1f} | {statistics.median(waits):.1f} | "
          f"{statistics.median(totals) - statistics.median(waits):.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
