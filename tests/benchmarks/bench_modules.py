"""Benchmark of the modules against their peers on the same cluster, in one run:

- waiting for a rollout: kubeops.daemonset.ds_rollout_wait, `kubectl rollout status` and kubernetes.core's
  k8s_info wait, started together on the same rolling update; each one's return is measured against the moment
  the DaemonSet's status first met kubectl's completion rule (seen by an independent watch). Negative = returned
  before the rollout was complete.
- reading history: kubeops.daemonset.ds_history against kubernetes.core.k8s_info listing the ControllerRevisions
  (wall time of one `ansible localhost -m` task each, median of several).

    .venv/bin/python tests/benchmarks/bench_modules.py [--nodes 20] [--rounds 3]

Uses KUBECONFIG's cluster when set (with its nodes), otherwise its own local cluster in .cache/bench-cluster.
Prints a Markdown section for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import _common
from _common import ROOT, ansible_env, ansible_module, kubectl_cmd

os.environ.setdefault("KUBEOPS_CLUSTER_DIR", str(ROOT / ".cache" / "bench-cluster"))
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
import bench_cluster
import localcluster

NAMESPACE = "bench-modules"
NAME = "fluentd-elasticsearch"
IMAGES = ("quay.io/fluentd_elasticsearch/fluentd:v2.6.0", "quay.io/fluentd_elasticsearch/fluentd:v2.7.0")


def kubectl(kubeconfig: str, *args: str, stdin: str | None = None) -> str:
    """kubectl in the benchmark's namespace."""
    return _common.kubectl(kubeconfig, "-n", NAMESPACE, *args, stdin=stdin)


def rollout_done(ds: dict) -> bool:
    """kubectl's rule (reference §1), for the independent observer."""
    status, meta = ds.get("status", {}), ds["metadata"]
    desired = status.get("desiredNumberScheduled", 0)
    return (
        meta.get("generation", 0) <= status.get("observedGeneration", 0)
        and status.get("updatedNumberScheduled", 0) >= desired
        and status.get("numberAvailable", 0) >= desired
    )


