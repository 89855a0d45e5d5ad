"""The local cluster's real node: a kubelet (v1.37.2, from the kube binary) on containerd v2 and Debian's runc, pulling
its images from a local OCI registry; localcluster.py starts and stops its processes, this file knows the rest.

Everything the node keeps lives in STATE/real-node/ (configs, containerd's root and state, runc's state, pod network
namespaces, the kubelet's root dir, pod logs, the registry's blobs). What cannot be moved there and is removed when the
cluster goes down: the pods' cgroups (under a cgroup root of this cluster's own in every hierarchy), the shims' sockets
in /run/containerd/s, the kubelet's log links in /var/log/containers, libcni's result cache in /var/lib/cni, the
kubelet's device-plugin socket (a fixed path, /var/lib/kubelet/device-plugins) and libmount's /run/mount.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

NAME = "real-node"
# Label and NoSchedule taint: only pods that ask for the real node land there.
LABEL = "kubeops.test/real-node"
REGISTRY_HOST = "registry.kubeops.test"  # the name pods use; containerd's hosts.toml sends it to the local registry
IMAGES = ("pause", "tool", "crashloop")  # .cache/images/NAME.tar, built by `make real-node`
PAUSE_IMAGE = f"{REGISTRY_HOST}/kubeops/pause:1"
CNI_PLUGIN_DIR = Path(__file__).with_name("cni")  # the fakeip plugin: a pod IP, no interfaces
CGROUPS = Path("/sys/fs/cgroup")
SHIM_SOCKETS = Path("/run/containerd/s")  # containerd v2 keeps shim sockets here whatever its state dir
DEVICE_PLUGINS = Path("/var/lib/kubelet/device-plugins")  # the kubelet's, whatever its --root-dir
# Host directories the kubelet, libcni, libmount and the shims create; removed when empty and no other real node runs.
SHARED_DIRS = (Path("/var/log/containers"), Path("/var/lib/cni/results"), Path("/var/lib/cni"), DEVICE_PLUGINS,
               DEVICE_PLUGINS.parent, SHIM_SOCKETS, SHIM_SOCKETS.parent, Path("/run/mount"))  # fmt: skip


def node_ip() -> str:
    """The first global IPv4 address (eth0's here): a kubelet refuses a loopback node IP."""
    out = subprocess.run(["ip", "-j", "-4", "addr", "show", "scope", "global"], check=True, capture_output=True)
    for link in json.loads(out.stdout):
        for address in link.get("addr_info", []):
            return address["local"]
    raise RuntimeError("no global IPv4 address for the real node (it cannot register with a loopback IP)")


@dataclass(frozen=True)
class RealNode:
    state: Path  # the cluster's state directory
    bin: Path
    images: Path

    @property
    def dir(self) -> Path:
        return self.state / "real-node"

    @property
    def socket(self) -> Path:
        return self.dir / "containerd.sock"

    @property
    def cluster_id(self) -> str:
        """Names the host-wide things of this cluster's node, so two clusters (tests start a second) never share."""
        return hashlib.sha256(str(self.state).encode()).hexdigest()[:10]

    @property
    def cgroup_root(self) -> str:
        return f"/kubeops-{self.cluster_id}"

    # ---------------------------------------------------------------- configuration

    def registry_command(self, port: int) -> list[str]:
        config = self.dir / "registry.yml"
        config.write_text(
            json.dumps(
                {
                    "version": 0.1,
                    "log": {"level": "warn", "accesslog": {"disabled": True}},
                    "storage": {"filesystem": {"rootdirectory": str(self.dir / "registry")}},
                    "http": {"addr": f"127.0.0.1:{port}"},
                }
            )
        )
        return [str(self.bin / "registry"), "serve", str(config)]

    def containerd_command(self, registry_port: int) -> list[str]:
        """containerd with its own socket, root and state; the CRI settings this host needs are commented."""
        hosts = self.dir / "certs.d" / REGISTRY_HOST / "hosts.toml"
        hosts.parent.mkdir(parents=True, exist_ok=True)
        registry = f"http://127.0.0.1:{registry_port}"
        hosts.write_text(f'server = "{registry}"\n[host."{registry}"]\n  capabilities = ["pull", "resolve"]\n')
        conf_dir = self.dir / "cni"
        conf_dir.mkdir(exist_ok=True)
        network = {"cniVersion": "0.4.0", "name": f"kubeops-{self.cluster_id}", "plugins": [{"type": "fakeip"}]}
        (conf_dir / "10-kubeops.conflist").write_text(json.dumps(network))
        cri_runtime = "plugins.'io.containerd.cri.v1.runtime'"
        runc = f"{cri_runtime}.containerd.runtimes.runc"
        config = self.dir / "containerd.toml"
        config.write_text(f"""version = 3
root = "{self.dir / "containerd-root"}"
state = "{self.dir / "containerd-state"}"
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{self.socket}.ttrpc"
[plugins.'io.containerd.internal.v1.opt']
  path = "{self.dir / "opt"}"
[plugins.'io.containerd.nri.v1.nri']
  disable = true
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{PAUSE_IMAGE}"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "{self.dir / "certs.d"}"
[{cri_runtime}]
  enable_selinux = false
  # root here lacks CAP_SYS_RESOURCE: runc cannot set the sandbox's oom_score_adj of -998, so clamp to ours
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [{cri_runtime}.containerd]
    default_runtime_name = "runc"
  [{runc}]
    runtime_type = "io.containerd.runc.v2"
  [{runc}.options]
    SystemdCgroup = false
    BinaryName = "/usr/sbin/runc"
    Root = "{self.dir / "runc"}"
  [{cri_runtime}.cni]
    bin_dirs = ["{CNI_PLUGIN_DIR}"]
    conf_dir = "{conf_dir}"
    use_internal_loopback = true
[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
""")
        return [str(self.bin / "containerd"), f"--config={config}"]

    def containerd_env(self) -> dict[str, str]:
        """containerd finds its shim on PATH."""
        return dict(os.environ, PATH=f"{self.bin}:{os.environ['PATH']}")

    def kubelet_command(self, kubeconfig: Path, ca: Path, ip: str, port: int, healthz_port: int) -> list[str]:
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": ip,
            "port": port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": healthz_port,
            # the API server authenticates with its client certificate; kubectl logs/exec go through it
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(ca)},
            },
            "authorization": {"mode": "Webhook"},
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "podLogsDir": str(self.dir / "pod-logs"),
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": self.cgroup_root,
            "failCgroupV1": False,  # this host mounts cgroup v1 (hybrid); the kubelet refuses it by default
            "failSwapOn": False,
            "oomScoreAdj": 0,  # no CAP_SYS_RESOURCE: the default -999 cannot be set
            "registerWithTaints": [{"key": LABEL, "value": "true", "effect": "NoSchedule"}],
            "clusterDNS": ["10.96.0.10"],  # else every pod gets a MissingClusterDNS warning event
            "resolvConf": "",
            "serializeImagePulls": False,
            # cadvisor cannot size this VM's root device, so the eviction manager is inactive anyway; these
            # thresholds keep it from evicting if it ever can
            "evictionHard": {
                "memory.available": "1Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "localStorageCapacityIsolation": False,
        }
        path = self.dir / "kubelet.yaml"
        path.write_text(json.dumps(config, indent=2))
        return [
            str(self.bin / "kubelet"), f"--config={path}", f"--kubeconfig={kubeconfig}",
            f"--root-dir={self.dir / 'kubelet'}", f"--cert-dir={self.dir / 'kubelet-pki'}",
            f"--hostname-override={NAME}", f"--node-ip={ip}", f"--node-labels={LABEL}=true", "--v=1",
        ]  # fmt: skip

    # ---------------------------------------------------------------- host

    def prepare(self) -> None:
        """The state directory and the cluster's cgroup root in every hierarchy (the kubelet requires it to exist)."""
        longest = self.dir / "kubelet" / "pod-resources" / "0123456789"  # the kubelet's deepest socket
        if len(str(longest)) > 107:
            raise RuntimeError(f"{self.state} is too long a path for the real node's unix sockets ({longest})")
        self.dir.mkdir(parents=True, exist_ok=True)
        for hierarchy in hierarchies():
            root = hierarchy / self.cgroup_root.lstrip("/")
            root.mkdir(exist_ok=True)
            for name in ("cpuset.cpus", "cpuset.mems"):  # a new v1 cpuset is empty: nothing could run in it
                if (root / name).exists() and not (root / name).read_text().strip():
                    (root / name).write_text((hierarchy / name).read_text())

    def push_images(self, registry_port: int) -> None:
        tars = [str(self.images / f"{name}.tar") for name in IMAGES]
        subprocess.run([str(self.images / "programs" / "mkoci"), "push", f"-registry=127.0.0.1:{registry_port}", *tars],
                       check=True, capture_output=True, text=True)  # fmt: skip

    def crictl(self, *args: str) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / "crictl"), f"--runtime-endpoint=unix://{self.socket}", "--timeout=30s", *args]
        return subprocess.run(cmd, capture_output=True, text=True, check=False)

    def remove_pods(self) -> None:
        """Stop and remove every pod through the CRI, so containerd unmounts, deletes network namespaces and runs
        the CNI DEL that clears libcni's cache (kill the processes instead and all of that stays behind)."""
        self.crictl("rmp", "--all", "--force")

    def clean_host(self) -> list[str]:
        """Remove what the node left outside its state directory; returns what could not be removed. Normally the
        pods are gone (remove_pods) and this finds nothing but empty directories; after a crash it does it all."""
        kill_pids(self.shim_pids() + self.cgroup_pids())
        self.remove_shim_sockets()
        left = unmount_under(self.dir)
        for hierarchy in hierarchies():
            left += remove_cgroup_tree(hierarchy / self.cgroup_root.lstrip("/"))
        self.remove_shared_files()
        return left

    def shim_pids(self) -> list[int]:
        return [pid for pid, argv in processes() if "-address" in argv and str(self.socket) in argv]

    def cgroup_pids(self) -> list[int]:
        pids: list[int] = []
        for hierarchy in hierarchies():
            for procs in (hierarchy / self.cgroup_root.lstrip("/")).rglob("cgroup.procs"):
                pids += [int(pid) for pid in procs.read_text().split()]
        return pids

    def remove_shim_sockets(self) -> None:
        """A killed shim leaves its socket: its name is the sha256 of containerd's address, namespace and id."""
        for _pid, argv in processes():
            if "-address" not in argv or str(self.socket) not in argv:
                continue
            options = dict(zip(argv[1::2], argv[2::2]))
            path = os.path.join(options.get("-address", ""), options.get("-namespace", ""), options.get("-id", ""))
            for suffix in ("", "/debug"):
                (SHIM_SOCKETS / hashlib.sha256(f"{path}{suffix}".encode()).hexdigest()).unlink(missing_ok=True)

    def remove_shared_files(self) -> None:
        """The kubelet's log links into this node's pod logs, libcni's cache entries of its network, then the shared
        directories if they are empty and no other real node runs (a running kubelet made them and expects them)."""
        logs = Path("/var/log/containers")
        for link in logs.glob("*.log") if logs.is_dir() else ():
            if link.is_symlink() and os.readlink(link).startswith(str(self.dir)):
                link.unlink()
        for cached in Path("/var/lib/cni/results").glob(f"kubeops-{self.cluster_id}-*"):
            cached.unlink()
        if any(argv[0].endswith("/kubelet") for _pid, argv in processes()):
            return
        (DEVICE_PLUGINS / "kubelet.sock").unlink(missing_ok=True)
        for directory in SHARED_DIRS:
            with contextlib.suppress(OSError):
                directory.rmdir()


