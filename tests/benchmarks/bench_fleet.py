"""Fleet delivery: kubeops.daemonset.fleet_update (playbooks/fleet_update.yml) against a bash loop of kubectl
commands doing the same waves, on the same local fleet in the same run, alternating which goes first; and what an
idle fleet costs.

- Update: one image change of the seed's DaemonSet (kube-system/fluentd-elasticsearch) across the fleet in the waves
  fleet_update.yml plans (fleet_waves [1, "25%", "100%"]: 1, 1, 1 of 3 clusters; 1, 1, 4 of 6), each cluster baked
  --bake seconds. Each run is a real change: the fleet alternates between two images. The kubectl side (KUBECTL_WAVES
  below) runs, for each wave, each of its clusters in parallel (`&` + `wait`, as Ansible's forks run a wave's
  clusters): `rollout history` (the revision before), `set image`, `rollout status`, restart counts, `sleep` the
  bake, restart counts again (a change fails the cluster and the fleet, and is undone to the recorded revision).
  Wall time and CPU (user + sys of the whole process tree: ansible-playbook and its workers and modules / bash and
  its kubectl children, from wait4), and the CPU the fleet's own processes used meanwhile.
- Idle (--idle S): with the fleet up and no rollout for S seconds, the memory (sum of RSS) and the CPU (cores on
  average, utime + stime deltas of /proc/PID/stat) of every process of the fleet: each component's pid file in
  $KUBEOPS_FLEET_DIR/cluster-*/pids/ and every process of its session (localcluster.py starts each in its own).

    .venv/bin/python tests/benchmarks/bench_fleet.py --clusters 3 6 [--rounds 2] [--bake 10] [--idle 60] [--keep]

The fleet is $KUBEOPS_FLEET_DIR (default .fleet): `fleet.py up --clusters N` for each size (a fleet already up is
reused, the clusters beyond N stopped), stopped at the end unless --keep. The collection is the one under
$ANSIBLE_COLLECTIONS_PATH (default .cache/collections, what `make collection` installs); ansible-playbook runs with
docs/examples/ee-ansible.cfg unless ANSIBLE_CONFIG is set. Prints a Markdown section for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import typing as t
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import KUBECTL, ROOT, Measured, kubectl, measured, proc_status_mib

sys.path.insert(0, str(ROOT / "tests" / "cluster"))
import bench_cluster
import localcluster

FLEET = Path(os.environ.get("KUBEOPS_FLEET_DIR", ROOT / ".fleet")).resolve()
COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH", str(ROOT / ".cache/collections"))
NAME, NAMESPACE = "fluentd-elasticsearch", "kube-system"
IMAGES = ("quay.io/fluentd_elasticsearch/fluentd:v2.6.0", "quay.io/fluentd_elasticsearch/fluentd:v2.5.2")
WAVES = [1, "25%", "100%"]
TIMEOUT = 300
TICK = os.sysconf("SC_CLK_TCK")

# $1 image, $2 bake seconds, then one argument per wave: its clusters' kubeconfigs, space-separated.
KUBECTL_WAVES = r"""
set -u
image=$1 bake=$2; shift 2
ds=fluentd-elasticsearch
restarts() {  # each pod's name and restart count: a replaced or restarted pod changes it
  $k get pods -l name=$ds \
    -o jsonpath='{range .items[*]}{.metadata.name}={.status.containerStatuses[*].restartCount} {end}'
}
one() {
  k="$KUBECTL --kubeconfig=$1 -n kube-system"
  rev=$($k rollout history ds/$ds | awk '$1 ~ /^[0-9]+$/ {r = $1} END {print r}')
  $k set image ds/$ds $ds=$image >/dev/null || return 1
  if $k rollout status ds/$ds --timeout=300s >/dev/null; then
    before=$(restarts); sleep "$bake"; after=$(restarts)
    [ "$before" = "$after" ] && { echo "$1: revision $rev -> updated, baked ${bake}s"; return 0; }
  fi
  echo "$1: failed, back to revision $rev" >&2
  $k rollout undo ds/$ds --to-revision="$rev" >/dev/null
  return 1
}
for wave in "$@"; do
  pids=()
  for kubeconfig in $wave; do one "$kubeconfig" & pids+=($!); done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  [ -z "${failed:-}" ] || { echo "wave failed: fleet halted" >&2; exit 1; }
