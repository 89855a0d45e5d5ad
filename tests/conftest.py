"""Fixtures for tests against the REAL local cluster (tests/cluster/localcluster.py) or the one KUBECONFIG names.

Nothing here fakes Kubernetes: modules run through `ansible` against the collection as ansible-galaxy installs it,
and kubectl is the one built with the cluster.
"""

from __future__ import annotations

import copy
import fcntl
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".cache" / "bin"
COLLECTIONS = ROOT / ".cache" / "collections"
SEED_MANIFESTS = {
    1: ROOT / "playbooks/files/fluentd-daemonset.yaml",
    2: ROOT / "playbooks/files/fluentd-daemonset-update.yaml",
}

# Nodes a test adds carry this NoSchedule taint, so DaemonSets of other tests ignore them.
TEST_NODE_TAINT = "kubeops.test/dedicated"

sys.path.insert(0, str(ROOT / "tests" / "cluster"))
import localcluster  # noqa: E402  (the cluster launcher lives beside the tests, not in a package)


@pytest.fixture(scope="session")
def kubeconfig() -> Iterator[str]:
    """The cluster under test: KUBECONFIG when given, else the local cluster (started here, stopped at the end)."""
    given = os.environ.get("KUBECONFIG")
    if given:
        yield given
        return
    started_here = not localcluster.is_up()
    if started_here:
        subprocess.run([sys.executable, str(ROOT / "tests/cluster/localcluster.py"), "up"], check=True)
    yield str(localcluster.KUBECONFIG)
    if started_here:
        localcluster.down()


