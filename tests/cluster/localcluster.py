"""Start and stop the local test cluster: real etcd, kube-apiserver, kube-controller-manager and kube-scheduler
built from Go modules, with KWOK simulating the kubelets of the nodes, and one real node (a kubelet on containerd
and runc, see realnode.py) unless --real-nodes 0.

    python tests/cluster/localcluster.py up [--nodes N] [--real-nodes 0|1]   # idempotent; prints how long it took
    python tests/cluster/localcluster.py down              # stops every process it started, removes the state

The control plane listens on 127.0.0.1 only (the real kubelet on the host's address: it cannot be loopback); TLS
and RBAC are on. State (PKI, etcd data, logs, kubeconfig, the real node's runtime) lives in .cluster/ at the
repository root (or $KUBEOPS_CLUSTER_DIR); the binaries come from .cache/bin (`make binaries real-node`).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import realnode

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".cache" / "bin"
# KUBEOPS_CLUSTER_DIR runs a second cluster beside the usual one (benchmarks).
STATE = Path(os.environ.get("KUBEOPS_CLUSTER_DIR", ROOT / ".cluster")).resolve()
PKI = STATE / "pki"
LOGS = STATE / "logs"
PIDS = STATE / "pids"
KUBECONFIG = STATE / "kubeconfig"
STAGES = Path(__file__).with_name("kwok-stages.yaml.tmpl")
SERVICE_CIDR = "10.96.0.0/16"
# Start order; stopped in reverse.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
REAL_NODE_COMPONENTS = ("registry", "containerd", "kubelet")
REAL_NODE = realnode.RealNode(STATE, BIN, ROOT / ".cache" / "images")


@dataclass
class NodeShape:
    cpu: str = "4"
    memory: str = "8Gi"
    pods: str = "110"


def log(msg: str) -> None:
    print(f"[cluster] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(*cmd: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)


def kubectl(*args: str, stdin: str | None = None) -> str:
    return run(str(BIN / "kubectl"), f"--kubeconfig={KUBECONFIG}", *args, input=stdin).stdout


# ---------------------------------------------------------------- PKI and kubeconfig


CERT_DAYS = "3650"


def make_pki(real_node: bool) -> None:
    """One CA and one admin certificate (system:masters), also used to sign service-account tokens, as kwokctl does;
    with a real node also its kubelet's client certificate (system:nodes, so the Node authorizer serves it)."""
    PKI.mkdir(parents=True, exist_ok=True)
    run("openssl", "genrsa", "-out", str(PKI / "ca.key"), "2048")
    run(
        "openssl", "req", "-x509", "-new", "-nodes", "-key", str(PKI / "ca.key"), "-subj", "/CN=kubeops-local-ca",
        "-days", CERT_DAYS, "-out", str(PKI / "ca.crt"),
    )  # fmt: skip
    sign(
        "admin", "/O=system:masters/CN=kubernetes-admin", "extendedKeyUsage=serverAuth,clientAuth\n"
        "subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,"
        "DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1\n",
    )  # fmt: skip
    if real_node:
        sign("kubelet", f"/O=system:nodes/CN=system:node:{realnode.NAME}", "extendedKeyUsage=clientAuth\n")


def sign(name: str, subject: str, extensions: str) -> None:
    """PKI/NAME.key and PKI/NAME.crt for SUBJECT, signed by the cluster's CA."""
    ext = PKI / f"{name}.ext"
    ext.write_text(f"basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n{extensions}")
    run("openssl", "genrsa", "-out", str(PKI / f"{name}.key"), "2048")
    run("openssl", "req", "-new", "-key", str(PKI / f"{name}.key"), "-subj", subject, "-out", str(PKI / f"{name}.csr"))
    run(
        "openssl", "x509", "-req", "-in", str(PKI / f"{name}.csr"), "-CA", str(PKI / "ca.crt"), "-CAkey",
        str(PKI / "ca.key"), "-CAcreateserial", "-days", CERT_DAYS, "-extfile", str(ext),
        "-out", str(PKI / f"{name}.crt"),
    )  # fmt: skip


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(port: int, path: Path = KUBECONFIG, user: str = "admin") -> None:
    """A self-contained kubeconfig for USER's certificate (credentials embedded) so it can be copied anywhere."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "kubeops-local",
                "cluster": {
                    "server": f"https://127.0.0.1:{port}",
                    "certificate-authority-data": b64(PKI / "ca.crt"),
                },
            }
        ],
        "users": [
            {
                "name": f"kubeops-{user}",
                "user": {
                    "client-certificate-data": b64(PKI / f"{user}.crt"),
                    "client-key-data": b64(PKI / f"{user}.key"),
                },
            }
        ],
        "contexts": [{"name": "kubeops-local", "context": {"cluster": "kubeops-local", "user": f"kubeops-{user}"}}],
        "current-context": "kubeops-local",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)


# ---------------------------------------------------------------- processes


def pid_of(name: str) -> int | None:
    """The pid of a running (not exited, not zombie) component, else None."""
    try:
        pid = int((PIDS / name).read_text())
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError, IndexError):
        return None
    return None if state in ("Z", "X") else pid


def start(name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
    """Start a component detached in its own session, logging to .cluster/logs/NAME.log."""
    with (LOGS / f"{name}.log").open("ab") as logfile:
        proc = subprocess.Popen(
            argv, stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, env=env
        )
    (PIDS / name).write_text(str(proc.pid))


def stop(name: str) -> None:
    """SIGTERM the component's process group, SIGKILL it after 10 s."""
    pid = pid_of(name)
    if pid is None:
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _attempt in range(100):
        if pid_of(name) is None:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def tail(name: str, lines: int = 25) -> str:
    path = LOGS / f"{name}.log"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


