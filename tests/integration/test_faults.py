"""Faults during work, on a cluster of the session's own (the `faults` fixture): the kube-apiserver stopped and
started again, paused (SIGSTOP), its etcd paused, or frozen behind a proxy past the timeout, the controller-manager
stopped, an untrusted certificate, the DaemonSet deleted under a batch rollout, and `ansible-playbook` killed in
the middle of one (SIGTERM and SIGKILL of its process group) while a second run tries to start.

Each run must finish correctly or fail with a message that says what happened, within its timeout plus MARGIN,
and leave nothing half-done. MARGIN is a correctness bound, not a performance figure: the per-request margin of
the client (``_client.DEADLINE_MARGIN``, 5 s), the failure report's reads (``_ops.wait.REPORT_SECONDS`` plus that
margin, at most about 9 s against a server that stopped answering), and Ansible's own start.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

NAME = "fluentd-elasticsearch"
CONTAINER = "fluentd-elasticsearch"
V2_IMAGE = "quay.io/fluentd_elasticsearch/fluentd:v2.6.0"
BAD_IMAGE = "quay.io/fluentd_elasticsearch/fluentd:does-not-exist"
STATE_ANNOTATION = "daemonset.kubeops.io/batch-rollout"
STRATEGY = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
# The bound on top of a task's own timeout (see the module docstring).
MARGIN = 20
# Seconds one request may take when the task has no deadline of its own (_client.REQUEST_TIMEOUT).
REQUEST_TIMEOUT = 30

pytestmark = pytest.mark.slow


def get_ds(faults, namespace: str) -> dict[str, Any]:
    return json.loads(faults.kubectl("get", "ds", NAME, "-o", "json", namespace=namespace).stdout)


def set_image(faults, namespace: str, image: str) -> None:
    faults.kubectl("set", "image", f"ds/{NAME}", f"{CONTAINER}={image}", namespace=namespace)


def rolled_out(faults, namespace: str) -> bool:
    status = faults.kubectl("rollout", "status", f"ds/{NAME}", "--watch=false", namespace=namespace, check=False)
    return "successfully rolled out" in status.stdout


def pod_uids(faults, namespace: str) -> set[str]:
    """The UIDs of the namespace's pods: a pod deleted and created again shows as another UID."""
    pods = json.loads(faults.kubectl("get", "pods", "-o", "json", namespace=namespace).stdout)["items"]
    return {pod["metadata"]["uid"] for pod in pods}


def restart_api_server(faults, down_seconds: float = 3) -> None:
    faults.stop("kube-apiserver")
    time.sleep(down_seconds)
    faults.start("kube-apiserver")


@pytest.fixture
def deployed(faults, fault_namespace, seed_daemonset):
    """deployed(**seed overrides): the seed DaemonSet rolled out on the dedicated cluster's workers."""

    def make(**overrides: Any) -> str:
        faults.apply(seed_daemonset(fault_namespace, **overrides))
        faults.wait_rollout(fault_namespace)
        return fault_namespace

    return make


# --- the API server stopped and started again ------------------------------------------------------------------


def expired(faults, namespace: str, resource_version: str) -> bool:
    """Whether a watch resumed from RESOURCE_VERSION now gets the real ``410 Expired`` (too old resource version)."""
    path = (f"/apis/apps/v1/namespaces/{namespace}/daemonsets?watch=1&resourceVersion={resource_version}"
            "&timeoutSeconds=1")  # fmt: skip
    return '"code":410' in faults.kubectl("get", "--raw", path, check=False).stdout