done
"""


def fleet(*args: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "tests/cluster/fleet.py"), *args], check=True,
                   env=dict(os.environ, KUBEOPS_FLEET_DIR=str(FLEET)), stdout=subprocess.DEVNULL)  # fmt: skip


def kubeconfigs(clusters: int) -> list[str]:
    return [str(FLEET / f"cluster-{number}" / "kubeconfig") for number in range(1, clusters + 1)]


def planned_waves(clusters: int) -> list[list[str]]:
    """The waves fleet_update.yml runs: the collection's own planner, on the inventory's hosts."""
    sys.path.insert(0, COLLECTIONS.split(":")[0])
    from ansible_collections.kubeops.daemonset.plugins.module_utils._fleet import waves

    hosts = [f"cluster-{number}" for number in range(1, clusters + 1)]
    return waves(WAVES, hosts, {"all": hosts, "fleet": hosts})


def ansible_env() -> dict[str, str]:
    config = os.environ.get("ANSIBLE_CONFIG", str(ROOT / "docs/examples/ee-ansible.cfg"))
    return dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_LOCALHOST_WARNING="false",
                ANSIBLE_CONFIG=config)  # fmt: skip


def playbook(name: str, *extra: str) -> list[str]:
    ansible_playbook = str(Path(sys.executable).parent / "ansible-playbook")
    return [ansible_playbook, "-i", str(FLEET / "inventory.yml"), f"kubeops.daemonset.{name}", *extra]


def prepare(clusters: int) -> None:
    """The fleet up with the seed's DaemonSet on every cluster, all at the same image (unmeasured)."""
    fleet("up", "--clusters", str(clusters))
    done = subprocess.run(playbook("deploy", "-e", "target_hosts=fleet"), env=ansible_env(), capture_output=True,
                          text=True, check=False)  # fmt: skip
    if done.returncode:
        sys.exit(f"deploy.yml failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    for config in kubeconfigs(clusters):
        kubectl(config, "-n", NAMESPACE, "set", "image", f"ds/{NAME}", f"{NAME}={IMAGES[-1]}")
        kubectl(config, "-n", NAMESPACE, "rollout", "status", f"ds/{NAME}", f"--timeout={TIMEOUT}s")


def run_ansible(image: str, bake: int) -> Measured:
    extra = {"update_images": {NAME: image}, "fleet_bake_seconds": bake, "fleet_waves": WAVES}
    return measured(playbook("fleet_update", "-e", json.dumps(extra)), ansible_env())


def run_kubectl(clusters: int, image: str, bake: int) -> Measured:
    configs = dict(zip((f"cluster-{n}" for n in range(1, clusters + 1)), kubeconfigs(clusters)))
    waves = [" ".join(configs[host] for host in wave) for wave in planned_waves(clusters)]
    return measured(["bash", "-c", KUBECTL_WAVES, "kubectl-waves", image, str(bake), *waves],
                    dict(os.environ, KUBECTL=KUBECTL))  # fmt: skip


def check(side: str, run: Measured, clusters: int, image: str) -> None:
    """The run succeeded and left every cluster's rollout complete at IMAGE."""
    if run.returncode:
        sys.exit(f"{side} failed ({run.returncode}):\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}")
    for config in kubeconfigs(clusters):
        ds = json.loads(kubectl(config, "-n", NAMESPACE, "get", "ds", NAME, "-o", "json"))
        status = ds["status"]
        if ds["spec"]["template"]["spec"]["containers"][0]["image"] != image or status.get(
            "updatedNumberScheduled"
        ) != status.get("desiredNumberScheduled"):
            sys.exit(f"{side} left {config} not at {image}: {status}")


# ---------------------------------------------------------------- the fleet's processes


def session_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[3])
    except (OSError, ValueError, IndexError):
        return None


