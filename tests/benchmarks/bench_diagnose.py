"""Benchmark of ds_diagnose against the manual comparison users do today, on the same cluster in one run.

A DaemonSet (the seed's fluentd, requesting 500m cpu) runs on every node; BLOCKED tiny nodes (100m cpu, KWOK) are
added so its pod cannot fit there (the scheduler's `Insufficient cpu`). Then, each ROUNDS times:

- kubeops.daemonset.ds_diagnose (one `ansible localhost -m` task): wall time, its `api_calls`, and whether its
  resource_exhaustion finding names exactly the blocked nodes;
- kubernetes.core.k8s_info: a two-task playbook listing nodes and the DaemonSet's pods, then the comparison
  "nodes without a running pod" in Jinja (what the troubleshooting guide asks for, in Ansible);
- kubectl: `kubectl get nodes` + `kubectl get pods -l name=fluentd-elasticsearch -o wide` (the guide's commands),
  compared in Python.

    KUBECONFIG=/path/to/big-cluster .venv/bin/python tests/benchmarks/bench_diagnose.py [--blocked 5] [--rounds 3]

Without KUBECONFIG it uses the local test cluster (.cluster/kubeconfig). Prints a Markdown table for
docs/benchmarks.md. Cleans up its namespace and nodes. API requests: ds_diagnose's own count (`api_calls`: get,
lists, and one pod list per blocked node up to three); the peers make two lists (plus their discovery requests).
No assertions on time: it measures and reports.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from _common import JSON_OUTPUT, ROOT, TAINT, ansible_env, ansible_module, kubectl_cmd, task_result

NAMESPACE = "bench-diagnose"
NAME = "fluentd-elasticsearch"

PEER_PLAYBOOK = """
- name: Nodes without a DaemonSet pod, the k8s_info way
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: List nodes
      kubernetes.core.k8s_info:
        kind: Node
      register: nodes
    - name: List the DaemonSet's pods
      kubernetes.core.k8s_info:
        kind: Pod
        namespace: "{{ ns }}"
        label_selectors: ["name={{ ds }}"]
      register: pods
    - name: Compare
      ansible.builtin.set_fact:
        without_pod: >-
          {{ nodes.resources | map(attribute='metadata.name')
             | difference(pods.resources | selectattr('status.phase', 'eq', 'Running')
                          | map(attribute='spec.nodeName')) }}
    - name: Print the result
      ansible.builtin.debug:
        msg: "BLOCKED={{ without_pod | to_json }}"