# ---------------------------------------------------------------- host helpers


def hierarchies() -> list[Path]:
    """Every mounted cgroup hierarchy (v1 controllers, name=systemd and the unified v2 one on this hybrid host)."""
    return [path for path in sorted(CGROUPS.iterdir()) if path.is_dir() and os.path.ismount(path)]


def processes() -> list[tuple[int, list[str]]]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")[:-1]
            except OSError:
                continue
            if argv:
                found.append((int(entry.name), [arg.decode(errors="replace") for arg in argv]))
    return found


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or below DIRECTORY, deepest first (mountinfo escapes spaces and such as octal)."""
    prefix = str(directory)
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(set(points), key=len, reverse=True)


def unmount_under(directory: Path) -> list[str]:
    """Unmount everything below DIRECTORY (the kubelet bind-mounts its root dir onto itself, volumes are tmpfs,
    containers' root filesystems are overlays); a mount stacked several times takes several rounds."""
    for _round in range(10):
        points = mounts_under(directory)
        if not points:
            return []
        for point in points:
            subprocess.run(["umount", point], capture_output=True, check=False)
    return [f"mount {point}" for point in mounts_under(directory)]


def remove_cgroup_tree(root: Path) -> list[str]:
    """rmdir a cgroup and its children, deepest first (cgroupfs directories go with rmdir only, once empty)."""
    if not root.is_dir():
        return []
    left = []
    for directory in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        left += rmdir(directory)
    return left + rmdir(root)


def rmdir(directory: Path) -> list[str]:
    try:
        directory.rmdir()
    except FileNotFoundError:
        return []
    except OSError as err:
        return [f"cgroup {directory}: {err.strerror}"]
    return []
