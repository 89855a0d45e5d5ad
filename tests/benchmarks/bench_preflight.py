"""Benchmark of ds_preflight against what the same checks cost by hand, on the same cluster in one run.

The seed's fluentd DaemonSet (100m cpu, tolerating the benchmark nodes' taint) runs on every worker node; the change
asked about is a new image. Each round measures:

- kubeops.daemonset.ds_preflight without pre-pull (one `ansible localhost -m` task): wall time, the module's own
  `elapsed`, `api_calls`; against kubectl reading what the checks need (`kubectl get nodes -o json` and
  `kubectl get pods -A -o json`, nothing computed: a lower bound of a check by hand);
- ds_preflight with pre-pull (the new image on every node): the same, and the pre-pull's own time; against the same
  pre-pull DaemonSet by hand (`_preflight.prepull_daemonset`'s object): `kubectl apply`, `kubectl rollout status`,
  `kubectl delete --wait`.

    KUBECONFIG=/path/to/cluster .venv/bin/python tests/benchmarks/bench_preflight.py [--rounds 2]
    (for the documented figures: `make cluster-up NODES=50` and `NODES=1000`, one run each)

Without KUBECONFIG it uses the local test cluster (.cluster/kubeconfig). Prints a Markdown section for
docs/benchmarks.md. Cleans up its namespace. No assertions on time: it measures and reports.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from _common import JSON_OUTPUT, ROOT, TAINT, ansible_env, ansible_module, kubectl, kubectl_cmd, measured, task_result

sys.path.insert(0, str(ROOT / "tests" / "unit"))
import conftest  # (makes the working tree importable as ansible_collections.kubeops.daemonset)
from ansible_collections.kubeops.daemonset.plugins.module_utils import _preflight

NAMESPACE = "bench-preflight"
NAME = "fluentd-elasticsearch"
NEW_IMAGE = "quay.io/fluentd_elasticsearch/fluentd:v2.6.0"

assert conftest.LINK.exists()


def manifest() -> dict:
    ds = yaml.safe_load((ROOT / "playbooks/files/fluentd-daemonset.yaml").read_text())
    ds["metadata"]["namespace"] = NAMESPACE
    pod = ds["spec"]["template"]["spec"]
    pod["tolerations"].append({"key": TAINT, "operator": "Exists"})
    pod["containers"][0]["resources"] = {"requests": {"cpu": "100m", "memory": "100Mi"}}
    return ds


def setup(kubeconfig: str) -> int:
    """The DaemonSet rolled out on every worker; returns its desired count."""
    kubectl(kubeconfig, "create", "namespace", NAMESPACE)
    kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(manifest()))
    kubectl(kubeconfig, "rollout", "status", f"ds/{NAME}", "-n", NAMESPACE, "--timeout=900s")
    ds = json.loads(kubectl(kubeconfig, "get", "ds", NAME, "-n", NAMESPACE, "-o", "json"))
    return ds["status"]["desiredNumberScheduled"]


def run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    result = measured(cmd, env)
    if result.returncode:
        sys.exit(f"{' '.join(cmd[:4])} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.wall, result.stdout


def ds_preflight(env: dict[str, str], prepull: bool) -> tuple[float, dict]:
    args = {"name": NAME, "namespace": NAMESPACE, "images": {NAME: NEW_IMAGE}, "prepull": prepull,
            "prepull_timeout": 900}  # fmt: skip
    seconds, out = run(ansible_module("kubeops.daemonset.ds_preflight", args), dict(env, **JSON_OUTPUT))
    result = task_result(out)
    if not result.get("ok"):
        sys.exit(f"ds_preflight found problems: {result.get('msg')}")
    return seconds, result


def counted(kubeconfig: str, *args: str, stdin: str | None = None) -> int:
    """Run kubectl (a failure ends the benchmark); the API requests it made, from its -v=6 log (discovery included,
    list pages too: kubectl lists 500 at a time)."""
    proc = subprocess.run(kubectl_cmd(kubeconfig, "-v=6", *args), capture_output=True, text=True, input=stdin,
                          check=False)  # fmt: skip
    if proc.returncode:
        sys.exit(f"kubectl {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return proc.stderr.count('"Response"')


def kubectl_reads(kubeconfig: str) -> tuple[float, int]:
    began = time.monotonic()
    requests = counted(kubeconfig, "get", "nodes", "-o", "json") + counted(
        kubeconfig, "get", "pods", "-A", "-o", "json"
    )
    return time.monotonic() - began, requests


def kubectl_prepull(kubeconfig: str) -> tuple[float, int]:
    """The same pre-pull DaemonSet, by hand: apply, rollout status, delete (and wait for it to go)."""
    desired = manifest()
    desired["spec"]["template"]["spec"]["containers"][0]["image"] = NEW_IMAGE
    meta = _preflight.prepull_metadata("by-hand-prepull", NAMESPACE, "byhand", f"{NAMESPACE}/{NAME}",
                                       datetime.now(timezone.utc), "bench/1")  # fmt: skip
    body = _preflight.prepull_daemonset(desired, meta, {NEW_IMAGE: "IfNotPresent"}, _preflight.PREPULL_COMMAND,
                                        _preflight.PAUSE_IMAGE)  # fmt: skip
    del body["spec"]["updateStrategy"]  # kubectl rollout status only follows RollingUpdate (the default)
    began = time.monotonic()
    requests = counted(kubeconfig, "apply", "-f", "-", stdin=json.dumps(body))
    requests += counted(kubeconfig, "rollout", "status", "ds/by-hand-prepull", "-n", NAMESPACE, "--timeout=900s")
    requests += counted(kubeconfig, "delete", "ds", "by-hand-prepull", "-n", NAMESPACE, "--wait=true")
    return time.monotonic() - began, requests


def wait_pods_gone(kubeconfig: str) -> None:
    """Between rounds: the previous pre-pull's pods gone, so each round starts alike."""
    for _attempt in range(600):
        out = kubectl(kubeconfig, "get", "pods", "-n", NAMESPACE, "-l", _preflight.PREPULL_LABEL, "-o", "name")
        if not out.strip():
            return
        time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-build", action="store_true", help="use the collection already in .cache/collections")
    args = parser.parse_args()
    kubeconfig = os.environ.get("KUBECONFIG") or str(ROOT / ".cluster/kubeconfig")
    if not args.no_build:
        subprocess.run(["make", "-s", "collection"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    env = ansible_env(kubeconfig, ANSIBLE_HOME=str(ROOT / ".cache/ansible"), ANSIBLE_DEPRECATION_WARNINGS="false")
    nodes = len(kubectl(kubeconfig, "get", "nodes", "--no-headers").splitlines())
    rows: dict[str, list[tuple[float, float, int]]] = {key: [] for key in ("check", "reads", "prepull", "by hand")}
    try:
        targets = setup(kubeconfig)
        for _round in range(args.rounds):
            seconds, result = ds_preflight(env, prepull=False)
            rows["check"].append((seconds, result["elapsed"], result["api_calls"]))
            seconds, requests = kubectl_reads(kubeconfig)
            rows["reads"].append((seconds, 0.0, requests))
            seconds, result = ds_preflight(env, prepull=True)
            assert result["prepull"]["counts"]["pulled"] == targets, result["prepull"]
            rows["prepull"].append((seconds, result["prepull"]["elapsed"], result["api_calls"]))
            wait_pods_gone(kubeconfig)
            seconds, requests = kubectl_prepull(kubeconfig)
            rows["by hand"].append((seconds, 0.0, requests))
            wait_pods_gone(kubeconfig)
    finally:
        kubectl(kubeconfig, "delete", "namespace", NAMESPACE, "--wait=false")
    median = {key: statistics.median(v[0] for v in values) for key, values in rows.items()}
    print(f"\n### ds_preflight ({time.strftime('%Y-%m-%d')}, {nodes} nodes, {targets} targets)\n")
    print(f"Command: `KUBECONFIG=... .venv/bin/python tests/benchmarks/bench_preflight.py --rounds {args.rounds}`\n")
    print("| approach | median wall time, s (rounds) | of which the module's own, s | ratio | API requests |")
    print("| --- | --- | --- | --- | --- |")
    labels = {
        "check": ("ds_preflight, fit and taints (ansible task)", "reads"),
        "reads": ("kubectl get nodes + get pods -A, -o json (reads only)", "reads"),
        "prepull": ("ds_preflight with pre-pull (ansible task; module column: the pre-pull)", "by hand"),
        "by hand": ("kubectl apply + rollout status + delete --wait of the same pre-pull DaemonSet", "by hand"),
    }
    for key, values in rows.items():
        label, base = labels[key]
        each = ", ".join(f"{v[0]:.2f}" for v in values)
        own = statistics.median(v[1] for v in values)
        calls = sorted({v[2] for v in values})
        print(f"| {label} | {median[key]:.2f} ({each}) | {own:.2f} | {median[key] / median[base]:.2f} | "
              f"{'/'.join(map(str, calls))} |")  # fmt: skip


if __name__ == "__main__":
    main()
