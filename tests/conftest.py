"""Fixtures for tests against the REAL local cluster (tests/cluster/localcluster.py) or the one KUBECONFIG names.

Nothing here fakes Kubernetes: modules run through `ansible` against the collection as ansible-galaxy installs it,
and kubectl is the one built with the cluster.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".cache" / "bin"
# Where the collection is installed for the tests. KUBEOPS_TEST_COLLECTIONS: a copy the caller installed (the oldest
# leg of the version matrix installs the same tarball with its own ansible-galaxy, tests/matrix-oldest.sh).
GIVEN_COLLECTIONS = os.environ.get("KUBEOPS_TEST_COLLECTIONS")
COLLECTIONS = Path(GIVEN_COLLECTIONS) if GIVEN_COLLECTIONS else ROOT / ".cache" / "collections"
SEED_MANIFESTS = {
    1: ROOT / "playbooks/files/fluentd-daemonset.yaml",
    2: ROOT / "playbooks/files/fluentd-daemonset-update.yaml",
}

# Nodes a test adds carry this NoSchedule taint, so DaemonSets of other tests ignore them.
TEST_NODE_TAINT = "kubeops.test/dedicated"
LOCALCLUSTER = ROOT / "tests/cluster/localcluster.py"
# Workers of the dedicated cluster of the fault tests (and a control-plane node the seed DaemonSet does not tolerate).
DEDICATED_NODES = 4

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
    """Build and install the collection once per session (locked: parallel sessions share .cache), unless the
    caller gave one (KUBEOPS_TEST_COLLECTIONS)."""
    if GIVEN_COLLECTIONS:
        return COLLECTIONS / "ansible_collections/kubeops/daemonset"
    COLLECTIONS.mkdir(parents=True, exist_ok=True)
    with (COLLECTIONS / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(["make", "-s", "collection"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return COLLECTIONS / "ansible_collections/kubeops/daemonset"


def ansible_environment(kubeconfig: str) -> dict[str, str]:
    """Environment for ansible runs on KUBECONFIG's cluster: the installed collection, JSON results on request."""
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


