"""Benchmark of the local cluster at scale: build times, bring-up, a DaemonSet on every node, a 10% rolling update,
and the peak memory of each component. Prints a Markdown section for docs/benchmarks.md.

    .venv/bin/python tests/benchmarks/bench_cluster.py --nodes 1000 [--cold-build]

It runs its own cluster in .cache/bench-cluster (beside any cluster under .cluster/) and stops it at the end.
--cold-build also compiles every component with an empty Go build cache (the module cache is kept).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".cache" / "bench-cluster"
os.environ["KUBEOPS_CLUSTER_DIR"] = str(STATE)
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
sys.path.insert(0, str(Path(__file__).parent))
import localcluster  # noqa: E402  (reads KUBEOPS_CLUSTER_DIR at import)
from _common import proc_status_mib  # noqa: E402

SEED_V2 = ROOT / "playbooks" / "files" / "fluentd-daemonset-update.yaml"
NAMESPACE = "bench"


def timed(*cmd: str, env: dict[str, str] | None = None) -> float:
    began = time.monotonic()
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    return time.monotonic() - began


def build_times(cold: bool) -> dict[str, float]:
    """Warm: relink after touching the sources (Go caches full). Cold: the same into an empty build cache."""
    times = {}
    for main in ROOT.glob("tests/cluster/*/main.go"):
        main.touch()
    times["warm build (relink all components)"] = timed("make", "-s", "binaries")
    if cold:
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, GOCACHE=cache)
            for main in ROOT.glob("tests/cluster/*/main.go"):
                main.touch()
            (ROOT / ".cache/bin/kwok").unlink()
            times["cold build (empty Go build cache)"] = timed("make", "-s", "binaries", env=env)
    return times


def kubectl(*args: str, stdin: str | None = None) -> str:
    return localcluster.kubectl(*args, stdin=stdin)


def rollout_seconds(timeout: int) -> float:
    began = time.monotonic()
    kubectl("rollout", "status", "ds/fluentd-elasticsearch", "-n", NAMESPACE, f"--timeout={timeout}s")
    return time.monotonic() - began


def peak_rss_mib() -> dict[str, float]:
    """VmHWM (peak resident set) of each component since it started."""
    return {name: proc_status_mib(localcluster.pid_of(name), "VmHWM") for name in localcluster.COMPONENTS}


def daemonset_manifest() -> dict:
    import yaml

    manifest = yaml.safe_load(SEED_V2.read_text())
    manifest["metadata"]["namespace"] = NAMESPACE
    manifest["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%"}}
    # 1000 nodes at the default 100m cpu request fit; keep the request so the scheduler does real fitting.
    return manifest


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor()
    )  # fmt: skip
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB RAM, {platform.system()} {platform.release()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--cold-build", action="store_true")
    parser.add_argument("--skip-build", action="store_true")
    args = parser.parse_args()

    results: dict[str, str] = {}
    if not args.skip_build:
        results.update({k: f"{v:.1f} s" for k, v in build_times(args.cold_build).items()})
    localcluster.down(quiet=True)
    began = time.monotonic()
    subprocess.run([sys.executable, str(ROOT / "tests/cluster/localcluster.py"), "up", "--nodes", str(args.nodes)],
                   check=True, env=dict(os.environ))  # fmt: skip
    results[f"cluster-up, {args.nodes} workers + 1 control plane"] = f"{time.monotonic() - began:.1f} s"
    try:
        kubectl("create", "namespace", NAMESPACE)
        manifest = daemonset_manifest()
        kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
        results[f"DaemonSet available on all {args.nodes + 1} nodes"] = f"{rollout_seconds(1800):.1f} s"
        image = "quay.io/fluentd_elasticsearch/fluentd:v2.6.0"
        kubectl("set", "image", "ds/fluentd-elasticsearch", f"fluentd-elasticsearch={image}", "-n", NAMESPACE)
        results["rolling update, maxUnavailable 10%"] = f"{rollout_seconds(1800):.1f} s"
        results.update({f"peak RSS {name}": f"{mib:.0f} MiB" for name, mib in peak_rss_mib().items()})
    finally:
        localcluster.down(quiet=True)

    print(f"\n### Local cluster, {args.nodes} nodes ({time.strftime('%Y-%m-%d')})\n")
    print(f"Machine: {machine()}. Command: `.venv/bin/python tests/benchmarks/bench_cluster.py --nodes {args.nodes}"
          f"{' --cold-build' if args.cold_build else ''}`\n")  # fmt: skip
    print("| measure | value |\n| --- | --- |")
    for key, value in results.items():
        print(f"| {key} | {value} |")


if __name__ == "__main__":
    main()
