"""The local cluster behaves like Kubernetes where the collection depends on it (checked with the real kubectl)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import realnode  # tests/conftest.py puts tests/cluster on sys.path

WORKERS = {"kwok-worker-1", "kwok-worker-2", "kwok-worker-3"}


def test_nodes_look_like_real_ones(kubectl):
    nodes = json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"]
    by_name = {node["metadata"]["name"]: node for node in nodes}
    assert WORKERS | {"kwok-control-plane"} <= set(by_name)
    control_plane = by_name["kwok-control-plane"]
    assert {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"} in control_plane["spec"]["taints"]
    assert "node-role.kubernetes.io/control-plane" in control_plane["metadata"]["labels"]
    worker = by_name["kwok-worker-1"]
    assert worker["metadata"]["labels"]["kubernetes.io/hostname"] == "kwok-worker-1"
    assert worker["metadata"]["labels"]["kubernetes.io/os"] == "linux"
    assert worker["status"]["allocatable"]["cpu"] == "4"
    ready = [c for c in worker["status"]["conditions"] if c["type"] == "Ready"]
    assert ready[0]["status"] == "True"


def test_seed_rollout_then_update_to_every_node(
    kubectl, namespace, seed_daemonset, apply_manifest, wait_rollout, pods_by_node
):
    apply_manifest(seed_daemonset(namespace, version=1))
    wait_rollout(namespace)
    assert set(pods_by_node(namespace)) == WORKERS  # only tolerates the old master taint

    apply_manifest(seed_daemonset(namespace, version=2))
    status = kubectl("rollout", "status", "ds/fluentd-elasticsearch", "--timeout=120s", namespace=namespace).stdout
    assert 'daemon set "fluentd-elasticsearch" successfully rolled out' in status
    assert set(pods_by_node(namespace)) == WORKERS | {"kwok-control-plane"}


def test_missing_image_stalls_with_pull_errors(
    kubectl, namespace, seed_daemonset, apply_manifest, wait_rollout, pods_by_node, eventually
):
    apply_manifest(seed_daemonset(namespace))
    wait_rollout(namespace)
    kubectl("set", "image", "ds/fluentd-elasticsearch", "fluentd-elasticsearch=example.invalid/does-not-exist:1",
            namespace=namespace)  # fmt: skip

    def waiting_reasons() -> set[str]:
        reasons = set()
        for pod in pods_by_node(namespace).values():
            for status in pod["status"].get("containerStatuses", []):
                reasons.add(status["state"].get("waiting", {}).get("reason"))
        return reasons & {"ErrImagePull", "ImagePullBackOff"}

    assert eventually(waiting_reasons)
    stalled = kubectl("rollout", "status", "ds/fluentd-elasticsearch", "--timeout=3s", check=False, namespace=namespace)
    assert stalled.returncode == 1
    assert "timed out waiting for the condition" in stalled.stderr
    events = kubectl("get", "events", "--field-selector=type=Warning", "-o", "json", namespace=namespace).stdout
    assert any(event["reason"] == "Failed" for event in json.loads(events)["items"])


def test_crashloop_image_never_becomes_ready(namespace, seed_daemonset, apply_manifest, pods_by_node, eventually):
    apply_manifest(seed_daemonset(namespace, image="example.invalid/crashloop:1"))

    def restarting() -> bool:
        """As a kubelet reports a crash loop: restarted, the last run exited 1, not ready (the state is mostly
        terminated with reason Error, waiting: CrashLoopBackOff only just before a restart)."""
        for pod in pods_by_node(namespace).values():
            for status in pod["status"].get("containerStatuses", []):
                last_exit = status.get("lastState", {}).get("terminated", {}).get("exitCode")
                if status["restartCount"] and last_exit == 1:
                    return not status["ready"]
        return False

    assert eventually(restarting)


def test_restart_once_image_restarts_once_and_stays_ready(
    namespace, seed_daemonset, apply_manifest, wait_rollout, pods_by_node, eventually
):
    apply_manifest(seed_daemonset(namespace, image="example.invalid/restart-once:after-2s"))
    wait_rollout(namespace)

    def restarted() -> list[dict]:
        return [status for pod in pods_by_node(namespace).values()
                for status in pod["status"].get("containerStatuses", []) if status["restartCount"]]  # fmt: skip

    statuses = eventually(restarted, timeout=30)
    assert statuses, "no container restarted"
    assert statuses[0]["lastState"]["terminated"]["reason"] == "Error"
    assert statuses[0]["ready"] is True and "running" in statuses[0]["state"]
    time.sleep(4)  # and only once
    assert {status["restartCount"] for status in restarted()} == {1}


def test_oomkilled_image_is_oom_killed_then_restarts(
    namespace, seed_daemonset, apply_manifest, pods_by_node, eventually
):
    apply_manifest(seed_daemonset(namespace, image="example.invalid/oomkilled:after-1s"))
    seen: set[tuple[str, str, int]] = set()  # (where, reason, restartCount) over every look

    def both() -> bool:
        for pod in pods_by_node(namespace).values():
            for status in pod["status"].get("containerStatuses", []):
                for where in ("state", "lastState"):
                    reason = ((status.get(where) or {}).get("terminated") or {}).get("reason")
                    if reason:
                        seen.add((where, reason, status["restartCount"]))
        return {("state", "OOMKilled", 0), ("lastState", "OOMKilled", 1)} <= seen

    assert eventually(both, timeout=30, interval=0.1), seen  # terminated OOMKilled for a second, then restarted


def test_scheduler_reports_insufficient_cpu(kubectl, namespace, seed_daemonset, apply_manifest, test_node, eventually):
    tiny = test_node(cpu="100m", memory="1Gi", pods="10")
    manifest = seed_daemonset(namespace, tolerate_test_nodes=True)
    manifest["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "500m"}}
    apply_manifest(manifest)

    def insufficient_cpu() -> bool:
        events = kubectl("get", "events", "--field-selector=reason=FailedScheduling", "-o", "json",
                         namespace=namespace).stdout  # fmt: skip
        return any("Insufficient cpu" in e["message"] for e in json.loads(events)["items"])

    assert eventually(insufficient_cpu)
    pods = json.loads(kubectl("get", "pods", "-o", "json", namespace=namespace).stdout)["items"]
    blocked = [pod for pod in pods if tiny in json.dumps(pod["spec"].get("affinity", {}))]
    assert [pod["status"]["phase"] for pod in blocked] == ["Pending"]  # the scheduler cannot bind it


def test_history_and_undo_roll_revisions_forward(
    kubectl, namespace, seed_daemonset, apply_manifest, wait_rollout, pods_by_node
):
    apply_manifest(seed_daemonset(namespace, version=1, change_cause="create v1"))
    wait_rollout(namespace)
    apply_manifest(seed_daemonset(namespace, version=2, change_cause="update to v2"))
    wait_rollout(namespace)
    history = kubectl("rollout", "history", "ds/fluentd-elasticsearch", namespace=namespace).stdout
    assert [line.split(None, 1) for line in history.splitlines()[2:] if line.strip()] == [
        ["1", "create v1"],
        ["2", "update to v2"],
    ]
    undo = kubectl("rollout", "undo", "ds/fluentd-elasticsearch", "--to-revision=1", namespace=namespace)
    assert "rolled back" in undo.stdout
    wait_rollout(namespace)
    revisions = json.loads(kubectl("get", "controllerrevisions", "-o", "json", namespace=namespace).stdout)["items"]
    assert sorted(r["revision"] for r in revisions) == [2, 3]  # revision 1 became 3
    assert set(pods_by_node(namespace)) == WORKERS  # back to v1: no control-plane toleration


def test_not_ready_node(kubectl, test_node, eventually):
    name = test_node(not_ready=True)

    def ready_status() -> str | None:
        node = json.loads(kubectl("get", "node", name, "-o", "json").stdout)
        return next((c["status"] for c in node["status"].get("conditions", []) if c["type"] == "Ready"), None)

    assert eventually(lambda: ready_status() == "False", timeout=30)
    kubectl("label", "node", name, "kubeops.test/not-ready-")
    assert eventually(lambda: ready_status() == "True", timeout=30)


@pytest.fixture
def short_tmp_path() -> Iterator[Path]:
    """A temporary directory with a short path: the real node's unix sockets live in it (108 bytes at most)."""
    path = Path(tempfile.mkdtemp(prefix="kubeops-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_cluster_up_is_idempotent_and_down_leaves_nothing(short_tmp_path, running):
    """A second, one-node cluster beside the one under test: up twice changes nothing; down stops everything."""
    env = dict(os.environ, KUBEOPS_CLUSTER_DIR=str(short_tmp_path / "cluster"))
    launcher = [sys.executable, str(Path(__file__).parents[1] / "cluster" / "localcluster.py")]
    try:
        subprocess.run([*launcher, "up", "--nodes", "1"], env=env, check=True, capture_output=True, text=True)
        pids = {path.name: path.read_text() for path in (short_tmp_path / "cluster" / "pids").iterdir()}
        again = subprocess.run([*launcher, "up", "--nodes", "1"], env=env, check=True, capture_output=True, text=True)
        assert "already up" in again.stdout
        assert {path.name: path.read_text() for path in (short_tmp_path / "cluster" / "pids").iterdir()} == pids
    finally:
        subprocess.run([*launcher, "down"], env=env, check=True, capture_output=True)
    assert not (short_tmp_path / "cluster").exists()
    assert not [pid for pid in pids.values() if running(pid)]


def test_down_removes_what_the_real_node_left_on_the_host(short_tmp_path, running):
    """A second cluster with a real node running a pod (a network namespace, an emptyDir in memory, a projected
    token: mounts, a cgroup, a shim, a CNI cache entry, a log link). After down nothing of it is left on the host."""
    state = short_tmp_path / "cluster"
    env = dict(os.environ, KUBEOPS_CLUSTER_DIR=str(state))
    launcher = [sys.executable, str(Path(__file__).parents[1] / "cluster" / "localcluster.py")]
    node = realnode.RealNode(state, Path(__file__).parents[2] / ".cache" / "bin", Path())
    try:
        subprocess.run([*launcher, "up", "--nodes", "1", "--real-nodes", "1"], env=env, check=True, capture_output=True)
        kubectl = [str(node.bin / "kubectl"), f"--kubeconfig={state / 'kubeconfig'}"]
        subprocess.run([*kubectl, "apply", "-f", "-"], input=json.dumps(REAL_POD), text=True, check=True)
        subprocess.run([*kubectl, "wait", "pod/leftovers", "--for=condition=Ready", "--timeout=60s"], check=True)
        pids = {path.name: path.read_text() for path in (state / "pids").iterdir()}
        shims = node.shim_pids()
        assert shims and node.cgroup_pids() and realnode.mounts_under(node.dir)
        links = [link for link in Path("/var/log/containers").iterdir() if str(node.dir) in os.readlink(link)]
        cached = list(Path("/var/lib/cni/results").glob(f"kubeops-{node.cluster_id}-*"))
        assert links and cached
    finally:
        subprocess.run([*launcher, "down"], env=env, check=True, capture_output=True)
    assert not state.exists() and not realnode.mounts_under(state)
    assert not [pid for pid in [*pids.values(), *map(str, shims)] if running(pid)]
    assert not [h for h in realnode.hierarchies() if (h / node.cgroup_root.lstrip("/")).exists()]
    assert not [link for link in links + cached if link.exists() or link.is_symlink()]
    if not [argv for _pid, argv in realnode.processes() if argv[0].endswith("/kubelet")]:  # no other real node
        assert not [d for d in realnode.SHARED_DIRS if d.exists()]


REAL_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "leftovers", "namespace": "default"},
    "spec": {
        "nodeSelector": {realnode.LABEL: "true"},
        "tolerations": [{"key": realnode.LABEL, "operator": "Exists"}],
        "containers": [
            {
                "name": "main",
                "image": f"{realnode.REGISTRY_HOST}/kubeops/tool:1",
                "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
            }
        ],
        "volumes": [{"name": "scratch", "emptyDir": {"medium": "Memory"}}],
    },
}
