"""Fault scenarios on both kinds of node: a KWOK node (simulated kubelet) and the cluster's real node (kubelet,
containerd, runc). Each scenario runs the collection's modules - ds_rollout_wait's blockers, ds_diagnose's causes,
ds_batch_rollout's gate - and compares their verdict with the real kubectl; both kinds must give the same one.

KUBEOPS_CAPTURE_DIR=DIR also writes what each scenario saw (DaemonSet, revisions, nodes, pods, events, leases: the
objects ds_diagnose reads, and the modules' results) to DIR/<scenario>-<kind>.yaml, as tests/unit/fixtures/realnode/
holds them.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import localcluster  # tests/conftest.py puts tests/cluster on sys.path
import pytest
import yaml

NAME = "probe"
REGISTRY = "registry.kubeops.test/kubeops"
TOOL = f"{REGISTRY}/tool:1"
CRASHLOOP = f"{REGISTRY}/crashloop:1"  # the tool image whose command is `exit 1`
MISSING = f"{REGISTRY}/does-not-exist:1"  # the local registry answers 404
REAL = localcluster.realnode
TEST_NODE_TAINT = "kubeops.test/dedicated"  # the taint of the nodes the test_node fixture adds
PENDING_REASONS = {"ErrImagePull", "ImagePullBackOff"}


@dataclass
class Node:
    kind: str  # "kwok" or "real"
    name: str


@pytest.fixture(params=["kwok", "real"])
def node(request: pytest.FixtureRequest, kubectl, test_node) -> Node:
    """The node a scenario runs on: a fresh KWOK node shaped like the real one (2 cpu), or the real node."""
    if request.param == "kwok":
        return Node("kwok", test_node(cpu="2", memory="8Gi", pods="110"))
    nodes = kubectl("get", "nodes", "-l", f"{REAL.LABEL}=true", "-o", "name", check=False).stdout.split()
    if not nodes:
        pytest.skip("the cluster has no real node (REAL_NODES=0, or KUBECONFIG names another cluster)")
    return Node("real", nodes[0].removeprefix("node/"))


def daemonset(namespace: str, node: Node, image: str = TOOL, also: tuple[str, ...] = (), **pod: Any) -> dict[str, Any]:
    """A DaemonSet with one container on exactly NODE and the nodes named in ALSO (it tolerates the test nodes' and
    the real node's taints); POD entries go into the container (args, readinessProbe, resources); min_ready_seconds
    into the spec."""
    min_ready = pod.pop("min_ready_seconds", 0)
    container = {"name": "main", "image": image, **pod}
    hostnames = {"key": "kubernetes.io/hostname", "operator": "In", "values": [node.name, *also]}
    placement = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [hostnames]}]}}}}  # fmt: skip
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": NAME}},
            "minReadySeconds": min_ready,
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": NAME}},
                "spec": {
                    **placement,
                    "tolerations": [
                        {"key": TEST_NODE_TAINT, "operator": "Exists"},
                        {"key": REAL.LABEL, "operator": "Exists"},
                    ],
                    "terminationGracePeriodSeconds": 5,
                    "containers": [container],
                },
            },
        },
    }


def pods(kubectl, namespace: str) -> list[dict[str, Any]]:
    items = json.loads(kubectl("get", "pods", "-l", f"app={NAME}", "-o", "json", namespace=namespace).stdout)["items"]
    return [pod for pod in items if not pod["metadata"].get("deletionTimestamp")]


def container_status(pod: dict[str, Any]) -> dict[str, Any]:
    return (pod["status"].get("containerStatuses") or [{}])[0]


def condition(obj: dict[str, Any], kind: str) -> str | None:
    return next((c["status"] for c in obj["status"].get("conditions", []) if c["type"] == kind), None)


def rollout_status(kubectl, namespace: str, timeout: str = "1s") -> tuple[int, str]:
    """`kubectl rollout status` once (--watch=false: exit 0 and the current message) or watching up to TIMEOUT."""
    watch = ["--watch=false"] if timeout == "0s" else [f"--timeout={timeout}"]
    proc = kubectl("rollout", "status", f"ds/{NAME}", *watch, check=False, namespace=namespace)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def kubectl_pod_status(kubectl, namespace: str, pod: str | None = None) -> str:
    """The STATUS column of `kubectl get pods` (kubectl's own summary of the pod): of POD, else of the first pod."""
    which = ("pod", pod) if pod else ("pods", "-l", f"app={NAME}")
    out = kubectl("get", *which, "--no-headers", namespace=namespace).stdout.split()
    return out[2] if len(out) > 2 else ""


@pytest.fixture
def capture(kubectl, namespace: str) -> Callable[..., None]:
    """capture(scenario, node, **results): the objects ds_diagnose reads and the modules' RESULTS (name -> result),
    to KUBEOPS_CAPTURE_DIR when it is set."""

    def write(scenario: str, node: Node, **results: dict[str, Any]) -> None:
        target = os.environ.get("KUBEOPS_CAPTURE_DIR")
        if not target:
            return

        def items(*args: str, ns: str | None = namespace) -> list[dict[str, Any]]:
            found = json.loads(kubectl("get", *args, "-o", "json", namespace=ns).stdout)["items"]
            for item in found:
                item["metadata"].pop("managedFields", None)
            return found

        snapshot = {
            "scenario": scenario,
            "node_kind": node.kind,
            "daemonset": items("daemonset")[0],
            "revisions": items("controllerrevisions"),
            "nodes": [n for n in items("nodes", ns=None) if n["metadata"]["name"] == node.name],
            "pods": items("pods"),
            "events": items("events"),
            "leases": [le for le in items("leases", ns="kube-node-lease") if le["metadata"]["name"] == node.name],
            "results": results,
        }
        path = Path(target) / f"{scenario}-{node.kind}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(snapshot, sort_keys=False))

    return write


@pytest.fixture
def diagnose(run_module, namespace: str, eventually) -> Callable[..., dict[str, Any]]:
    """diagnose(until=CAUSE) -> ds_diagnose's result once it names CAUSE (the last result if it never does)."""

    def run(until: str, timeout: float = 90) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def found() -> bool:
            seen["result"] = run_module("ds_diagnose", {"name": NAME, "namespace": namespace})
            assert not seen["result"].get("failed"), seen["result"].get("msg")
            return any(f["cause"] == until for f in seen["result"]["findings"])

        eventually(found, timeout, interval=2)
        return seen["result"]

    return run


def causes(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {finding["cause"]: finding for finding in result["findings"] if finding["severity"] != "info"}


def wait_args(namespace: str, **extra: Any) -> dict[str, Any]:
    return {"name": NAME, "namespace": namespace, "print_progress": False, **extra}


def batch_args(namespace: str, node: Node, **extra: Any) -> dict[str, Any]:
    return {"name": NAME, "namespace": namespace, "batches": ["100%"], "min_available_seconds": 2,
            "batch_timeout": 45, **extra}  # fmt: skip


@pytest.fixture
def rolled_out(kubectl, namespace: str, apply_manifest, wait_rollout) -> Callable[..., None]:
    """rolled_out(node, **pod): the scenario DaemonSet with the healthy tool image, rolled out on NODE."""

    def make(node: Node, **pod: Any) -> None:
        apply_manifest(daemonset(namespace, node, **pod))
        wait_rollout(namespace, NAME, timeout=120)

    return make


# ---------------------------------------------------------------- scenarios


def test_missing_image(node, namespace, kubectl, run_module, diagnose, rolled_out, eventually, capture):
    rolled_out(node)
    kubectl("set", "image", f"ds/{NAME}", f"main={MISSING}", namespace=namespace)
    assert eventually(lambda: kubectl_pod_status(kubectl, namespace) in PENDING_REASONS, 60)

    waited = run_module("ds_rollout_wait", wait_args(namespace, timeout=60, progress_deadline=8))
    assert waited["failed"] and waited["outcome"] == "progress_deadline"
    reasons = {problem["reason"] for problem in waited["blockers"]["pod_problems"]}
    assert reasons and reasons <= PENDING_REASONS, waited["blockers"]
    assert waited["blockers"]["not_available"]["nodes"] == [node.name]
    assert rollout_status(kubectl, namespace)[0] == 1

    diagnosed = diagnose(until="broken_template")
    capture("missing-image", node, ds_rollout_wait=waited, ds_diagnose=diagnosed)
    found = causes(diagnosed)
    assert set(found) == {"broken_template"}, found
    assert {group["reason"] for group in found["broken_template"]["evidence"]["groups"]} <= PENDING_REASONS
    assert found["broken_template"]["nodes"] == [node.name]
    events = json.loads(kubectl("get", "events", "-o", "json", namespace=namespace).stdout)["items"]
    assert {"Pulling", "Failed", "BackOff"} <= {event["reason"] for event in events}
    described = kubectl("describe", "pods", "-l", f"app={NAME}", namespace=namespace).stdout
    assert "Back-off pulling image" in described or "ErrImagePull" in described


def test_missing_image_fails_the_batch_gate_and_rolls_back(node, namespace, kubectl, run_module, rolled_out):
    rolled_out(node)
    failed = run_module("ds_batch_rollout", batch_args(namespace, node, images={"main": MISSING}))
    assert failed["failed"] and failed["outcome"] == "rolled_back", failed.get("msg")
    assert "ErrImagePull" in failed["msg"] or "ImagePullBackOff" in failed["msg"]
    assert failed["touched_nodes"] == [node.name] and failed["rollback"]["complete"] is True
    assert rollout_status(kubectl, namespace, "60s")[0] == 0
    assert [container_status(pod)["image"] for pod in pods(kubectl, namespace)] == [TOOL]


def test_crash_loop(node, namespace, kubectl, run_module, diagnose, rolled_out, eventually, capture):
    rolled_out(node)
    kubectl("set", "image", f"ds/{NAME}", f"main={CRASHLOOP}", namespace=namespace)

    def crash_looping() -> dict[str, Any] | None:
        """The pod once it restarted twice and sits between runs (each run is over in a moment)."""
        for pod in pods(kubectl, namespace):
            status = container_status(pod)
            if status.get("restartCount", 0) >= 2 and not status["ready"] and condition(pod, "Ready") == "False":
                return pod
        return None

    pod = eventually(crash_looping, 90)
    assert pod, "no crash loop"
    assert container_status(pod)["lastState"]["terminated"]["exitCode"] == 1
    assert pod["status"]["phase"] == "Running"
    assert kubectl_pod_status(kubectl, namespace) in ("CrashLoopBackOff", "Error")
    assert rollout_status(kubectl, namespace)[0] == 1

    waited = run_module("ds_rollout_wait", wait_args(namespace, timeout=60, progress_deadline=8))
    assert waited["failed"] and waited["outcome"] == "progress_deadline"
    assert waited["blockers"]["not_available"]["nodes"] == [node.name]
    diagnosed = diagnose(until="broken_template")
    capture("crash-loop", node, ds_rollout_wait=waited, ds_diagnose=diagnosed)
    found = causes(diagnosed)
    assert "broken_template" in found, found
    assert found["broken_template"]["nodes"] == [node.name]


def test_crash_loop_fails_the_batch_gate(node, namespace, run_module, rolled_out, capture):
    rolled_out(node)
    failed = run_module("ds_batch_rollout", batch_args(namespace, node, images={"main": CRASHLOOP}))
    capture("crash-loop-gate", node, ds_batch_rollout=failed)
    assert failed["failed"] and failed["outcome"] == "rolled_back", failed.get("msg")
    assert failed["rollback"]["complete"] is True


NEVER_READY = {"exec": {"command": ["/tool", "test-file", "/never-ready"]}, "periodSeconds": 2}


def test_failing_readiness_probe(node, namespace, kubectl, run_module, diagnose, rolled_out, eventually, capture):
    rolled_out(node)
    template = daemonset(namespace, node, readinessProbe=NEVER_READY)["spec"]["template"]
    gated = run_module("ds_batch_rollout", batch_args(namespace, node, template=template))
    assert gated["failed"] and gated["outcome"] == "rolled_back", gated.get("msg")
    assert gated["rollback"]["complete"] is True

    patch = [{"op": "add", "path": "/spec/template/spec/containers/0/readinessProbe", "value": NEVER_READY}]
    kubectl("patch", "ds", NAME, "--type=json", "-p", json.dumps(patch), namespace=namespace)

    def running_unready() -> bool:
        current = [pod for pod in pods(kubectl, namespace) if pod["spec"]["containers"][0].get("readinessProbe")]
        return any(pod["status"].get("phase") == "Running" and condition(pod, "Ready") == "False" for pod in current)

    assert eventually(running_unready, 60)
    [pod] = [pod for pod in pods(kubectl, namespace) if pod["spec"]["containers"][0].get("readinessProbe")]
    assert container_status(pod)["started"] is True and container_status(pod)["ready"] is False
    # that pod: the old one may still be going (Completed) beside it
    assert kubectl_pod_status(kubectl, namespace, pod["metadata"]["name"]) == "Running"
    assert rollout_status(kubectl, namespace)[0] == 1
    events = json.loads(kubectl("get", "events", "-o", "json", namespace=namespace).stdout)["items"]
    assert any(event["reason"] == "Unhealthy" for event in events)

    waited = run_module("ds_rollout_wait", wait_args(namespace, timeout=60, progress_deadline=8))
    assert waited["failed"] and waited["outcome"] == "progress_deadline"
    assert waited["blockers"]["not_available"]["nodes"] == [node.name]
    diagnosed = diagnose(until="broken_template")
    capture("readiness-probe", node, ds_rollout_wait=waited, ds_diagnose=diagnosed, ds_batch_rollout=gated)
    found = causes(diagnosed)
    assert "broken_template" in found, found


def test_cpu_request_too_large_for_the_node(node, namespace, kubectl, apply_manifest, run_module, diagnose, capture):
    apply_manifest(daemonset(namespace, node, resources={"requests": {"cpu": "3"}}))
    diagnosed = diagnose(until="resource_exhaustion")
    found = causes(diagnosed)
    assert set(found) == {"resource_exhaustion"}, found
    assert found["resource_exhaustion"]["nodes"] == [node.name]
    assert found["resource_exhaustion"]["evidence"]["scheduler_reasons"] == ["Insufficient cpu"]
    events = json.loads(
        kubectl("get", "events", "--field-selector=reason=FailedScheduling", "-o", "json", namespace=namespace).stdout
    )["items"]
    assert any("Insufficient cpu" in event["message"] for event in events)
    assert kubectl_pod_status(kubectl, namespace) == "Pending"
    waited = run_module("ds_rollout_wait", wait_args(namespace, timeout=30, progress_deadline=6))
    assert waited["failed"] and waited["outcome"] == "progress_deadline"
    capture("insufficient-cpu", node, ds_rollout_wait=waited, ds_diagnose=diagnosed)


def test_slow_start_min_ready_seconds(node, namespace, kubectl, run_module, rolled_out):
    """minReadySeconds 15: the updated pod is Ready at once but available only later; module and kubectl agree."""
    rolled_out(node, min_ready_seconds=15)
    kubectl("set", "env", f"ds/{NAME}", "REVISION=2", namespace=namespace)
    compared: set[str] = set()
    for _attempt in range(60):
        before = rollout_status(kubectl, namespace, "0s")[1]
        result = run_module("ds_rollout_wait", wait_args(namespace, timeout=0))
        after = rollout_status(kubectl, namespace, "0s")[1]
        if before == after:
            assert result["message"] == before, result
            compared.add(before)
        if result.get("rollout_complete"):
            break
    assert any("of 1 updated pods are available" in message for message in compared), compared
    done = run_module("ds_rollout_wait", wait_args(namespace, timeout=60))
    assert done["rollout_complete"] and rollout_status(kubectl, namespace)[0] == 0


# ---------------------------------------------------------------- a node whose kubelet stops


class Kubelet:
    """Stop a node's kubelet and start it again. The real node: its process. A KWOK node: the label
    kubeops.test/kubelet-stopped (KWOK's stages post no status for it) and its lease taken over (KWOK cannot be
    told to stop renewing it), so the node lifecycle controller sees the heartbeat stop as for a real node. While
    another holder has the lease KWOK leaves the node's pods alone, as a stopped kubelet does; starting lets that
    lease expire, so KWOK takes it over and, as a kubelet that is back, syncs every pod of the node again (given
    the lease back under its own name, it would not: it saw none of the node lifecycle controller's marks)."""

    STOPPED = "kubeops.test/kubelet-stopped"

    def __init__(self, kubectl, node: Node) -> None:
        self.kubectl, self.node = kubectl, node
        self.restore: dict[str, Any] | None = None  # the real kubelet's argv, or the KWOK lease's expiry

    def stop(self) -> None:
        if self.node.kind == "kwok":
            self.kubectl("label", "node", self.node.name, f"{self.STOPPED}=true")
            self.restore = {"leaseDurationSeconds": 1}  # expired at once: renewTime is the moment it stopped
            renewed = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
            spec = {"holderIdentity": self.STOPPED, "leaseDurationSeconds": 3600, "renewTime": renewed}
            self.lease("patch", "--type=merge", "-p", json.dumps({"spec": spec}))
            return
        pid = localcluster.pid_of("kubelet")
        self.restore = {"argv": Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]}
        os.kill(pid, signal.SIGTERM)
        while localcluster.pid_of("kubelet"):
            time.sleep(0.2)

    def start(self) -> None:
        if self.restore is None:
            return
        if self.node.kind == "kwok":
            self.kubectl("label", "node", self.node.name, f"{self.STOPPED}-")
            self.lease("patch", "--type=merge", "-p", json.dumps({"spec": self.restore}))
        else:
            localcluster.start("kubelet", self.restore["argv"])
        self.restore = None

    def lease(self, verb: str, *args: str):
        """kubectl VERB lease NODE ARGS: the node's heartbeat in kube-node-lease."""
        return self.kubectl(verb, "lease", self.node.name, *args, namespace="kube-node-lease")


@pytest.fixture
def kubelet(kubectl, node: Node) -> Iterator[Kubelet]:
    """The scenario node's kubelet; started again at the end whatever the test did."""
    handle = Kubelet(kubectl, node)
    yield handle
    handle.start()


def test_node_whose_kubelet_stops_then_comes_back(
    node, namespace, kubectl, run_module, diagnose, rolled_out, kubelet, eventually, capture
):
    rolled_out(node)
    kubelet.stop()

    def node_ready() -> str | None:
        return condition(json.loads(kubectl("get", "node", node.name, "-o", "json").stdout), "Ready")

    assert eventually(lambda: node_ready() == "Unknown", 90)  # the node lifecycle controller: lease expired
    assert eventually(lambda: all(condition(pod, "Ready") == "False" for pod in pods(kubectl, namespace)), 30)
    diagnosed = diagnose(until="node_not_ready")
    capture("kubelet-stopped", node, ds_diagnose=diagnosed)
    found = causes(diagnosed)
    assert "node_not_ready" in found and found["node_not_ready"]["nodes"] == [node.name], found
    assert found["node_not_ready"]["evidence"]["per_node"][node.name]["ready"] == "Unknown"
    # kubectl compares numberAvailable with the desired count, which drops the node once it is tainted unreachable:
    # between the Ready=False mark and the taint (up to one monitor period) it is still waiting
    assert eventually(lambda: rollout_status(kubectl, namespace)[0] == 0, 30)

    kubelet.start()
    assert eventually(lambda: node_ready() == "True", 90)
    assert eventually(lambda: all(condition(pod, "Ready") == "True" for pod in pods(kubectl, namespace)), 60)
    # the node lifecycle controller lifts the unreachable taints within its monitor period
    assert eventually(lambda: causes(run_module("ds_diagnose", {"name": NAME, "namespace": namespace})) == {}, 60)


def test_rollout_leaves_a_stopped_node_behind_within_its_budget(
    node, namespace, kubectl, run_module, rolled_out, kubelet, test_node, eventually
):
    """A node whose kubelet stopped holds a rollout back for good (its old pod cannot be deleted), or the
    controller drops it and kubectl reports success although it runs no new pod. Without a budget the wait fails
    naming the node; with unhealthy_node_budget it completes everywhere else and names the node it left behind."""
    healthy = test_node(cpu="2", memory="8Gi", pods="110")
    rolled_out(node, also=(healthy,))
    kubelet.stop()

    def readiness() -> str | None:
        return condition(json.loads(kubectl("get", "node", node.name, "-o", "json").stdout), "Ready")

    assert eventually(lambda: readiness() == "Unknown", 90)
    kubectl("set", "env", f"ds/{NAME}", "AGENT_VERSION=2", namespace=namespace)

    held = run_module("ds_rollout_wait", wait_args(namespace, timeout=30))
    assert held["failed"] and held["outcome"] == "timeout"
    assert [(n["node"], n["trouble"]) for n in held["blockers"]["unhealthy_nodes"]] == [(node.name, "unreachable")]
    assert node.name in held["msg"] and "over unhealthy_node_budget=0" in held["msg"]
    kubectl_code, kubectl_says = rollout_status(kubectl, namespace, timeout="5s")
    if kubectl_code == 0:  # the controller dropped the node: kubectl's success hides that it runs no new pod
        assert held["blockers"]["unhealthy_nodes"][0]["pod"] == "no pod", kubectl_says

    stalled = run_module("ds_rollout_wait", wait_args(namespace, timeout=10, unhealthy_node_budget=1))
    assert stalled["failed"] and "use up maxUnavailable=1" in stalled["msg"] and healthy in stalled["msg"]
    # the dead node's unavailable pod counts against maxUnavailable: with room for one more the healthy node moves
    strategy = {"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": 2}}}}
    kubectl("patch", "ds", NAME, "--type=merge", "-p", json.dumps(strategy), namespace=namespace)
    rounded_down = run_module("ds_rollout_wait", wait_args(namespace, timeout=0, unhealthy_node_budget="49%"))
    assert rounded_down["outcome"] == "status" and not rounded_down["rollout_complete"]  # 49% of 2 nodes: none
    done = run_module("ds_rollout_wait", wait_args(namespace, timeout=60, unhealthy_node_budget=1))
    assert done["rollout_complete"] and done["outcome"] == "complete", done.get("msg")
    assert [(s["node"], s["trouble"]) for s in done["skipped_nodes"]] == [(node.name, "unreachable")]
    assert any(node.name in warning and "within unhealthy_node_budget=1" in warning for warning in done["warnings"])
    assert any(node.name in entry["message"] for entry in done["timeline"])  # the progress line named it
    on_healthy = [pod for pod in pods(kubectl, namespace) if pod["spec"].get("nodeName") == healthy]
    assert [container_status(pod).get("ready") for pod in on_healthy] == [True]