@pytest.fixture(scope="session")
def installed_collection() -> Path:
    """Build and install the collection once per session (locked: parallel sessions share .cache)."""
    COLLECTIONS.mkdir(parents=True, exist_ok=True)
    with (COLLECTIONS / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(["make", "-s", "collection"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return COLLECTIONS / "ansible_collections/kubeops/daemonset"


@pytest.fixture(scope="session")
def ansible_env(kubeconfig: str, installed_collection: Path) -> dict[str, str]:
    """Environment for ansible runs: the installed collection, the cluster's kubeconfig, JSON results."""
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
            "ANSIBLE_HOME": str(ROOT / ".cache/ansible"),
            "K8S_AUTH_KUBECONFIG": kubeconfig,
            "KUBECONFIG": kubeconfig,
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
            "ANSIBLE_DEPRECATION_WARNINGS": "false",
            "PATH": f"{Path(sys.executable).parent}:{BIN}:{env.get('PATH', '')}",
        }
    )
    return env


@pytest.fixture(scope="session")
def run_module(ansible_env: dict[str, str]) -> Callable[..., dict[str, Any]]:
    """Run kubeops.daemonset.NAME with ARGS through `ansible localhost -m` and return the module's result."""

    def run(name: str, args: dict[str, Any], check: bool = False, diff: bool = False) -> dict[str, Any]:
        env = dict(ansible_env, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json")
        cmd = ["ansible", "localhost", "-c", "local", "-i", "localhost,", "-m", f"kubeops.daemonset.{name}"]
        cmd += ["-a", json.dumps(args)] + (["--check"] if check else []) + (["--diff"] if diff else [])
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        try:
            output = json.loads(proc.stdout)
        except json.JSONDecodeError:
            pytest.fail(f"ansible printed no JSON (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return output["plays"][0]["tasks"][0]["hosts"]["localhost"]

    return run


@pytest.fixture(scope="session")
def run_playbook(ansible_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess]:
    """Run a playbook (a path, or kubeops.daemonset.NAME) with extra vars; returns the finished process."""

    def run(playbook: str, extra_vars: dict[str, Any] | None = None, check: bool = False, diff: bool = False,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:  # fmt: skip
        cmd = ["ansible-playbook", "-i", "localhost,", "-c", "local", playbook]
        cmd += ["-e", json.dumps(extra_vars or {})] + (["--check"] if check else []) + (["--diff"] if diff else [])
        return subprocess.run(cmd, env=dict(ansible_env, **(env or {})), capture_output=True, text=True, check=False)

    return run


@pytest.fixture(scope="session")
def kubectl(kubeconfig: str) -> Callable[..., subprocess.CompletedProcess]:
    """The real kubectl built with the cluster: kubectl("get", "ds", namespace=ns, input=yaml_text)."""

    def run(*args: str, check: bool = True, namespace: str | None = None, input: str | None = None):
        cmd = [str(BIN / "kubectl"), f"--kubeconfig={kubeconfig}", *(["-n", namespace] if namespace else []), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, input=input, check=False)
        if check and proc.returncode != 0:
            pytest.fail(f"{' '.join(cmd[2:])} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    return run


@pytest.fixture(scope="session")
def api(kubeconfig: str):
    from kubernetes import config

    return config.new_client_from_config(config_file=kubeconfig)


@pytest.fixture(scope="session")
def apps_v1(api):
    from kubernetes import client

    return client.AppsV1Api(api)


@pytest.fixture(scope="session")
def core_v1(api):
    from kubernetes import client

    return client.CoreV1Api(api)


def create_namespace(core_v1, stem: str) -> str:
    """A fresh namespace named after STEM (a test's or module's name); the caller deletes it."""
    stem = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:40].strip("-")
    name = f"t-{stem}-{secrets.token_hex(3)}"
    core_v1.create_namespace({"metadata": {"name": name, "labels": {"kubeops.test/namespace": "true"}}})
    return name


@pytest.fixture
def namespace(request: pytest.FixtureRequest, core_v1) -> Iterator[str]:
    """A fresh namespace named after the test, deleted afterwards (without waiting for it to go)."""
    name = create_namespace(core_v1, request.node.name)
    yield name
    core_v1.delete_namespace(name)


@pytest.fixture(scope="session")
def new_namespace(core_v1) -> Callable[[str], str]:
    """new_namespace(stem): a fresh namespace for fixtures wider than a test (they delete it)."""
    return lambda stem: create_namespace(core_v1, stem)


@pytest.fixture(scope="session")
def written_objects(kubectl) -> Callable[[str], dict[str, str]]:
    """written_objects(namespace): kind/name -> resourceVersion of the DaemonSets, ControllerRevisions and
    Deployments there; equal before and after a task = the task wrote none of them."""

    def read(namespace: str) -> dict[str, str]:
        listed = kubectl("get", "daemonsets,controllerrevisions,deployments", "-o", "json", namespace=namespace)
        items = json.loads(listed.stdout)["items"]
        return {f"{item['kind']}/{item['metadata']['name']}": item["metadata"]["resourceVersion"] for item in items}

    return read


@pytest.fixture(scope="session")
def seed_daemonset() -> Callable[..., dict[str, Any]]:
    """The seed's fluentd DaemonSet (version 1 or 2) as a dict, moved to NAMESPACE; keyword overrides:
    name, image (first container), min_ready_seconds, strategy (updateStrategy dict), change_cause,
    tolerate_test_nodes (also run on the nodes the test_node fixture adds)."""
    manifests = {version: yaml.safe_load(path.read_text()) for version, path in SEED_MANIFESTS.items()}

    def build(namespace: str, version: int = 1, name: str | None = None, image: str | None = None,
              min_ready_seconds: int | None = None, strategy: dict | None = None,
              change_cause: str | None = None, tolerate_test_nodes: bool = False) -> dict[str, Any]:  # fmt: skip
        manifest = copy.deepcopy(manifests[version])
        if tolerate_test_nodes:
            manifest["spec"]["template"]["spec"]["tolerations"].append({"key": TEST_NODE_TAINT, "operator": "Exists"})
        manifest["metadata"]["namespace"] = namespace
        if name:
            manifest["metadata"]["name"] = name
        if image:
            manifest["spec"]["template"]["spec"]["containers"][0]["image"] = image
        if min_ready_seconds is not None:
            manifest["spec"]["minReadySeconds"] = min_ready_seconds
        if strategy is not None:
            manifest["spec"]["updateStrategy"] = strategy
        if change_cause:
            manifest["metadata"].setdefault("annotations", {})["kubernetes.io/change-cause"] = change_cause
        return manifest

    return build


@pytest.fixture(scope="session")
def apply_manifest(kubectl) -> Callable[[dict[str, Any]], None]:
    """kubectl apply a manifest dict (server-side apply would also do; plain apply is what the seed uses)."""

    def apply(manifest: dict[str, Any]) -> None:
        kubectl("apply", "-f", "-", input=json.dumps(manifest))

    return apply


@pytest.fixture(scope="session")
def wait_rollout(kubectl) -> Callable[..., None]:
    """Wait with `kubectl rollout status` until the DaemonSet has rolled out, then until the controller's last
    status writes are in (its resourceVersion holds still for a second), so tests can compare resourceVersions."""

    def wait(namespace: str, name: str = "fluentd-elasticsearch", timeout: int = 120) -> None:
        kubectl("rollout", "status", f"ds/{name}", f"--timeout={timeout}s", namespace=namespace)
        version, deadline = None, time.monotonic() + 15
        while time.monotonic() < deadline:
            current = kubectl("get", "ds", name, "-o", "jsonpath={.metadata.resourceVersion}", namespace=namespace)
            if current.stdout == version:
                return
            version = current.stdout
            time.sleep(1)

    return wait


@pytest.fixture(scope="session")
def eventually() -> Callable[..., Any]:
    """eventually(check, timeout=60, interval=0.5): poll check() until it returns something truthy or TIMEOUT
    seconds have passed, and return its last result (the cluster converges asynchronously)."""

    def poll(check: Callable[[], Any], timeout: float = 60, interval: float = 0.5) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result or time.monotonic() > deadline:
                return result
            time.sleep(interval)

    return poll


@pytest.fixture(scope="session")
def pods_by_node(kubectl) -> Callable[[str], dict[str, dict[str, Any]]]:
    """pods_by_node(namespace): node name -> pod, for the namespace's pods not being deleted ("" if unbound)."""

    def by_node(namespace: str) -> dict[str, dict[str, Any]]:
        pods = json.loads(kubectl("get", "pods", "-o", "json", namespace=namespace).stdout)["items"]
        return {pod["spec"].get("nodeName", ""): pod for pod in pods if not pod["metadata"].get("deletionTimestamp")}

    return by_node


@pytest.fixture
def test_node(kubectl, namespace: str) -> Iterator[Callable[..., Any]]:
    """Add KWOK nodes for this test: test_node(cpu="100m", memory="1Gi", pods="10", not_ready=False) -> name.
    They are tainted TEST_NODE_TAINT (use seed_daemonset(..., tolerate_test_nodes=True)) and deleted afterwards.
    test_node(count=N, labels={...}) adds N nodes in one `kubectl create` and returns their names (a list);
    LABELS are added to every node (for a nodeSelector that keeps a DaemonSet on exactly these nodes)."""
    added: list[str] = []

    def add(cpu: str = "4", memory: str = "8Gi", pods: str = "110", not_ready: bool = False,
            count: int | None = None, labels: dict[str, str] | None = None) -> str | list[str]:  # fmt: skip
        nodes = []
        for _number in range(count or 1):
            name = f"kwok-{namespace[-6:]}-{len(added) + len(nodes) + 1}"
            node_labels = {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "type": "kwok",
                **(labels or {}),
            }
            if not_ready:
                node_labels["kubeops.test/not-ready"] = "true"
            resources = {"cpu": cpu, "memory": memory, "pods": pods}
            nodes.append(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": name, "labels": node_labels, "annotations": {"kwok.x-k8s.io/node": "fake"}},
                    "spec": {"taints": [{"key": TEST_NODE_TAINT, "value": "true", "effect": "NoSchedule"}]},
                    "status": {"allocatable": resources, "capacity": resources},
                }
            )
        kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes}))
        names = [node["metadata"]["name"] for node in nodes]
        added.extend(names)
        return names if count is not None else names[0]

    yield add
    if added:
        kubectl("delete", "node", "--wait=false", *added)
