"""Reading history: kubeops.daemonset.ds_history against kubernetes.core.k8s_info listing the same
ControllerRevisions, on the same cluster in one run: wall time and CPU of one `ansible localhost -m` task each
(Ansible's start-up included), median of several, alternating which goes first. (Waiting is bench_wait.py.)

    .venv/bin/python tests/benchmarks/bench_modules.py [--repeat 5]

Uses KUBECONFIG's cluster (default .cluster/kubeconfig). Prints a Markdown section for docs/benchmarks.md.
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

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from _common import ROOT, ansible_env, ansible_module, kubectl, kubectl_cmd, measured

sys.path.insert(0, str(ROOT / "tests" / "cluster"))
import bench_cluster

NAMESPACE = "bench-modules"
NAME = "fluentd-elasticsearch"


def two_revisions(kubeconfig: str) -> None:
    """The seed's DaemonSet at version 1, then 2: two ControllerRevisions."""
    for name in ("fluentd-daemonset.yaml", "fluentd-daemonset-update.yaml"):
        manifest = yaml.safe_load((ROOT / "playbooks/files" / name).read_text())
        manifest["metadata"]["namespace"] = NAMESPACE
        kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(manifest))
        kubectl(kubeconfig, "-n", NAMESPACE, "rollout", "status", f"ds/{NAME}", "--timeout=300s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    kubeconfig = os.environ.get("KUBECONFIG") or str(ROOT / ".cluster/kubeconfig")
    subprocess.run(["make", "-s", "collection"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    env = ansible_env(kubeconfig)
    tasks = {
        "kubeops.daemonset.ds_history": ansible_module("kubeops.daemonset.ds_history",
                                                       {"name": NAME, "namespace": NAMESPACE}),
        "kubernetes.core.k8s_info (ControllerRevisions)": ansible_module(
            "kubernetes.core.k8s_info",
            {"api_version": "apps/v1", "kind": "ControllerRevision", "namespace": NAMESPACE,
             "label_selectors": [f"name={NAME}"]},
        ),
    }  # fmt: skip
    runs: dict[str, list] = {name: [] for name in tasks}
    try:
        kubectl(kubeconfig, "create", "ns", NAMESPACE)
        two_revisions(kubeconfig)
        for number in range(args.repeat):
            for name in list(tasks)[:: 1 if number % 2 == 0 else -1]:
                run = measured(tasks[name], env)
                if run.returncode:
                    sys.exit(f"{name} failed:\n{run.stdout[-2000:]}")
                runs[name].append(run)
    finally:
        subprocess.run(kubectl_cmd(kubeconfig, "delete", "ns", NAMESPACE, "--wait=false"), capture_output=True,
                       check=False)  # fmt: skip
    print(f"\n### Reading history ({time.strftime('%Y-%m-%d')})\n")
    print(f"Machine: {bench_cluster.machine()}. Command: `.venv/bin/python tests/benchmarks/bench_modules.py "
          f"--repeat {args.repeat}`\n")  # fmt: skip
    base = {field: statistics.median(getattr(r, field) for r in runs[list(tasks)[1]]) for field in ("wall", "cpu")}
    print("| task | median wall, s | ratio | median CPU, s | ratio |\n| --- | --- | --- | --- | --- |")
    for name, measured_runs in runs.items():
        wall = statistics.median(r.wall for r in measured_runs)
        cpu = statistics.median(r.cpu for r in measured_runs)
        print(f"| {name} | {wall:.2f} | {wall / base['wall']:.2f} | {cpu:.2f} | {cpu / base['cpu']:.2f} |")


if __name__ == "__main__":
    main()
