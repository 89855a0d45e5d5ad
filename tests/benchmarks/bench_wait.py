"""Waiting for a rollout: kubeops.daemonset.ds_rollout_wait, kubernetes.core's k8s_info wait and
`kubectl rollout status`, on the same rolling updates of the same cluster, in one run.

- Return lag: seconds from the moment the DaemonSet's status first meets kubectl's completion rule (seen by an
  independent watch) to each waiter's exit, all three started together on the same update.
- Progress-line latency: for each kubectl message both print, how much later ds_rollout_wait printed it than
  kubectl (kubernetes.core prints none).
- CPU per minute of waiting: the CPU of each waiter's whole process tree while it waits, less what the same waiter
  costs on a finished rollout (start-up), per minute of the difference in wall time; with 1 waiter and with
  --waiters at once (inventory hosts of one `ansible` run for the Ansible tools, processes for kubectl).

    .venv/bin/python tests/benchmarks/bench_wait.py [--nodes 20] [--waiters 20] [--poll-interval 0.05]

The DaemonSet runs on NODES KWOK nodes of its own with maxUnavailable 1 and minReadySeconds 2, so each update
takes about a minute. --poll-interval gives the Ansible runs that ansible.cfg internal_poll_interval (Ansible's
default is 0.001 s: its controller checks its workers every millisecond while a task runs, whatever the task is).
Uses KUBECONFIG's cluster (default .cluster/kubeconfig). Prints a Markdown section for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from _common import ROOT, TAINT, Measured, add_nodes, ansible_env, kubectl, kubectl_cmd, measured, timed_lines

sys.path.insert(0, str(ROOT / "tests" / "cluster"))
import bench_cluster

NAMESPACE = "bench-wait"
NAME = "fluentd-elasticsearch"
LABEL = "kubeops.bench/wait"
IMAGES = ("quay.io/fluentd_elasticsearch/fluentd:v2.6.0", "quay.io/fluentd_elasticsearch/fluentd:v2.7.0")
TOOLS = ("kubeops.daemonset.ds_rollout_wait", "kubernetes.core.k8s_info wait", "kubectl rollout status")


def manifest() -> dict:
    ds = yaml.safe_load((ROOT / "playbooks/files/fluentd-daemonset.yaml").read_text())
    ds["metadata"]["namespace"] = NAMESPACE
    ds["spec"]["minReadySeconds"] = 2
    ds["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}
    ds["spec"]["template"]["spec"]["tolerations"].append({"key": TAINT, "operator": "Exists"})
    ds["spec"]["template"]["spec"]["nodeSelector"] = {LABEL: "true"}
    return ds


class Bench:
    def __init__(self, kubeconfig: str, waiters: int, poll_interval: float | None, folder: Path) -> None:
        self.kubeconfig, self.flip = kubeconfig, 0
        self.env = ansible_env(kubeconfig, ANSIBLE_STDOUT_CALLBACK="default")
        if poll_interval:
            (folder / "ansible.cfg").write_text(f"[defaults]\ninternal_poll_interval = {poll_interval}\n")
            self.env["ANSIBLE_CONFIG"] = str(folder / "ansible.cfg")
        self.inventory = folder / "hosts.ini"
        hosts = "\n".join(f"waiter-{n} ansible_connection=local ansible_python_interpreter={sys.executable}"
                          for n in range(1, waiters + 1))  # fmt: skip
        self.inventory.write_text(f"[waiters]\n{hosts}\n")

    def command(self, tool: str, hosts: int) -> list[str]:
        """The waiter TOOL for one host (localhost) or for the inventory's hosts, with a 600 s timeout."""
        ansible = [str(Path(sys.executable).parent / "ansible")]
        local = ["localhost", "-c", "local", "-i", "localhost,"]
        target = ["waiters", "-i", str(self.inventory), "-f", str(hosts)] if hosts > 1 else local
        if tool == TOOLS[0]:
            args = {"name": NAME, "namespace": NAMESPACE, "timeout": 600}
            return [*ansible, *target, "-m", "kubeops.daemonset.ds_rollout_wait", "-a", json.dumps(args)]
        if tool == TOOLS[1]:
            args = {"kind": "DaemonSet", "name": NAME, "namespace": NAMESPACE, "wait": True, "wait_timeout": 600}
            return [*ansible, *target, "-m", "kubernetes.core.k8s_info", "-a", json.dumps(args)]
        return kubectl_cmd(self.kubeconfig, "-n", NAMESPACE, "rollout", "status", f"ds/{NAME}", "--timeout=600s")

    def update(self) -> int:
        """Start a rolling update; the generation that completes it."""
        generation = json.loads(kubectl(self.kubeconfig, "-n", NAMESPACE, "get", "ds", NAME, "-o", "json"))
        self.flip += 1
        kubectl(self.kubeconfig, "-n", NAMESPACE, "set", "image", f"ds/{NAME}", f"{NAME}={IMAGES[self.flip % 2]}")
        return generation["metadata"]["generation"] + 1

    def run(self, tool: str, hosts: int) -> Measured:
        """TOOL with HOSTS waiters; kubectl's waiters are separate processes, measured together."""
        if tool != TOOLS[2] or hosts == 1:
            return measured(self.command(tool, hosts), self.env)
        runs: list[Measured] = []
        threads = [threading.Thread(target=lambda: runs.append(measured(self.command(tool, 1), self.env)))
                   for _waiter in range(hosts)]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return Measured(max(r.wall for r in runs), sum(r.cpu for r in runs), max(r.returncode for r in runs), "", "")