class ComponentFailed(RuntimeError):
    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"{name} {why}; last lines of .cluster/logs/{name}.log:\n{tail(name)}")


def wait_until(name: str, ready: Callable[[], bool], timeout: float) -> None:
    """Poll ready() until true; fail with the component's log tail if it exits or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid_of(name) is None:
            raise ComponentFailed(name, "exited")
        try:
            if ready():
                return
        except (OSError, subprocess.CalledProcessError):
            pass
        time.sleep(0.2)
    raise ComponentFailed(name, f"was not ready after {timeout:.0f}s")


def https_ok(port: int, path: str, self_signed: bool = False) -> bool:
    """GET over TLS with the admin certificate; the controller manager and scheduler serve self-signed certs."""
    ctx = ssl.create_default_context(cafile=str(PKI / "ca.crt"))
    ctx.load_cert_chain(str(PKI / "admin.crt"), str(PKI / "admin.key"))
    if self_signed:
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", context=ctx, timeout=2) as resp:
        return resp.status == 200


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.status == 200


# ---------------------------------------------------------------- components


def start_control_plane(ports: dict[str, int], pod_ready_ms: int) -> None:
    kube, admin = str(BIN / "kube"), str(KUBECONFIG)
    pki = {name: str(PKI / name) for name in ("ca.crt", "admin.crt", "admin.key")}
    etcd_url, peer_url = f"http://127.0.0.1:{ports['etcd']}", f"http://127.0.0.1:{ports['etcd-peer']}"
    start(
        "etcd",
        [
            str(BIN / "etcd"), "--name=node0", f"--data-dir={STATE / 'etcd'}", f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}", f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}", f"--initial-cluster=node0={peer_url}",
            "--unsafe-no-fsync", "--quota-backend-bytes=8589934592", "--log-level=warn",
        ],
    )  # fmt: skip
    wait_until("etcd", lambda: http_ok(f"{etcd_url}/health"), 60)

    api_port = ports["kube-apiserver"]
    start(
        "kube-apiserver",
        [
            kube, "kube-apiserver", f"--etcd-servers={etcd_url}", "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1", f"--secure-port={api_port}", "--endpoint-reconciler-type=none",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--allow-privileged=true",
            "--authorization-mode=Node,RBAC", f"--client-ca-file={pki['ca.crt']}",
            f"--tls-cert-file={pki['admin.crt']}", f"--tls-private-key-file={pki['admin.key']}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki['admin.key']}", f"--service-account-signing-key-file={pki['admin.key']}",
            "--max-requests-inflight=2000", "--max-mutating-requests-inflight=1000",
            # logs/exec/port-forward: reach a kubelet at its node IP (the real node's name resolves nowhere)
            # and present a certificate its webhook authentication accepts
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            f"--kubelet-client-certificate={pki['admin.crt']}", f"--kubelet-client-key={pki['admin.key']}",
        ],
    )  # fmt: skip
    wait_until("kube-apiserver", lambda: https_ok(api_port, "/readyz"), 120)

    common = [f"--kubeconfig={admin}", "--bind-address=127.0.0.1", "--leader-elect=false",
              "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics"]  # fmt: skip
    start(
        "kube-controller-manager",
        [
            kube, "kube-controller-manager", *common, f"--secure-port={ports['kube-controller-manager']}",
            f"--root-ca-file={pki['ca.crt']}", f"--service-account-private-key-file={pki['admin.key']}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--kube-api-qps=5000", "--kube-api-burst=10000",
            "--use-service-account-credentials=false", "--node-monitor-grace-period=40s",
        ],
    )  # fmt: skip
    start(
        "kube-scheduler",
        [kube, "kube-scheduler", *common, f"--secure-port={ports['kube-scheduler']}",
         "--kube-api-qps=5000", "--kube-api-burst=10000"],
    )  # fmt: skip
    stages = STATE / "kwok-stages.yaml"
    jitter = pod_ready_ms * 2
    stages.write_text(
        STAGES.read_text()
        .replace("__POD_READY_MS__", str(pod_ready_ms))
        .replace("__POD_READY_JITTER_MS__", str(jitter))
    )
    start(
        "kwok",
        [
            str(BIN / "kwok"), f"--kubeconfig={admin}", f"--config={stages}", "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake", "--node-ip=127.0.0.1",
            f"--node-port={ports['kwok']}", f"--server-address=127.0.0.1:{ports['kwok']}",
            f"--tls-cert-file={pki['admin.crt']}", f"--tls-private-key-file={pki['admin.key']}",
            "--cidr=10.244.0.0/16", "--node-lease-duration-seconds=40",
        ],
    )  # fmt: skip
    for name in ("kube-controller-manager", "kube-scheduler"):
        wait_until(name, lambda port=ports[name]: https_ok(port, "/healthz", self_signed=True), 60)


# ---------------------------------------------------------------- nodes


def node(name: str, shape: NodeShape, control_plane: bool = False) -> dict:
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
    }
    spec: dict = {}
    if control_plane:
        labels["node-role.kubernetes.io/control-plane"] = ""
        spec["taints"] = [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    resources = {"cpu": shape.cpu, "memory": shape.memory, "pods": shape.pods}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": {"kwok.x-k8s.io/node": "fake"}},
        "spec": spec,
        "status": {"allocatable": resources, "capacity": resources},
    }


def create_nodes(workers: int, shape: NodeShape) -> None:
    items = [node("kwok-control-plane", shape, control_plane=True)]
    items += [node(f"kwok-worker-{i}", shape) for i in range(1, workers + 1)]
    # kubectl create in chunks keeps each request body small at 1000 nodes.
    for start_at in range(0, len(items), 200):
        chunk = {"apiVersion": "v1", "kind": "List", "items": items[start_at : start_at + 200]}
        kubectl("create", "-f", "-", stdin=json.dumps(chunk))


def nodes_ready(expected: int) -> bool:
    out = kubectl(
        "get", "nodes", "-o", "jsonpath={range .items[*]}{.status.conditions[?(@.type=='Ready')].status}{'\\n'}{end}"
    )
    states = out.split()
    return len(states) >= expected and all(s == "True" for s in states)


def start_real_node(ports: dict[str, int]) -> None:
    """The local registry (with the test images pushed), containerd, then the kubelet, which registers the node."""
    node = REAL_NODE
    node.prepare()
    start("registry", node.registry_command(ports["registry"]), env=dict(os.environ, OTEL_TRACES_EXPORTER="none"))
    wait_until("registry", lambda: http_ok(f"http://127.0.0.1:{ports['registry']}/v2/"), 30)
    node.push_images(ports["registry"])
    start("containerd", node.containerd_command(ports["registry"]), env=node.containerd_env())
    wait_until("containerd", lambda: node.crictl("info").returncode == 0, 60)
    kubelet_kubeconfig = STATE / "kubelet.kubeconfig"
    write_kubeconfig(ports["kube-apiserver"], kubelet_kubeconfig, user="kubelet")
    ip = realnode.node_ip()
    start("kubelet", node.kubelet_command(kubelet_kubeconfig, PKI / "ca.crt", ip, ports["kubelet"], ports["healthz"]))
    wait_until("kubelet", lambda: http_ok(f"http://127.0.0.1:{ports['healthz']}/healthz"), 60)
    ready = "jsonpath={.status.conditions[?(@.type=='Ready')].status}"
    wait_until("kubelet", lambda: kubectl("get", "node", realnode.NAME, "-o", ready) == "True", 60)


def default_service_account() -> bool:
    kubectl("get", "serviceaccount", "default", "-n", "default")
    return True


# ---------------------------------------------------------------- up / down


def components(real_nodes: int) -> tuple[str, ...]:
    return COMPONENTS + (REAL_NODE_COMPONENTS if real_nodes else ())


def is_up(real_nodes: int = int(os.environ.get("REAL_NODES", 1))) -> bool:
    if not KUBECONFIG.exists() or not all(pid_of(name) for name in components(real_nodes)):
        return False
    try:
        kubectl("get", "--raw", "/readyz")
        return True
    except subprocess.CalledProcessError:
        return False


def up(workers: int, shape: NodeShape, pod_ready_ms: int, real_nodes: int) -> None:
    began = time.monotonic()
    if is_up(real_nodes):
        log(f"already up; KUBECONFIG={KUBECONFIG}")
        return
    needed = ("kube", "kubectl", "etcd", "kwok") + (
        ("kubelet", "containerd", "crictl", "registry") if real_nodes else ()
    )
    missing = [b for b in needed if not (BIN / b).exists()]
    if missing:
        sys.exit(f"missing binaries in {BIN}: {', '.join(missing)} (run `make binaries real-node`)")
    down(quiet=True)
    for folder in (PKI, LOGS, PIDS):
        folder.mkdir(parents=True, exist_ok=True)
    ports = {name: free_port() for name in (*components(real_nodes), "etcd-peer", "healthz")}
    make_pki(bool(real_nodes))
    write_kubeconfig(ports["kube-apiserver"])
    try:
        start_control_plane(ports, pod_ready_ms)
        wait_until("kube-controller-manager", default_service_account, 60)
        create_nodes(workers, shape)
        if real_nodes:
            start_real_node(ports)
        wait_until("kwok", lambda: nodes_ready(workers + 1 + real_nodes), 120 + workers * 0.2)
    except (RuntimeError, subprocess.CalledProcessError) as err:  # ComponentFailed is a RuntimeError
        detail = err.stderr if isinstance(err, subprocess.CalledProcessError) else ""
        down(quiet=True, keep_logs=True)
        sys.exit(f"cluster-up failed: {err}\n{detail}")
    real = f" + real node {realnode.NAME}" if real_nodes else ""
    log(f"up with {workers} worker nodes + 1 control-plane node{real} in {time.monotonic() - began:.1f}s")
    log(f"export KUBECONFIG={KUBECONFIG}")


def down(quiet: bool = False, keep_logs: bool = False) -> None:
    """Stop every component (the real node's pods through the CRI first), clean what the real node left on the host,
    then remove the state directory - unless a mount is left in it: rm -rf would go through it."""
    for name in reversed(components(real_nodes=1)):
        if name == "containerd" and pid_of(name):
            REAL_NODE.remove_pods()
        stop(name)
    left = REAL_NODE.clean_host() if REAL_NODE.dir.exists() else []
    if left:
        sys.exit("cluster-down could not remove (nothing deleted, run it again):\n" + "\n".join(left))
    if keep_logs:
        for child in STATE.iterdir() if STATE.exists() else ():
            if child != LOGS:
                subprocess.run(["rm", "-rf", str(child)], check=False)
    else:
        subprocess.run(["rm", "-rf", str(STATE)], check=False)
    if not quiet:
        log(f"down; every component stopped and {STATE} removed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up_cmd = sub.add_parser("up", help="start the cluster (idempotent)")
    up_cmd.add_argument("--nodes", type=int, default=int(os.environ.get("NODES", 3)), help="worker nodes (default 3)")
    up_cmd.add_argument(
        "--real-nodes",
        type=int,
        choices=(0, 1),
        default=int(os.environ.get("REAL_NODES", 1)),
        help="1 (default): also start a real node (kubelet, containerd, runc); 0: KWOK nodes only",
    )
    up_cmd.add_argument("--cpu", default=os.environ.get("NODE_CPU", "4"), help="allocatable cpu per node")
    up_cmd.add_argument("--memory", default=os.environ.get("NODE_MEMORY", "8Gi"), help="allocatable memory per node")
    up_cmd.add_argument("--pods", default=os.environ.get("NODE_PODS", "110"), help="allocatable pods per node")
    up_cmd.add_argument(
        "--pod-ready-ms",
        type=int,
        default=int(os.environ.get("POD_READY_MS", 700)),
        help="a pod becomes Ready this many ms after binding, plus up to as much again in jitter",
    )
    sub.add_parser("down", help="stop every component and remove .cluster/")
    sub.add_parser("status", help="exit 0 when the cluster is up")
    args = parser.parse_args()
    if args.command == "up":
        up(args.nodes, NodeShape(args.cpu, args.memory, args.pods), args.pod_ready_ms, args.real_nodes)
    elif args.command == "status":
        sys.exit(0 if is_up() else 1)
    else:
        down()


if __name__ == "__main__":
    main()
