"""playbooks/lifecycle.yml (the documented workflow end to end) against the same workflow typed as kubectl
commands, on the same cluster in the same run: wall time and CPU (every process of each side, Ansible's workers
included), alternating which goes first.

The kubectl side is the seed's commands: check the live strategy and the manifest's (go-template), apply, watch,
apply the update, watch, set image, watch, history, history --revision=1, undo --to-revision=2, watch.

    .venv/bin/python tests/benchmarks/bench_lifecycle.py [--rounds 3] [--poll-interval 0.05]

--poll-interval runs the playbook with that ansible.cfg internal_poll_interval (Ansible's default: 0.001 s).
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
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from _common import KUBECTL, ROOT, Measured, ansible_env, measured

sys.path.insert(0, str(ROOT / "tests" / "cluster"))
import bench_cluster
import localcluster

NAME = "fluentd-elasticsearch"
SEED = {version: ROOT / "playbooks" / "files" / name
        for version, name in ((1, "fluentd-daemonset.yaml"), (2, "fluentd-daemonset-update.yaml"))}  # fmt: skip
IMAGE = "quay.io/fluentd_elasticsearch/fluentd:v2.6.0"
STRATEGY = '{{.spec.updateStrategy.type}}{{"\\n"}}'


def seed_in(namespace: str, version: int, folder: Path) -> Path:
    """The seed's manifest moved to NAMESPACE (kubectl refuses -n with another namespace in the file)."""
    manifest = yaml.safe_load(SEED[version].read_text())
    manifest["metadata"]["namespace"] = namespace
    path = folder / f"{namespace}-v{version}.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return path


def kubectl_workflow(kubeconfig: str, namespace: str, folder: Path) -> Measured:
    """The seed's commands one after the other; wall and CPU summed."""
    v1, v2 = seed_in(namespace, 1, folder), seed_in(namespace, 2, folder)
    status = ["rollout", "status", f"ds/{NAME}", "--timeout=300s"]
    commands = [
        ["get", "ds", NAME, "-o", f"go-template={STRATEGY}", "--ignore-not-found"],
        ["apply", "-f", str(v1), "--dry-run=client", "-o", f"go-template={STRATEGY}"],
        ["apply", "-f", str(v1)], status,
        ["apply", "-f", str(v2)], status,
        ["set", "image", f"ds/{NAME}", f"{NAME}={IMAGE}"], status,
        ["rollout", "history", f"ds/{NAME}"], ["rollout", "history", f"ds/{NAME}", "--revision=1"],
        ["rollout", "undo", f"ds/{NAME}", "--to-revision=2"], status,
    ]  # fmt: skip
    runs = [measured([KUBECTL, f"--kubeconfig={kubeconfig}", "-n", namespace, *args]) for args in commands]
    failed = [run for run in runs if run.returncode]
    if failed:
        sys.exit(f"kubectl failed: {failed[0].stderr}")
    return Measured(sum(r.wall for r in runs), sum(r.cpu for r in runs), 0, "", "")


def lifecycle(env: dict[str, str], namespace: str) -> Measured:
    run = measured([str(Path(sys.executable).parent / "ansible-playbook"), "kubeops.daemonset.lifecycle",
                    "-e", json.dumps({"daemonset_namespace": namespace})], env)  # fmt: skip
    if run.returncode:
        sys.exit(f"lifecycle.yml failed ({run.returncode}):\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}")
    return run


def fresh_namespace(kubeconfig: str, namespace: str) -> None:
    kubectl = [KUBECTL, f"--kubeconfig={kubeconfig}"]
    subprocess.run([*kubectl, "delete", "namespace", namespace, "--wait=true", "--ignore-not-found"], check=True,
                   capture_output=True)  # fmt: skip
    subprocess.run([*kubectl, "create", "namespace", namespace], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--poll-interval", type=float, help="ansible.cfg internal_poll_interval for the playbook")
    args = parser.parse_args()
    subprocess.run(["make", "-s", "collection"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig:
        subprocess.run([sys.executable, str(ROOT / "tests/cluster/localcluster.py"), "up"], check=True)
        kubeconfig = str(localcluster.KUBECONFIG)
    with tempfile.TemporaryDirectory() as folder:
        env = ansible_env(kubeconfig, ANSIBLE_STDOUT_CALLBACK="default")
        if args.poll_interval:
            (Path(folder) / "ansible.cfg").write_text(f"[defaults]\ninternal_poll_interval = {args.poll_interval}\n")
            env["ANSIBLE_CONFIG"] = str(Path(folder) / "ansible.cfg")
        ours, theirs = [], []
        for number in range(args.rounds):
            for side in ("ansible", "kubectl") if number % 2 == 0 else ("kubectl", "ansible"):
                namespace = f"bench-lifecycle-{side}"
                fresh_namespace(kubeconfig, namespace)
                if side == "ansible":
                    ours.append(lifecycle(env, namespace))
                else:
                    theirs.append(kubectl_workflow(kubeconfig, namespace, Path(folder)))
        for side in ("ansible", "kubectl"):
            subprocess.run([KUBECTL, f"--kubeconfig={kubeconfig}", "delete", "namespace", f"bench-lifecycle-{side}",
                            "--wait=false"], capture_output=True, check=False)  # fmt: skip
    report(args, ours, theirs)


def report(args: argparse.Namespace, ours: list[Measured], theirs: list[Measured]) -> None:
    def median(runs: list[Measured], field: str) -> float:
        return statistics.median(getattr(run, field) for run in runs)

    config = f"internal_poll_interval = {args.poll_interval}" if args.poll_interval else "Ansible's defaults"
    print(f"\n### lifecycle.yml against the seed's kubectl commands ({time.strftime('%Y-%m-%d')}, {config})\n")
    option = f" --poll-interval {args.poll_interval}" if args.poll_interval else ""
    print(f"Machine: {bench_cluster.machine()}. Command: `.venv/bin/python tests/benchmarks/bench_lifecycle.py "
          f"--rounds {args.rounds}{option}`\n")  # fmt: skip
    print("| run | lifecycle.yml wall, s | CPU, s | kubectl wall, s | CPU, s |\n| --- | --- | --- | --- | --- |")
    for number, (mine, kubectl) in enumerate(zip(ours, theirs), 1):
        print(f"| {number} | {mine.wall:.1f} | {mine.cpu:.2f} | {kubectl.wall:.1f} | {kubectl.cpu:.2f} |")
    wall, cpu = median(ours, "wall"), median(ours, "cpu")
    print(f"| median | {wall:.1f} | {cpu:.2f} | {median(theirs, 'wall'):.1f} | {median(theirs, 'cpu'):.2f} |")
    print(f"\nRatio (median): wall {wall / median(theirs, 'wall'):.2f}x, CPU {cpu / median(theirs, 'cpu'):.1f}x "
          f"({cpu:.2f} s of CPU for the playbook).")  # fmt: skip


if __name__ == "__main__":
    main()
