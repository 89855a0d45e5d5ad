"""Benchmark: a node-batch rollout (kubeops.daemonset.ds_batch_rollout) against a plain RollingUpdate of the same
DaemonSet on the same nodes, in one run.

    .venv/bin/python tests/benchmarks/bench_batch.py [--nodes 50] [--rounds 1] [--gate 0,10]

It adds NODES KWOK nodes of its own (tainted and labelled, like the test_node fixture) to KUBECONFIG's cluster
(default: the local cluster's .cluster/kubeconfig; it does not start one), pins the seed's fluentd DaemonSet to
them and measures, alternating the image so every rollout starts from a finished one:

- ds_batch_rollout with batches [1, 10%, 50%, 100%] for each gate time (min_available_seconds) in --gate: wall time
  of the `ansible localhost -m` task (Ansible start-up included) and the module's own elapsed time;
- RollingUpdate with maxUnavailable = the largest batch (the same number of pods down at once at most), and with
  the default maxUnavailable 1: `kubectl set image` until `kubectl rollout status` returns.

Prints a Markdown section for docs/benchmarks.md. Nodes and namespace are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from _common import JSON_OUTPUT, ROOT, TAINT, add_nodes, ansible_env, ansible_module, kubectl, kubectl_cmd, task_result

NAMESPACE = "bench-batch"
NAME = "fluentd-elasticsearch"
IMAGES = ("quay.io/fluentd_elasticsearch/fluentd:v2.6.0", "quay.io/fluentd_elasticsearch/fluentd:v2.7.0")
BATCHES = [1, "10%", "50%", "100%"]
LABEL = "kubeops.bench/batch"


def manifest(max_unavailable: int) -> dict:
    ds = yaml.safe_load((ROOT / "playbooks/files/fluentd-daemonset.yaml").read_text())
    ds["metadata"]["namespace"] = NAMESPACE
    spec = ds["spec"]["template"]["spec"]
    spec["tolerations"].append({"key": TAINT, "operator": "Exists"})
    spec["nodeSelector"] = {LABEL: "true"}
    ds["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": max_unavailable}}
    return ds


def rolling_update(kubeconfig: str, image: str, max_unavailable: int) -> float:
    strategy = {"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": max_unavailable}}}}
    kubectl(kubeconfig, "-n", NAMESPACE, "patch", "ds", NAME, "-p", json.dumps(strategy))
    began = time.monotonic()
    kubectl(kubeconfig, "-n", NAMESPACE, "set", "image", f"ds/{NAME}", f"{NAME}={image}")
    kubectl(kubeconfig, "-n", NAMESPACE, "rollout", "status", f"ds/{NAME}", "--timeout=900s")
    return time.monotonic() - began


def batch_rollout(kubeconfig: str, image: str, gate: int) -> tuple[float, float]:
    """(task wall time, module elapsed) of one ds_batch_rollout task."""
    env = ansible_env(kubeconfig, **JSON_OUTPUT)
    args = {"name": NAME, "namespace": NAMESPACE, "images": {NAME: image}, "batches": BATCHES}
    args.update(min_available_seconds=gate, batch_timeout=600)
    cmd = ansible_module("kubeops.daemonset.ds_batch_rollout", args)
    began = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - began
    result = task_result(proc.stdout)
    if result.get("failed") or result.get("outcome") != "complete":
        sys.exit(f"ds_batch_rollout did not complete: {result.get('msg')}")
    return wall, result["elapsed"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--gate", default="0,10", help="comma-separated min_available_seconds values to measure")
    args = parser.parse_args()
    gates = [int(value) for value in args.gate.split(",") if value.strip()]
    kubeconfig = os.environ.get("KUBECONFIG") or str(ROOT / ".cluster/kubeconfig")
    if not Path(kubeconfig).exists():
        sys.exit(f"no cluster: {kubeconfig} does not exist (make cluster-up, or set KUBECONFIG)")

    subprocess.run(["make", "-s", "collection"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    largest = math.ceil(args.nodes * 0.5)  # the 50% and 100% batches replace half of the nodes each
    rows: dict[str, list[float]] = {}
    module_elapsed: dict[str, list[float]] = {}
    nodes: list[str] = []
    try:
        kubectl(kubeconfig, "create", "ns", NAMESPACE)
        nodes = add_nodes(kubeconfig, "bench-batch", LABEL, args.nodes)
        kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(manifest(largest)))
        kubectl(kubeconfig, "-n", NAMESPACE, "rollout", "status", f"ds/{NAME}", "--timeout=900s")
        flip = 0
        for _round in range(args.rounds):
            for gate in gates:
                flip += 1
                wall, elapsed = batch_rollout(kubeconfig, IMAGES[flip % 2], gate)
                key = f"ds_batch_rollout [1, 10%, 50%, 100%], gate {gate}s"
                rows.setdefault(key, []).append(wall)
                module_elapsed.setdefault(key, []).append(elapsed)
            for max_unavailable in (largest, 1):
                flip += 1
                key = f"RollingUpdate maxUnavailable={max_unavailable}"
                rows.setdefault(key, []).append(rolling_update(kubeconfig, IMAGES[flip % 2], max_unavailable))
    finally:
        subprocess.run(kubectl_cmd(kubeconfig, "delete", "ns", NAMESPACE, "--wait=false"), check=False,
                       capture_output=True)  # fmt: skip
        if nodes:
            subprocess.run(kubectl_cmd(kubeconfig, "delete", "node", "--wait=false", *nodes), check=False,
                           capture_output=True)  # fmt: skip

    print(f"\n### Batched rollout against RollingUpdate ({time.strftime('%Y-%m-%d')}, {args.nodes} KWOK nodes)\n")
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, shared. Command: "
          f"`.venv/bin/python tests/benchmarks/bench_batch.py --nodes {args.nodes} --rounds {args.rounds} "
          f"--gate {args.gate}`\n")  # fmt: skip
    print("| rollout of the same DaemonSet | wall time, s (median) | of which module, s | ratio |")
    print("| --- | --- | --- | --- |")
    base = statistics.median(rows[f"RollingUpdate maxUnavailable={largest}"])
    for key, values in rows.items():
        inner = f"{statistics.median(module_elapsed[key]):.1f}" if key in module_elapsed else "-"
        print(f"| {key} | {statistics.median(values):.1f} | {inner} | {statistics.median(values) / base:.2f} |")


if __name__ == "__main__":
    main()