def test_rollout_wait_rides_out_an_api_server_restart(faults, deployed):
    """The restart also expires the wait's watch: the new API server's watch cache starts after the last
    resourceVersion the wait saw, so its resumed watch gets a real ERROR 410 Expired and must re-list."""
    namespace = deployed(min_ready_seconds=3)  # about 5 s per node: the rollout outlasts the restart
    set_image(faults, namespace, V2_IMAGE)
    timeout = 180
    run = faults.start_module("ds_rollout_wait", {"name": NAME, "namespace": namespace, "timeout": timeout})
    run.wait_for("Waiting for daemon set")
    seen = get_ds(faults, namespace)["metadata"]["resourceVersion"]  # from before the restart, as the wait's last one
    restart_api_server(faults)
    assert expired(faults, namespace, seen)

    result = run.result()
    assert not result.get("failed"), result.get("msg")
    assert (result["outcome"], result["rollout_complete"]) == ("complete", True)
    assert rolled_out(faults, namespace)
    assert run.wall <= timeout + MARGIN


def test_undo_with_wait_rides_out_an_api_server_restart(faults, deployed):
    namespace = deployed(min_ready_seconds=3, change_cause="v1")
    set_image(faults, namespace, V2_IMAGE)
    faults.wait_rollout(namespace)
    timeout = 180
    run = faults.start_module("ds_undo", {"name": NAME, "namespace": namespace, "wait": True, "wait_timeout": timeout})
    run.wait_for("Waiting for daemon set")
    restart_api_server(faults)

    result = run.result()
    assert not result.get("failed"), result.get("msg")
    assert (result["changed"], result["to_revision"], result["new_revision"]) == (True, 1, 3)
    assert result["rollout"]["rollout_complete"] is True
    assert rolled_out(faults, namespace)
    assert get_ds(faults, namespace)["spec"]["template"]["spec"]["containers"][0]["image"] != V2_IMAGE
    assert run.wall <= timeout + MARGIN


def test_undo_rides_out_an_api_server_restart_right_after_its_write(faults, deployed):
    """The restart lands between the rollback's write and the read back of the number the controller gives the
    target (the controller is held until then, so the read back must wait for it)."""
    namespace = deployed(min_ready_seconds=3, change_cause="v1")
    set_image(faults, namespace, V2_IMAGE)
    faults.wait_rollout(namespace)
    written = get_ds(faults, namespace)["metadata"]["generation"]
    watch = faults.start_kubectl("get", "ds", NAME, "--watch", "-o", "jsonpath={.metadata.generation}{'\\n'}",
                                 namespace=namespace)  # fmt: skip
    faults.pause("kube-controller-manager")
    run = faults.start_module("ds_undo", {"name": NAME, "namespace": namespace, "wait": True, "wait_timeout": 180})
    watch.wait_for(str(written + 1), stream="stdout")  # the rollback is written: its generation is live
    faults.stop("kube-apiserver")
    faults.resume("kube-controller-manager")
    time.sleep(2)
    faults.start("kube-apiserver")
    watch.finish(0)

    result = run.result()
    assert not result.get("failed"), result.get("msg")
    assert (result["changed"], result["to_revision"], result["new_revision"]) == (True, 1, 3)
    assert result["rollout"]["rollout_complete"] is True
    assert rolled_out(faults, namespace)
    assert run.wall <= 180 + MARGIN


def batch_args(namespace: str, **extra: Any) -> dict[str, Any]:
    base = {"name": NAME, "namespace": namespace, "images": {CONTAINER: V2_IMAGE}, "batches": [1, 2, "100%"],
            "min_available_seconds": 2, "batch_timeout": 120}  # fmt: skip
    return {**base, **extra}


def assert_finished(faults, namespace: str, target_hash: str) -> None:
    """Nothing half-done: every pod on the target, the strategy back, no state annotation."""
    live = get_ds(faults, namespace)
    assert live["spec"]["updateStrategy"] == STRATEGY
    assert STATE_ANNOTATION not in live["metadata"].get("annotations", {})
    pods = json.loads(faults.kubectl("get", "pods", "-o", "json", namespace=namespace).stdout)["items"]
    assert {pod["metadata"]["labels"]["controller-revision-hash"] for pod in pods} == {target_hash}
    assert rolled_out(faults, namespace)