# With these, `ansible -m` prints one JSON document: module_result() reads the module's result from it.
JSON_OUTPUT = {"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "json"}


def module_command(name: str, args: dict[str, Any], check: bool = False, diff: bool = False) -> list[str]:
    """`ansible localhost -m kubeops.daemonset.NAME -a ARGS` (with the module's action plugin, as users run it)."""
    cmd = ["ansible", "localhost", "-c", "local", "-i", "localhost,", "-m", f"kubeops.daemonset.{name}"]
    return cmd + ["-a", json.dumps(args)] + (["--check"] if check else []) + (["--diff"] if diff else [])


def module_result(returncode: int, stdout: str, stderr: str) -> dict[str, Any]:
    """The module's result from the JSON callback's output (the test fails when there is none)."""
    try:
        output = json.loads(stdout)
    except json.JSONDecodeError:
        pytest.fail(f"ansible printed no JSON (rc={returncode}):\n{stdout}\n{stderr}")
    return output["plays"][0]["tasks"][0]["hosts"]["localhost"]


def module_runner(ansible_env: dict[str, str]) -> Callable[..., dict[str, Any]]:
    """run(name, args, check=False, diff=False): the module's result, run through `ansible localhost -m`."""

    def run(name: str, args: dict[str, Any], check: bool = False, diff: bool = False) -> dict[str, Any]:
        env = dict(ansible_env, **JSON_OUTPUT)
        proc = subprocess.run(
            module_command(name, args, check, diff), env=env, capture_output=True, text=True, check=False
        )
        return module_result(proc.returncode, proc.stdout, proc.stderr)

    return run


def playbook_command(playbook: str, extra_vars: dict[str, Any] | None = None, check: bool = False,
                     diff: bool = False) -> list[str]:  # fmt: skip
    cmd = ["ansible-playbook", "-i", "localhost,", "-c", "local", playbook]
    return cmd + ["-e", json.dumps(extra_vars or {})] + (["--check"] if check else []) + (["--diff"] if diff else [])


def playbook_runner(ansible_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess]:
    """run(playbook, extra_vars, check, diff, env): the finished `ansible-playbook` process."""

    def run(playbook: str, extra_vars: dict[str, Any] | None = None, check: bool = False, diff: bool = False,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:  # fmt: skip
        cmd = playbook_command(playbook, extra_vars, check, diff)
        return subprocess.run(cmd, env=dict(ansible_env, **(env or {})), capture_output=True, text=True, check=False)

    return run


class Background:
    """A command started in the background, in a process group of its own (a test may signal the group): its
    output line by line as it comes (standard error: the modules' progress lines), then its end."""

    def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
        self.began = time.monotonic()
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
        self.lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.wall: float | None = None  # seconds from the start to the end, once it has ended
        self._seen = threading.Condition()
        self._readers = [threading.Thread(target=self._read, args=(name,), daemon=True) for name in self.lines]
        for reader in self._readers:
            reader.start()

    def _read(self, name: str) -> None:
        for line in getattr(self.proc, name):
            with self._seen:
                self.lines[name].append(line.rstrip("\n"))
                self._seen.notify_all()
        with self._seen:
            self._seen.notify_all()

    @property
    def stdout(self) -> str:
        return "\n".join(self.lines["stdout"])

    def wait_for(self, text: str, timeout: float = 120, stream: str = "stderr") -> str:
        """The first line of STREAM containing TEXT; the test fails if none comes within TIMEOUT seconds."""
        deadline = time.monotonic() + timeout
        with self._seen:
            while True:
                found = next((line for line in self.lines[stream] if text in line), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or not any(reader.is_alive() for reader in self._readers):
                    shown = "\n".join(self.lines[stream][-30:])
                    pytest.fail(f"no line with {text!r} (rc={self.proc.poll()}):\n{shown}")
                self._seen.wait(min(left, 1.0))

    def finish(self, timeout: float = 600) -> float:
        """Wait for the end (killing the group after TIMEOUT seconds); the wall seconds since the start."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for reader in self._readers:
            reader.join()
        self.wall = time.monotonic() - self.began
        return self.wall

    def result(self, timeout: float = 600) -> dict[str, Any]:
        """The module's result once it has ended (a run of module_command with JSON_OUTPUT)."""
        self.finish(timeout)
        return module_result(self.proc.returncode, self.stdout, "\n".join(self.lines["stderr"]))


def kubectl_runner(kubeconfig: str) -> Callable[..., subprocess.CompletedProcess]:
    """run(*args, check=True, namespace=None, input=None) with the real kubectl built with the cluster."""

    def run(*args: str, check: bool = True, namespace: str | None = None, input: str | None = None):
        cmd = [str(BIN / "kubectl"), f"--kubeconfig={kubeconfig}", *(["-n", namespace] if namespace else []), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, input=input, check=False)
        if check and proc.returncode != 0:
            pytest.fail(f"{' '.join(cmd[2:])} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    return run


@pytest.fixture(scope="session")
def ansible_env(kubeconfig: str, installed_collection: Path) -> dict[str, str]:
    """Environment for ansible runs: the installed collection, the cluster's kubeconfig."""
    return ansible_environment(kubeconfig)


@pytest.fixture(scope="session")
def run_module(ansible_env: dict[str, str]) -> Callable[..., dict[str, Any]]:
    """Run kubeops.daemonset.NAME with ARGS through `ansible localhost -m` and return the module's result."""
    return module_runner(ansible_env)


def module_starter(ansible_env: dict[str, str]) -> Callable[..., Background]:
    """start(name, args): the module running in the background (a Background; .result() once it has ended)."""
    return lambda name, args: Background(module_command(name, args), dict(ansible_env, **JSON_OUTPUT))


@pytest.fixture(scope="session")
def start_module(ansible_env: dict[str, str]) -> Callable[..., Background]:
    """start_module(name, args): see module_starter."""
    return module_starter(ansible_env)


@pytest.fixture(scope="session")
def run_playbook(ansible_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess]:
    """Run a playbook (a path, or kubeops.daemonset.NAME) with extra vars; returns the finished process."""
    return playbook_runner(ansible_env)


def playbook_starter(ansible_env: dict[str, str]) -> Callable[..., Background]:
    """start(playbook, extra_vars=None): `ansible-playbook` running in the background (a Background)."""
    return lambda playbook, extra_vars=None: Background(playbook_command(playbook, extra_vars), ansible_env)


@pytest.fixture(scope="session")
def start_playbook(ansible_env: dict[str, str]) -> Callable[..., Background]:
    """start_playbook(playbook, extra_vars=None): see playbook_starter."""
    return playbook_starter(ansible_env)


@pytest.fixture(scope="session")
def run_playbook_json(ansible_env: dict[str, str]) -> Callable[..., dict[str, Any]]:
    """run(playbook, extra_vars=None, check=False): the json callback's document of an `ansible-playbook` run that
    succeeded: ``stats`` (the recap) and ``global_custom_stats`` (what the roles publish with set_stats for AWX)."""

    def run(playbook: str, extra_vars: dict[str, Any] | None = None, check: bool = False) -> dict[str, Any]:
        env = dict(ansible_env, **JSON_OUTPUT, ANSIBLE_SHOW_CUSTOM_STATS="true")
        proc = subprocess.run(playbook_command(playbook, extra_vars, check), env=env, capture_output=True,
                              text=True, check=False)  # fmt: skip
        assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
        return json.loads(proc.stdout)

    return run


@pytest.fixture(scope="session")
def kubectl(kubeconfig: str) -> Callable[..., subprocess.CompletedProcess]:
    """The real kubectl built with the cluster: kubectl("get", "ds", namespace=ns, input=yaml_text)."""
    return kubectl_runner(kubeconfig)


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


def namespace_name(prefix: str, test_name: str) -> str:
    """PREFIX-<the test's name, shortened>-<random>: a namespace of its own for each test."""
    stem = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[:40].strip("-")
    return f"{prefix}-{stem}-{secrets.token_hex(3)}"


def create_namespace(core_v1, stem: str) -> str:
    """A fresh namespace named after STEM (a test's or module's name); the caller deletes it."""
    name = namespace_name("t", stem)
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


def rollout_waiter(kubectl: Callable[..., subprocess.CompletedProcess]) -> Callable[..., None]:
    """wait(namespace, name, timeout): `kubectl rollout status` until the DaemonSet has rolled out, then until the
    controller's last status writes are in (its resourceVersion holds still for a second), so tests can compare
    resourceVersions."""

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
def wait_rollout(kubectl) -> Callable[..., None]:
    """wait_rollout(namespace, name=..., timeout=120): see rollout_waiter."""
    return rollout_waiter(kubectl)


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


def process_running(pid: int | str) -> bool:
    """Alive and not a zombie (an exited process waits for its parent, or PID 1 for an orphan, to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


@pytest.fixture(scope="session")
def running() -> Callable[[int | str], bool]:
    """running(pid): see process_running."""
    return process_running


@pytest.fixture(scope="session")
def pods_by_node(kubectl) -> Callable[[str], dict[str, dict[str, Any]]]:
    """pods_by_node(namespace): node name -> pod, for the namespace's pods not being deleted ("" if unbound)."""

    def by_node(namespace: str) -> dict[str, dict[str, Any]]:
        pods = json.loads(kubectl("get", "pods", "-o", "json", namespace=namespace).stdout)["items"]
        return {pod["spec"].get("nodeName", ""): pod for pod in pods if not pod["metadata"].get("deletionTimestamp")}

    return by_node


def kwok_nodes(names: list[str], labels: dict[str, str] | None = None, cpu: str = "4", memory: str = "8Gi",
               pods: str = "110", not_ready: bool = False) -> dict[str, Any]:  # fmt: skip
    """A List of KWOK nodes NAMES tainted TEST_NODE_TAINT, each also labelled LABELS (for `kubectl create`)."""
    resources = {"cpu": cpu, "memory": memory, "pods": pods}
    nodes = []
    for name in names:
        node_labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok", **(labels or {})}
        if not_ready:
            node_labels["kubeops.test/not-ready"] = "true"
        nodes.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": node_labels, "annotations": {"kwok.x-k8s.io/node": "fake"}},
                "spec": {"taints": [{"key": TEST_NODE_TAINT, "value": "true", "effect": "NoSchedule"}]},
                "status": {"allocatable": resources, "capacity": resources},
            }
        )
    return {"apiVersion": "v1", "kind": "List", "items": nodes}


@pytest.fixture
def test_node(kubectl, namespace: str) -> Iterator[Callable[..., Any]]:
    """Add KWOK nodes for this test: test_node(cpu="100m", memory="1Gi", pods="10", not_ready=False) -> name.
    They are tainted TEST_NODE_TAINT (use seed_daemonset(..., tolerate_test_nodes=True)) and deleted afterwards.
    test_node(count=N, labels={...}) adds N nodes in one `kubectl create` and returns their names (a list);
    LABELS are added to every node (for a nodeSelector that keeps a DaemonSet on exactly these nodes)."""
    added: list[str] = []

    def add(cpu: str = "4", memory: str = "8Gi", pods: str = "110", not_ready: bool = False,
            count: int | None = None, labels: dict[str, str] | None = None) -> str | list[str]:  # fmt: skip
        names = [f"kwok-{namespace[-6:]}-{len(added) + number}" for number in range(1, (count or 1) + 1)]
        nodes = kwok_nodes(names, labels, cpu, memory, pods, not_ready)
        kubectl("create", "-f", "-", input=json.dumps(nodes))
        added.extend(names)
        return names if count is not None else names[0]

    yield add
    if added:
        kubectl("delete", "node", "--wait=false", *added)


class DedicatedCluster:
    """A cluster of the session's own (KUBEOPS_CLUSTER_DIR=STATE), for tests that stop, pause or kill its
    components: the shared cluster the other tests use is never disturbed. Its tools are the shared ones' (kubectl,
    ansible runs), pointed at its kubeconfig."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.kubeconfig = str(state / "kubeconfig")
        self.env = dict(os.environ, KUBEOPS_CLUSTER_DIR=str(state))
        self.ansible_env = ansible_environment(self.kubeconfig)
        self.kubectl = kubectl_runner(self.kubeconfig)
        self.run_module = module_runner(self.ansible_env)
        self.start_module = module_starter(self.ansible_env)
        self.start_playbook = playbook_starter(self.ansible_env)
        self.run_playbook = playbook_runner(self.ansible_env)
        self.wait_rollout = rollout_waiter(self.kubectl)

    def localcluster(self, *args: str) -> None:
        subprocess.run([sys.executable, str(LOCALCLUSTER), *args], env=self.env, check=True)

    def start_kubectl(self, *args: str, namespace: str) -> Background:
        return Background([str(BIN / "kubectl"), f"--kubeconfig={self.kubeconfig}", "-n", namespace, *args], self.env)

    def pid(self, component: str) -> int:
        return int((self.state / "pids" / component).read_text())

    def stop(self, component: str) -> None:
        self.localcluster("stop", component)

    def start(self, component: str) -> None:
        """Start a stopped component again (the API server: until it is ready)."""
        self.localcluster("start", component)

    def pause(self, component: str) -> None:
        os.kill(self.pid(component), signal.SIGSTOP)

    def resume(self, component: str) -> None:
        os.kill(self.pid(component), signal.SIGCONT)

    def resume_all(self) -> None:
        for component in localcluster.COMPONENTS:
            with contextlib.suppress(OSError, ValueError):  # not started (yet), or gone
                self.resume(component)

    def heal(self) -> None:
        """Every component running and answering again, whatever a test left behind."""
        self.resume_all()
        for component in localcluster.COMPONENTS:
            self.start(component)

    def new_namespace(self, stem: str) -> str:
        name = namespace_name("f", stem)
        self.kubectl("create", "namespace", name)
        return name

    def apply(self, manifest: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def add_nodes(self, names: list[str], labels: dict[str, str]) -> None:
        self.kubectl("create", "-f", "-", input=json.dumps(kwok_nodes(names, labels)))


@pytest.fixture(scope="session")
def dedicated_cluster(
    tmp_path_factory: pytest.TempPathFactory, installed_collection: Path
) -> Iterator[DedicatedCluster]:
    """The session's own cluster (DEDICATED_NODES workers), stopped with every component at the end."""
    cluster = DedicatedCluster(tmp_path_factory.mktemp("dedicated-cluster"))
    try:
        cluster.localcluster("up", "--nodes", str(DEDICATED_NODES))
        yield cluster
    finally:
        cluster.resume_all()
        cluster.localcluster("down")


@pytest.fixture
def faults(dedicated_cluster: DedicatedCluster) -> Iterator[DedicatedCluster]:
    """The dedicated cluster, healed after the test (a failed test may leave a component stopped or paused)."""
    yield dedicated_cluster
    dedicated_cluster.heal()


@pytest.fixture
def fault_namespace(request: pytest.FixtureRequest, faults: DedicatedCluster) -> Iterator[str]:
    """A fresh namespace on the dedicated cluster, deleted afterwards (without waiting)."""
    name = faults.new_namespace(request.node.name)
    yield name
    faults.kubectl("delete", "namespace", name, "--wait=false", check=False)


# ---------------------------------------------------------------- a local fleet

FLEET_SCRIPT = ROOT / "tests/cluster/fleet.py"
FLEET_CLUSTERS = ["cluster-1", "cluster-2", "cluster-3"]
FLEET_DAEMONSET = "fluentd-elasticsearch"


class Fleet:
    """The fleet of tests/cluster/fleet.py in DIRECTORY: kubectl on each cluster, and fleet_update.yml runs with
    its inventory, reaching each cluster only through its inventory host's kubeconfig."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.inventory = yaml.safe_load((directory / "inventory.yml").read_text())
        self.env = ansible_environment(str(directory / "cluster-1" / "kubeconfig"))
        for key in ("KUBECONFIG", "K8S_AUTH_KUBECONFIG"):
            self.env.pop(key)
        self.env["ANSIBLE_CONFIG"] = str(ROOT / "docs/examples/ee-ansible.cfg")

    def kubectl(
        self, cluster: str, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess:
        kubeconfig = str(self.directory / cluster / "kubeconfig")
        return subprocess.run([str(BIN / "kubectl"), "--kubeconfig", kubeconfig, *args], capture_output=True,
                              text=True, check=check, input=input)  # fmt: skip

    def daemonset(self, cluster: str, namespace: str) -> dict[str, Any]:
        return json.loads(self.kubectl(cluster, "get", "ds", FLEET_DAEMONSET, "-n", namespace, "-o", "json").stdout)

    def image(self, cluster: str, namespace: str) -> str:
        return self.daemonset(cluster, namespace)["spec"]["template"]["spec"]["containers"][0]["image"]

    def revisions(self, cluster: str, namespace: str) -> dict[int, str]:
        """revision number -> image of each ControllerRevision in NAMESPACE."""
        items = json.loads(self.kubectl(cluster, "get", "controllerrevisions", "-n", namespace, "-o", "json").stdout)
        return {int(r["revision"]): r["data"]["spec"]["template"]["spec"]["containers"][0]["image"]
                for r in items["items"]}  # fmt: skip

    def state(self, namespace: str) -> dict[str, Any]:
        """What a change would move on each cluster: the DaemonSet's resourceVersion and its revisions."""
        return {c: (self.daemonset(c, namespace)["metadata"]["resourceVersion"], self.revisions(c, namespace))
                for c in FLEET_CLUSTERS}  # fmt: skip

    def write_inventory(self, path: Path, cluster_vars: dict[str, dict[str, Any]]) -> Path:
        """The fleet's inventory with more host variables per cluster."""
        inventory = copy.deepcopy(self.inventory)
        for cluster, extra in cluster_vars.items():
            inventory["all"]["children"]["fleet"]["hosts"][cluster].update(extra)
        path.write_text(yaml.safe_dump(inventory))
        return path

    def command(self, extra: dict[str, Any], inventory: Path | None = None, check: bool = False) -> list[str]:
        """ansible-playbook kubeops.daemonset.fleet_update on the fleet (INVENTORY: another inventory of it)."""
        command = playbook_command("kubeops.daemonset.fleet_update", extra, check=check, diff=check)
        return [*command[:1], "-i", str(inventory or self.directory / "inventory.yml"), *command[5:]]

    def run(
        self, extra: dict[str, Any], inventory: Path | None = None, check: bool = False
    ) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(extra, inventory, check), env=self.env, capture_output=True, text=True,
                              check=False)  # fmt: skip

    def start(self, extra: dict[str, Any]) -> Background:
        return Background(self.command(extra), self.env)


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory, installed_collection: Path) -> Iterator[Fleet]:
    """A fleet of 3 clusters (each its own control plane and 3 KWOK workers), stopped with every component at the
    end."""
    directory = tmp_path_factory.mktemp("fleet")
    env = dict(os.environ, KUBEOPS_FLEET_DIR=str(directory))
    subprocess.run([sys.executable, str(FLEET_SCRIPT), "up", "--clusters", str(len(FLEET_CLUSTERS))], env=env,
                   check=True)  # fmt: skip
    try:
        yield Fleet(directory)
    finally:
        subprocess.run([sys.executable, str(FLEET_SCRIPT), "down"], env=env, check=True)