"""


def kubectl(kubeconfig: str, *args: str, stdin: str | None = None, check: bool = True) -> str:
    """kubectl's standard output; a failure ends the benchmark with kubectl's error unless CHECK is false."""
    proc = subprocess.run(kubectl_cmd(kubeconfig, *args), capture_output=True, text=True, input=stdin, check=False)
    if check and proc.returncode:
        sys.exit(f"kubectl {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


def setup(kubeconfig: str, blocked: int) -> list[str]:
    """The DaemonSet everywhere, and BLOCKED tiny nodes it cannot fit on; returns their names."""
    kubectl(kubeconfig, "create", "namespace", NAMESPACE)
    manifest = yaml.safe_load((ROOT / "playbooks/files/fluentd-daemonset.yaml").read_text())
    manifest["metadata"]["namespace"] = NAMESPACE
    pod = manifest["spec"]["template"]["spec"]
    pod["tolerations"].append({"key": TAINT, "operator": "Exists"})
    pod["containers"][0]["resources"] = {"requests": {"cpu": "500m", "memory": "200Mi"}}
    names = []
    for index in range(blocked):
        name = f"bench-diagnose-tiny-{index}"
        tiny = {"cpu": "100m", "memory": "1Gi", "pods": "10"}
        kubectl(kubeconfig, "create", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"},
                         "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok"}},
            "spec": {"taints": [{"key": TAINT, "value": "true", "effect": "NoSchedule"}]},
            "status": {"allocatable": tiny, "capacity": tiny},
        }))  # fmt: skip
        names.append(name)
    kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(manifest))
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        ds = json.loads(kubectl(kubeconfig, "get", "ds", NAME, "-n", NAMESPACE, "-o", "json"))
        status = ds.get("status", {})
        pods = json.loads(kubectl(kubeconfig, "get", "pods", "-n", NAMESPACE, "-o", "json"))["items"]
        unschedulable = [
            p for p in pods if any(c.get("reason") == "Unschedulable" for c in p["status"].get("conditions", []))
        ]
        if (
            status.get("numberAvailable", 0) >= status.get("desiredNumberScheduled", 1) - blocked
            and len(unschedulable) >= blocked
        ):
            return names
        time.sleep(2)
    sys.exit("the DaemonSet did not settle within 15 minutes")


def teardown(kubeconfig: str, nodes: list[str]) -> None:
    kubectl(kubeconfig, "delete", "namespace", NAMESPACE, "--wait=false", check=False)
    if nodes:
        kubectl(kubeconfig, "delete", "node", "--wait=false", *nodes, check=False)


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    began = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - began
    if proc.returncode:
        sys.exit(f"{' '.join(cmd[:3])} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return elapsed, proc.stdout


def run_ds_diagnose(env: dict[str, str]) -> tuple[float, dict]:
    cmd = ansible_module("kubeops.daemonset.ds_diagnose", {"name": NAME, "namespace": NAMESPACE})
    elapsed, out = timed(cmd, dict(env, **JSON_OUTPUT))
    return elapsed, task_result(out)


def run_k8s_info(env: dict[str, str], playbook: str) -> tuple[float, set[str]]:
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", playbook,
           "-e", json.dumps({"ns": NAMESPACE, "ds": NAME})]  # fmt: skip
    elapsed, out = timed(cmd, env)
    found = json.loads(out.split('"BLOCKED=', 1)[1].split('"\n', 1)[0].replace('\\"', '"'))
    return elapsed, set(found)


def run_kubectl(kubeconfig: str) -> tuple[float, set[str]]:
    began = time.monotonic()
    nodes = kubectl(kubeconfig, "get", "nodes", "--no-headers").split("\n")
    pods = kubectl(kubeconfig, "get", "pods", "-l", f"name={NAME}", "-o", "wide", "-n", NAMESPACE, "--no-headers")
    running = {line.split()[6] for line in pods.splitlines() if line.split()[2] == "Running"}
    without = {line.split()[0] for line in nodes if line.strip()} - running
    return time.monotonic() - began, without


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocked", type=int, default=5, help="tiny nodes the DaemonSet cannot fit on")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-build", action="store_true", help="use the collection already in .cache/collections")
    args = parser.parse_args()
    kubeconfig = os.environ.get("KUBECONFIG") or str(ROOT / ".cluster/kubeconfig")
    if not args.no_build:
        subprocess.run(["make", "-s", "collection"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    env = ansible_env(kubeconfig, ANSIBLE_HOME=str(ROOT / ".cache/ansible"), ANSIBLE_DEPRECATION_WARNINGS="false")
    node_count = len(kubectl(kubeconfig, "get", "nodes", "--no-headers").splitlines()) + args.blocked
    blocked: list[str] = []
    playbook = Path(tempfile.mkstemp(suffix=".yml")[1])
    playbook.write_text(PEER_PLAYBOOK)
    rows: dict[str, list] = {"ds_diagnose": [], "k8s_info": [], "kubectl": []}
    try:
        blocked = setup(kubeconfig, args.blocked)
        for _round in range(args.rounds):
            seconds, result = run_ds_diagnose(env)
            named = {n for f in result["findings"] if f["cause"] == "resource_exhaustion" for n in f["nodes"]}
            rows["ds_diagnose"].append((seconds, result["api_calls"], named))
            seconds, found = run_k8s_info(env, str(playbook))
            rows["k8s_info"].append((seconds, 2, found))
            seconds, found = run_kubectl(kubeconfig)
            rows["kubectl"].append((seconds, 2, found))
        report = result["report"]
    finally:
        teardown(kubeconfig, blocked)
        playbook.unlink()
    expected = set(blocked)
    print(f"\n### ds_diagnose vs the manual comparison ({time.strftime('%Y-%m-%d')}, {node_count} nodes, "
          f"{args.blocked} blocked)\n")  # fmt: skip
    print(f"Command: `KUBECONFIG=... .venv/bin/python tests/benchmarks/bench_diagnose.py --blocked {args.blocked} "
          f"--rounds {args.rounds}`\n")  # fmt: skip
    print("| approach | median wall time, s | ratio to k8s_info | API requests | blocked nodes found "
          "| extra nodes reported | names the cause |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    base = statistics.median(v[0] for v in rows["k8s_info"])
    labels = {
        "ds_diagnose": ("kubeops.daemonset.ds_diagnose (ansible task)", "yes (Insufficient cpu, per-node resources)"),
        "k8s_info": ("kubernetes.core.k8s_info nodes + pods (playbook)", "no"),
        "kubectl": ("kubectl get nodes + get pods -o wide (the guide)", "no"),
    }
    for key, values in rows.items():
        seconds = statistics.median(v[0] for v in values)
        found = values[-1][2]
        calls = values[-1][1]
        label, cause = labels[key]
        print(f"| {label} | {seconds:.2f} | {seconds / base:.2f} | {calls} | {len(found & expected)}/{len(expected)} | "
              f"{len(found - expected)} | {cause} |")  # fmt: skip
    print("\n```\n" + report + "\n```")


if __name__ == "__main__":
    main()