def test_batch_rollout_rides_out_an_api_server_restart(faults, deployed):
    namespace = deployed(strategy=STRATEGY)
    run = faults.start_module("ds_batch_rollout", batch_args(namespace))
    run.wait_for("batch 1/3")
    restart_api_server(faults)

    result = run.result()
    assert not result.get("failed"), result.get("msg")
    assert result["outcome"] == "complete"
    assert [batch["gate"] for batch in result["batches"]] == ["passed"] * 3
    assert_finished(faults, namespace, result["revision"]["target"]["hash"])
    # the batches ran within their timeouts; the restart cost a few seconds of one of them
    assert run.wall <= 3 * 120 + MARGIN


def test_batch_rollout_of_a_daemonset_deleted_under_it_fails_clearly(faults, deployed):
    namespace = deployed(strategy=STRATEGY)
    run = faults.start_module("ds_batch_rollout", batch_args(namespace, min_available_seconds=5))
    run.wait_for("batch 1/3")
    faults.kubectl("delete", "ds", NAME, "--wait=false", namespace=namespace)
    result = run.result()
    assert result["failed"] and result["changed"], result
    assert f"DaemonSet {namespace}/{NAME}" in result["msg"] and "not found" in result["msg"], result["msg"]
    assert result["touched_nodes"], result  # how far it got
    assert run.wall <= 120 + MARGIN


# --- an API server that stops answering --------------------------------------------------------------------------