def fleet_processes() -> dict[int, str]:
    """Every process of the fleet and its component: each pid file's process and the rest of its session."""
    leaders = {}
    for pidfile in FLEET.glob("cluster-*/pids/*"):
        if pidfile.suffix != ".argv" and pidfile.name in localcluster.COMPONENTS:
            leaders[int(pidfile.read_text())] = pidfile.name
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            session = session_of(int(entry.name))
            if session in leaders:
                found[int(entry.name)] = leaders[session]
    return found


def cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime


def fleet_cpu() -> float:
    """CPU seconds the fleet's live processes have used so far."""
    return sum(cpu_ticks(pid) for pid in fleet_processes()) / TICK


class Idle(t.NamedTuple):
    processes: int
    rss: dict[str, float]  # MiB per component, summed over the clusters (mean of the samples)
    cores: dict[str, float]  # cores used on average per component, summed over the clusters
    load: float  # the 1-minute load average at its end


def idle(seconds: int, every: float = 5.0) -> Idle:
    """The fleet's memory (RSS sampled every EVERY s) and CPU over SECONDS with nothing to do."""
    processes = fleet_processes()
    began, ticks = time.monotonic(), {pid: cpu_ticks(pid) for pid in processes}
    samples: list[dict[str, float]] = []
    while True:
        sample: dict[str, float] = {}
        for pid, component in processes.items():
            sample[component] = sample.get(component, 0.0) + proc_status_mib(pid, "VmRSS")
        samples.append(sample)
        if time.monotonic() - began >= seconds:
            break
        time.sleep(min(every, max(seconds - (time.monotonic() - began), 0.0)))
    window = time.monotonic() - began
    cores: dict[str, float] = {}
    for pid, component in processes.items():
        cores[component] = cores.get(component, 0.0) + (cpu_ticks(pid) - ticks[pid]) / TICK / window
    rss = {component: statistics.mean(sample.get(component, 0.0) for sample in samples) for component in cores}
    return Idle(len(processes), rss, cores, os.getloadavg()[0])


# ---------------------------------------------------------------- the benchmark


class Row(t.NamedTuple):
    side: str
    run: Measured
    fleet_cpu: float
    load: float  # the 1-minute load average at its end: the machine is shared


def rounds(clusters: int, count: int, bake: int) -> list[Row]:
    """COUNT rounds of both sides, alternating which goes first; each run moves the fleet to the other image."""
    rows, flip = [], 0
    for number in range(count):
        for side in ("fleet_update.yml", "kubectl") if number % 2 == 0 else ("kubectl", "fleet_update.yml"):
            image, flip = IMAGES[flip % 2], flip + 1
            served = fleet_cpu()
            run = run_kubectl(clusters, image, bake) if side == "kubectl" else run_ansible(image, bake)
            rows.append(Row(side, run, fleet_cpu() - served, os.getloadavg()[0]))
            check(side, run, clusters, image)
            print(f"[bench] {clusters} clusters, round {number + 1}, {side}: {run.wall:.1f} s, CPU {run.cpu:.2f} s",
                  file=sys.stderr, flush=True)  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, nargs="+", default=[3, 6])
    parser.add_argument("--rounds", type=int, default=2, help="rounds of both sides per fleet size (0: idle only)")
    parser.add_argument("--bake", type=int, default=10, help="fleet_bake_seconds and the kubectl side's sleep")
    parser.add_argument("--idle", type=int, default=0, help="seconds of the idle fleet's measure (0: none)")
    parser.add_argument("--keep", action="store_true", help="leave the fleet up at the end")
    args = parser.parse_args()
    results: dict[int, tuple[list[Row], Idle | None]] = {}
    try:
        for clusters in args.clusters:
            prepare(clusters)
            rows = rounds(clusters, args.rounds, args.bake)
            results[clusters] = (rows, idle(args.idle) if args.idle else None)
    finally:
        if not args.keep:
            fleet("down")
    report(args, results)


