"""Soak: CYCLES update/undo cycles (ds_update with wait, then ds_undo with wait) of a DaemonSet on NODES KWOK nodes,
on a cluster of its own (.cache/soak-cluster, stopped at the end). Not part of `make test`.

After every cycle: both rollouts complete, the revision numbers the modules report agree with `kubectl rollout
history`, and the resident memory (VmRSS) of kube-apiserver, kube-controller-manager and etcd is sampled. At the
end: no stuck state (kubectl says rolled out, ds_diagnose finds no problem, every pod on the current revision),
ds_history lists exactly kubectl's revisions, and the controller's and the API server's memory is steady (the
median of the last tenth of the cycles within LEAK_PERCENT of the median of the tenth after a warm-up tenth).

    .venv/bin/python tests/benchmarks/bench_soak.py [--cycles 100] [--nodes 50]

Prints a Markdown section for docs/benchmarks.md; exits 1 when a check failed.
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
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import (
    JSON_OUTPUT,
    ROOT,
    TAINT,
    add_nodes,
    ansible_env,
    ansible_module,
    kubectl,
    proc_status_mib,
    task_result,
)

STATE = ROOT / ".cache" / "soak-cluster"
os.environ["KUBEOPS_CLUSTER_DIR"] = str(STATE)
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
import localcluster  # noqa: E402  (reads KUBEOPS_CLUSTER_DIR at import)

NAME = "fluentd-elasticsearch"
NAMESPACE = "soak"
LABEL = "kubeops.test/soak"
WATCHED = ("kube-apiserver", "kube-controller-manager", "etcd")
LEAK_PERCENT = 20  # Go heaps breathe; a leak grows cycle after cycle


def manifest() -> dict[str, Any]:
    """The seed's DaemonSet on exactly the soak's nodes; maxUnavailable 50% keeps each rollout to two waves."""
    import yaml

    daemonset = yaml.safe_load((ROOT / "playbooks/files/fluentd-daemonset.yaml").read_text())
    daemonset["metadata"]["namespace"] = NAMESPACE
    daemonset["metadata"]["annotations"] = {"kubernetes.io/change-cause": "soak start"}
    daemonset["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "50%"}}
    pod = daemonset["spec"]["template"]["spec"]
    pod["nodeSelector"] = {LABEL: "true"}
    pod["tolerations"].append({"key": TAINT, "operator": "Exists"})
    return daemonset


def module(env: dict[str, str], name: str, args: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(ansible_module(f"kubeops.daemonset.{name}", {"name": NAME, "namespace": NAMESPACE, **args}),
                          env=env, capture_output=True, text=True, check=False)  # fmt: skip
    return task_result(proc.stdout)


def history_numbers(config: str) -> list[int]:
    out = kubectl(config, "rollout", "history", f"ds/{NAME}", "-n", NAMESPACE)
    return [int(line.split()[0]) for line in out.splitlines()[2:] if line.strip()]


def rss() -> dict[str, float]:
    return {name: proc_status_mib(localcluster.pid_of(name), "VmRSS") for name in WATCHED}


def cycle(env: dict[str, str], config: str, number: int) -> list[str]:
    """One update and its undo; what went wrong (nothing: [])."""
    problems = []
    image = f"registry.example/fluentd:soak-{number}"
    update = module(env, "ds_update", {"images": {NAME: image}, "change_cause": f"soak {number}", "wait": True,
                                       "wait_timeout": 300})  # fmt: skip
    if update.get("failed") or not update["rollout"]["rollout_complete"]:
        problems.append(f"cycle {number}: update did not roll out: {update.get('msg')}")
        return problems
    updated = update["rollout"]["revision"]["number"]
    undo = module(env, "ds_undo", {"wait": True, "wait_timeout": 300})
    if undo.get("failed") or not undo["rollout"]["rollout_complete"]:
        problems.append(f"cycle {number}: undo did not roll out: {undo.get('msg')}")
        return problems
    numbers = history_numbers(config)
    if undo["new_revision"] != updated + 1 or max(numbers) != undo["new_revision"] or updated not in numbers:
        problems.append(f"cycle {number}: update said {updated}, undo {undo['new_revision']}, kubectl {numbers}")
    return problems


def final_checks(env: dict[str, str], config: str, nodes: int) -> list[str]:
    problems = []
    status = kubectl(config, "rollout", "status", f"ds/{NAME}", "-n", NAMESPACE, "--watch=false")
    if "successfully rolled out" not in status:
        problems.append(f"not rolled out at the end: {status.strip()}")
    diagnosis = module(env, "ds_diagnose", {})
    if not diagnosis.get("healthy"):
        problems.append(f"ds_diagnose at the end:\n{diagnosis.get('report') or diagnosis.get('msg')}")
    counters = diagnosis.get("counters") or {}
    if (counters.get("desired"), counters.get("updated"), counters.get("available")) != (nodes, nodes, nodes):
        problems.append(f"pods at the end: {counters}")
    listed = [entry["revision"] for entry in module(env, "ds_history", {}).get("revisions", [])]
    if listed != history_numbers(config):
        problems.append(f"ds_history lists {listed}, kubectl {history_numbers(config)}")
    return problems


def steady(samples: list[dict[str, float]], name: str) -> tuple[float, float, float]:
    """(median MiB of the tenth of the cycles after a warm-up tenth, of the last tenth, growth in percent)."""
    tenth = max(1, len(samples) // 10)
    early = statistics.median(sample[name] for sample in samples[tenth : 2 * tenth])
    late = statistics.median(sample[name] for sample in samples[-tenth:])
    return early, late, (late - early) / early * 100


def report(args: argparse.Namespace, samples: list[dict[str, float]], problems: list[str], seconds: float) -> None:
    print(f"\n### Soak: {args.cycles} update/undo cycles on {args.nodes} nodes ({time.strftime('%Y-%m-%d')})\n")
    command = f".venv/bin/python tests/benchmarks/bench_soak.py --cycles {args.cycles} --nodes {args.nodes}"
    per_cycle = seconds / args.cycles
    print(
        f"Command: `{command}` ({seconds / 60:.0f} min, {per_cycle:.1f} s per cycle: two ansible runs, two rollouts)\n"
    )
    tenth = max(1, args.cycles // 10)
    print(
        f"| component | RSS after cycle 1 | median, cycles {tenth + 1}-{2 * tenth} | median, last {tenth} cycles "
        "| growth | peak |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for name in WATCHED:
        early, late, growth = steady(samples, name)
        peak = max(sample[name] for sample in samples)
        print(f"| {name} | {samples[0][name]:.0f} MiB | {early:.0f} MiB | {late:.0f} MiB | {growth:+.1f}% | "
              f"{peak:.0f} MiB |")  # fmt: skip
    print(f"\nChecks: {len(problems)} problems" + ("" if problems else " - every rollout completed, every revision "
          "number agreed with `kubectl rollout history`, no stuck state at the end, memory steady") + ".")  # fmt: skip
    for problem in problems:
        print(f"- {problem}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--nodes", type=int, default=50)
    args = parser.parse_args()
    localcluster.down(quiet=True)
    subprocess.run([sys.executable, str(ROOT / "tests/cluster/localcluster.py"), "up"], check=True)
    config = str(localcluster.KUBECONFIG)
    env = ansible_env(config, **JSON_OUTPUT)
    began = time.monotonic()
    try:
        add_nodes(config, "soak", LABEL, args.nodes)
        kubectl(config, "create", "namespace", NAMESPACE)
        kubectl(config, "apply", "-f", "-", stdin=json.dumps(manifest()))
        kubectl(config, "rollout", "status", f"ds/{NAME}", "-n", NAMESPACE, "--timeout=600s")
        samples, problems = [], []
        for number in range(1, args.cycles + 1):
            problems += cycle(env, config, number)
            samples.append(rss())
        problems += final_checks(env, config, args.nodes)
        for name in ("kube-apiserver", "kube-controller-manager"):
            if steady(samples, name)[2] > LEAK_PERCENT:
                problems.append(f"{name} grew more than {LEAK_PERCENT}% after the warm-up")
    finally:
        seconds = time.monotonic() - began
        localcluster.down(quiet=True)
    report(args, samples, problems, seconds)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