def observe_completion(kubeconfig: str, generation: int, seen: dict) -> None:
    """An independent watch: when the status first meets kubectl's rule for GENERATION."""
    proc = subprocess.Popen(kubectl_cmd(kubeconfig, "-n", NAMESPACE, "get", "ds", NAME, "--watch", "-o", "json"),
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    decoder, buffer = json.JSONDecoder(), ""
    for line in proc.stdout or ():
        buffer += line
        try:
            ds, _end = decoder.raw_decode(buffer.strip())
        except json.JSONDecodeError:
            continue
        buffer = ""
        status, desired = ds.get("status", {}), ds.get("status", {}).get("desiredNumberScheduled", 0)
        if (
            ds["metadata"]["generation"] >= generation
            and status.get("observedGeneration", 0) >= generation
            and status.get("updatedNumberScheduled", 0) >= desired
            and status.get("numberAvailable", 0) >= desired
        ):
            seen["done"] = time.monotonic()
            break
    proc.terminate()


def race(bench: Bench) -> tuple[dict[str, float], list[float], dict[str, Measured]]:
    """The three waiters on one update: return lags, progress-line latencies, and each one's run."""
    generation, seen = bench.update(), {}
    observer = threading.Thread(target=observe_completion, args=(bench.kubeconfig, generation, seen))
    observer.start()
    lines: dict[str, list[tuple[float, str]]] = {TOOLS[0]: [], TOOLS[2]: []}
    began, procs, readers = time.monotonic(), {}, []
    for tool in TOOLS:
        # ds_rollout_wait prints its lines on stderr, kubectl on stdout; what is not read goes nowhere
        progress_on = {TOOLS[0]: "stderr", TOOLS[2]: "stdout"}.get(tool)
        procs[tool] = subprocess.Popen(
            bench.command(tool, 1), env=bench.env, text=True,
            stdout=subprocess.PIPE if progress_on == "stdout" else subprocess.DEVNULL,
            stderr=subprocess.PIPE if progress_on == "stderr" else subprocess.DEVNULL,
        )  # fmt: skip
        if progress_on:
            readers.append(timed_lines(procs[tool], getattr(procs[tool], progress_on), lines[tool]))
    usage, returned = {}, {}
    while len(returned) < len(procs):  # each exit seen within 10 ms, whichever comes first
        for tool, proc in procs.items():
            if tool not in returned:
                pid, _status, rusage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    returned[tool], proc.returncode = time.monotonic(), 0
                    usage[tool] = Measured(returned[tool] - began, rusage.ru_utime + rusage.ru_stime, 0, "", "")
        time.sleep(0.01)
    observer.join(timeout=600)
    for reader in readers:
        reader.join(timeout=5)
    kubectl_at: dict[str, float] = {}
    for at, line in lines[TOOLS[2]]:  # kubectl prints a line per event, repeated ones too: the first counts
        kubectl_at.setdefault(line, at)
    latencies = [at - kubectl_at[line] for at, line in lines[TOOLS[0]] if line in kubectl_at]
    return {tool: at - seen["done"] for tool, at in returned.items()}, latencies, usage


def per_minute(waiting: Measured, idle: Measured) -> float:
    return (waiting.cpu - idle.cpu) / max(waiting.wall - idle.wall, 1e-9) * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--waiters", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--poll-interval", type=float)
    args = parser.parse_args()
    kubeconfig = os.environ.get("KUBECONFIG") or str(ROOT / ".cluster/kubeconfig")
    subprocess.run(["make", "-s", "collection"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    lags: dict[str, list[float]] = {}
    latencies: list[float] = []
    cpu: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        bench = Bench(kubeconfig, args.waiters, args.poll_interval, Path(folder))
        try:
            kubectl(kubeconfig, "create", "ns", NAMESPACE)
            add_nodes(kubeconfig, "bench-wait", LABEL, args.nodes)
            kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(manifest()))
            kubectl(kubeconfig, "-n", NAMESPACE, "rollout", "status", f"ds/{NAME}", "--timeout=600s")
            for _round in range(args.rounds):
                idle = {(tool, hosts): bench.run(tool, hosts) for tool in TOOLS for hosts in (1, args.waiters)}
                round_lags, round_latencies, usage = race(bench)
                latencies += round_latencies
                for tool in TOOLS:
                    lags.setdefault(tool, []).append(round_lags[tool])
                    cpu.setdefault((tool, 1), []).append(per_minute(usage[tool], idle[(tool, 1)]))
                    bench.update()
                    many = bench.run(tool, args.waiters)
                    cpu.setdefault((tool, args.waiters), []).append(per_minute(many, idle[(tool, args.waiters)]))
        finally:
            # waited for: a rerun right after creates the namespace again
            subprocess.run(kubectl_cmd(kubeconfig, "delete", "ns", NAMESPACE, "--timeout=120s"), capture_output=True,
                           check=False)  # fmt: skip
            subprocess.run(kubectl_cmd(kubeconfig, "delete", "node", "-l", LABEL, "--wait=false"), capture_output=True,
                           check=False)  # fmt: skip
    report(args, lags, latencies, cpu)


def report(args: argparse.Namespace, lags: dict, latencies: list[float], cpu: dict) -> None:
    config = f"internal_poll_interval = {args.poll_interval}" if args.poll_interval else "Ansible's defaults"
    option = f" --poll-interval {args.poll_interval}" if args.poll_interval else ""
    print(f"\n### Waiting for a rollout ({time.strftime('%Y-%m-%d')}, {args.nodes} nodes, {config})\n")
    print(f"Machine: {bench_cluster.machine()}. Command: `.venv/bin/python tests/benchmarks/bench_wait.py --nodes "
          f"{args.nodes} --waiters {args.waiters} --rounds {args.rounds}{option}`\n")  # fmt: skip
    base = statistics.median(lags[TOOLS[1]])
    print("| waiter | return after completion, s | ratio to k8s_info | CPU-s per minute waiting, 1 waiter | "
          f"{args.waiters} at once |\n| --- | --- | --- | --- | --- |")  # fmt: skip
    for tool in TOOLS:
        lag = statistics.median(lags[tool])
        ratio = f"{lag / base:.2f}" if base > 0 else "-"
        print(f"| {tool} | {lag:+.2f} | {ratio} | {statistics.median(cpu[(tool, 1)]):.2f} | "
              f"{statistics.median(cpu[(tool, args.waiters)]):.2f} |")  # fmt: skip
    if latencies:
        print(f"\nProgress lines: ds_rollout_wait printed each of kubectl's {len(latencies)} lines "
              f"{statistics.median(latencies):+.3f} s after kubectl (median; at most {max(latencies):+.3f} s). "
              "kubernetes.core's wait prints no progress lines.")  # fmt: skip


if __name__ == "__main__":
    main()