def report(args: argparse.Namespace, results: dict[int, tuple[list[Row], Idle | None]]) -> None:
    sizes = " ".join(map(str, args.clusters))
    command = (f"KUBEOPS_FLEET_DIR={FLEET} .venv/bin/python tests/benchmarks/bench_fleet.py --clusters {sizes} "
               f"--rounds {args.rounds} --bake {args.bake} --idle {args.idle}")  # fmt: skip
    print(f"\n### Fleet update and idle fleet ({time.strftime('%Y-%m-%d')})\n")
    print(f"Machine: {bench_cluster.machine()}. Command: `{command}`\n")
    if args.rounds:
        report_updates(results, args.bake)
    if args.idle:
        report_idle(results, args.idle)


def report_updates(results: dict[int, tuple[list[Row], Idle | None]], bake: int) -> None:
    print(f"Update across the fleet, waves {json.dumps(WAVES)}, bake {bake} s (median of the rounds):\n")
    print("| clusters | waves | side | wall, s (rounds) | CPU, s (rounds) | CPU per cluster, s | fleet's CPU, s |"
          "\n| --- | --- | --- | --- | --- | --- | --- |")  # fmt: skip
    ratios = []
    for clusters, (rows, _idle) in results.items():
        sizes = "+".join(str(len(wave)) for wave in planned_waves(clusters))
        medians = {}
        for side in ("fleet_update.yml", "kubectl"):
            runs = [row for row in rows if row.side == side]
            wall, cpu = statistics.median(r.run.wall for r in runs), statistics.median(r.run.cpu for r in runs)
            medians[side] = (wall, cpu)
            served = statistics.median(r.fleet_cpu for r in runs)
            walls, cpus = (", ".join(f"{getattr(r.run, field):.2f}" for r in runs) for field in ("wall", "cpu"))
            print(f"| {clusters} | {sizes} | {side} | {wall:.1f} ({walls}) | {cpu:.2f} ({cpus}) | "
                  f"{cpu / clusters:.2f} | {served:.1f} |")  # fmt: skip
        (wall, cpu), (their_wall, their_cpu) = medians["fleet_update.yml"], medians["kubectl"]
        ratios.append(f"{clusters} clusters: wall {wall / their_wall:.2f}x, CPU {cpu / their_cpu:.1f}x")
    loads = [row.load for rows, _idle in results.values() for row in rows]
    print(f"\nRatio fleet_update.yml / kubectl (medians): {'; '.join(ratios)}. Load average (1 min) at the end of "
          f"the runs: {min(loads):.1f} - {max(loads):.1f} on {os.cpu_count()} cores.\n")  # fmt: skip


def report_idle(results: dict[int, tuple[list[Row], Idle | None]], seconds: int) -> None:
    print(f"Idle fleet over {seconds} s (RSS: mean of samples every 5 s; CPU: cores on average):\n")
    print("| clusters | processes | RSS, MiB | per cluster, MiB | CPU, cores | per cluster, cores | load average |"
          "\n| --- | --- | --- | --- | --- | --- | --- |")  # fmt: skip
    for clusters, (_rows, measure) in results.items():
        if measure:
            rss, cores = sum(measure.rss.values()), sum(measure.cores.values())
            print(f"| {clusters} | {measure.processes} | {rss:.0f} | {rss / clusters:.0f} | {cores:.3f} | "
                  f"{cores / clusters:.3f} | {measure.load:.1f} |")  # fmt: skip
    print("\nPer component, per cluster (RSS MiB / cores):\n")
    sizes = [clusters for clusters, (_rows, measure) in results.items() if measure]
    print("| component | " + " | ".join(f"{n} clusters" for n in sizes) + " |\n| --- |" + " --- |" * len(sizes))
    for component in localcluster.COMPONENTS:
        cells = []
        for clusters in sizes:
            measure = results[clusters][1]
            assert measure is not None
            cells.append(
                f"{measure.rss.get(component, 0) / clusters:.0f} / {measure.cores.get(component, 0) / clusters:.3f}"
            )
        print(f"| {component} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