def observe_completion(kubeconfig: str, after_generation: int, result: dict) -> None:
    """Watch the DaemonSet and record when its status first meets the rule for the new generation."""
    proc = subprocess.Popen(
        kubectl_cmd(kubeconfig, "-n", NAMESPACE, "get", "ds", NAME, "--watch", "--output-watch-events", "-o", "json"),
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    decoder, buffer = json.JSONDecoder(), ""
    assert proc.stdout is not None
    for line in proc.stdout:
        buffer += line
        try:
            event, _end = decoder.raw_decode(buffer.strip())
        except json.JSONDecodeError:
            continue
        buffer = ""
        ds = event["object"]
        if ds["metadata"]["generation"] >= after_generation and rollout_done(ds):
            result["done"] = time.monotonic()
            break
    proc.terminate()


def race_waiters(kubeconfig: str, image: str, env: dict[str, str]) -> dict[str, float]:
    """Start a rolling update and the three waiters together; seconds from completion to each one's return."""
    generation = json.loads(kubectl(kubeconfig, "get", "ds", NAME, "-o", "json"))["metadata"]["generation"] + 1
    waiters = {
        "kubeops.daemonset.ds_rollout_wait": ansible_module(
            "kubeops.daemonset.ds_rollout_wait", {"name": NAME, "namespace": NAMESPACE, "timeout": 600}
        ),
        "kubectl rollout status": kubectl_cmd(kubeconfig, "-n", NAMESPACE, "rollout", "status", f"ds/{NAME}",
                                              "--timeout=600s"),
        "kubernetes.core.k8s_info wait": ansible_module(
            "kubernetes.core.k8s_info",
            {"kind": "DaemonSet", "name": NAME, "namespace": NAMESPACE, "wait": True, "wait_timeout": 600},
        ),
    }  # fmt: skip
    observed: dict[str, float] = {}
    observer = threading.Thread(target=observe_completion, args=(kubeconfig, generation, observed))
    observer.start()
    kubectl(kubeconfig, "set", "image", f"ds/{NAME}", f"{NAME}={image}")
    procs = {
        name: subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for name, cmd in waiters.items()
    }
    returned = {}
    while len(returned) < len(procs):
        for name, proc in procs.items():
            if name not in returned and proc.poll() is not None:
                returned[name] = time.monotonic()
        time.sleep(0.01)
    observer.join(timeout=600)
    for name, proc in procs.items():
        if proc.returncode:
            sys.exit(f"{name} failed ({proc.returncode}):\n{proc.stdout.read() if proc.stdout else ''}")
    return {name: at - observed["done"] for name, at in returned.items()}


def task_seconds(cmd: list[str], env: dict[str, str], repeat: int) -> float:
    times = []
    for _attempt in range(repeat):
        began = time.monotonic()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.monotonic() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=20, help="workers of the bench cluster (ignored with KUBECONFIG)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-unavailable", default="1", help="the rolling update's maxUnavailable (e.g. 10%%)")
    args = parser.parse_args()

    subprocess.run(["make", "-s", "collection"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    kubeconfig = os.environ.get("KUBECONFIG")
    own_cluster = not kubeconfig
    if own_cluster:
        subprocess.run([sys.executable, str(ROOT / "tests/cluster/localcluster.py"), "up", "--nodes", str(args.nodes)],
                       check=True)  # fmt: skip
        kubeconfig = str(localcluster.KUBECONFIG)
    env = ansible_env(kubeconfig)
    try:
        _common.kubectl(kubeconfig, "create", "ns", NAMESPACE)
        max_unavailable = int(args.max_unavailable) if args.max_unavailable.isdigit() else args.max_unavailable
        manifest = bench_cluster.daemonset_manifest()
        manifest["metadata"]["namespace"] = NAMESPACE
        manifest["spec"]["updateStrategy"] = {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": max_unavailable},
        }
        kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(manifest))
        kubectl(kubeconfig, "rollout", "status", f"ds/{NAME}", "--timeout=600s")
        lags: dict[str, list[float]] = {}
        for round_no in range(args.rounds):
            for name, lag in race_waiters(kubeconfig, IMAGES[round_no % 2], env).items():
                lags.setdefault(name, []).append(lag)
        history = {
            "kubeops.daemonset.ds_history": ansible_module(
                "kubeops.daemonset.ds_history", {"name": NAME, "namespace": NAMESPACE}
            ),
            "kubernetes.core.k8s_info (ControllerRevisions)": ansible_module(
                "kubernetes.core.k8s_info",
                {"api_version": "apps/v1", "kind": "ControllerRevision", "namespace": NAMESPACE,
                 "label_selectors": ["name=fluentd-elasticsearch"]},
            ),
        }  # fmt: skip
        history_times = {name: task_seconds(cmd, env, 5) for name, cmd in history.items()}
    finally:
        if own_cluster:
            localcluster.down(quiet=True)

    nodes = args.nodes if own_cluster else "KUBECONFIG's"
    print(f"\n### Modules against their peers ({time.strftime('%Y-%m-%d')}, {nodes} nodes)\n")
    print(f"Machine: {bench_cluster.machine()}. Command: `.venv/bin/python tests/benchmarks/bench_modules.py "
          f"--nodes {args.nodes} --rounds {args.rounds} --max-unavailable {args.max_unavailable}`\n")  # fmt: skip
    print("| waiter | return after completion, s (each round) | median |\n| --- | --- | --- |")
    for name, values in lags.items():
        print(f"| {name} | {', '.join(f'{v:+.2f}' for v in values)} | {statistics.median(values):+.2f} |")
    base = history_times["kubernetes.core.k8s_info (ControllerRevisions)"]
    print("\n| history task | median wall time, s | ratio to k8s_info |\n| --- | --- | --- |")
    for name, seconds in history_times.items():
        print(f"| {name} | {seconds:.2f} | {seconds / base:.2f} |")


if __name__ == "__main__":
    main()