class FreezableProxy:
    """A TCP proxy to the API server that can stop forwarding: connections stay open (new ones are accepted too)
    but no byte goes through until ``thaw()``, like a server or a network path that hangs. ``freeze(0)`` freezes
    the first connection only (the one a client keeps for its requests) and lets the others flow."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.flowing: list[threading.Event] = []  # one per connection, in the order they came
        self.frozen = False  # new connections too
        self.closed = False
        self.sockets: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _address = self.listener.accept()
                server = socket.create_connection(self.upstream)
            except OSError:
                return
            flowing = threading.Event()
            if not self.frozen:
                flowing.set()
            self.flowing.append(flowing)
            self.sockets += [client, server]
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target, flowing), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, flowing: threading.Event) -> None:
        try:
            while data := source.recv(65536):
                while not flowing.wait(0.5):  # frozen: hold the bytes
                    if self.closed:
                        return
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                sock.close()

    def freeze(self, connection: int | None = None) -> None:
        if connection is None:
            self.frozen = True
        for flowing in self.flowing if connection is None else [self.flowing[connection]]:
            flowing.clear()

    def thaw(self) -> None:
        self.frozen = False
        for flowing in self.flowing:
            flowing.set()

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def proxy(faults, tmp_path: Path) -> Iterator[tuple[FreezableProxy, str]]:
    """(a FreezableProxy to the dedicated cluster's API server, a kubeconfig that goes through it)."""
    config = yaml.safe_load(Path(faults.kubeconfig).read_text())
    server = config["clusters"][0]["cluster"]["server"]
    host, port = server.removeprefix("https://").rsplit(":", 1)
    freezable = FreezableProxy((host, int(port)))
    # the API server's certificate has the IP SAN 127.0.0.1: TLS through the proxy verifies as usual
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{freezable.port}"
    path = tmp_path / "through-proxy.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    yield freezable, str(path)
    freezable.close()


@pytest.fixture(params=["paused", "etcd-paused", "proxy"])
def unanswering(request, faults) -> Iterator[dict[str, Any]]:
    """An API server that stops answering: the real one paused with SIGSTOP, its etcd paused, or a proxy to it
    that stops forwarding. ``kubeconfig`` reaches it; ``freeze()`` and ``thaw()``."""
    if request.param == "paused":
        yield {"kubeconfig": faults.kubeconfig, "freeze": lambda: faults.pause("kube-apiserver"),
               "thaw": lambda: faults.resume("kube-apiserver")}  # fmt: skip
        faults.resume("kube-apiserver")
        return
    if request.param == "etcd-paused":  # the API server answers nothing that needs its storage
        yield {"kubeconfig": faults.kubeconfig, "freeze": lambda: faults.pause("etcd"),
               "thaw": lambda: faults.resume("etcd")}  # fmt: skip
        faults.resume("etcd")
        return
    freezable, kubeconfig = request.getfixturevalue("proxy")
    yield {"kubeconfig": kubeconfig, "freeze": freezable.freeze, "thaw": freezable.thaw}


def test_a_server_that_stops_answering_cannot_hold_a_task(faults, deployed, unanswering):
    namespace = deployed(change_cause="v1")
    set_image(faults, namespace, BAD_IMAGE)  # never rolls out: the wait cannot end by itself
    before = get_ds(faults, namespace)
    via = {"name": NAME, "namespace": namespace, "kubeconfig": unanswering["kubeconfig"]}
    wait = faults.start_module("ds_rollout_wait", {**via, "timeout": 10})
    wait.wait_for("Waiting for daemon set")
    unanswering["freeze"]()
    try:
        history = faults.start_module("ds_history", via)
        undo = faults.start_module("ds_undo", {**via, "wait": True, "wait_timeout": 10})
        results = {"wait": wait.result(), "history": history.result(), "undo": undo.result()}
    finally:
        unanswering["thaw"]()
    walls = {"wait": wait.wall, "history": history.wall, "undo": undo.wall}
    assert walls["wait"] <= 10 + MARGIN, (walls, results["wait"])
    assert walls["history"] <= REQUEST_TIMEOUT + MARGIN, (walls, results["history"])
    assert walls["undo"] <= REQUEST_TIMEOUT + MARGIN, (walls, results["undo"])
    for what, result in results.items():
        assert result["failed"], (what, result)
        assert "no answer" in result["msg"], (what, result["msg"])
    # nothing was written meanwhile
    faults.kubectl("get", "--raw", "/readyz")
    after = get_ds(faults, namespace)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"]["template"] == before["spec"]["template"]


def test_a_wait_whose_report_reads_get_no_answer_still_ends_in_time(faults, deployed, proxy):
    """The wait's watch flows until its timeout; the requests after it (the revision, the pods and events that
    explain the failure), on the connection the client keeps, get no answer: the report goes without them."""
    namespace = deployed()
    set_image(faults, namespace, BAD_IMAGE)
    freezable, kubeconfig = proxy
    args = {"name": NAME, "namespace": namespace, "kubeconfig": kubeconfig, "timeout": 10}
    run = faults.start_module("ds_rollout_wait", args)
    run.wait_for("Waiting for daemon set")  # listed (the kept connection), now watching (a connection of its own)
    freezable.freeze(0)
    result = run.result()
    assert run.wall <= 10 + MARGIN, (run.wall, result)
    assert result["failed"] and result["outcome"] == "timeout", result
    assert "timed out waiting for the condition: the rollout did not finish within 10s" in result["msg"]
    assert any("no answer" in warning for warning in result["warnings"]), result["warnings"]


# --- the controller-manager stopped -------------------------------------------------------------------------------


def test_progress_deadline_names_a_controller_that_has_not_observed_the_change(faults, deployed):
    namespace = deployed()
    faults.stop("kube-controller-manager")
    set_image(faults, namespace, V2_IMAGE)
    args = {"name": NAME, "namespace": namespace, "timeout": 60, "progress_deadline": 5}
    run = faults.start_module("ds_rollout_wait", args)
    result = run.result()
    assert result["failed"] and result["outcome"] == "progress_deadline", result
    assert result["message"] == "Waiting for daemon set spec update to be observed..."
    assert "the DaemonSet controller has not observed generation" in result["msg"]
    assert "is kube-controller-manager running?" in result["msg"]
    assert run.wall <= 60 + MARGIN

    faults.start("kube-controller-manager")
    faults.wait_rollout(namespace)  # it catches up once it runs again


def test_progress_deadline_names_a_controller_that_stopped_mid_rollout(faults, deployed, eventually):
    namespace = deployed(min_ready_seconds=4)
    set_image(faults, namespace, V2_IMAGE)
    # the controller stops once it has replaced one pod: the status it wrote last is never updated again
    assert eventually(lambda: get_ds(faults, namespace)["status"].get("updatedNumberScheduled", 0) >= 1, 60, 0.2)
    faults.stop("kube-controller-manager")
    # past minReadySeconds and the controller's slack: a running controller would have replaced the next pod
    args = {"name": NAME, "namespace": namespace, "timeout": 60, "progress_deadline": 20}
    run = faults.start_module("ds_rollout_wait", args)
    result = run.result()
    assert result["failed"] and result["outcome"] == "progress_deadline", result
    assert result["blockers"]["controller_idle"] is True
    assert "the DaemonSet controller is not acting (" in result["msg"]
    assert "is kube-controller-manager running?" in result["msg"], result["msg"]
    assert run.wall <= 60 + MARGIN

    faults.start("kube-controller-manager")
    faults.wait_rollout(namespace)


# --- an untrusted certificate ------------------------------------------------------------------------------------


def test_an_untrusted_certificate_fails_at_once(faults, deployed, tmp_path: Path):
    """Retrying cannot help: the task fails on its first request, long before its timeout."""
    namespace = deployed()
    other_ca = tmp_path / "other-ca.crt"
    # a throw-away CA the server's certificate is not signed by
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=other", "-days", "1"]
    subprocess.run([*openssl, "-keyout", str(tmp_path / "key"), "-out", str(other_ca)], check=True, capture_output=True)
    args = {"name": NAME, "namespace": namespace, "timeout": 300, "ca_cert": str(other_ca)}
    run = faults.start_module("ds_rollout_wait", args)
    result = run.result()
    assert result["failed"]
    assert "certificate is not trusted" in result["msg"] and "ca_cert" in result["msg"], result["msg"]
    assert run.wall <= MARGIN


# --- ansible-playbook killed in the middle of a batch rollout --------------------------------------------------


def parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None  # gone


def claim(faults, namespace: str) -> dict[str, Any] | None:
    state = get_ds(faults, namespace)["metadata"].get("annotations", {}).get(STATE_ANNOTATION)
    return json.loads(state)["owner"] if state else None


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killed_batch_run_stops_deleting_and_a_rerun_resumes(faults, deployed, eventually, tmp_path, signum):
    namespace = deployed(strategy=STRATEGY)
    args = batch_args(namespace, batches=[1, 2, 3, "100%"], min_available_seconds=3)
    playbook = tmp_path / "batch.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False,
                                         "tasks": [{"kubeops.daemonset.ds_batch_rollout": args}]}]))  # fmt: skip
    first = faults.start_playbook(str(playbook))
    first.wait_for("batch 1/4")  # the plan is printed, then the claim written
    holder = eventually(lambda: claim(faults, namespace), 30, 0.2)
    assert holder and parent_of(holder["pid"]) == first.proc.pid  # the task runs in a worker of ansible-playbook

    # a second run while the first lives is refused before it writes anything, naming the holder
    second = faults.run_module("ds_batch_rollout", args)
    assert second["failed"] and second["changed"] is False
    assert f"another batch rollout of it is running (on {holder['host']}, process {holder['pid']}" in second["msg"]

    os.killpg(first.proc.pid, signum)
    first.finish()
    # the worker (in a session of its own with ansible-core 2.21) stops at its next request
    assert eventually(lambda: parent_of(holder["pid"]) is None, 15, 0.2), f"worker {holder['pid']} still runs"
    stopped = pod_uids(faults, namespace)
    time.sleep(8)  # longer than a batch takes: a run that went on would have deleted pods by now
    assert pod_uids(faults, namespace) == stopped
    live = get_ds(faults, namespace)
    assert live["spec"]["updateStrategy"]["type"] == "OnDelete"  # nothing rolls meanwhile

    resumed = faults.run_module("ds_batch_rollout", args)
    assert not resumed.get("failed"), resumed.get("msg")
    assert resumed["outcome"] == "complete"
    assert any("continuing the batch rollout started" in line for line in resumed["plan_lines"])
    assert_finished(faults, namespace, resumed["revision"]["target"]["hash"])
